"""Exploration: what do MAML's options cost or gain on new groups?

``MAMLClassifier`` has three options that change how a group is adapted and
that the few-shot runs of ``bench_fewshot.py`` leave at their defaults:
``first_order=True`` (the meta-gradient without second derivatives),
``adapt_layers="last"`` (ANIL: only the last layer adapts, on a
representation shared by every group) and ``learn_inner_lr=True``
(Meta-SGD: a learned step size per weight). For each fold of a
``bench_fewshot.py`` data set this script fits MAML with the defaults of
``bench_fewshot.py`` and with each option alone, on the training groups,
then for each held-out group, k and support draw (the draws of
``bench_fewshot.py``) scores balanced accuracy on the group's other rows
after ``partial_fit`` on the support rows. It prints each variant minus the
defaults, in the mean over held-out groups (standard error over folds x draws) and
in the worst group of each draw over every fold's held-out groups, as
``bench_fewshot.py`` takes it (standard error over draws); the draws are
paired: every variant adapts to the same support rows. It also prints the
fit time.

With ``--variants``, other variants from ``VARIANTS``: ``"wide"`` replaces
the default MLP by :class:`WideMLP`, whose logits add a linear model of the
input to the MLP's (wide and deep; both adapted by the inner loop, through
the general ``torch.func`` path): does a linear part carry better to new
groups where a pooled linear model beats the networks (heart disease's VA
hospital, COMPAS)?

Run (about 1 to 4 minutes per data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_maml_options.py \\
        --datasets synthetic-strong,heart --seeds 5
    OMP_NUM_THREADS=1 python benchmarks/explore_maml_options.py \\
        --datasets heart,compas,synthetic-strong --variants defaults,wide --seeds 5
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
from torch import nn  # noqa: E402

from skmeta import MAMLClassifier  # noqa: E402
from skmeta.modules import MLP  # noqa: E402


class WideMLP(MLP):
    """The default MLP's logits plus a linear model of the input (wide and
    deep), the linear part starting at 0."""

    def __init__(self, n_features_in, n_classes, hidden_units=(64,), **kwargs):
        super().__init__(n_features_in, n_classes, hidden_units, **kwargs)
        self.wide = nn.Linear(n_features_in, n_classes)
        nn.init.zeros_(self.wide.weight)
        nn.init.zeros_(self.wide.bias)

    def forward(self, X):
        return super().forward(X) + self.wide(X)


# The package's defaults first: every other variant is compared with it.
VARIANTS = {
    "defaults": {},
    "first_order=True": {"first_order": True},
    'adapt_layers="last"': {"adapt_layers": "last"},
    "learn_inner_lr=True": {"learn_inner_lr": True},
    "wide": {"module": WideMLP},
}
DEFAULT_VARIANTS = list(VARIANTS)[:4]


def run_fold(data, f_index, seeds, ks, budget, variants=DEFAULT_VARIANTS):
    """The held-out records of every variant fitted on fold ``data``, and
    each fit's seconds."""
    tasks = B.merge_small_tasks(data.tasks[data.train])
    records, fitted = [], []
    for variant in variants:
        params = VARIANTS[variant]
        kwargs = {**B._meta_kwargs(budget, B.RANDOM_STATE), **params}
        start = time.perf_counter()
        model = MAMLClassifier(**kwargs).fit(
            data.X[data.train], data.y[data.train], tasks=tasks
        )
        fitted.append((variant, time.perf_counter() - start))
        records += B.heldout_records(
            model, data, f_index, ks, seeds, estimator="MAML", variant=variant
        )
    return records, fitted


def worst_group_differences(df, variants=DEFAULT_VARIANTS):
    """Each variant but the defaults minus the defaults in the worst held-out
    group of each k and draw, points: ``"k=1: +0.3 ± 0.2, ..."``. As in
    ``bench_fewshot.py``, the worst group is taken over every fold's held-out
    groups (on heart disease, one hospital per fold: the worst hospital)."""
    worst = df.groupby(["variant", "k", "seed"]).bacc.min()
    base = worst["defaults"]
    return {
        variant: B.points_by_k(100 * (worst[variant] - base))
        for variant in variants[1:]
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="first fold, k = 5, one draw"
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, the first 'defaults'; from {list(VARIANTS)}",
    )
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if variants[0] != "defaults" or not set(variants) <= set(VARIANTS):
        parser.error(f"--variants: 'defaults' first, then some of {list(VARIANTS)}")
    budget = "quick" if args.quick else "full"
    if args.quick:
        args.seeds = 1
    B.exploration_header("explore_maml_options", argv)
    for name in args.datasets.split(","):
        start = time.perf_counter()
        dataset = B.LOADERS[name]()
        folds = dataset.folds[:1] if args.quick else dataset.folds
        ks = (5,) if args.quick else dataset.ks
        records, fitted = [], []
        for f_index, data in enumerate(folds):
            fold_records, fold_fitted = run_fold(
                data, f_index, range(args.seeds), ks, budget, variants
            )
            records += fold_records
            fitted += fold_fitted
        df = pd.DataFrame(records)
        print(f"\n## {name} ({len(folds)} fold(s), {args.seeds} draws)\n")
        B.print_variant_tables(
            df, ["MAML"], variants, "seed", "draws and folds", "draws"
        )
        print(
            "\nWorst held-out group of each draw (over the folds' groups), minus "
            "the defaults', points (mean ± SE over draws):\n"
        )
        for variant, line in worst_group_differences(df, variants).items():
            print(f"- MAML, {variant}: {line}")
        fit = pd.DataFrame(fitted, columns=["variant", "seconds"])
        print("\nFit time, seconds (mean over folds):\n")
        print(fit.groupby("variant", sort=False).seconds.mean().round(1).to_string())
        print(f"\n{name}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
