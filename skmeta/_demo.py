"""End-to-end demo on the bundled Adult data: ``python -m skmeta``.

Meta-trains both classifiers with the intersectional sex x race groups as
tasks, adapts to every group, and prints per-group accuracy and the
demographic-parity difference next to a plain logistic regression. Then it
holds one group out of training and adapts to it from a handful of rows.
"""

import time

import numpy as np
from fairlearn.metrics import MetricFrame, demographic_parity_difference
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import StandardScaler

from . import MAMLClassifier, PrototypicalClassifier
from .datasets import load_adult


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


def main(max_epochs=10, random_state=0):
    """Run the demo and print its tables.

    Parameters
    ----------
    max_epochs : int, default=10
        Meta-training epochs of each skmeta model.

    random_state : int, default=0
        Seed of every model.

    Returns
    -------
    results : list of dict
        One entry per model: accuracy, worst-group accuracy, demographic
        parity difference, fit time, and per-group accuracy.
    """
    adult = load_adult()
    train, test = adult.split == "train", adult.split == "test"
    sensitive = adult.sensitive_features
    groups = (
        sensitive["sex"].astype(str) + " " + sensitive["race"].astype(str)
    ).to_numpy()
    scaler = StandardScaler().fit(adult.data[train])
    X_train, X_test = (
        scaler.transform(adult.data[train]),
        scaler.transform(adult.data[test]),
    )
    y_train, y_test = adult.target[train], adult.target[test]
    g_train, g_test = groups[train], groups[test]
    print(
        f"Adult: {len(y_train)} training rows, {len(y_test)} test rows, "
        f"{len(np.unique(groups))} sex x race groups as tasks.\n"
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
        start = time.perf_counter()
        model = klass(max_epochs=max_epochs, random_state=random_state)
        model.fit(X_train, y_train, sensitive_features=g_train)
        y_pred = model.predict(X_test, sensitive_features=g_test)
        results.append(
            _report(klass.__name__, y_test, y_pred, g_test, time.perf_counter() - start)
        )

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
    counts = {g: int((g_train == g).sum()) for g in np.unique(groups)}
    header = "".join(f"{r['name'][:18]:>20}" for r in results)
    print(f"{'group':<34}{'rows':>7}{header}")
    for g in sorted(counts, key=counts.get, reverse=True):
        values = "".join(f"{r['by_group'][g]:>20.3f}" for r in results)
        print(f"{g:<34}{counts[g]:>7}{values}")

    # A group never seen in training, adapted to from its first rows.
    new = "Female Black"
    seen = g_train != new
    rows = np.flatnonzero(g_test == new)
    rng = np.random.default_rng(random_state)
    support = rng.choice(rows, 30, replace=False)
    query = np.setdiff1d(rows, support)
    print(
        f"\nHeld-out group {new!r}: trained without it, then partial_fit on "
        f"{len(support)} of its rows; accuracy on its other {len(query)} test rows."
    )
    pooled = LogisticRegression(max_iter=1000).fit(X_train[seen], y_train[seen])
    print(
        f"{'LogisticRegression (pooled)':<34}"
        f"{accuracy_score(y_test[query], pooled.predict(X_test[query])):>8.3f}"
    )
    for klass in [MAMLClassifier, PrototypicalClassifier]:
        model = klass(max_epochs=max_epochs, random_state=random_state)
        model.fit(X_train[seen], y_train[seen], sensitive_features=g_train[seen])
        before = accuracy_score(y_test[query], model.predict(X_test[query]))
        model.partial_fit(
            X_test[support], y_test[support], sensitive_features=g_test[support]
        )
        after = accuracy_score(
            y_test[query],
            model.predict(X_test[query], sensitive_features=g_test[query]),
        )
        print(f"{klass.__name__ + ' before / after':<34}{before:>8.3f}{after:>8.3f}")
    return results
