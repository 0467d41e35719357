"""End-to-end demo on bundled data: ``python -m skmeta`` (``--help`` for options).

Meta-trains both classifiers with demographic groups (or hospitals) as tasks,
adapts to every group, and prints accuracy, worst-group accuracy and the
demographic-parity difference next to a logistic regression, then the
accuracy of each group. Then it holds one group out of training and adapts to
it from a handful of its rows.
"""

import argparse
import time

import numpy as np
from fairlearn.metrics import MetricFrame, demographic_parity_difference
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import MAMLClassifier, PrototypicalClassifier
from .datasets import load_adult, load_compas, load_heart_disease

DATASETS = ("adult", "compas", "heart")


def _load(name, random_state):
    """Train/test arrays, the groups of each row, and the group to hold out."""
    if name == "adult":
        bunch = load_adult()
        train, test = bunch.split == "train", bunch.split == "test"
        sf = bunch.sensitive_features
        groups = (sf["sex"].astype(str) + " " + sf["race"].astype(str)).to_numpy()
        held_out, what = "Female Black", "sex x race groups"
    else:
        bunch = load_compas() if name == "compas" else load_heart_disease()
        rng = np.random.default_rng(random_state)
        test = rng.random(len(bunch.target)) < 0.3
        train = ~test
        column = "race" if name == "compas" else "site"
        groups = bunch.sensitive_features[column].astype(str).to_numpy()
        held_out = "Hispanic" if name == "compas" else "VA Long Beach"
        what = "race groups" if name == "compas" else "hospitals"
    prep = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler())
    X_train = prep.fit_transform(bunch.data[train]).astype(np.float32)
    X_test = prep.transform(bunch.data[test]).astype(np.float32)
    y = np.asarray(bunch.target)
    return (
        X_train,
        X_test,
        y[train],
        y[test],
        groups[train],
        groups[test],
        (
            held_out,
            what,
        ),
    )


def _report(name, y_true, y_pred, groups, seconds):
    frame = MetricFrame(
        metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    )
    dpd = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    return {
        "name": name,
        "accuracy": accuracy_score(y_true, y_pred),
        "worst group": frame.group_min(),
        "dp difference": dpd,
        "seconds": seconds,
        "by_group": frame.by_group,
    }


