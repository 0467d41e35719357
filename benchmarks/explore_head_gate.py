"""Exploration: when ProtoNet gives a new group a logistic head, does it help,
and what tells when it will?

``PrototypicalClassifier`` can give a new group a logistic head of its own
where cross-validation on its support rows says the head's held-out loss
beats the prototypes' by more than half a standard error. On the validation
groups of COMPAS and Adult the prototypes alone did better
(``bench_fewshot.py``'s tuned rows), under the strong synthetic shift the
heads. This script asks why, one held-out support draw at a time: for each
fold of a ``bench_fewshot.py`` data set it fits ProtoNet with the defaults of
``bench_fewshot.py`` but ``head="logistic"`` (the cross-validation alone, as
``head="auto"`` was until ``4c2fc14``), adapts it to every held-out group, k
and draw (the draws of ``bench_fewshot.py``; k = 1 never has a head) and
scores the query rows twice: with the head the group was given, and with the
prototypes' own head put back in its place (the same adapted model, its
logistic heads replaced by the linear heads of its prototypes). It also
records the statistic of the choice, ``z``: the prototypes' cross-validated
loss minus the smallest, in standard errors of the rows' paired differences
(a head is given where ``z > 0.5``; the script reads it by wrapping the
package's private rule function, ``one_standard_error_index``), and each
fold's ``task_spread_`` and ``head_min_rows_``, which ``head="auto"`` computes
from the training tasks since ``4c2fc14``.

It prints, per data set and k, the share of draws given a head, the effect
of the head where given (balanced accuracy and query log-loss, head minus
prototypes), and what two rules would do: the mean effect over all draws, in
points, if a head were kept only where ``z >= c`` (its penalty still the one
chosen), for several ``c``, or only where the group has at least
``head_min_rows_`` rows (the rule of ``head="auto"`` since ``4c2fc14``).

Run (about 1 minute for the six data sets)::

    OMP_NUM_THREADS=1 python benchmarks/explore_head_gate.py \\
        --datasets synthetic-strong,synthetic,synthetic-types,heart,compas,adult
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

import skmeta._prototypical as _prototypical  # noqa: E402
from skmeta import PrototypicalClassifier  # noqa: E402

GATES = (0.5, 1.0, 1.5, 2.0, 3.0)
KS = (5, 10, 20)


class ChoiceLog:
    """Wraps the package's penalty rule and keeps the last call's ``z`` of
    the first task: the prototypes' summed held-out loss minus the smallest
    candidate's, in standard errors of their paired per-row differences."""

    def __init__(self):
        self.rule = _prototypical.one_standard_error_index
        self.z = None

    def __call__(self, row_loss, rows_used, tolerance=1.0, allowed=None):
        index = self.rule(row_loss, rows_used, tolerance, allowed)
        loss = row_loss[0][:, rows_used[0]].double()  # (candidates, rows)
        best = int(loss.sum(1).argmin())
        diff = loss[0] - loss[best]
        se = float(diff.std() * len(diff) ** 0.5)
        excess = float(diff.sum())
        self.z = excess / se if se > 0 else (np.inf if excess > 0 else 0.0)
        return index


def log_loss(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))


def prototype_scores(adapted, data, task, query):
    """Balanced accuracy and log-loss on the query rows of ``adapted`` with
    every logistic head replaced by its prototypes' linear head."""
    states = adapted.states_
    coef, bias = adapted._prototype_head(states["prototypes"], data.X.shape[1])
    adapted.states_ = dict(
        states,
        coef=coef.to(states["coef"].dtype),
        bias=bias.to(states["bias"].dtype),
    )
    proba = adapted.predict_proba(data.X[query], tasks=np.full(len(query), task))[:, 1]
    adapted.states_ = states
    pred = (proba >= 0.5).astype(np.int64)
    return B.balanced_accuracy(data.y[query], pred), log_loss(data.y[query], proba)


