"""Properties of fitted models, checked on many inputs (hypothesis)."""

import copy
import pickle

import numpy as np
import pytest
import torch
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


# Every option of the estimators, each with values that change what runs.
_COMMON_OPTIONS = dict(
    n_shots=[1, 5],
    variable_shots=[False, True],
    task_sampling=["proportional", "uniform"],
    class_prior=["auto", "balanced", "task", "pooled"],
    constraints=[None, "demographic_parity", "equalized_odds"],
    fairness_weight=[0.0, 1.0],
    dro_step_size=[0.0, 0.5],
    pooled_episodes=[0.0, 0.5],
    pretrain_epochs=[0, 1],
    online_meta_update=[False, True],
    task_mixture=["auto", 0.0, 0.5],
    support_size=[3, 500],
    inference_dtype=["float32", "float64"],
)
_OPTIONS = {
    MAMLClassifier: dict(
        inner_steps=[1, 3],
        prior_strength=["learn", 0.0, 5.0],
        adapt_layers=["all", "last"],
        head=["auto", "none", "logistic"],
        first_order=[False, True],
        learn_inner_lr=[False, True],
    ),
    PrototypicalClassifier: dict(
        shrinkage=["learn", 0.0, 3.0],
        distance_scale=["learn", 1.0],
        head=["auto", "prototypes", "logistic"],
    ),
}


@st.composite
def _configurations(draw):
    klass = draw(st.sampled_from([MAMLClassifier, PrototypicalClassifier]))
    options = {**_COMMON_OPTIONS, **_OPTIONS[klass]}
    params = {name: draw(st.sampled_from(values)) for name, values in options.items()}
    data = dict(
        n_rows=draw(st.integers(20, 150)),
        n_features=draw(st.integers(1, 5)),
        n_classes=draw(st.integers(2, 3)),
        n_groups=draw(st.integers(1, 5)),
        tasks=draw(st.booleans()),
        weights=draw(st.booleans()),
        new_rows=draw(st.integers(1, 6)),
        seed=draw(st.integers(0, 2**16)),
    )
    return klass, params, data


@settings(max_examples=16, deadline=None)
@given(config=_configurations())
def test_any_configuration_fits_predicts_adapts_and_pickles(config):
    """Whatever the options and data: valid probabilities, prediction leaves
    the model as it was, new and known groups adapt, and a pickled copy
    predicts the same."""
    klass, params, d = config
    rng = np.random.default_rng(d["seed"])
    n = d["n_rows"]
    X = rng.normal(size=(n, d["n_features"]))
    y = rng.integers(0, d["n_classes"], n)
    y[: d["n_classes"]] = np.arange(d["n_classes"])  # every class present
    groups = rng.integers(0, d["n_groups"], n).astype(str)
    given_groups = dict(sensitive_features=groups)
    if d["tasks"]:
        given_groups["tasks"] = rng.integers(0, 3, n).astype(str)
    weight = rng.random(n) + 0.01 if d["weights"] else None
    clf = klass(max_epochs=1, steps_per_epoch=2, random_state=0, **params)
    clf.fit(X, y, sample_weight=weight, **given_groups)

    states = {k: v.clone() for k, v in clf.states_.items()}
    proba = clf.predict_proba(X, **given_groups)
    assert np.isfinite(proba).all() and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    for name, value in states.items():
        assert torch.equal(value, clf.states_[name]), name

    m = d["new_rows"]
    X_new = rng.normal(size=(m, d["n_features"]))
    y_new = rng.integers(0, d["n_classes"], m)
    new_groups = (
        dict(tasks=["new"] * m, sensitive_features=groups[:m])
        if d["tasks"]
        else dict(sensitive_features=["new"] * m)
    )
    clf.partial_fit(X_new, y_new, **new_groups)
    clf.partial_fit(X[:5], y[:5], **{k: v[:5] for k, v in given_groups.items()})
    both = {k: np.r_[given_groups[k], new_groups[k]] for k in given_groups}
    proba = clf.predict_proba(np.r_[X, X_new], **both)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert "new" in clf.tasks_

    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        restored.predict_proba(np.r_[X, X_new], **both), proba
    )
