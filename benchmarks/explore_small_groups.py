"""Exploration: from how many rows of its rarest class should a group
cross-validate a head where the training groups' spread is not estimated?

Where no two training groups have 10 rows of each class, the training
groups' spread ``task_spread_`` cannot be estimated, and nothing tempers a
group's choice of its head (ProtoNet) or correction (MAML) but its own
stratified cross-validation, of ``min(5, rows of its rarest class)`` folds.
The package asks there for five rows of the rarest class (the full five
folds; ``_head_min_class_rows``); this script measures that rule against the
two before it, three rows (from ``4f6e5a4``) and two (patched here).

Many small groups, 20 further rows of each scored: ``rows``, the generator of
``bench_speed.py`` (each group shifts the features and the intercept; the
slope is shared), and ``slopes``, ``make_group_classification(n_features=6,
group_shift=2.0)`` (each group's slope differs from the others' more than the
shared slope). Both estimators with their defaults (``n_threads=1``) are
fitted on groups of 5 or 10 rows (2,000 or 1,000 groups), once with each
rule and the same ``random_state``. Scored: the training groups whose rarest
class has 2 to 4 rows (those the rules treat differently), on their further
rows, and 50 groups added by ``partial_fit`` with 2 and with 4 rows of each
class, on their other rows; balanced accuracy (threshold 0.5) and log loss,
with each rule, mean ± SE over random states (data and model).

Run (about 10 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_small_groups.py
"""

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, log_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
import bench_speed as S  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta.datasets import make_group_classification  # noqa: E402

N_NEW = 50  # groups added by partial_fit
N_SCORED = 20  # further rows of each training group, scored
NEW_SHOTS = (2, 4)  # rows of each class of a new group's support
RULES = {"5 rows (package)": None, "3 rows (4f6e5a4)": 3, "2 rows (before)": 2}


def with_rule(cls, rows):
    """``cls``, or a subclass asking ``rows`` rows of the rarest class
    where the spread is not estimated."""
    if rows is None:
        return cls
    name = f"{cls.__name__}{rows}Rows"
    return type(name, (cls,), {"_UNESTIMATED_CLASS_ROWS": rows})


ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}


def make_data(kind, n_groups, per_group, seed):
    """Rows of ``n_groups`` training groups and ``N_NEW`` new ones, each
    group's first ``per_group`` rows marked for training: ``(X, y, groups,
    position of each row in its group, new-group mask)``."""
    n_all = n_groups + N_NEW
    size = max(per_group + N_SCORED, 60)
    if kind == "rows":
        X, y, g = S.make_rows(n_all * size, n_all, seed=seed)
    else:
        X, y, g = make_group_classification(
            n_groups=n_all,
            n_samples_per_group=size,
            n_features=6,
            group_shift=2.0,
            random_state=seed,
        )
        X = X.astype(np.float32)
    g = np.array([f"g{int(i):05d}" for i in np.unique(g, return_inverse=True)[1]])
    order = np.argsort(g, kind="stable")
    _, first = np.unique(g[order], return_index=True)
    position = np.empty(len(g), dtype=np.int64)
    position[order] = np.arange(len(g)) - np.repeat(
        first, np.diff(np.append(first, len(g)))
    )
    new = np.isin(g, np.unique(g)[-N_NEW:])
    return X, y, g, position, new


def rarest_class_rows(y, g):
    """Rows of each row's group's rarest class (of two)."""
    names, inverse = np.unique(g, return_inverse=True)
    counts = np.zeros((len(names), 2), dtype=np.int64)
    np.add.at(counts, (inverse, y), 1)
    return counts.min(1)[inverse]


def score(y, p):
    return balanced_accuracy_score(y, p > 0.5), log_loss(y, p, labels=[0, 1])


def new_supports(y, g, new, seed):
    """For each size of ``NEW_SHOTS``: the support rows of the new groups
    (that many rows of each class) and their query rows (the others)."""
    out = {}
    for shots in NEW_SHOTS:
        rng = np.random.default_rng([seed, shots])
        support = np.zeros(len(y), dtype=bool)
        for name in np.unique(g[new]):
            rows = np.flatnonzero(g == name)
            for c in (0, 1):
                of_class = rows[y[rows] == c]
                if len(of_class) > shots:
                    support[rng.choice(of_class, shots, replace=False)] = True
        names, counts = np.unique(g[support], return_counts=True)
        complete = np.isin(g, names[counts == 2 * shots])
        support &= complete
        out[shots] = (support, new & complete & ~support)
    return out


