"""Exploration: should a group with two rows of a class cross-validate a head?

Where no two training groups have 10 rows of each class, the training
groups' spread ``task_spread_`` cannot be estimated, and nothing tempers a
group's choice of its head (ProtoNet) or correction (MAML) but its own
stratified cross-validation. With two rows of its rarest class that is two
folds of one row each. Since the package asks for three rows of the rarest
class there (``_head_min_class_rows``); this script measures the rule it
replaced (two rows, patched here) against it.

Many small groups, 20 further rows of each scored: ``rows``, the generator of
``bench_speed.py`` (each group shifts the features and the intercept; the
slope is shared), and ``slopes``, ``make_group_classification(n_features=6,
group_shift=2.0)`` (each group's slope differs from the others' more than the
shared slope). Both estimators with their defaults (``n_threads=1``) are
fitted on groups of 5 or 10 rows (2,000 or 1,000 groups), once with each
rule and the same ``random_state``. Scored: the training groups whose rarest
class has 2 rows (those the rule changes), on their further rows, and 50
groups added by ``partial_fit`` with 2 rows of each class, on their other
rows; balanced accuracy (threshold 0.5) and log loss, with each rule, mean ±
SE over random states (data and model).

Run (about 8 minutes)::

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
NEW_SHOTS = 2  # rows of each class of a new group's support


class TwoRowsMAML(MAMLClassifier):
    """The rule before: two rows of each class, with or without the spread."""

    _UNESTIMATED_CLASS_ROWS = 2


class TwoRowsProtoNet(PrototypicalClassifier):
    """The rule before: two rows of each class, with or without the spread."""

    _UNESTIMATED_CLASS_ROWS = 2


ESTIMATORS = {
    "MAML": (MAMLClassifier, TwoRowsMAML),
    "ProtoNet": (PrototypicalClassifier, TwoRowsProtoNet),
}


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


def run(kind, estimator, n_groups, per_group, seed, **params):
    """Both rules' scores: ``{rule: (training bal. acc., log loss, new bal.
    acc., log loss)}``, the groups each gave a head, and the fit times."""
    X, y, g, position, new = make_data(kind, n_groups, per_group, seed)
    train = ~new & (position < per_group)
    scored = ~new & (position >= per_group) & (position < per_group + N_SCORED)
    changed = np.zeros(len(y), dtype=bool)
    changed[train] = rarest_class_rows(y[train], g[train]) == 2
    changed_groups = np.unique(g[changed])
    scored &= np.isin(g, changed_groups)
    rng = np.random.default_rng([seed, 1])
    support = np.zeros(len(y), dtype=bool)
    for name in np.unique(g[new]):
        rows = np.flatnonzero(g == name)
        for c in (0, 1):
            of_class = rows[y[rows] == c]
            if len(of_class) > NEW_SHOTS:
                support[rng.choice(of_class, NEW_SHOTS, replace=False)] = True
    names, counts = np.unique(g[support], return_counts=True)
    complete = np.isin(g, names[counts == 2 * NEW_SHOTS])
    support &= complete
    query = new & complete & ~support
    out, heads, times = {}, {}, {}
    rules = ("3 rows (package)", "2 rows (before)")
    for rule, cls in zip(rules, ESTIMATORS[estimator], strict=True):
        clf = cls(n_threads=1, random_state=seed, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clf.fit(X[train], y[train], sensitive_features=g[train])
            times[rule] = time.perf_counter() - start
            assert np.isnan(clf.task_spread_), "the spread was estimated"
            p_train = clf.predict_proba(X[scored], sensitive_features=g[scored])[:, 1]
            trained_heads = np.isfinite(clf.head_penalty_)[
                np.isin(clf.tasks_, changed_groups)
            ].mean()
            adapted = copy.deepcopy(clf).partial_fit(
                X[support], y[support], sensitive_features=g[support]
            )
            p_new = adapted.predict_proba(X[query], sensitive_features=g[query])[:, 1]
        new_heads = np.isfinite(
            adapted.head_penalty_[np.isin(adapted.tasks_, np.unique(g[support]))]
        ).mean()
        out[rule] = (*score(y[scored], p_train), *score(y[query], p_new))
        heads[rule] = (trained_heads, new_heads)
    return out, heads, times, len(changed_groups), len(np.unique(g[support]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke run: one small fit of each"
    )
    args = parser.parse_args(argv)
    sizes, kinds, params = [(2000, 5), (1000, 10)], ("rows", "slopes"), {}
    if args.quick:
        args.seeds, sizes, kinds = 1, [(200, 5)], ("rows",)
        params = {"max_epochs": 2}
    torch.set_num_threads(1)
    B.exploration_header("explore_small_groups", argv)
    print(
        "\nTraining groups whose rarest class has 2 rows (scored on their "
        f"{N_SCORED} further rows) and {N_NEW} new groups adapted to "
        f"{NEW_SHOTS} rows of each class (scored on their other rows); "
        "spread not estimated in every fit. Share with a head: of those "
        "groups, the share given a head (ProtoNet) or correction (MAML). "
        "Points: 3 rows minus 2 rows, mean ± SE over random states.\n"
    )
    print(
        "| data | estimator | groups x rows | rule | share with a head, training "
        "/ new | training: bal. acc. | log loss | new: bal. acc. | log loss "
        "| fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for kind in kinds:
        for estimator in ESTIMATORS:
            for n_groups, per_group in sizes:
                runs = [
                    run(kind, estimator, n_groups, per_group, s, **params)
                    for s in range(args.seeds)
                ]
                rules = list(runs[0][0])
                for rule in rules:
                    v = np.array([r[0][rule] for r in runs])
                    h = np.array([r[1][rule] for r in runs]).mean(0)
                    t = np.mean([r[2][rule] for r in runs])
                    print(
                        f"| {kind} | {estimator} | {n_groups} x {per_group} | {rule} "
                        f"| {h[0]:.2f} / {h[1]:.2f} | {v[:, 0].mean():.4f} "
                        f"| {v[:, 1].mean():.4f} | {v[:, 2].mean():.4f} "
                        f"| {v[:, 3].mean():.4f} | {t:.1f} |",
                        flush=True,
                    )
                a = np.array([r[0][rules[0]] for r in runs])
                b = np.array([r[0][rules[1]] for r in runs])
                d = a - b
                d[:, [0, 2]] *= 100
                se = (
                    d.std(0, ddof=1) / np.sqrt(len(d))
                    if len(d) > 1
                    else np.full(4, np.nan)
                )
                summary.append(
                    (kind, estimator, f"{n_groups} x {per_group}", d.mean(0), se)
                )
    print("\n3 rows minus 2 rows (bal. acc. in points; log loss: lower is better):\n")
    print(
        "| data | estimator | groups x rows | training: bal. acc. | log loss "
        "| new: bal. acc. | log loss |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, estimator, size, mean, se in summary:
        cells = [
            f"{mean[i]:+.2f} ± {se[i]:.2f}"
            if i in (0, 2)
            else f"{mean[i]:+.4f} ± {se[i]:.4f}"
            for i in range(4)
        ]
        print(f"| {kind} | {estimator} | {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
