"""The logistic correction of MAMLClassifier, against explicit references."""

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax
from test_heads import (
    _shifted_groups,
    assert_five_row_rule,
    assert_headless_tasks_match,
)

from skmeta import MAMLClassifier
from skmeta._heads import _HEAD_PENALTIES


def _model(**kwargs):
    # class_prior="balanced": the probabilities are the logits' alone; the
    # head alone, without the training tasks' mixture (tests/test_task_mixture).
    kwargs = {"task_mixture": 0, **kwargs}
    return MAMLClassifier(
        max_epochs=3, class_prior="balanced", random_state=0, n_threads=1, **kwargs
    )


@pytest.fixture(scope="module")
def fitted():
    X, y, groups = _shifted_groups(n_groups=8, n_rows=60)
    model = _model().fit(X, y, sensitive_features=groups)
    # The same network without corrections (the head does not change training).
    plain = _model(head="none").fit(X, y, sensitive_features=groups)
    return model, plain, (X, y, groups)


def test_auto_head_is_logistic_without_fairness_penalty(fitted):
    model, plain, _ = fitted
    assert model.head_ == "logistic" and plain.head_ == "none"
    with pytest.raises(AttributeError, match="head_penalty_"):
        _ = plain.head_penalty_
    fair = MAMLClassifier(
        constraints="demographic_parity", fairness_weight=1.0, max_epochs=1
    )
    X, y, groups = _shifted_groups(n_groups=4, n_rows=30)
    fair.fit(X, y, sensitive_features=groups)
    assert fair.head_ == "none"


def test_uncorrected_tasks_predict_as_without_the_head(fitted):
    model, plain, (X, y, groups) = fitted
    penalty = model.head_penalty_
    assert penalty.shape == (len(model.tasks_),)
    assert np.isinf(penalty).any()
    # Unknown groups use the pooled network, uncorrected, under both.
    assert_headless_tasks_match(model, plain, X, groups)


def _reference_correction(f0, Phi, y, alpha):
    """argmin sum_i CE(f0_i + theta Phi_i, y_i) + alpha / 2 |theta|^2, L-BFGS."""
    shape = (f0.shape[1], Phi.shape[1])

    def loss(flat):
        logits = f0 + Phi @ flat.reshape(shape).T
        nll = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
        return nll.sum() + 0.5 * alpha * (flat**2).sum()

    result = minimize(
        loss,
        np.zeros(np.prod(shape)),
        method="L-BFGS-B",
        options=dict(maxiter=20000, gtol=1e-11, ftol=1e-16),
    )
    return result.x.reshape(shape)


def _log_proba(plain, X, task):
    """Log-probabilities of ``plain`` (no correction, balanced prior: the
    logits up to a constant) adapted to the task ``task``."""
    return np.log(plain.predict_proba(X, sensitive_features=[task] * len(X)))