def run(kind, estimator, n_groups, per_group, seed, **params):
    """Every rule's scores: ``{rule: [training bal. acc., log loss, then
    each new-group size's bal. acc., log loss]}``, the share of the scored
    groups each gave a head (training, then each new-group size), and the
    fit times."""
    X, y, g, position, new = make_data(kind, n_groups, per_group, seed)
    train = ~new & (position < per_group)
    scored = ~new & (position >= per_group) & (position < per_group + N_SCORED)
    rarest = np.zeros(len(y), dtype=np.int64)
    rarest[train] = rarest_class_rows(y[train], g[train])
    changed_groups = np.unique(g[train & (rarest >= 2) & (rarest < 5)])
    scored &= np.isin(g, changed_groups)
    supports = new_supports(y, g, new, seed)
    out, heads, times = {}, {}, {}
    for rule, rows in RULES.items():
        clf = with_rule(ESTIMATORS[estimator], rows)(
            n_threads=1, random_state=seed, **params
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clf.fit(X[train], y[train], sensitive_features=g[train])
            times[rule] = time.perf_counter() - start
            assert np.isnan(clf.task_spread_), "the spread was estimated"
            p = clf.predict_proba(X[scored], sensitive_features=g[scored])[:, 1]
            out[rule] = list(score(y[scored], p))
            heads[rule] = [
                np.isfinite(clf.head_penalty_)[
                    np.isin(clf.tasks_, changed_groups)
                ].mean()
            ]
            for support, query in supports.values():
                adapted = copy.deepcopy(clf).partial_fit(
                    X[support], y[support], sensitive_features=g[support]
                )
                p = adapted.predict_proba(X[query], sensitive_features=g[query])
                out[rule] += score(y[query], p[:, 1])
                heads[rule].append(
                    np.isfinite(
                        adapted.head_penalty_[
                            np.isin(adapted.tasks_, np.unique(g[support]))
                        ]
                    ).mean()
                )
    return out, heads, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke run: one small fit of each"
    )
    args = parser.parse_args(argv)
    sizes, kinds, params = [(2000, 5), (1000, 10)], ("rows", "slopes"), {}
    if args.quick:
        args.seeds, sizes, kinds = 1, [(200, 10)], ("rows",)
        params = {"max_epochs": 2}
    torch.set_num_threads(1)
    B.exploration_header("explore_small_groups", argv)
    new_cols = " | ".join(f"new, {s} + {s}: bal. acc. | log loss" for s in NEW_SHOTS)
    print(
        "\nTraining groups whose rarest class has 2 to 4 rows (scored on their "
        f"{N_SCORED} further rows) and {N_NEW} new groups adapted to "
        f"{' or '.join(map(str, NEW_SHOTS))} rows of each class (scored on "
        "their other rows); spread not estimated in every fit. Share with a "
        "head: of those groups, the share given a head (ProtoNet) or "
        "correction (MAML): training / new of each size.\n"
    )
    print(
        "| data | estimator | groups x rows | rule | share with a head "
        f"| training: bal. acc. | log loss | {new_cols} | fit s |"
    )
    print("|---|---|---|---|---|---|---|" + "---|---|" * len(NEW_SHOTS) + "---|")
    summary = []
    rules = list(RULES)
    for kind in kinds:
        for estimator in ESTIMATORS:
            for n_groups, per_group in sizes:
                runs = [
                    run(kind, estimator, n_groups, per_group, s, **params)
                    for s in range(args.seeds)
                ]
                for rule in rules:
                    v = np.array([r[0][rule] for r in runs])
                    h = np.array([r[1][rule] for r in runs]).mean(0)
                    t = np.mean([r[2][rule] for r in runs])
                    cells = " | ".join(f"{x:.4f}" for x in v.mean(0))
                    shares = " / ".join(f"{x:.2f}" for x in h)
                    print(
                        f"| {kind} | {estimator} | {n_groups} x {per_group} "
                        f"| {rule} | {shares} | {cells} | {t:.1f} |",
                        flush=True,
                    )
                for other in rules[1:]:
                    a = np.array([r[0][rules[0]] for r in runs])
                    b = np.array([r[0][other] for r in runs])
                    d = a - b
                    d[:, 0::2] *= 100
                    se = (
                        d.std(0, ddof=1) / np.sqrt(len(d))
                        if len(d) > 1
                        else np.full(d.shape[1], np.nan)
                    )
                    summary.append(
                        (kind, estimator, f"{n_groups} x {per_group}", other)
                        + (d.mean(0), se)
                    )
    print(
        "\nThe package (5 rows) minus each rule before (bal. acc. in points; "
        "log loss: lower is better; mean ± SE over random states):\n"
    )
    print(
        f"| data | estimator | groups x rows | minus | training: bal. acc. "
        f"| log loss | {new_cols} |"
    )
    print("|---|---|---|---|---|---|" + "---|---|" * len(NEW_SHOTS))
    for kind, estimator, size, other, mean, se in summary:
        cells = [
            f"{mean[i]:+.2f} ± {se[i]:.2f}"
            if i % 2 == 0
            else f"{mean[i]:+.4f} ± {se[i]:.4f}"
            for i in range(len(mean))
        ]
        print(
            f"| {kind} | {estimator} | {size} | {other} | " + " | ".join(cells) + " |"
        )


if __name__ == "__main__":
    main()
