"""Exploration: how long should the shared network train?

``MAMLClassifier`` and ``PrototypicalClassifier`` first train their network
on the pooled rows (``pretrain_epochs``, 10 by default), then meta-train it
(``max_epochs``, 10). On small data sets this is a short budget: an epoch is
at least 10 meta-batches, and a pretraining epoch a pass over the rows in
batches of 256. This script asks whether a longer budget serves held-out
groups better, and whether one budget suits every data set. For each fold
of a ``bench_fewshot.py`` data set it fits both estimators with the defaults
of ``bench_fewshot.py`` and each variant below on the training groups, then
for each held-out group, k and support draw (the draws of
``bench_fewshot.py``) scores balanced accuracy on the group's other rows
after ``partial_fit`` on the support rows.

With ``--select``, each fold also chooses among the fixed variants (all but
the last, whose budget depends on the data) on its training groups alone,
as a user can: ``GridSearchCV`` over them
with ``GroupKFold`` (3 splits) on the training groups, scored by
``skmeta.metrics.make_few_shot_scorer(n_shots=5, n_draws=2)``; the output
gives the chosen variant of each fold and the held-out scores of the chosen
ones (``selected``) against the defaults. Data sets whose small training
groups are merged for meta-training (COMPAS, Adult) are not selected on.

With ``--by-groups`` (instead of the above), MAML with the defaults and
with 40 meta-training epochs is fitted on each fold's training groups and
on the training part of the first ``GroupKFold(3)`` split of them (two
thirds of the groups, as in ``--select``), and scored on the held-out
groups by ``make_few_shot_scorer(n_shots=5, n_draws=3)``: does the longer
budget pay with fewer groups?

Run (about 2 minutes per data set, Adult 10; ``--select`` adds 1 to 5)::

    OMP_NUM_THREADS=1 python benchmarks/explore_training_length.py \\
        --datasets synthetic-types,heart --seeds 3
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import GridSearchCV, GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta._episodes import default_steps_per_epoch  # noqa: E402
from skmeta.metrics import make_few_shot_scorer  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
# The package's defaults first: every other variant is compared with it.
VARIANTS = {
    "default (10 + 10)": {},
    "pretrain 50": {"pretrain_epochs": 50},
    "pretrain 200": {"pretrain_epochs": 200},
    "meta-train 40": {"max_epochs": 40},
    # A budget that grows with the number of training tasks: at least 20
    # meta-batches per task over the 10 epochs. Until 7a0f0f9 the default epoch
    # was at least 10 meta-batches, or enough to draw about as many rows as
    # there are; since then the default takes this floor too (capped at 100
    # meta-batches per epoch), so the two variants coincide below the cap.
    "20 steps per task": lambda n_rows, n_tasks: {
        "steps_per_epoch": max(
            default_steps_per_epoch(n_rows, 2, 5, 15, 8), 2 * n_tasks
        )
    },
}
# The variants a search (--select) chooses among: the fixed ones.
FIXED = [name for name, params in VARIANTS.items() if isinstance(params, dict)]


def variant_params(variant, tasks):
    """The parameters of a variant for training rows of tasks ``tasks``."""
    params = VARIANTS[variant]
    if callable(params):
        return params(len(tasks), len(np.unique(tasks)))
    return params


def select(cls, X, y, tasks, budget):
    """The variant a search on the training groups chooses (GroupKFold, the
    few-shot scorer), and the seconds it took."""
    start = time.perf_counter()
    grid = [{k: [v] for k, v in VARIANTS[name].items()} for name in FIXED]
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            cls(**B._meta_kwargs(budget, B.RANDOM_STATE)),
            grid,
            scoring=make_few_shot_scorer(n_shots=5, n_draws=2),
            cv=GroupKFold(n_splits=3),
            refit=False,
        ).fit(X, y, tasks=tasks, groups=tasks)
    return FIXED[search.best_index_], time.perf_counter() - start


def by_groups(data, budget):
    """Held-out few-shot scores of MAML, default and 40 meta-training epochs,
    trained on all training groups and on two thirds of them."""
    X, y, tasks = data.X[data.train], data.y[data.train], data.tasks[data.train]
    fewer, _ = next(GroupKFold(n_splits=3).split(X, y, tasks))
    heldout = np.isin(data.tasks, data.heldout)
    scorer = make_few_shot_scorer(n_shots=5, n_draws=3)
    rows = []
    for variant in ("default (10 + 10)", "meta-train 40"):
        kwargs = {**B._meta_kwargs(budget, B.RANDOM_STATE), **VARIANTS[variant]}
        for groups, keep in (("all", np.arange(len(y))), ("2/3", fewer)):
            model = MAMLClassifier(**kwargs).fit(X[keep], y[keep], tasks=tasks[keep])
            score = scorer(
                model, data.X[heldout], data.y[heldout], tasks=data.tasks[heldout]
            )
            n_groups = len(np.unique(tasks[keep]))
            rows.append((variant, groups, n_groups, score))
    return rows


def run_fold(data, f_index, seeds, ks, budget, selecting=False):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    records, fitted, chosen = [], [], {}
    selecting = selecting and (tasks == data.tasks[data.train]).all()
    for estimator, cls in ESTIMATORS.items():
        if selecting:
            chosen[estimator] = select(
                cls, data.X[data.train], data.y[data.train], tasks, budget
            )
        for variant in VARIANTS:
            params = variant_params(variant, tasks)
            kwargs = {**B._meta_kwargs(budget, B.RANDOM_STATE), **params}
            start = time.perf_counter()
            model = cls(**kwargs).fit(
                data.X[data.train], data.y[data.train], tasks=tasks
            )
            fitted.append((estimator, variant, time.perf_counter() - start))
            records += B.heldout_records(
                model, data, f_index, ks, seeds, estimator=estimator, variant=variant
            )
    return records, fitted, chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-types")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="first fold, k = 5, one draw"
    )
    parser.add_argument(
        "--by-groups",
        action="store_true",
        help="only: does 40 meta-training epochs pay with fewer groups?",
    )
    parser.add_argument(
        "--select",
        action="store_true",
        help="also choose a variant per fold on the training groups",
    )
    args = parser.parse_args(argv)
    budget = "quick" if args.quick else "full"
    if args.quick:
        args.seeds = 1
    print(
        f"# explore_training_length {datetime.datetime.now():%Y-%m-%d %H:%M}\n"
        f"Command: `python benchmarks/explore_training_length.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`; skmeta "
        f"({B.provenance()}); OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    for name in args.datasets.split(","):
        start = time.perf_counter()
        dataset = B.LOADERS[name]()
        folds = dataset.folds[:1] if args.quick else dataset.folds
        ks = (5,) if args.quick else dataset.ks
        if args.by_groups:
            rows = [
                (f_index, *row)
                for f_index, data in enumerate(folds)
                for row in by_groups(data, budget)
            ]
            table = pd.DataFrame(
                rows, columns=["fold", "variant", "groups", "n_groups", "score"]
            )
            print(f"\n## {name}: MAML trained on fewer groups ({len(folds)} folds)\n")
            print("Balanced accuracy on the held-out groups at k = 5 (3 draws):\n")
            print(table.round(4).to_string(index=False))
            wide = table.pivot_table("score", ["fold", "groups"], "variant")
            gain = 100 * (wide["meta-train 40"] - wide["default (10 + 10)"])
            by = gain.groupby("groups")
            print("\n40 meta-training epochs minus the defaults, points (± SE):\n")
            for groups, mean, sem in zip(
                by.mean().index, by.mean(), by.sem().fillna(0), strict=True
            ):
                print(f"- trained on {groups} of the groups: {mean:+.1f} ± {sem:.1f}")
            print(f"\n{name}: {time.perf_counter() - start:.0f} s")
            continue
        records, fitted, chosen = [], [], []
        for f_index, data in enumerate(folds):
            fold_records, fold_fitted, fold_chosen = run_fold(
                data, f_index, range(args.seeds), ks, budget, args.select
            )
            records += fold_records
            fitted += fold_fitted
            chosen += [(f_index, e, v, t) for e, (v, t) in fold_chosen.items()]
        df = pd.DataFrame(records)
        if chosen:
            # The held-out records of each fold's chosen variant.
            picks = pd.DataFrame(
                chosen, columns=["fold", "estimator", "variant", "seconds"]
            )
            selected = df.merge(picks[["fold", "estimator", "variant"]])
            df = pd.concat([df, selected.assign(variant="selected")])
        print(f"\n## {name} ({len(folds)} fold(s), {args.seeds} draws)\n")
        B.print_variant_tables(
            df,
            ESTIMATORS,
            list(VARIANTS) + (["selected"] if chosen else []),
            "seed",
            "draws and folds",
            "draws",
        )
        if chosen:
            print("\nChosen on the training groups (per fold), and search seconds:\n")
            print(picks.to_string(index=False))
        fit = pd.DataFrame(fitted, columns=["estimator", "variant", "seconds"])
        print("\nFit time, seconds (mean over folds):\n")
        print(fit.groupby(["estimator", "variant"]).seconds.mean().round(1).to_string())
        print(f"\n{name}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
