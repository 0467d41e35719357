"""Exploration: how should a trusted new group choose its head's penalty?

A group added after ``fit`` with at least ``head_min_rows_`` rows, where the
training tasks' spread ``tau2`` (``task_spread_``) was estimated, is
*trusted*: its rows pin its own coefficients down better than the training
groups are spread. Since ``d04d845`` such a group chose its penalty by the
smallest held-out loss among every candidate, the prior head (MAML: no
correction; ProtoNet: its prototypes) included. This script measures, on the
held-out groups, what the candidates should be:

- ``uncapped (d04d845)``: every candidate, the prior head included;
- ``cap c / tau2``: only the penalties up to ``c / tau2`` (at least the
  smallest tried), never the prior head; ``c = 1`` (the precision of the
  spread, a penalty that holds the group no closer to the prior than the
  training groups are to each other) is the package's rule since ``bd414d1``;
- ``cap 1 / tau2, prior head allowed``: the same cap, the prior head kept.

The training tasks and groups that are not trusted keep the package's rule in
every variant (they are unchanged). For each fold of a ``bench_fewshot.py``
data set both estimators are fitted once with the defaults of
``bench_fewshot.py``; each held-out group, k and support draw (the draws of
``bench_fewshot.py``) is adapted under each variant and scored by balanced
accuracy on its other rows. The output gives each variant minus the
uncapped rule, in points (mean ± SE over draws).

Run (about 1 minute per data set, 3 for ``synthetic-types``)::

    OMP_NUM_THREADS=1 python benchmarks/explore_head_cap.py \\
        --datasets synthetic-strong,synthetic,synthetic-types,heart,compas --seeds 5
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

import skmeta._heads as heads_module  # noqa: E402
import skmeta._prototypical as proto_module  # noqa: E402
from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
# (c, prior head allowed); None: no cap. The first is the reference.
VARIANTS = {
    "uncapped (d04d845)": None,
    "cap 0.5 / tau2": (0.5, False),
    "cap 1 / tau2 (package)": (1.0, False),
    "cap 2 / tau2": (2.0, False),
    "cap 4 / tau2": (4.0, False),
    "cap 1 / tau2, prior head allowed": (1.0, True),
}
PACKAGE_RULE = heads_module.allowed_candidates
STATE = {"variant": (1.0, False)}


def allowed_candidates(candidates, max_penalty):
    """The package's candidates, with the variant of ``STATE`` for the
    trusted tasks (those with a finite ``max_penalty``)."""
    variant = STATE["variant"]
    if max_penalty is None or variant == (1.0, False):
        return PACKAGE_RULE(candidates, max_penalty)
    trusted = max_penalty.isfinite()[:, None]
    if variant is None:  # every candidate: the smallest loss (tolerance 0)
        return torch.ones_like(trusted).expand(-1, len(candidates))
    c, prior_head = variant
    allowed = PACKAGE_RULE(candidates, c * max_penalty)
    if prior_head:
        allowed = allowed | (trusted & (candidates == 0))
    return allowed


heads_module.allowed_candidates = allowed_candidates
proto_module.allowed_candidates = allowed_candidates


def _has_head(adapted):
    """Whether the new group (the last task) has a head or correction."""
    if adapted.head_ not in ("logistic",):  # ProtoNet's prototypes everywhere
        return False
    return bool(np.isfinite(adapted.head_penalty_[-1]))


def run_fold(data, f_index, seeds, ks, budget):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    records, spreads = [], []
    for estimator, cls in ESTIMATORS.items():
        STATE["variant"] = (1.0, False)
        model = cls(**B._meta_kwargs(budget, B.RANDOM_STATE)).fit(
            data.X[data.train], data.y[data.train], tasks=tasks
        )
        spreads.append((estimator, f_index, model.task_spread_, model.head_min_rows_))
        for variant, rule in VARIANTS.items():
            STATE["variant"] = rule
            records += B.heldout_records(
                model,
                data,
                f_index,
                ks,
                seeds,
                extra=lambda adapted: {"head": _has_head(adapted)},
                estimator=estimator,
                variant=variant,
            )
    STATE["variant"] = (1.0, False)
    return records, spreads


def summarise(df):
    return B.variant_differences(
        df,
        next(iter(VARIANTS)),
        "minus uncapped (points)",
        share=("share with a head", "head"),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong,synthetic")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    seeds = range(1 if args.quick else args.seeds)
    ks = (5,) if args.quick else (1, 5, 10, 20)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    B.exploration_header("explore_head_cap", argv)
    for name in names:
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)
        records, spreads = [], []
        for f_index, data in enumerate(folds):
            r, s = run_fold(data, f_index, seeds, ks, budget)
            records += r
            spreads += s
        print(f"## {name} ({len(folds)} fold(s), {len(seeds)} draws)\n")
        print(summarise(pd.DataFrame(records)).to_markdown(index=False, floatfmt=".4f"))
        print("\nThe training tasks' spread per fold (task_spread_; head_min_rows_):\n")
        for estimator, f_index, tau2, min_rows in spreads:
            print(f"- {estimator}, fold {f_index}: {tau2:.3g}; {min_rows:.3g}")
        print(f"\n{name}: {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