def _reference_choice(plain, Xs, ys, tolerance, max_penalty=np.inf):
    """The penalty and correction of a new group, written out: each fold's
    network adapted by ``partial_fit`` on the fold's rows, the corrections
    by scipy; the largest penalty within ``tolerance`` standard errors of the
    smallest held-out loss wins; with a finite ``max_penalty`` (a trusted
    group), the penalty of smallest held-out loss among those up to it (at
    least the smallest tried), never no correction."""
    order = np.argsort((np.arange(len(ys)) * 2654435761) % 2**32, kind="stable")
    Xs, ys = Xs[order], ys[order]
    Phi = np.hstack([Xs, np.ones((len(ys), 1))])
    n_folds = min(5, np.bincount(ys).min())
    rank = np.zeros(len(ys), dtype=int)
    for c in (0, 1):
        rank[ys == c] = np.arange((ys == c).sum())
    fold = rank % n_folds
    penalties = [np.inf] + sorted(_HEAD_PENALTIES.tolist(), reverse=True)
    losses = np.zeros((len(penalties), len(ys)))
    for f in range(n_folds):
        fit, out = fold != f, fold == f
        net = copy.deepcopy(plain).partial_fit(
            Xs[fit], ys[fit], sensitive_features=[f"fold{f}"] * fit.sum()
        )
        f0 = _log_proba(net, Xs, f"fold{f}")
        for i, alpha in enumerate(penalties):
            logits = f0[out]
            if np.isfinite(alpha):
                theta = _reference_correction(f0[fit], Phi[fit], ys[fit], alpha)
                logits = logits + Phi[out] @ theta.T
            losses[i, out] = -log_softmax(logits, axis=1)[np.arange(out.sum()), ys[out]]
    total = losses.sum(1)
    best = total.argmin()
    diff = losses - losses[best]
    se = diff.std(1, ddof=1) * np.sqrt(len(ys))
    if np.isfinite(max_penalty):
        cap = max(max_penalty, min(_HEAD_PENALTIES.tolist()))
        allowed = [i for i, a in enumerate(penalties) if a <= cap]
        return penalties[min(allowed, key=lambda i: total[i])]
    return penalties[int(np.flatnonzero(total - total[best] <= tolerance * se)[0])]


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("k", [1, 4, 12])
def test_new_group_penalty_and_correction_match_the_reference(fitted, k, trusted):
    """A group of at least ``head_min_rows_`` rows takes a correction, of the
    smallest held-out loss among the penalties up to ``1 / task_spread_``; a
    smaller one the one-standard-error rule."""
    model, plain, _ = fitted
    assert model.task_spread_ > 0 and np.isfinite(model.head_min_rows_)
    model = copy.deepcopy(model)
    model.head_min_rows_ = 2.0 * k if trusted else 2.0 * k + 1
    model.task_spread_ = 1.0  # penalties up to 1 where trusted
    rng = np.random.RandomState(k)
    # A group far from the training groups: its own linear rule.
    coef = np.array([3.0, -3.0, 0.0, 2.0])
    X_new = rng.normal(size=(400, 4))
    y_new = (X_new @ coef + 0.3 * rng.normal(size=400) > 0).astype(int)
    support = np.r_[np.flatnonzero(y_new == 0)[:k], np.flatnonzero(y_new == 1)[:k]]
    support = rng.permutation(support)
    Xs, ys = X_new[support], y_new[support]
    adapted = copy.deepcopy(model).partial_fit(
        Xs, ys, sensitive_features=["far"] * len(ys)
    )
    chosen = adapted.head_penalty_[list(adapted.tasks_).index("far")]
    if k == 1:  # one row per class: no cross-validation, no correction
        assert np.isinf(chosen)
        return
    if trusted:
        expected = _reference_choice(plain, Xs, ys, 0.0, max_penalty=1.0)
    else:
        expected = _reference_choice(plain, Xs, ys, 1.0)
    assert chosen == pytest.approx(expected, rel=1e-6)
    # The corrected probabilities on other rows of the group.
    net = copy.deepcopy(plain).partial_fit(Xs, ys, sensitive_features=["far"] * len(ys))
    query = np.setdiff1d(np.arange(400), support)[:50]
    f0_q = _log_proba(net, X_new[query], "far")
    expected_proba = np.exp(f0_q - f0_q.max(1, keepdims=True))
    if np.isfinite(expected):
        theta = _reference_correction(
            _log_proba(net, Xs, "far"),
            np.hstack([Xs, np.ones((len(ys), 1))]),
            ys,
            expected,
        )
        logits = f0_q + np.hstack([X_new[query], np.ones((50, 1))]) @ theta.T
        expected_proba = np.exp(log_softmax(logits, axis=1))
    expected_proba /= expected_proba.sum(1, keepdims=True)
    proba = adapted.predict_proba(X_new[query], sensitive_features=["far"] * 50)
    np.testing.assert_allclose(proba, expected_proba, atol=2e-3)


def test_far_group_gets_a_correction_and_keeps_its_accuracy(fitted):
    """Many rows of a rule far from the training groups' get a correction
    (a finite penalty), and the corrected model serves the group about as
    well as the adapted network alone, which fits these rows already."""
    model, plain, _ = fitted
    rng = np.random.RandomState(1)
    coef = np.array([3.0, -3.0, 0.0, 2.0])
    X_new = rng.normal(size=(600, 4))
    y_new = (X_new @ coef > 0).astype(int)
    new = ["far"] * 200
    scores = {}
    for name, base in (("logistic", model), ("none", plain)):
        adapted = copy.deepcopy(base)
        adapted.partial_fit(X_new[:200], y_new[:200], sensitive_features=new)
        scores[name] = adapted.score(
            X_new[200:400], y_new[200:400], sensitive_features=new
        )
        if name == "logistic":
            assert np.isfinite(adapted.head_penalty_[-1])
    assert scores["logistic"] > 0.95
    assert scores["logistic"] >= scores["none"] - 0.02


def test_task_correction_does_not_depend_on_the_other_tasks_of_a_call(fitted):
    model, _, _ = fitted
    rng = np.random.RandomState(3)
    X_new = rng.normal(size=(300, 4))
    y_new = (X_new[:, 0] - X_new[:, 1] > 0).astype(int)
    groups = np.where(np.arange(300) < 100, "a", "b")
    one = copy.deepcopy(model).partial_fit(
        X_new[:100], y_new[:100], sensitive_features=groups[:100]
    )
    both = copy.deepcopy(model).partial_fit(X_new, y_new, sensitive_features=groups)
    i, j = list(one.tasks_).index("a"), list(both.tasks_).index("a")
    assert one.head_penalty_[i] == both.head_penalty_[j]
    torch.testing.assert_close(
        one.states_["head_coef"][i + 1], both.states_["head_coef"][j + 1]
    )


