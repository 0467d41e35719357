"""Fairness penalties, the fair meta-objective, group DRO and sample weights."""

import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from hypothesis import given
from hypothesis import strategies as st

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification
from skmeta.fairness import (
    demographic_parity_penalty,
    equalized_odds_penalty,
    true_positive_rate_parity_penalty,
)

FAST = dict(max_epochs=2, steps_per_epoch=5, random_state=0)


@st.composite
def hard_predictions(draw):
    n = draw(st.integers(4, 40))
    ints = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    groups = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return np.array(draw(ints)), np.array(draw(ints)), np.array(groups)


@given(hard_predictions())
def test_penalties_equal_fairlearn_metrics_on_hard_predictions(data):
    y, pred, groups = data
    p, yt, g = (
        torch.tensor(pred, dtype=torch.float64),
        torch.tensor(y),
        torch.tensor(groups),
    )
    assert demographic_parity_penalty(p, g).item() == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=groups)
    )
    # fairlearn's rates need every group to have both classes to be defined.
    complete = all(len(np.unique(y[groups == k])) == 2 for k in np.unique(groups))
    if complete:
        assert equalized_odds_penalty(p, yt, g).item() == pytest.approx(
            equalized_odds_difference(y, pred, sensitive_features=groups)
        )
        assert true_positive_rate_parity_penalty(p, yt, g).item() == pytest.approx(
            equal_opportunity_difference(y, pred, sensitive_features=groups)
        )


def test_penalty_with_weights_and_two_columns():
    proba = torch.tensor([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.6, 0.4]])
    groups = torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([1.0, 3.0, 1.0, 0.0])
    # Group 0: (0.9 + 3 * 0.7) / 4 = 0.75; group 1: 0.2 (the 0-weight row drops).
    assert demographic_parity_penalty(proba, groups, weights).item() == pytest.approx(
        0.55
    )


def test_multiclass_penalty_is_the_largest_one_vs_rest_gap():
    proba = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    groups = torch.tensor([0, 1])
    assert demographic_parity_penalty(proba, groups).item() == pytest.approx(0.6)


@pytest.mark.parametrize(
    "penalty",
    [
        lambda p, y, g: demographic_parity_penalty(p, g),
        equalized_odds_penalty,
        true_positive_rate_parity_penalty,
    ],
)
def test_penalty_gradients_are_finite_for_tiny_and_one_class_groups(penalty):
    logits = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, 1, 1, 1, 0])
    groups = torch.tensor([0, 0, 1, 2, 2, 3])  # group 1: one row; group 2: one class
    value = penalty(torch.softmax(logits, -1), y, groups)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_batched_penalty_is_per_task():
    proba = torch.tensor([[[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.5], [0.5, 0.5]]])
    groups = torch.tensor([[0, 1], [0, 1]])
    np.testing.assert_allclose(
        demographic_parity_penalty(proba, groups).numpy(), [0.8, 0.0]
    )


@pytest.fixture(scope="module")
def biased():
    X, y, groups = make_group_classification(
        n_groups=4,
        n_samples_per_group=300,
        n_features=4,
        group_shift=0.3,
        label_bias=0.6,
        random_state=0,
    )
    return X, y, groups


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_zero_weight_reproduces_the_unconstrained_model(klass, biased):
    X, y, groups = biased
    plain = klass(**FAST).fit(X, y, sensitive_features=groups)
    zero = klass(constraints="demographic_parity", fairness_weight=0.0, **FAST)
    zero.fit(X, y, sensitive_features=groups)
    np.testing.assert_array_equal(
        plain.predict_proba(X, sensitive_features=groups),
        zero.predict_proba(X, sensitive_features=groups),
    )


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_raising_the_weight_lowers_demographic_parity_difference(klass, biased):
    X, y, groups = biased
    dpd = []
    for weight in [0.0, 2.0, 8.0]:
        clf = klass(
            constraints="demographic_parity",
            fairness_weight=weight,
            max_epochs=8,
            random_state=0,
        ).fit(X, y, sensitive_features=groups)
        pred = clf.predict(X, sensitive_features=groups)
        dpd.append(demographic_parity_difference(y, pred, sensitive_features=groups))
    assert dpd[0] > 0.15  # the planted bias shows
    # Monotone within noise: MAML's difference plateaus after the first
    # weight (0.50 -> 0.17-0.21 -> 0.17-0.22 over random_state 0-2 and both
    # task samplings), where seeds differ by up to 0.05.
    assert dpd[1] < dpd[0] + 0.03 and dpd[2] < dpd[1] + 0.03
    # The penalty cuts the difference by almost half.
    assert dpd[1] < 0.55 * dpd[0] and dpd[2] < 0.55 * dpd[0]


