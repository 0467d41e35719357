"""Exploration: do MAML's training groups need corrections under ``head_min_rows_``?

Since ``head_min_rows_`` decides which groups get a logistic head in
``PrototypicalClassifier``, ``MAMLClassifier`` applies it to its training groups
too: one with fewer rows keeps its adapted network (groups added by
``partial_fit`` keep the cross-validation whatever their rows). The few-shot
benchmark scores held-out groups only; this script scores the training groups
themselves: for each data set of ``bench_fewshot.py`` (first fold, training
groups only), 30 % of the rows are held out at random, ``MAMLClassifier``
(defaults, ``class_prior="balanced"``) is fitted on the rest, and each group
with 5 held-out rows of each class is scored by its balanced accuracy on them
(mean and worst over groups), with the package's rule and with every training
group cross-validated (the rule before it; patched here), over random states.

Run (about 4 minutes on two processes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_training_corrections.py \\
        --datasets compas,heart,synthetic
    OMP_NUM_THREADS=1 python benchmarks/explore_training_corrections.py \\
        --datasets adult,synthetic-strong,synthetic-types
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier  # noqa: E402


class EveryTrainingTask(MAMLClassifier):
    """The rule before: every task with two rows of each class
    cross-validates its correction (as with ``task_spread_`` unestimated,
    before such tasks needed three, now five, rows of their rarest class)."""

    _UNESTIMATED_CLASS_ROWS = 2

    def _adapt_states(self, X, y, w, prior, new=True):
        spread = self.__dict__.get("task_spread_", np.nan)
        self.task_spread_ = np.nan
        try:
            return super()._adapt_states(X, y, w, prior, new)
        finally:
            self.task_spread_ = spread


def scores(cls, X, y, tasks, seed):
    test = np.random.default_rng(seed).random(len(y)) < 0.3
    clf = cls(class_prior="balanced", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[~test], y[~test], sensitive_features=tasks[~test])
        pred = clf.predict(X[test], sensitive_features=tasks[test])
    values = []
    for task in np.unique(tasks[test]):
        rows = tasks[test] == task
        if min(np.bincount(y[test][rows], minlength=2)) >= 5:
            values.append(balanced_accuracy_score(y[test][rows], pred[rows]))
    corrected = int(np.isfinite(clf.head_penalty_).sum())
    return np.mean(values), np.min(values), len(values), corrected, clf.head_min_rows_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(B.LOADERS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    torch.set_num_threads(1)
    B.exploration_header("explore_training_corrections", argv)
    variants = {"today": MAMLClassifier, "every training group": EveryTrainingTask}
    for name in args.datasets.split(","):
        data = B.LOADERS[name]().folds[0]
        train = data.train
        X, y, tasks = data.X[train], data.y[train], data.tasks[train]
        out = {
            v: [scores(cls, X, y, tasks, s) for s in range(args.seeds)]
            for v, cls in variants.items()
        }
        print(
            f"\n## {name} ({len(np.unique(tasks))} training groups, "
            f"{args.seeds} random states)\n"
        )
        print(
            "| variant | groups scored | groups corrected | head_min_rows_ "
            "| bal. acc., mean | worst group |"
        )
        print("|---|---|---|---|---|---|")
        for v, rows in out.items():
            r = np.array([row[:2] for row in rows])
            print(
                f"| {v} | {rows[0][2]} | {[row[3] for row in rows]} | "
                f"{rows[0][4]:.0f} | {r[:, 0].mean():.4f} | {r[:, 1].mean():.4f} |"
            )
        a = np.array([row[:2] for row in out["today"]])
        b = np.array([row[:2] for row in out["every training group"]])
        d = 100 * (a - b)
        se = d.std(0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.full(2, np.nan)
        print(
            f"\nToday minus every training group, points (mean ± SE over random "
            f"states): mean {d[:, 0].mean():+.2f} ± {se[0]:.2f}, worst group "
            f"{d[:, 1].mean():+.2f} ± {se[1]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
