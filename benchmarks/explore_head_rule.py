"""Exploration: how cautious should a group's head penalty choice be?

The logistic heads of ``PrototypicalClassifier`` (``head="auto"``) and the
logistic correction of ``MAMLClassifier`` choose each group's penalty by
cross-validation on the group's rows with the one-standard-error rule: the
largest penalty whose held-out loss is within one standard error of the
smallest. ``explore_maml_heads.py`` found that the smallest loss (no
tolerance) gains where groups are far from the training groups (the strong
shift) and loses where they are near (``synthetic-types``, COMPAS). This
script measures the tolerance ``c`` in standard errors (1: the
one-standard-error rule, both heads' rule when this was written; 0: the
smallest loss; ProtoNet's head has used 0.5 since) on the held-out groups,
and whether the training groups could choose it for a data set: each
training group with enough rows is treated as a new group (supports of
``k`` rows per class drawn from its rows, no task mixture, scored on its
other rows), and ``c = 0`` is chosen when its mean balanced accuracy there
beats ``c = 1`` by more than the standard error of the paired differences
(``left-out choice``).

For each fold of a ``bench_fewshot.py`` data set, both estimators are fitted
once with the defaults of ``bench_fewshot.py``; each held-out group, k and
support draw (the draws of ``bench_fewshot.py``) is adapted under each
tolerance and scored by balanced accuracy on its other rows. The output gives
each variant minus ``c = 1``, in points (mean ± SE over draws).

Run (about 1-3 minutes per data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_head_rule.py \\
        --datasets synthetic-strong,synthetic-types,compas,heart,synthetic --seeds 5
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

import skmeta._maml as maml_module  # noqa: E402
import skmeta._prototypical as proto_module  # noqa: E402
from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta._heads import cv_losses, one_standard_error_choice  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
# The rule of both heads when this was written first: every other variant is
# compared with it.
TOLERANCES = {"c = 1": 1.0, "c = 0.5": 0.5, "c = 0 (smallest loss)": 0.0}
LEFT_OUT_KS = (5, 10)
LEFT_OUT_DRAWS = 2
STATE = {"c": 1.0}


def choose_penalty(
    phi, f0, y, w, fit, held_out, used, tolerance=None, max_penalty=None
):
    """The package's rule with the tolerance ``STATE["c"]`` (in standard
    errors of the paired per-row differences) for every task instead of the
    estimator's rule (its tolerances and penalty caps)."""
    candidates, row_loss = cv_losses(phi, f0, y, w, fit, held_out)
    return one_standard_error_choice(candidates, row_loss, used.any(1), STATE["c"])


maml_module.choose_penalty = choose_penalty
proto_module.choose_penalty = choose_penalty


def left_out_scores(model, data, tasks, seed):
    """Balanced accuracy of each tolerance on the training groups, each
    treated as a new group (no task mixture)."""
    rng = np.random.default_rng(seed)
    train_rows = np.flatnonzero(data.train)
    out = []
    bare = copy.deepcopy(model)
    bare.task_mixture_ = 0.0
    for task in np.unique(tasks):
        rows = train_rows[tasks == task]
        y = data.y[rows]
        for k in LEFT_OUT_KS:
            if min((y == 0).sum(), (y == 1).sum()) < k + data.min_query:
                continue
            for draw in range(LEFT_OUT_DRAWS):
                support = np.concatenate(
                    [rng.choice(rows[y == c], k, replace=False) for c in (0, 1)]
                )
                query = np.setdiff1d(rows, support)
                for variant, c in TOLERANCES.items():
                    STATE["c"] = c
                    _, bacc = B.adapted_score(
                        bare, data, "__left_out__", support, query
                    )
                    out.append(
                        dict(variant=variant, task=task, k=k, draw=draw, bacc=bacc)
                    )
    STATE["c"] = 1.0
    return pd.DataFrame(out)


def left_out_choice(scores):
    """0 where the smallest loss beats c = 1 by more than one SE."""
    if scores.empty:
        return 1.0, float("nan"), float("nan")
    key = ["task", "k", "draw"]
    wide = scores.pivot_table(index=key, columns="variant", values="bacc")
    diff = wide["c = 0 (smallest loss)"] - wide["c = 1"]
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    return (0.0 if diff.mean() > se else 1.0), diff.mean(), se


def run_fold(data, f_index, seeds, ks, budget):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    records, choices = [], []
    for estimator, cls in ESTIMATORS.items():
        STATE["c"] = 1.0
        model = cls(**B._meta_kwargs(budget, B.RANDOM_STATE)).fit(
            data.X[data.train], data.y[data.train], tasks=tasks
        )
        chosen, gain, se = left_out_choice(left_out_scores(model, data, tasks, f_index))
        choices.append((estimator, f_index, chosen, gain, se))
        for variant, c in TOLERANCES.items():
            STATE["c"] = c
            records += B.heldout_records(
                model, data, f_index, ks, seeds, estimator=estimator, variant=variant
            )
        # The left-out choice, applied per fold.
        for r in [r for r in records if r["estimator"] == estimator]:
            if r["fold"] == f_index and r["variant"] == (
                "c = 0 (smallest loss)" if chosen == 0 else "c = 1"
            ):
                records.append({**r, "variant": "left-out choice"})
    STATE["c"] = 1.0
    return records, choices


def summarise(df):
    return B.variant_differences(df, next(iter(TOLERANCES)), "minus c = 1 (points)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong,synthetic-types,compas")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    seeds = range(1 if args.quick else args.seeds)
    ks = (5,) if args.quick else (1, 5, 10, 20)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    B.exploration_header("explore_head_rule", argv)
    for name in names:
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)
        records, choices = [], []
        for f_index, data in enumerate(folds):
            r, c = run_fold(data, f_index, seeds, ks, budget)
            records += r
            choices += c
        print(f"## {name} ({len(folds)} fold(s), {len(seeds)} draws)\n")
        print(summarise(pd.DataFrame(records)).to_markdown(index=False, floatfmt=".4f"))
        print(
            "\nLeft-out choice per fold (c; mean gain of c = 0 over c = 1 on the "
            "training groups, points ± SE):\n"
        )
        for estimator, f_index, chosen, gain, se in choices:
            print(
                f"- {estimator}, fold {f_index}: c = {chosen:g} "
                f"({100 * gain:+.2f} ± {100 * se:.2f})"
            )
        print(f"\n{name}: {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