def run_fold(data, f_index, seeds, ks, budget, log):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    kwargs = B._meta_kwargs(budget, B.RANDOM_STATE)
    model = PrototypicalClassifier(**kwargs, head="logistic").fit(
        data.X[data.train], data.y[data.train], tasks=tasks
    )
    # What head="auto" would take from the same training tasks.
    auto = copy.deepcopy(model)
    auto._auto_head(auto.support_)
    spread = (f_index, auto.task_spread_, auto.head_min_rows_)
    records = []
    for task, k, seed, support, query in B.heldout_draws(data, f_index, ks, seeds):
        log.z = None
        adapted, bacc = B.adapted_score(model, data, task, support, query)
        proba = adapted.predict_proba(data.X[query], tasks=np.full(len(query), task))[
            :, 1
        ]
        penalty = float(adapted.head_penalty_[-1])
        if np.isfinite(penalty) and log.z is None:
            raise RuntimeError("a head was given without the rule being read")
        given = bool(np.isfinite(penalty))
        record = dict(fold=f_index, task=task, k=k, seed=seed, head=given)
        record["enough"] = len(support) >= auto.head_min_rows_
        record.update(z=log.z if log.z is not None else 0.0, bacc=bacc)
        record["loss"] = log_loss(data.y[query], proba)
        if given:
            record["bacc_proto"], record["loss_proto"] = prototype_scores(
                adapted, data, task, query
            )
        else:
            record["bacc_proto"], record["loss_proto"] = bacc, record["loss"]
        records.append(record)
    return records, spread


def report(df):
    df = df.assign(
        effect=100 * (df.bacc - df.bacc_proto), loss_effect=df.loss - df.loss_proto
    )
    rows = []
    for k, part in df.groupby("k"):
        given = part[part["head"]]
        rows.append(
            [
                k,
                len(part),
                f"{100 * part['head'].mean():.0f} %",
                B._pm(given.effect.mean(), B._sem(given.effect), 1, 1, True)
                if len(given)
                else "–",
                B._pm(given.loss_effect.mean(), B._sem(given.loss_effect), 1, 3, True)
                if len(given)
                else "–",
                f"{given.z.median():.2f}" if len(given) else "–",
            ]
        )
    print(
        B.markdown_table(
            [
                "k",
                "draws",
                "given a head",
                "head minus prototypes, bal. acc. points (where given)",
                "head minus prototypes, query log-loss (where given)",
                "median z (where given)",
            ],
            rows,
        )
    )
    print(
        "\nStricter rules: the head kept only where z >= c, or only for groups "
        "of at least head_min_rows_ rows (the rule of head='auto' since "
        "4c2fc14); the mean effect on balanced accuracy over all draws, points "
        "(± SE over the draws, groups x seeds; c = 0.5 is the cross-validation "
        "alone):\n"
    )
    rows = []
    for k, part in df.groupby("k"):
        cells = [k]
        for c in GATES:
            kept = part.effect.where(part["head"] & (part.z >= c), 0.0)
            cells.append(B._pm(kept.mean(), B._sem(kept), 1, 1, True))
        kept = part.effect.where(part["head"] & part.enough, 0.0)
        cells.append(B._pm(kept.mean(), B._sem(kept), 1, 1, True))
        rows.append(cells)
    header = ["k", *(f"c = {c:g}" for c in GATES), "rows >= head_min_rows_"]
    print(B.markdown_table(header, rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong,compas")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--quick", action="store_true", help="first fold, k = 5, two draws"
    )
    args = parser.parse_args(argv)
    budget = "quick" if args.quick else "full"
    if args.quick:
        args.seeds = 2
    B.exploration_header("explore_head_gate", argv)
    log = ChoiceLog()
    _prototypical.one_standard_error_index = log
    try:
        for name in args.datasets.split(","):
            start = time.perf_counter()
            dataset = B.LOADERS[name]()
            folds = dataset.folds[:1] if args.quick else dataset.folds
            ks = (5,) if args.quick else KS
            records, spreads = [], []
            for f_index, data in enumerate(folds):
                fold_records, spread = run_fold(
                    data, f_index, range(args.seeds), ks, budget, log
                )
                records += fold_records
                spreads.append(spread)
            print(f"\n## {name} ({len(folds)} fold(s), {args.seeds} draws)\n")
            print(
                "The training tasks' spread (task_spread_) and the fewest rows for "
                "a head (head_min_rows_), per fold: "
                + "; ".join(f"{t:+.3f}, {n:.1f}" for _, t, n in spreads)
                + "\n"
            )
            report(pd.DataFrame(records))
            print(f"\n{name}: {time.perf_counter() - start:.0f} s")
    finally:
        _prototypical.one_standard_error_index = log.rule


if __name__ == "__main__":
    main()
