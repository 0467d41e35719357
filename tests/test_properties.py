"""Properties of fitted models, checked on many inputs (hypothesis)."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skmeta import MAMLClassifier, PrototypicalClassifier

FAST = dict(max_epochs=2, steps_per_epoch=4, random_state=0)


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(240, 4))
    groups = np.array(["a", "b", "c", "d"])[np.arange(240) % 4]
    y = (X[:, 0] + (groups == "b") * X[:, 1] > 0).astype(int)
    return X, y, groups


@pytest.fixture(scope="module", params=[MAMLClassifier, PrototypicalClassifier])
def fitted(request):
    X, y, groups = _data()
    clf = request.param(inference_dtype="float64", **FAST)
    return clf.fit(X, y, sensitive_features=groups), X, y, groups


rows = st.lists(st.integers(0, 239), min_size=1, max_size=60)


@settings(max_examples=20, deadline=None)
@given(rows=rows, seed=st.integers(0, 2**16))
def test_probabilities_are_valid_and_row_order_does_not_matter(fitted, rows, seed):
    clf, X, _, groups = fitted
    rows = np.array(rows)
    proba = clf.predict_proba(X[rows], sensitive_features=groups[rows])
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(1), 1.0)
    perm = np.random.default_rng(seed).permutation(len(rows))
    shuffled = clf.predict_proba(X[rows[perm]], sensitive_features=groups[rows[perm]])
    np.testing.assert_allclose(shuffled, proba[perm], rtol=0, atol=1e-12)
    labels = clf.predict(X[rows], sensitive_features=groups[rows])
    np.testing.assert_array_equal(labels, clf.classes_[proba.argmax(1)])


@settings(max_examples=5, deadline=None)
@given(offset=st.integers(-5, 5), scale=st.integers(1, 4))
def test_order_preserving_relabelling_relabels_the_predictions(offset, scale):
    # Labels that keep their order encode the same way: the same model, with
    # the predictions relabelled.
    X, y, groups = _data()
    base = PrototypicalClassifier(**FAST).fit(X, y, sensitive_features=groups)
    relabelled = y * scale + offset
    other = PrototypicalClassifier(**FAST).fit(X, relabelled, sensitive_features=groups)
    np.testing.assert_array_equal(
        other.predict(X, sensitive_features=groups),
        base.predict(X, sensitive_features=groups) * scale + offset,
    )
    np.testing.assert_array_equal(other.classes_, np.array([0, 1]) * scale + offset)


def test_string_labels_in_order_give_the_same_model(fitted):
    clf, X, y, groups = fitted
    named = np.array(["no", "yes"])[y]
    other = type(clf)(inference_dtype="float64", **FAST).fit(
        X, named, sensitive_features=groups
    )
    np.testing.assert_array_equal(
        other.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )


def test_same_random_state_same_model(fitted):
    clf, X, y, groups = fitted
    again = type(clf)(inference_dtype="float64", **FAST).fit(
        X, y, sensitive_features=groups
    )
    np.testing.assert_array_equal(
        again.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )


@settings(max_examples=6, deadline=None)
@given(k=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_partial_fit_on_a_new_group_changes_only_that_group(fitted, k, seed):
    clf, X, y, groups = fitted
    clf = copy.deepcopy(clf)
    before = clf.predict_proba(X, sensitive_features=groups)
    meta = [p.detach().clone() for p in clf.module_.parameters()]
    rng = np.random.default_rng(seed)
    rows = np.r_[
        rng.choice(np.flatnonzero(y == 0), k), rng.choice(np.flatnonzero(y == 1), k)
    ]
    clf.partial_fit(X[rows], y[rows], sensitive_features=["new"] * len(rows))
    np.testing.assert_array_equal(
        clf.predict_proba(X, sensitive_features=groups), before
    )
    for a, b in zip(clf.module_.parameters(), meta, strict=True):
        assert (a.detach() == b).all()
    assert "new" in clf.tasks_