def test_constraints_need_groups():
    X, y = np.random.RandomState(0).normal(size=(30, 2)), np.arange(30) % 2
    with pytest.raises(ValueError, match="needs the groups"):
        MAMLClassifier(constraints="equalized_odds", fairness_weight=1.0).fit(X, y)
    with pytest.raises(ValueError, match="constraints"):
        MAMLClassifier(constraints="parity").fit(X, y)
    with pytest.raises(ValueError, match="fairness_weight"):
        MAMLClassifier(fairness_weight=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="fairness_temperature"):
        MAMLClassifier(fairness_temperature=0.0).fit(X, y)


@pytest.mark.parametrize("constraints", ["equalized_odds", "true_positive_rate_parity"])
def test_conditional_constraints_train_within_tasks(constraints, biased):
    X, y, groups = biased
    sites = np.arange(len(y)) % 3
    metric = {
        "equalized_odds": equalized_odds_difference,
        "true_positive_rate_parity": equal_opportunity_difference,
    }[constraints]

    def within_sites(weight):
        clf = PrototypicalClassifier(
            constraints=constraints,
            fairness_weight=weight,
            class_prior="pooled",
            max_epochs=8,
            random_state=0,
        ).fit(X, y, sensitive_features=groups, tasks=sites)
        pred = clf.predict(X, tasks=sites)
        return np.mean(
            [
                metric(
                    y[sites == s],
                    pred[sites == s],
                    sensitive_features=groups[sites == s],
                )
                for s in range(3)
            ]
        )

    # The penalty, computed within each site, lowers the within-site gap.
    assert within_sites(5.0) < within_sites(0.0)


def test_group_dro_upweights_the_hardest_task(biased):
    X, y, groups = biased
    y = y.copy()
    hard = groups == 3
    y[hard] = np.random.RandomState(0).randint(0, 2, hard.sum())  # pure noise
    clf = MAMLClassifier(dro_step_size=0.5, **FAST).fit(X, y, sensitive_features=groups)
    weights = clf.dro_weights_.numpy()
    assert weights.sum() == pytest.approx(1.0)
    assert weights.argmax() == list(clf.tasks_).index(3)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_zero_weights_equal_dropping_rows(klass, biased):
    X, y, groups = biased
    w = np.ones(len(y))
    w[::5] = 0.0
    keep = w > 0
    weighted = klass(**FAST).fit(X, y, sensitive_features=groups, sample_weight=w)
    dropped = klass(**FAST).fit(X[keep], y[keep], sensitive_features=groups[keep])
    np.testing.assert_allclose(
        weighted.predict_proba(X, sensitive_features=groups),
        dropped.predict_proba(X, sensitive_features=groups),
        rtol=1e-5,
        atol=1e-7,
    )


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
@pytest.mark.parametrize("scale", [0.01, 100.0])
def test_weight_scale_does_not_change_the_model(klass, scale, biased):
    # Weights are relative: multiplying them all by a constant (in fit and in
    # partial_fit) gives the same model, as scikit-learn's convention asks.
    X, y, groups = biased
    train = groups != 0
    w = np.arange(len(y)) % 3 + 1.0
    params = dict(FAST, inference_dtype="float64")
    a = klass(**params).fit(
        X[train], y[train], sensitive_features=groups[train], sample_weight=w[train]
    )
    b = klass(**params).fit(
        X[train],
        y[train],
        sensitive_features=groups[train],
        sample_weight=scale * w[train],
    )
    rows = np.flatnonzero(groups == 0)[:12]
    a.partial_fit(
        X[rows], y[rows], sensitive_features=groups[rows], sample_weight=w[rows]
    )
    b.partial_fit(
        X[rows], y[rows], sensitive_features=groups[rows], sample_weight=scale * w[rows]
    )
    np.testing.assert_allclose(
        a.predict_proba(X, sensitive_features=groups),
        b.predict_proba(X, sensitive_features=groups),
        atol=1e-5,
    )


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_weights_move_the_model_toward_the_weighted_rows(klass, biased):
    # Up-weighting the positive rows raises the predicted positive rate: the
    # weights reach the losses and the class frequencies of class_prior (a
    # model ignoring them would not move).
    X, y, groups = biased
    params = dict(max_epochs=6, random_state=0)
    plain = klass(**params).fit(X, y, sensitive_features=groups)
    w = np.where(y == 1, 5.0, 1.0)
    weighted = klass(**params).fit(X, y, sensitive_features=groups, sample_weight=w)
    rate = lambda m: m.predict(X, sensitive_features=groups).mean()  # noqa: E731
    assert rate(weighted) > rate(plain) + 0.05


def pickle_copy(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))