def test_multiclass_correction():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(240, 3))
    groups = np.repeat(["a", "b", "c"], 80)
    y = np.argmax(X @ rng.normal(size=(3, 3)), axis=1)
    model = _model().fit(X, y, sensitive_features=groups)
    assert model.states_["head_coef"].shape[1:] == (3, 3)
    proba = model.predict_proba(X, sensitive_features=groups)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert np.isfinite(proba).all()


def test_training_tasks_keep_the_one_standard_error_rule(fitted):
    """``head_min_rows_`` relaxes the penalty choice of groups new to the
    model only: the training tasks' corrections, recomputed with every task
    above it, are unchanged, and the tolerance is 0 exactly for new groups
    with enough rows."""
    model, _, _ = fitted
    relaxed = copy.deepcopy(model)
    relaxed.head_min_rows_ = 0.0
    relaxed._refresh_states(range(len(relaxed.tasks_)), recompute_global=False)
    np.testing.assert_array_equal(relaxed.head_penalty_, model.head_penalty_)
    rows = torch.tensor([3, 30, 300])
    new = torch.tensor([True, True, False])
    model = copy.deepcopy(model)
    model.head_min_rows_ = 10.0
    model.task_spread_ = 2.0
    tolerance, max_penalty = model._head_rule(rows, 1.0, new)
    np.testing.assert_array_equal(tolerance.numpy(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(max_penalty.numpy(), [np.inf, 0.5, np.inf])
    model.task_spread_ = np.nan  # not estimated: the rule for every task
    tolerance, max_penalty = model._head_rule(rows, 1.0, new)
    np.testing.assert_array_equal(tolerance.numpy(), [1.0, 1.0, 1.0])
    assert np.isinf(max_penalty.numpy()).all()


def test_spread_is_estimated_only_with_the_automatic_head():
    X, y, groups = _shifted_groups(n_groups=6, n_rows=60)
    auto = _model().fit(X, y, sensitive_features=groups)
    assert auto.task_spread_ > 0
    # 1 / (tau2 v), v the mean p (1 - p): at most 1 / 4.
    assert auto.head_min_rows_ * auto.task_spread_ >= 4
    forced = _model(head="logistic").fit(X, y, sensitive_features=groups)
    assert np.isnan(forced.task_spread_) and np.isinf(forced.head_min_rows_)


def test_training_tasks_need_head_min_rows_for_a_correction(fitted):
    """Where the spread is estimated, a training task with fewer than
    ``head_min_rows_`` rows keeps its adapted network (no correction); a group
    added by ``partial_fit`` keeps the cross-validation whatever its rows, and
    without an estimate every training task with the rows does."""
    model, _, _ = fitted
    rows = np.bincount(
        model.support_.tasks.key[: model.support_.tasks.n],
        minlength=len(model.tasks_),
    )
    corrected = np.isfinite(model.head_penalty_)
    assert corrected.any()
    assert (rows[corrected] >= model.head_min_rows_).all()
    strict = copy.deepcopy(model)
    strict.head_min_rows_ = 1e6
    strict._refresh_states(range(len(strict.tasks_)), recompute_global=False)
    assert np.isinf(strict.head_penalty_).all()
    unestimated = copy.deepcopy(strict)
    unestimated.task_spread_ = np.nan
    unestimated._refresh_states(range(len(strict.tasks_)), recompute_global=False)
    np.testing.assert_array_equal(unestimated.head_penalty_, model.head_penalty_)
    rng = np.random.RandomState(1)
    X_new = rng.normal(size=(200, 4))
    y_new = (X_new @ np.array([3.0, -3.0, 0.0, 2.0]) > 0).astype(int)
    strict.partial_fit(X_new, y_new, sensitive_features=["far"] * 200)
    assert np.isfinite(strict.head_penalty_[-1])


def test_without_the_spread_a_correction_needs_five_rows_of_a_class():
    """Where the training tasks' spread is not estimated, a task (training
    or new) whose rarest class has fewer than five rows gets no correction."""
    X, y, groups = _shifted_groups(n_groups=60, n_rows=12, shift=2.0, seed=1)
    model = _model().fit(X, y, sensitive_features=groups)
    assert_five_row_rule(model, y, groups)
    # A new group with four rows of each class: no correction either.
    rng = np.random.RandomState(2)
    X_new = rng.normal(size=(8, 4))
    model.partial_fit(X_new, np.array([0, 1] * 4), sensitive_features=["new"] * 8)
    assert np.isinf(model.head_penalty_[-1])