def main(
    dataset="adult",
    max_epochs=10,
    random_state=0,
    n_threads="auto",
    quick=False,
    verbose=1,
):
    """Run the demo and print its tables.

    Parameters
    ----------
    dataset : {"adult", "compas", "heart"}, default="adult"
        Bundled data set: Adult (original split; the sex x race groups are the
        tasks), COMPAS (race groups) or heart disease (hospitals); the last
        two are split 70/30 at random.

    max_epochs : int, default=10
        Meta-training epochs of each skmeta model.

    random_state : int, default=0
        Seed of every model and split.

    n_threads : "auto", int or None, default="auto"
        torch threads of the skmeta models (their ``n_threads``).

    quick : bool, default=False
        Train on at most 5,000 rows for 2 epochs: a fast check that all runs.

    verbose : int, default=1
        ``1`` prints each model's epochs as they train.

    Returns
    -------
    results : list of dict
        One entry per model: accuracy, worst-group accuracy, demographic
        parity difference, fit time, and per-group accuracy.
    """
    X_train, X_test, y_train, y_test, g_train, g_test, (new, what) = _load(
        dataset, random_state
    )
    if quick:
        keep = np.random.default_rng(random_state).permutation(len(y_train))[:5000]
        X_train, y_train, g_train = X_train[keep], y_train[keep], g_train[keep]
        max_epochs = min(max_epochs, 2)
    params = dict(
        max_epochs=max_epochs,
        random_state=random_state,
        n_threads=n_threads,
        verbose=verbose,
    )
    print(
        f"{dataset}: {len(y_train)} training rows, {len(y_test)} test rows, "
        f"{len(np.unique(g_train))} {what} as tasks.\n"
    )

    results = []
    start = time.perf_counter()
    baseline = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    results.append(
        _report(
            "LogisticRegression",
            y_test,
            baseline.predict(X_test),
            g_test,
            time.perf_counter() - start,
        )
    )
    for klass in [MAMLClassifier, PrototypicalClassifier]:
        print(f"Meta-training {klass.__name__} ({max_epochs} epochs):")
        start = time.perf_counter()
        model = klass(**params)
        model.fit(X_train, y_train, sensitive_features=g_train)
        y_pred = model.predict(X_test, sensitive_features=g_test)
        results.append(
            _report(klass.__name__, y_test, y_pred, g_test, time.perf_counter() - start)
        )
        print()

    print(
        f"{'model':<24}{'accuracy':>10}{'worst group':>13}{'DP difference':>15}"
        f"{'fit (s)':>9}"
    )
    for r in results:
        print(
            f"{r['name']:<24}{r['accuracy']:>10.3f}{r['worst group']:>13.3f}"
            f"{r['dp difference']:>15.3f}{r['seconds']:>9.1f}"
        )

    print("\nTest accuracy by group (rows in the training set):")
    counts = {g: int((g_train == g).sum()) for g in np.unique(g_test)}
    header = "".join(f"{r['name'][:18]:>20}" for r in results)
    print(f"{'group':<34}{'rows':>7}{header}")
    for g in sorted(counts, key=counts.get, reverse=True):
        values = "".join(f"{r['by_group'][g]:>20.3f}" for r in results)
        print(f"{g:<34}{counts[g]:>7}{values}")

    # A group never seen in training, adapted to from its first rows.
    seen = g_train != new
    rows = np.flatnonzero(g_test == new)
    rng = np.random.default_rng(random_state)
    support = rng.choice(rows, min(30, len(rows) // 2), replace=False)
    query = np.setdiff1d(rows, support)
    print(
        f"\nHeld-out group {new!r}: trained without it, then partial_fit on "
        f"{len(support)} of its rows; accuracy on its other {len(query)} test rows."
    )
    pooled = LogisticRegression(max_iter=1000).fit(X_train[seen], y_train[seen])
    print(f"{'model':<34}{'before':>8}{'after':>8}")
    print(
        f"{'LogisticRegression (pooled)':<34}"
        f"{accuracy_score(y_test[query], pooled.predict(X_test[query])):>8.3f}"
    )
    for klass in [MAMLClassifier, PrototypicalClassifier]:
        model = klass(**{**params, "verbose": 0})
        model.fit(X_train[seen], y_train[seen], sensitive_features=g_train[seen])
        before = accuracy_score(y_test[query], model.predict(X_test[query]))
        model.partial_fit(
            X_test[support], y_test[support], sensitive_features=g_test[support]
        )
        after = accuracy_score(
            y_test[query],
            model.predict(X_test[query], sensitive_features=g_test[query]),
        )
        print(f"{klass.__name__:<34}{before:>8.3f}{after:>8.3f}")
    return results


def cli(argv=None):
    """``python -m skmeta``: parse the options and run :func:`main`."""
    parser = argparse.ArgumentParser(
        prog="python -m skmeta",
        description=(
            "skmeta's end-to-end demo on bundled data: meta-train MAMLClassifier "
            "and PrototypicalClassifier with demographic groups (or hospitals) as "
            "tasks, print accuracy, worst-group accuracy and the demographic "
            "parity difference next to a logistic regression, then adapt to a "
            "group held out of training from a handful of its rows."
        ),
    )
    parser.add_argument("--dataset", choices=DATASETS, default="adult")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="at most 5,000 training rows and 2 epochs (a fast check)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="meta-training epochs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: one for these small networks)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no epoch tables")
    args = parser.parse_args(argv)
    main(
        dataset=args.dataset,
        max_epochs=args.epochs,
        random_state=args.seed,
        n_threads="auto" if args.threads is None else args.threads,
        quick=args.quick,
        verbose=0 if args.quiet else 1,
    )
