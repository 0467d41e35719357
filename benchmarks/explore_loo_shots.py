"""Exploration: which left-out supports should ``task_mixture="auto"`` score?

At the end of ``fit``, ``task_mixture="auto"`` leaves training tasks out in
turn as new groups and keeps the share of the training tasks' mixture (and
whether the mixture's weights read the rows' columns) that serves them best.
This script refits that choice on the same fitted models with left-out
supports of 5 rows per class (the rule until ``74a1517``), of 1 row per class
alone, and of both (each draw's 5-row support and its first row of each
class, on the same query rows: the rule since ``74a1517``), and adapts each
held-out group of a ``bench_fewshot.py`` data set (its draws, k = 1 and 5)
under each choice. The output gives the fitted choices, each variant's mean
balanced accuracy, each variant minus the 5-row rule in the mean and in the
worst held-out group (points, mean ± SE over folds x draws), and the time of
the left-out choice.

Run (about 1-2 minutes per data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_loo_shots.py \\
        --datasets synthetic-types,compas --seeds 10
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier, _mixture  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
# Rows per class of the left-out supports; the first is the reference.
VARIANTS = {"5 rows": (5,), "1 row": (1,), "1 and 5 rows": (1, 5)}
KS = (1, 5)


def refit_choice(model, sizes):
    """A copy of ``model`` whose mixture is chosen again on left-out supports
    of ``sizes`` rows per class; the seconds the choice took."""
    refitted = copy.deepcopy(model)
    saved = _mixture._LOO_SHOTS
    _mixture._LOO_SHOTS = sizes
    try:
        start = time.perf_counter()
        refitted._fit_task_mixture()
        seconds = time.perf_counter() - start
    finally:
        _mixture._LOO_SHOTS = saved
    return refitted, seconds


def explore(name, seeds, quick):
    records, choices = [], []
    for f_index, data in enumerate(B.exploration_folds(name, quick)):
        tasks = B.merge_small_tasks(data.tasks[data.train])
        for label, klass in ESTIMATORS.items():
            budget = "quick" if quick else "full"
            model = klass(**B._meta_kwargs(budget, B.RANDOM_STATE))
            model.fit(data.X[data.train], data.y[data.train], tasks=tasks)
            for variant, sizes in VARIANTS.items():
                refitted, seconds = refit_choice(model, sizes)
                choices.append(
                    dict(
                        estimator=label,
                        fold=f_index,
                        variant=variant,
                        share=refitted.task_mixture_,
                        columns=refitted.task_mixture_columns_,
                        seconds=seconds,
                    )
                )
                records += B.heldout_records(
                    refitted, data, f_index, KS, seeds, estimator=label, variant=variant
                )
    print(f"## {name}\n")
    print("Fitted choices (share, columns) and the seconds of the choice, per fold:\n")
    table = pd.DataFrame(choices)
    print(table.to_string(index=False))
    df = pd.DataFrame(records)
    print()
    B.print_variant_tables(
        df, ESTIMATORS, list(VARIANTS), "seed", "folds and seeds", "seeds"
    )
    worst = df.groupby(["estimator", "variant", "k", "fold", "seed"]).bacc.min()
    print(
        "\nWorst held-out group, minus 5 rows, points (mean ± SE over folds x seeds):\n"
    )
    for estimator in ESTIMATORS:
        base = worst[estimator, "5 rows"]
        for variant in list(VARIANTS)[1:]:
            line = B.points_by_k(100 * (worst[estimator, variant] - base))
            print(f"- {estimator}, {variant}: {line}")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-types,compas")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="one fold, 2 draws")
    args = parser.parse_args(argv)
    B.exploration_header("explore_loo_shots", argv)
    seeds = range(2 if args.quick else args.seeds)
    start = time.time()
    for name in args.datasets.split(","):
        explore(name, seeds, args.quick)
    print(f"Wall time: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
