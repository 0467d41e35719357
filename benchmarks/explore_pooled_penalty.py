"""Exploration: should a group's head penalty lean on the training groups?

The logistic heads of ``PrototypicalClassifier`` (``head="logistic"``, which
was ``"auto"`` until ``head_min_rows_``, ``4c2fc14``) and the
logistic correction of ``MAMLClassifier`` choose each group's penalty by
cross-validation on the group's own rows alone (one-standard-error rule).
With 10 rows the choice is noisy. This script asks whether adding the
training groups' experience helps: at the end of ``fit`` every training
group's cross-validation gives, for each candidate penalty, its held-out
loss per row minus that of no head (its *curve*); the mean of these curves
over the training groups is a prior curve. A new group's summed held-out
losses then get ``c0`` times the prior curve added (``c0`` pseudo-rows of the
training groups) before the one-standard-error rule; ``training choice``
gives every new group the penalty that minimises the prior curve alone.

For each fold of a ``bench_fewshot.py`` data set, both estimators are fitted
once with the defaults of ``bench_fewshot.py``; each held-out group, k and
support draw (the draws of ``bench_fewshot.py``) is adapted under each
variant and scored by balanced accuracy on its other rows. The output gives
each variant minus today's rule, in points (mean ± SE over draws).

Run (about 1 minute per data set; Adult is left out)::

    OMP_NUM_THREADS=1 python benchmarks/explore_pooled_penalty.py \\
        --datasets synthetic-strong,synthetic-types,heart,compas,synthetic --seeds 5
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

import skmeta._maml as maml_module  # noqa: E402
import skmeta._prototypical as proto_module  # noqa: E402
from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta._heads import (  # noqa: E402
    allowed_candidates,
    cv_losses,
    one_standard_error_choice,
)

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
# Today's rule first: every other variant is compared with it.
VARIANTS = {
    "own rows (today)": 0.0,
    "+ 5 pseudo-rows": 5.0,
    "+ 10 pseudo-rows": 10.0,
    "+ 20 pseudo-rows": 20.0,
    "training choice": np.inf,
}
# What the patched rule records (a list of curves) and uses.
STATE = {"curves": None, "prior": None, "c0": 0.0}


def choose_penalty(phi, f0, y, w, fit, held_out, used, tolerance=1.0, max_penalty=None):
    """The package's rule, with the prior curve of ``STATE`` added."""
    candidates, row_loss = cv_losses(phi, f0, y, w, fit, held_out)
    allowed = allowed_candidates(candidates, max_penalty)
    rows_used = used.any(1)
    loss = row_loss.sum(-1)
    if STATE["curves"] is not None:
        n_used = rows_used.sum(-1, keepdim=True).to(loss.dtype)
        STATE["curves"].append(((loss - loss[:, :1]) / n_used).cpu())
    prior, c0 = STATE["prior"], STATE["c0"]
    if prior is None or c0 == 0:
        return one_standard_error_choice(
            candidates, row_loss, rows_used, tolerance, allowed
        )
    if c0 == np.inf:
        return candidates[int(prior.argmin())].expand(len(loss)).clone()
    # c0 pseudo-rows of the prior curve, spread over the task's used rows: the
    # summed losses gain c0 * prior; the paired differences' spread is kept.
    n_used = rows_used.sum(-1).to(loss.dtype)[:, None, None]
    shift = c0 * prior.to(loss)[None, :, None] / n_used * rows_used[:, None]
    return one_standard_error_choice(
        candidates, row_loss + shift, rows_used, tolerance, allowed
    )


maml_module.choose_penalty = choose_penalty
proto_module.choose_penalty = choose_penalty


def run_fold(data, f_index, seeds, ks, budget):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    records, priors = [], []
    for estimator, cls in ESTIMATORS.items():
        STATE.update(curves=[], prior=None, c0=0.0)
        # ProtoNet's cross-validation for every group with the rows for it, as
        # head="auto" was before head_min_rows_ (4c2fc14): the rule explored.
        params = {"head": "logistic"} if cls is PrototypicalClassifier else {}
        model = cls(**B._meta_kwargs(budget, B.RANDOM_STATE), **params).fit(
            data.X[data.train], data.y[data.train], tasks=tasks
        )
        curves = STATE["curves"]
        STATE["curves"] = None
        prior = torch.cat(curves).mean(0) if curves else None
        if prior is not None:
            priors.append((estimator, f_index, prior.numpy()))
        for variant, c0 in VARIANTS.items():
            if c0 and prior is None:
                continue
            STATE.update(prior=prior, c0=c0)
            records += B.heldout_records(
                model,
                data,
                f_index,
                ks,
                seeds,
                extra=lambda adapted: {
                    "head": bool(np.isfinite(adapted.head_penalty_[-1]))
                },
                estimator=estimator,
                variant=variant,
            )
    STATE.update(prior=None, c0=0.0)
    return records, priors


def summarise(df):
    return B.variant_differences(
        df,
        next(iter(VARIANTS)),
        "minus today (points)",
        share=("share with a head", "head"),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong,synthetic-types,heart")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    seeds = range(1 if args.quick else args.seeds)
    ks = (5,) if args.quick else (5, 10, 20)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    B.exploration_header("explore_pooled_penalty", argv)
    for name in names:
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)
        records, priors = [], []
        for f_index, data in enumerate(folds):
            r, p = run_fold(data, f_index, seeds, ks, budget)
            records += r
            priors += p
        print(f"## {name} ({len(folds)} fold(s), {len(seeds)} draws)\n")
        print(summarise(pd.DataFrame(records)).to_markdown(index=False, floatfmt=".4f"))
        print("\nPrior curves (held-out loss per row minus no head; no head, then")
        print("the penalties from the largest down), mean over folds:\n")
        for estimator in ESTIMATORS:
            curves = [c for e, _, c in priors if e == estimator]
            if curves:
                mean = np.mean(curves, axis=0)
                print(f"- {estimator}: " + ", ".join(f"{v:+.4f}" for v in mean))
        print(f"\n{name}: {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
