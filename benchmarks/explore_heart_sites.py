"""Exploration: how far can adaptation go on each hospital of the heart data?

``bench_fewshot.py`` reports heart disease (leave one hospital out, train on
the other three) as a mean and a worst hospital over support draws, with every
model trained once per fold. This script retrains every fold's models with
several random states and gives, per hospital, each method's balanced
accuracy at each k (the mean over support draws, then the mean ± SD over
random states), beside two references: each model **unadapted** (scored on
all of the hospital's rows without any of them: the pooled LR and MLP as they
are, skmeta's models as they serve an unknown group, by the pooled support's
state), and the **oracle**, an LR cross-fitted on the hospital's own rows (a
ceiling, not a baseline). Which hospital is the worst, and is its gap the
adaptation's or the trained network's?

Run (about 4 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_heart_sites.py --train-seeds 5 --seeds 5
"""

import argparse
import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta.exceptions import UnknownGroupWarning  # noqa: E402

METHODS = B.BASELINES + B.DEFAULT_META
UNADAPTED = ("pooled LR", "pooled MLP", *B.DEFAULT_META)


def unadapted_scores(models, data, task):
    """Balanced accuracy of each model of ``UNADAPTED`` on all of ``task``'s
    rows, without adapting to any of them."""
    rows = np.flatnonzero(data.tasks == task)
    X, y = data.X[rows], data.y[rows]
    scores = {}
    for method in UNADAPTED:
        model = models[method]
        if method in B.DEFAULT_META:
            # The policy for groups never seen: the pooled support's state
            # (with no row of the group known, it warns even so).
            model = copy.deepcopy(model).set_params(unknown_groups="pooled")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownGroupWarning)
                proba = model.predict_proba(X, tasks=np.full(len(rows), task))
        else:
            proba = model.predict_proba(X)
        scores[method] = B.balanced_accuracy(y, (proba[:, 1] >= 0.5).astype(np.int64))
    return scores


def explore(train_seeds, seeds, quick):
    dataset = B.LOADERS["heart"]()
    budget = "quick" if quick else "full"
    settings = copy.deepcopy(B.DEFAULTS)
    settings["LR on k rows"] = {"C": B.CV}
    records = []
    for train_seed in train_seeds:
        for f_index, data in enumerate(dataset.folds):
            models = B.fit_fold_models(data, settings, budget, METHODS, train_seed)
            (task,) = data.heldout
            for method, bacc in unadapted_scores(models, data, task).items():
                records.append(
                    dict(
                        task=task,
                        k=0,
                        seed=0,
                        method=method,
                        bacc=bacc,
                        train_seed=train_seed,
                    )
                )
            adapted, _ = B.evaluate(
                data,
                models,
                settings,
                data.heldout,
                seeds,
                METHODS,
                base_seed=0,
                first_index=f_index,
                ks=dataset.ks,
                oracle=B.oracle_probabilities(data),
                fold=f_index,
            )
            adapted = adapted[["task", "k", "seed", "method", "bacc"]]
            records += adapted.assign(train_seed=train_seed).to_dict("records")
            print(f"(random state {train_seed}, {task} done)", file=sys.stderr)
    return pd.DataFrame(records)


def report(records, n_train_seeds):
    # The mean over support draws, then mean and SD over random states.
    per_seed = records.groupby(["task", "k", "method", "train_seed"])["bacc"].mean()
    summary = per_seed.groupby(["task", "k", "method"]).agg(["mean", "std"])
    order = [*UNADAPTED, *(m for m in METHODS if m not in UNADAPTED), B.ORACLE]
    for task in sorted(records["task"].unique()):
        print(f"\n### {task}\n")
        at = summary.loc[task]
        ks = sorted(at.index.get_level_values("k").unique())
        header = ["method", *("unadapted" if k == 0 else f"k = {k}" for k in ks)]
        rows = []
        for method in order:
            row = [method]
            for k in ks:
                if (k, method) in at.index:
                    mean, sd = at.loc[(k, method)]
                    sd = "" if n_train_seeds < 2 or np.isnan(sd) else f" ± {sd:.3f}"
                    row.append(f"{mean:.3f}{sd}")
                else:
                    row.append("–")
            rows.append(row)
        print(B.markdown_table(header, rows))
    worst = (
        per_seed.drop(index=0, level="k")
        .groupby(["k", "method", "train_seed"])
        .idxmin()
        .map(lambda key: key[0])
    )
    print(
        "\nWorst hospital (the lowest mean over support draws) at each k, per "
        "method, counted over random states:\n"
    )
    counts = worst.groupby(["method", "k"]).value_counts()
    ks = sorted(worst.index.get_level_values("k").unique())
    rows = []
    for method in order:
        if method not in counts.index.get_level_values("method"):
            continue
        cells = []
        for k in ks:
            at = counts.loc[(method, k)] if (method, k) in counts.index else None
            cells.append(
                "–"
                if at is None
                else ", ".join(f"{site} ({n})" for site, n in at.items())
            )
        rows.append([method, *cells])
    print(B.markdown_table(["method", *(f"k = {k}" for k in ks)], rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--train-seeds", type=int, default=5, help="random states")
    parser.add_argument("--seeds", type=int, default=5, help="support draws per k")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_seeds, args.seeds = 1, 1
    torch.set_num_threads(1)
    warnings.filterwarnings("once", message=".*give no query set.*")
    B.exploration_header("explore_heart_sites", argv)
    print(
        f"{args.train_seeds} random state(s), {args.seeds} support draw(s) per "
        "hospital and k (bench_fewshot.py's first draws); balanced accuracy "
        "(threshold 1/2), the mean over draws, then mean ± SD over random "
        "states. The LR fits are deterministic. 'unadapted': scored on all of "
        "the hospital's rows, none used. Hospitals with fewer than k + 3 rows "
        "of a class are skipped at that k.\n"
    )
    records = explore(range(args.train_seeds), range(args.seeds), args.quick)
    report(records, args.train_seeds)


if __name__ == "__main__":
    main()
