"""The logistic head of PrototypicalClassifier, against explicit references."""

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.base import clone

from skmeta import PrototypicalClassifier
from skmeta import _heads as heads_module
from skmeta import _prototypical as proto_module
from skmeta._heads import (
    _HEAD_FOLDS,
    _HEAD_PENALTIES,
    allowed_candidates,
    cv_losses,
    one_standard_error_choice,
    shrunk_logistic,
    shrunk_logistic_dual,
    stratified_folds,
    task_spread,
)


def _objective(theta, theta0, Phi, y, w, alpha):
    logits = Phi @ theta.T
    nll = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    return (w * nll).sum() + 0.5 * alpha * ((theta - theta0) ** 2).sum()


def _reference_head(theta0, Phi, y, w, alpha):
    """The shrunk softmax regression in the primal, by L-BFGS."""
    shape = theta0.shape

    def loss(flat):
        return _objective(flat.reshape(shape), theta0, Phi, y, w, alpha)

    result = minimize(
        loss,
        theta0.ravel(),
        method="L-BFGS-B",
        options=dict(maxiter=20000, gtol=1e-11, ftol=1e-16),
    )
    return result.x.reshape(shape)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("alpha", [0.01, 1.0, 100.0])
def test_dual_solver_matches_the_primal_optimum(n_classes, alpha):
    rng = np.random.RandomState(n_classes)
    n, d = 12, 20  # more columns than rows: separable at small penalties
    Phi = rng.normal(size=(n, d))
    y = rng.randint(n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)
    w = rng.uniform(0.5, 2.0, size=n)
    w[-2:] = 0.0  # rows of weight 0 do not count
    theta0 = rng.normal(size=(n_classes, d))
    beta = shrunk_logistic_dual(
        torch.tensor(Phi @ Phi.T)[None],
        torch.tensor(Phi @ theta0.T)[None],
        torch.tensor(y)[None],
        torch.tensor(w)[None],
        torch.tensor([alpha], dtype=torch.float64),
    )[0].numpy()
    theta = theta0 + beta.T @ Phi
    reference = _reference_head(theta0, Phi, y, w, alpha)
    ours = _objective(theta, theta0, Phi, y, w, alpha)
    best = _objective(reference, theta0, Phi, y, w, alpha)
    assert ours <= best + 1e-7 * max(1.0, abs(best))
    assert np.all(beta[-2:] == 0)
    # The optimum is unique: the heads agree (the softmax ignores a common
    # shift of the logits, which the penalty pins to the prior's).
    np.testing.assert_allclose(theta, reference, atol=1e-4 * max(1, 1 / alpha))


def test_dual_solver_batches_independent_problems():
    rng = np.random.RandomState(0)
    G, f0, y, w, alpha = [], [], [], [], []
    for b in range(4):
        Phi = rng.normal(size=(8, 5))
        G.append(Phi @ Phi.T)
        f0.append(Phi @ rng.normal(size=(2, 5)).T)
        y.append(np.r_[0, 1, rng.randint(2, size=6)])
        w.append(np.ones(8))
        alpha.append(10.0 ** (b - 1))
    args = [torch.tensor(np.stack(a)) for a in (G, f0, y, w, alpha)]
    together = shrunk_logistic_dual(*args)
    for b in range(4):
        alone = shrunk_logistic_dual(*[a[b : b + 1] for a in args])
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-9, rtol=0)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("alpha", [0.01, 1.0, 100.0])
def test_primal_solver_matches_the_dual_and_the_reference(n_classes, alpha):
    # More rows than features: shrunk_logistic solves in the features'
    # space; the optimum is the dual's and the written-out objective's.
    rng = np.random.RandomState(10 + n_classes)
    n, d = 30, 6
    Phi = rng.normal(size=(n, d))
    y = rng.randint(n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)
    w = rng.uniform(0.5, 2.0, size=n)
    w[-3:] = 0.0
    theta0 = rng.normal(size=(n_classes, d))
    args = (
        torch.tensor(Phi @ theta0.T)[None],
        torch.tensor(y)[None],
        torch.tensor(w)[None],
        torch.tensor([alpha], dtype=torch.float64),
    )
    delta = shrunk_logistic(torch.tensor(Phi)[None], *args)[0].numpy()
    beta = shrunk_logistic_dual(torch.tensor(Phi @ Phi.T)[None], *args)[0].numpy()
    np.testing.assert_allclose(delta, beta.T @ Phi, atol=1e-6 * max(1, 1 / alpha))
    reference = _reference_head(theta0, Phi, y, w, alpha)
    np.testing.assert_allclose(theta0 + delta, reference, atol=1e-4 * max(1, 1 / alpha))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_cross_validation_is_the_same_in_either_space(n_classes):
    # Zero columns leave every problem unchanged but give it more features
    # than rows: the rows' space is used. Both spaces score the candidates
    # alike.
    rng = np.random.RandomState(n_classes)
    T, m, d = 3, 25, 5
    phi = torch.tensor(rng.normal(size=(T, m, d)))
    y = torch.tensor(rng.randint(n_classes, size=(T, m)))
    y[:, : 2 * n_classes] = torch.arange(n_classes).repeat(2)
    w = torch.ones(T, m, dtype=torch.float64)
    w[0, -4:] = 0.0
    onehot = torch.nn.functional.one_hot(y, n_classes) * (w > 0)[..., None]
    fit, held_out, _ = stratified_folds(onehot, onehot.sum(1).min(-1).values, w)
    f0 = torch.tensor(rng.normal(size=(T, _HEAD_FOLDS, m, n_classes)))
    primal = cv_losses(phi, f0, y, w, fit, held_out)
    wide = torch.cat([phi, phi.new_zeros(T, m, m)], -1)
    dual = cv_losses(wide, f0, y, w, fit, held_out)
    torch.testing.assert_close(primal[0], dual[0])
    # (the smallest penalty converges to the tolerance scaled by 1 / alpha)
    torch.testing.assert_close(primal[1], dual[1], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("tolerance", [0.0, 0.5, 1.0, 2.0])
def test_penalty_rule_is_the_tolerance_rule_written_out(tolerance):
    rng = np.random.RandomState(0)
    T, C, m = 50, 6, 12
    candidates = torch.arange(C, dtype=torch.float64)
    row_loss = torch.tensor(rng.gamma(2.0, 0.3, size=(T, C, m)))
    row_loss[:, 0] += 0.1  # the first candidate a little worse on average
    used = torch.ones(T, m, dtype=torch.bool)
    used[:10, -3:] = False
    row_loss[:10, :, -3:] = 0.0
    ours = one_standard_error_choice(candidates, row_loss, used, tolerance)
    for t in range(T):
        rows = used[t].numpy()
        losses = row_loss[t].numpy()[:, rows]
        total = losses.sum(1)
        best = total.argmin()
        se = (losses - losses[best]).std(1, ddof=1) * np.sqrt(rows.sum())
        expected = np.flatnonzero(total - total[best] <= tolerance * se)[0]
        assert ours[t] == candidates[expected]
    # A larger tolerance never picks a smaller (later) candidate.
    looser = one_standard_error_choice(candidates, row_loss, used, tolerance + 1)
    assert (looser <= ours).all()


def test_capped_rule_takes_the_smallest_loss_among_the_allowed_penalties():
    """A task with a finite ``max_penalty`` takes the candidate of smallest
    summed loss among the penalties up to it (at least the smallest), never
    the prior head (candidate 0); an infinite one leaves the rule as it is."""
    rng = np.random.RandomState(1)
    T, m = 40, 10
    # cv_losses's order: the prior head, then the penalties from the largest.
    candidates = torch.tensor([0.0, 100.0, 10.0, 1.0, 0.1], dtype=torch.float64)
    row_loss = torch.tensor(rng.gamma(2.0, 0.3, size=(T, len(candidates), m)))
    row_loss[: T // 2, 0] -= 0.2  # the prior head best for half the tasks
    used = torch.ones(T, m, dtype=torch.bool)
    max_penalty = torch.tensor(rng.choice([np.inf, 50.0, 1.0, 0.01], size=T))
    allowed = allowed_candidates(candidates, max_penalty)
    ours = one_standard_error_choice(candidates, row_loss, used, 0.5, allowed)
    free = one_standard_error_choice(candidates, row_loss, used, 0.5)
    for t in range(T):
        cap = float(max_penalty[t])
        if np.isinf(cap):
            assert ours[t] == free[t]
            continue
        ok = [i for i, c in enumerate(candidates.tolist()) if 0 < c <= max(cap, 0.1)]
        total = row_loss[t].sum(-1).numpy()
        expected = min(ok, key=lambda i: total[i])
        # A tolerance of 0.5 standard errors within the allowed candidates.
        losses = row_loss[t].numpy()
        se = (losses - losses[expected]).std(1, ddof=1) * np.sqrt(m)
        within = [i for i in ok if total[i] - total[expected] <= 0.5 * se[i]]
        assert ours[t] == candidates[within[0]]
        assert ours[t] > 0
    assert (ours[max_penalty.isinf()] == 0).any()  # the test can tell


def _shifted_groups(n_groups=10, n_rows=80, n_features=4, shift=2.0, seed=0):
    """Groups whose weights are the shared ones plus ``shift`` (one per group,
    or one for all) times a standard normal vector."""
    rng = np.random.RandomState(seed)
    shared = rng.normal(size=n_features)
    shift = np.broadcast_to(shift, n_groups)
    X, y, groups = [], [], []
    for g in range(n_groups):
        coef = shared + shift[g] * rng.normal(size=n_features)
        Xg = rng.normal(size=(n_rows, n_features))
        p = 1 / (1 + np.exp(-(Xg @ coef)))
        X.append(Xg)
        y.append((rng.uniform(size=n_rows) < p).astype(int))
        groups.append(np.full(n_rows, f"g{g}"))
    return np.vstack(X), np.concatenate(y), np.concatenate(groups)


@pytest.fixture(scope="module")
def fitted():
    # Six far groups and four that follow the shared weights: tasks of both
    # kinds (a head of their own, the prototypes).
    X, y, groups = _shifted_groups(shift=[2.0] * 6 + [0.0] * 4)
    # class_prior="balanced": the probabilities are the head's alone. The
    # logistic head for every task with two rows of each class, whatever
    # head="auto" would leave out (tested below).
    model = PrototypicalClassifier(
        max_epochs=3, class_prior="balanced", head="logistic", random_state=0
    )
    return model.fit(X, y, sensitive_features=groups), (X, y, groups)


def test_auto_head_is_logistic_without_fairness_penalty():
    X, y, groups = _shifted_groups(shift=[2.0] * 6 + [0.0] * 4)
    model = PrototypicalClassifier(max_epochs=1, random_state=0)
    model.fit(X, y, sensitive_features=groups)
    assert model.head_ == "logistic"
    assert model.task_spread_ > 0 and 0 < model.head_min_rows_ < np.inf
    fair = PrototypicalClassifier(
        constraints="demographic_parity", fairness_weight=1.0, max_epochs=1
    )
    X, y, groups = _shifted_groups(n_groups=4, n_rows=30)
    fair.fit(X, y, sensitive_features=groups)
    assert fair.head_ == "prototypes"
    with pytest.raises(AttributeError, match="head_penalty_"):
        _ = fair.head_penalty_


def test_prototype_tasks_predict_as_the_prototype_head(fitted):
    """Where a task keeps its prototypes, its probabilities are those of
    head="prototypes" (the same network: the head does not change training).
    """
    model, (X, y, groups) = fitted
    other = PrototypicalClassifier(
        max_epochs=3, class_prior="balanced", random_state=0, head="prototypes"
    )
    other.fit(X, y, sensitive_features=groups)
    penalty = model.head_penalty_
    assert penalty.shape == (len(model.tasks_),)
    # The fixture has tasks of both kinds, so both paths are compared below.
    assert np.isinf(penalty).any() and np.isfinite(penalty).any()
    # Unknown groups use the global prototypes under both heads.
    assert_headless_tasks_match(model, other, X, groups)


def assert_headless_tasks_match(model, other, X, groups):
    """``model``'s tasks without a head of their own (penalty inf), and an
    unknown group, are predicted as by ``other``, the same network without
    the head."""
    for task, alpha in zip(model.tasks_, model.head_penalty_, strict=True):
        if np.isinf(alpha):
            rows = groups == task
            ours = model.predict_proba(X[rows], sensitive_features=groups[rows])
            theirs = other.predict_proba(X[rows], sensitive_features=groups[rows])
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with pytest.warns(UserWarning):
        ours = model.predict_proba(X[:20], sensitive_features=["new"] * 20)
    with pytest.warns(UserWarning):
        theirs = other.predict_proba(X[:20], sensitive_features=["new"] * 20)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def _scrambled_order(n):
    return np.argsort((np.arange(n) * 2654435761) % 2**32, kind="stable")


def _reference_choice(
    model,
    Xs,
    ys,
    tolerance=proto_module._HEAD_TOLERANCE,
    max_penalty=np.inf,
    min_class_rows=2,
):
    """The penalty and head of a new group, written out in numpy / scipy: the
    largest penalty within ``tolerance`` standard errors of the smallest
    held-out loss wins; with a finite ``max_penalty`` (a trusted group), the
    penalty of smallest held-out loss among those up to it (at least the
    smallest tried), never the prototypes; a group with fewer than
    ``min_class_rows`` rows of its rarest class keeps the prototypes."""
    with torch.no_grad():
        Z = model.module_(torch.as_tensor(Xs, dtype=torch.float32)).double().numpy()
    s, kappa = model.distance_scale_, model.prior_strength_
    P = model.global_state_.double().numpy()
    order = _scrambled_order(len(ys))
    Z, Xs, ys = Z[order], Xs[order], ys[order]
    Phi = np.hstack([Z, Xs, np.ones((len(ys), 1))])

    def prototype_head(rows):
        counts = np.array([(ys[rows] == c).sum() for c in (0, 1)])
        sums = np.stack([Z[rows][ys[rows] == c].sum(0) for c in (0, 1)])
        C = (sums + kappa * P) / (counts + kappa)[:, None]
        coef = np.hstack([2 * s * C, np.zeros((2, Xs.shape[1]))])
        return np.hstack([coef, -s * (C**2).sum(1)[:, None]])

    n_min = np.bincount(ys, minlength=2).min()
    if n_min < min_class_rows:
        return np.inf, prototype_head(np.ones(len(ys), dtype=bool))
    n_folds = min(5, n_min)
    rank = np.zeros(len(ys), dtype=int)
    for c in (0, 1):
        rank[ys == c] = np.arange((ys == c).sum())
    fold = rank % n_folds
    penalties = [np.inf] + sorted(_HEAD_PENALTIES.tolist(), reverse=True)
    losses = np.zeros((len(penalties), len(ys)))
    for f in range(n_folds):
        fit, out = fold != f, fold == f
        theta0 = prototype_head(fit)
        for i, alpha in enumerate(penalties):
            theta = theta0
            if np.isfinite(alpha):
                theta = _reference_head(
                    theta0, Phi[fit], ys[fit], np.ones(fit.sum()), alpha
                )
            logits = Phi[out] @ theta.T
            losses[i, out] = -log_softmax(logits, axis=1)[np.arange(out.sum()), ys[out]]
    total = losses.sum(1)
    best = total.argmin()
    diff = losses - losses[best]
    se = diff.std(1, ddof=1) * np.sqrt(len(ys))
    within = total - total[best] <= tolerance * se
    chosen = penalties[int(np.flatnonzero(within)[0])]
    if np.isfinite(max_penalty):
        cap = max(max_penalty, min(_HEAD_PENALTIES.tolist()))
        allowed = [i for i, a in enumerate(penalties) if a <= cap]
        chosen = penalties[min(allowed, key=lambda i: total[i])]
    theta = prototype_head(np.ones(len(ys), dtype=bool))
    if np.isfinite(chosen):
        theta = _reference_head(theta, Phi, ys, np.ones(len(ys)), chosen)
    return chosen, theta


@pytest.mark.parametrize("estimated", [False, True])
@pytest.mark.parametrize("k", [1, 4, 6, 12])
def test_new_group_penalty_and_head_match_the_reference(fitted, k, estimated):
    """With ``head="logistic"`` the penalty follows half the one-standard-error
    rule, for a group with five rows of its rarest class where the spread is
    not estimated (two where it is); where the training tasks' spread
    ``tau2`` was estimated (``head="auto"``), a group of at least
    ``head_min_rows_`` rows takes a head of its own, of the smallest held-out
    loss among the penalties up to ``1 / tau2``."""
    model, _ = fitted
    assert model.head_min_rows_ == 0 and np.isnan(model.task_spread_)
    if estimated:
        model = copy.deepcopy(model)
        model.task_spread_, model.head_min_rows_ = 1.0, 2.0
    rng = np.random.RandomState(k)
    # A group far from the training groups: its own linear rule.
    coef = np.array([3.0, -3.0, 0.0, 2.0])
    X_new = rng.normal(size=(400, 4))
    y_new = (X_new @ coef + 0.3 * rng.normal(size=400) > 0).astype(int)
    support = np.r_[np.flatnonzero(y_new == 0)[:k], np.flatnonzero(y_new == 1)[:k]]
    support = rng.permutation(support)
    Xs, ys = X_new[support], y_new[support]
    adapted = copy.deepcopy(model)
    adapted.partial_fit(Xs, ys, sensitive_features=["far"] * len(ys))
    chosen = adapted.head_penalty_[list(adapted.tasks_).index("far")]
    if estimated and k > 1:
        expected, theta = _reference_choice(model, Xs, ys, 0.0, max_penalty=1.0)
    else:
        expected, theta = _reference_choice(
            model, Xs, ys, min_class_rows=2 if estimated else 5
        )
    if k == 1 or (k < 5 and not estimated):
        assert np.isinf(chosen) and np.isinf(expected)
    assert chosen == pytest.approx(expected, rel=1e-6)
    # The head's probabilities on other rows of the group.
    query = np.setdiff1d(np.arange(400), support)[:50]
    with torch.no_grad():
        Zq = model.module_(torch.as_tensor(X_new[query], dtype=torch.float32))
    Phi_q = np.hstack([Zq.double().numpy(), X_new[query], np.ones((50, 1))])
    expected_proba = np.exp(log_softmax(Phi_q @ theta.T, axis=1))
    proba = adapted.predict_proba(X_new[query], sensitive_features=["far"] * 50)
    np.testing.assert_allclose(proba, expected_proba, atol=2e-3)


def test_far_group_moves_off_its_prototypes(fitted):
    """Many rows that disagree with the prototypes end near the group's own
    linear fit, well above what the prototypes reach."""
    model, (X, y, groups) = fitted
    rng = np.random.RandomState(1)
    coef = np.array([3.0, -3.0, 0.0, 2.0])
    X_new = rng.normal(size=(600, 4))
    y_new = (X_new @ coef > 0).astype(int)
    new = ["far"] * 200
    scores = {}
    for head in ("logistic", "prototypes"):
        # A short meta-training (30 meta-batches), so that the embedding has
        # not learned the far group's direction from the training groups.
        adapted = PrototypicalClassifier(
            max_epochs=3, steps_per_epoch=10, random_state=0, head=head
        )
        adapted.fit(X, y, sensitive_features=groups)
        adapted.partial_fit(X_new[:200], y_new[:200], sensitive_features=new)
        scores[head] = adapted.score(
            X_new[200:400], y_new[200:400], sensitive_features=new
        )
        if head == "logistic":
            assert np.isfinite(adapted.head_penalty_[-1])
    assert scores["logistic"] > 0.9
    assert scores["logistic"] > scores["prototypes"] + 0.05


def test_task_head_does_not_depend_on_the_other_tasks_of_a_call(fitted):
    model, _ = fitted
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
    torch.testing.assert_close(one.states_["coef"][i + 1], both.states_["coef"][j + 1])


@pytest.mark.parametrize("k", [8, 12, 16])
def test_head_fitted_with_the_cross_validation_is_the_separate_fit(
    fitted, k, monkeypatch
):
    """A new group's head fitted with its cross-validation's problems (one
    solve, a few whole tasks) is the head of the separate final fit."""
    model, _ = fitted
    rng = np.random.RandomState(k)
    X_new = rng.normal(size=(200, 4))
    # A group far from the training groups (as above): it gets a head.
    y_new = (X_new @ np.array([3.0, -3.0, 0.0, 2.0]) > 0).astype(int)
    support = np.r_[np.flatnonzero(y_new == 0)[:k], np.flatnonzero(y_new == 1)[:k]]
    groups = ["new"] * len(support)
    merged = copy.deepcopy(model).partial_fit(
        X_new[support], y_new[support], sensitive_features=groups
    )
    monkeypatch.setattr(proto_module, "_MERGED_TASKS", 0)
    separate = copy.deepcopy(model).partial_fit(
        X_new[support], y_new[support], sensitive_features=groups
    )
    assert np.isfinite(merged.head_penalty_[-1])
    assert merged.head_penalty_[-1] == separate.head_penalty_[-1]
    for name in ("coef", "bias"):
        torch.testing.assert_close(
            merged.states_[name][-1], separate.states_[name][-1], atol=1e-5, rtol=0
        )


def test_cv_losses_extra_fold_gives_the_heads_of_all_rows():
    """With ``solutions``, a fold fitting every row and holding none out
    gives each penalty's head on all rows, and adds nothing to the losses."""
    rng = np.random.RandomState(0)
    T, m, p, K = 3, 12, 5, 2
    phi = torch.as_tensor(rng.normal(size=(T, m, p)))
    y = torch.as_tensor(rng.randint(K, size=(T, m)))
    y[:, :2] = torch.tensor([0, 1])
    w = torch.ones(T, m, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(y, K)
    fit, held_out, used = stratified_folds(onehot, onehot.sum(1).min(-1).values, w)
    theta0 = torch.as_tensor(rng.normal(size=(T, K, p)))
    f0 = (phi[:, None] @ theta0[:, None].mT).expand(-1, _HEAD_FOLDS, -1, -1)
    plain = cv_losses(phi, f0, y, w, fit, held_out)
    f0_all = torch.cat([f0, (phi @ theta0.mT)[:, None]], 1)
    fit_all = torch.cat([fit, used.any(1)[:, None]], 1)
    out_all = torch.cat([held_out, torch.zeros_like(used[:, :1])], 1)
    candidates, row_loss, delta = cv_losses(
        phi, f0_all, y, w, fit_all, out_all, solutions=True
    )
    torch.testing.assert_close(candidates, plain[0])
    torch.testing.assert_close(row_loss, plain[1])
    assert delta.shape == (T, _HEAD_FOLDS + 1, len(candidates), K, p)
    assert (delta[:, :, 0] == 0).all()  # the prior head
    for c in (1, 5, len(candidates) - 1):
        alpha = torch.full((T,), float(candidates[c]), dtype=torch.float64)
        expected = shrunk_logistic(phi, phi @ theta0.mT, y, w, alpha)
        torch.testing.assert_close(delta[:, -1, c], expected, atol=1e-6, rtol=0)


def test_multiclass_logistic_head():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 3))
    groups = np.repeat(["a", "b", "c"], 200)
    y = np.argmax(X @ rng.normal(size=(3, 3)) + (groups == "b")[:, None], axis=1)
    model = PrototypicalClassifier(max_epochs=2, random_state=0, head="logistic")
    model.fit(X, y, sensitive_features=groups)
    proba = model.predict_proba(X, sensitive_features=groups)
    assert proba.shape == (600, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert np.isfinite(model.head_penalty_).any()
    assert model.score(X, y, sensitive_features=groups) > 0.8


def test_float32_heads_where_a_device_has_no_float64(fitted, monkeypatch):
    """The path taken on Apple's MPS (no float64), run on the CPU: the same
    penalties and nearly the same probabilities as in float64."""
    model, _ = fitted
    rng = np.random.RandomState(5)
    X_new = rng.normal(size=(60, 4))
    y_new = (X_new @ np.array([3.0, -3.0, 0.0, 2.0]) > 0).astype(int)
    new = ["far"] * 30
    float64 = copy.deepcopy(model).partial_fit(
        X_new[:30], y_new[:30], sensitive_features=new
    )
    monkeypatch.setattr(proto_module, "_head_dtype", lambda device: torch.float32)
    float32 = copy.deepcopy(model).partial_fit(
        X_new[:30], y_new[:30], sensitive_features=new
    )
    assert float32.head_penalty_[-1] == float64.head_penalty_[-1]
    np.testing.assert_allclose(
        float32.predict_proba(X_new[30:], sensitive_features=new),
        float64.predict_proba(X_new[30:], sensitive_features=new),
        atol=1e-3,
    )


def _separable_problems(n_problems=40, n=10, p=12, seed=0):
    """Binary problems of few rows, separable at the smallest penalties
    (full Newton steps overshoot there), at every penalty of the grid."""
    rng = np.random.RandomState(seed)
    phi = torch.as_tensor(rng.normal(size=(n_problems, n, p)))
    y = torch.as_tensor(rng.randint(2, size=(n_problems, n)))
    y[:, :2] = torch.tensor([0, 1])
    phi = phi + 1.5 * (2 * y - 1)[..., None]
    f0 = torch.as_tensor(rng.normal(size=(n_problems, n, 2)))
    w = torch.as_tensor(rng.uniform(0.5, 2.0, size=(n_problems, n)))
    w[::3, -2:] = 0.0
    alpha = _HEAD_PENALTIES.repeat(n_problems)[:n_problems]
    return phi, f0, y, w, alpha


@pytest.mark.parametrize("space", ["dual", "primal"])
def test_line_search_in_two_passes_chooses_as_in_one(space, monkeypatch):
    """A large batch tries the smaller step sizes only where the full step
    is worse than half of it (the objective is convex along the step): the
    same iterates as trying every step size."""
    phi, f0, y, w, alpha = _separable_problems()
    if space == "primal":  # more rows than features
        phi, f0, y, w = (
            t.repeat(1, 3, *([1] * (t.dim() - 2))) for t in (phi, f0, y, w)
        )
    assert (phi.shape[1] > phi.shape[2]) == (space == "primal")
    passes = []
    line_values = heads_module._line_values

    def counted(*args):
        passes.append(len(args[-1]))
        return line_values(*args)

    monkeypatch.setattr(heads_module, "_line_values", counted)
    monkeypatch.setattr(heads_module, "_ONE_PASS_SEARCH", 10**9)
    one = shrunk_logistic(phi, f0, y, w, alpha)
    assert set(passes) == {len(heads_module._STEPS)}
    passes.clear()
    monkeypatch.setattr(heads_module, "_ONE_PASS_SEARCH", 0)
    two = shrunk_logistic(phi, f0, y, w, alpha)
    # Both passes ran: some problems needed a step smaller than 1/2.
    assert 2 in passes and len(heads_module._STEPS) - 2 in passes
    torch.testing.assert_close(two, one, atol=1e-12, rtol=0)


def test_spd_solve_uses_lu_where_cholesky_fails(monkeypatch):
    rng = np.random.RandomState(0)
    A = torch.as_tensor(rng.normal(size=(6, 4, 4)))
    M = A @ A.mT + torch.eye(4)
    M[4] = M[4] - 20 * torch.eye(4)  # symmetric, not positive definite
    rhs = torch.as_tensor(rng.normal(size=(6, 4)))
    expected = torch.linalg.solve(M, rhs[..., None]).squeeze(-1)
    for chunk in (16, 32, 10**6):  # one problem per chunk, two, all
        monkeypatch.setattr(heads_module, "_SOLVE_CHUNK", chunk)
        out = heads_module._spd_solve(lambda rows: M[rows].clone(), rhs)
        torch.testing.assert_close(out, expected)


def test_spd_solve_uses_lu_on_a_device_without_cholesky(monkeypatch):
    rng = np.random.RandomState(1)
    A = torch.as_tensor(rng.normal(size=(5, 3, 3)))
    M = A @ A.mT + torch.eye(3)
    rhs = torch.as_tensor(rng.normal(size=(5, 3)))
    expected = heads_module._spd_solve(lambda rows: M[rows].clone(), rhs)

    def missing(M):
        raise NotImplementedError("no batched Cholesky on this device")

    monkeypatch.setattr(torch.linalg, "cholesky_ex", missing)
    out = heads_module._spd_solve(lambda rows: M[rows].clone(), rhs)
    torch.testing.assert_close(out, expected)


def test_cv_losses_against_explicit_folds_with_fewer_folds_than_five():
    """Tasks with two or three rows of their rarer class have two or three
    folds; the others are empty and solved for nothing. Each held-out row's
    loss under each penalty, fold by fold, against ``shrunk_logistic``."""
    rng = np.random.RandomState(1)
    T, m, p, K = 4, 9, 3, 2
    phi = torch.as_tensor(rng.normal(size=(T, m, p)))
    y = torch.zeros(T, m, dtype=torch.long)
    y[:, 1::2] = 1
    y[:2, 1] = 0  # tasks 0 and 1: three rows of class 1 (three folds)
    y[2:, 1:5:2] = 0  # tasks 2 and 3: two rows of class 1 (two folds)
    w = torch.ones(T, m, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(y, K)
    n_min = onehot.sum(1).min(-1).values
    assert n_min.tolist() == [3, 3, 2, 2]
    fit, held_out, used = stratified_folds(onehot, n_min, w)
    f0 = torch.as_tensor(rng.normal(size=(T, _HEAD_FOLDS, m, K)))
    candidates, row_loss = cv_losses(phi, f0, y, w, fit, held_out)
    for t in range(T):
        for f in range(int(n_min[t])):
            tr, te = fit[t, f], held_out[t, f]
            for c, alpha in enumerate(candidates.tolist()):
                logits = f0[t, f][te]
                if alpha > 0:
                    delta = shrunk_logistic(
                        phi[t][tr][None],
                        f0[t, f][tr][None],
                        y[t][tr][None],
                        w[t][tr][None],
                        torch.tensor([alpha], dtype=torch.float64),
                    )[0]
                    logits = logits + phi[t][te] @ delta.T
                nll = -logits.log_softmax(-1)[torch.arange(int(te.sum())), y[t][te]]
                torch.testing.assert_close(
                    row_loss[t, c][te], nll, atol=1e-7, rtol=1e-7
                )
        # Every used row is held out once.
        assert (held_out[t].sum(0) == used[t].any(0)).all()


@pytest.mark.parametrize("space", ["dual", "primal"])
def test_cholesky_in_chunks_solves_as_lu_at_once(space, monkeypatch):
    """Large batches factor their Newton systems by Cholesky a chunk at a
    time (in the rows' space through S G S + alpha I); small ones by LU at
    once: the same heads."""
    phi, f0, y, w, alpha = _separable_problems(seed=3)
    if space == "primal":
        phi, f0, y, w = (
            t.repeat(1, 3, *([1] * (t.dim() - 2))) for t in (phi, f0, y, w)
        )
    at_once = shrunk_logistic(phi, f0, y, w, alpha)
    factored = []
    cholesky = torch.linalg.cholesky_ex

    def counted(M):
        factored.append(len(M))
        return cholesky(M)

    monkeypatch.setattr(heads_module, "_SOLVE_CHUNK", 7 * min(phi.shape[-2:]) ** 2)
    monkeypatch.setattr(torch.linalg, "cholesky_ex", counted)
    chunked = shrunk_logistic(phi, f0, y, w, alpha)
    assert factored and max(factored) <= 7 and len(factored) > len(set(factored))
    torch.testing.assert_close(chunked, at_once, atol=1e-10, rtol=0)


def _linear_groups(sigma, n_groups=12, n_rows=400, n_features=4, seed=0):
    """Groups whose logistic coefficients are shared ones plus ``sigma``
    times a standard normal vector each (standard normal columns)."""
    rng = np.random.RandomState(seed)
    shared = rng.normal(size=n_features)
    X, y, groups = [], [], []
    for g in range(n_groups):
        coef = shared + sigma * rng.normal(size=n_features)
        Xg = rng.normal(size=(n_rows, n_features))
        p = 1 / (1 + np.exp(-(Xg @ coef)))
        X.append(Xg)
        y.append((rng.uniform(size=n_rows) < p).astype(int))
        groups.append(np.full(n_rows, g))
    return np.vstack(X), np.concatenate(y), np.concatenate(groups)


@pytest.mark.parametrize("seed", [0, 1])
def test_task_spread_recovers_the_spread_of_the_groups_coefficients(seed):
    """About 0 for groups with one linear rule; for coefficients spread with
    variance 1 (4 of the 5 coefficients, intercept included: 0.8 each), the
    estimate is of that order (the ridge shrinks it a little), and grows
    with the spread."""
    estimates = []
    for sigma in (0.0, 0.5, 1.0):
        X, y, groups = _linear_groups(sigma, seed=seed)
        X_before = X.copy()
        tau2, curvature, n_tasks = task_spread(X, y, np.ones(len(y)), groups, seed)
        np.testing.assert_array_equal(X, X_before)
        assert n_tasks == 12 and 0 < curvature <= 0.25
        estimates.append(tau2)
    assert abs(estimates[0]) < 0.05
    assert 0.3 < estimates[2] < 1.2
    assert estimates[0] < estimates[1] < estimates[2]


def test_task_spread_needs_two_tasks_with_rows_of_each_class():
    X, y, groups = _linear_groups(1.0, n_groups=3, n_rows=30)
    y[groups > 0] = 0  # one task with both classes
    tau2, curvature, n_tasks = task_spread(X, y, np.ones(len(y)), groups, 0)
    assert np.isnan(tau2) and n_tasks == 1


@pytest.mark.parametrize("seed", [3, 6])
def test_auto_head_gives_no_head_where_groups_do_not_differ(seed):
    """Groups with one linear rule: the spread is about 0, so no group of
    these sizes has the rows a head of its own needs; where the estimate is
    not positive, "auto" keeps the prototypes (no heads to fit, no
    head_penalty_)."""
    X, y, groups = _linear_groups(0.0, n_groups=6, n_rows=200, seed=seed)
    model = PrototypicalClassifier(max_epochs=1, random_state=0)
    model.fit(X, y, sensitive_features=groups)
    assert abs(model.task_spread_) < 0.05
    assert model.head_min_rows_ > 200
    if model.task_spread_ <= 0:
        assert model.head_ == "prototypes" and model.head_min_rows_ == np.inf
        with pytest.raises(AttributeError, match="head_penalty_"):
            _ = model.head_penalty_
    else:
        assert model.head_ == "logistic"
        assert np.isinf(model.head_penalty_).all()
    if seed == 6:  # an estimate below 0
        assert model.head_ == "prototypes"


def test_auto_head_needs_head_min_rows_for_a_new_groups_head():
    """Far groups: heads for groups with enough rows; a new group with fewer
    rows than head_min_rows_ keeps its prototypes where head="logistic"
    gives it a head, and gets one once it has the rows."""
    X, y, groups = _linear_groups(0.8, n_groups=8, n_rows=300, seed=4)
    auto = PrototypicalClassifier(max_epochs=2, random_state=0)
    auto.fit(X, y, sensitive_features=groups)
    logistic = clone(auto).set_params(head="logistic")
    logistic.fit(X, y, sensitive_features=groups)
    assert auto.head_ == "logistic" and 8 < auto.head_min_rows_ < 40
    assert logistic.head_min_rows_ == 0 and np.isnan(logistic.task_spread_)
    rng = np.random.RandomState(0)
    coef = np.array([4.0, -4.0, 0.0, 3.0])
    X_new = rng.normal(size=(400, 4))
    y_new = (X_new @ coef > 0).astype(int)
    given = {}
    for n_per_class in (1, 2, 3, 4, 5, 10, 20):
        rows = np.r_[
            np.flatnonzero(y_new == 0)[:n_per_class],
            np.flatnonzero(y_new == 1)[:n_per_class],
        ]
        for name, model in (("auto", auto), ("logistic", logistic)):
            adapted = copy.deepcopy(model)
            new = ["new"] * len(rows)
            adapted.partial_fit(X_new[rows], y_new[rows], sensitive_features=new)
            given[name, len(rows)] = np.isfinite(adapted.head_penalty_[-1])
    for (name, n), has_head in given.items():
        if name == "auto" and n < auto.head_min_rows_:
            assert not has_head
        if name == "auto" and n >= auto.head_min_rows_:
            assert has_head == given["logistic", n]
    assert given["auto", 40]
    # The rule acts: below head_min_rows_, "logistic" gave heads that "auto"
    # did not (from five rows of each class: "logistic" does not estimate
    # the spread).
    assert given["logistic", 10] and not given["auto", 10]
    assert not given["logistic", 8]


def test_training_tasks_keep_half_the_one_standard_error_rule(fitted):
    """Only groups added after fit choose by the smallest held-out loss: the
    training tasks' heads, recomputed as if the spread said every task had
    the rows, are unchanged."""
    model, _ = fitted
    relaxed = copy.deepcopy(model)
    relaxed.task_spread_, relaxed.head_min_rows_ = 1.0, 0.0
    relaxed._refresh_states(range(len(relaxed.tasks_)), recompute_global=False)
    np.testing.assert_array_equal(relaxed.head_penalty_, model.head_penalty_)
    relaxed.task_spread_ = 4.0
    tolerance, max_penalty = relaxed._head_rule(torch.tensor([4, 40]), 0.5, True)
    np.testing.assert_array_equal(tolerance.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(max_penalty.numpy(), [0.25, 0.25])
    tolerance, max_penalty = relaxed._head_rule(torch.tensor([4, 40]), 0.5, False)
    np.testing.assert_array_equal(tolerance.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(max_penalty.numpy(), [np.inf, np.inf])


def test_shared_rows_solver_equals_the_per_problem_solver():
    """``_binary_primal_shared`` (a task's problems share its rows) reaches
    the iterates of ``_binary_primal`` on the same problems, one by one,
    problems of weight 0 and of every penalty included."""
    rng = np.random.RandomState(0)
    T, Q, m, p = 4, 13, 30, 6
    Phi = torch.as_tensor(rng.normal(size=(T, m, p)))
    y = torch.as_tensor(rng.randint(2, size=(T, m))).double()
    h0 = torch.as_tensor(rng.normal(size=(T, Q, m)))
    # A task whose offsets are confidently wrong: full Newton steps overshoot.
    h0[-1] = 10.0 * (1.0 - 2.0 * y[-1])
    w = torch.as_tensor(rng.uniform(0, 2, size=(T, Q, m)) * (rng.rand(T, Q, m) < 0.8))
    w[0, 0] = 0.0  # a problem without rows: its coefficients stay 0
    alpha = (10.0 ** torch.linspace(-2, 4, Q, dtype=torch.float64)).repeat(T, 1)
    shared = heads_module._binary_primal_shared(Phi, h0, y, w, alpha)
    one_by_one = heads_module._binary_primal(
        Phi[:, None].expand(T, Q, m, p).reshape(-1, m, p),
        h0.reshape(-1, m),
        y[:, None].expand(T, Q, m).reshape(-1, m),
        w.reshape(-1, m),
        alpha.reshape(-1),
        heads_module._NEWTON_ITERATIONS,
    ).view(T, Q, p)
    assert (shared[0, 0] == 0).all()
    torch.testing.assert_close(shared, one_by_one, atol=1e-8, rtol=0)


@pytest.mark.parametrize("solutions", [False, True])
def test_cv_losses_shared_rows_path_equals_the_per_fold_path(solutions):
    """For two classes and more fitting rows than features, ``cv_losses``
    solves a task's folds and penalties together; the per-fold path (each
    fold's fitting rows gathered) gives the same losses and heads."""
    rng = np.random.RandomState(1)
    T, m, p = 5, 40, 7
    phi = torch.as_tensor(rng.normal(size=(T, m, p)))
    y = torch.as_tensor(rng.randint(2, size=(T, m)))
    y[:, :4] = torch.tensor([0, 1, 0, 1])
    w = torch.as_tensor(rng.uniform(0.5, 1.5, size=(T, m)))
    w[1, 20:] = 0.0  # a task of fewer rows
    onehot = torch.nn.functional.one_hot(y, 2) * (w > 0)[..., None]
    fit, held_out, _ = stratified_folds(onehot, onehot.sum(1).min(-1).values, w)
    f0 = torch.as_tensor(rng.normal(size=(T, _HEAD_FOLDS, m, 2)))
    out = cv_losses(phi, f0, y, w, fit, held_out, solutions=solutions)
    penalties = _HEAD_PENALTIES.to(phi.dtype)
    n_fit = int(fit.sum(-1).max())
    assert n_fit > p  # the shared path
    change, delta = heads_module._fold_changes(
        phi, f0, y, w, fit, penalties, n_fit, solutions
    )
    _, row_loss = heads_module.held_out_losses(f0, change, y, w, held_out, penalties)
    torch.testing.assert_close(out[1], row_loss, atol=1e-8, rtol=0)
    if solutions:
        delta = torch.cat([torch.zeros_like(delta[:, :, :1]), delta.flip(2)], 2)
        torch.testing.assert_close(out[2], delta, atol=1e-8, rtol=0)


def assert_five_row_rule(model, y, groups):
    """Where the spread is not estimated, the tasks of ``model`` whose rarest
    class has fewer than five rows have no head; under the rules before
    (three rows, and two before that) some with three or four, or two, did,
    and those with five or more are unchanged."""
    assert np.isnan(model.task_spread_)
    assert model._UNESTIMATED_CLASS_ROWS == 5
    rarest = np.array(
        [np.bincount(y[groups == t], minlength=2).min() for t in model.tasks_]
    )
    few, enough = (rarest >= 2) & (rarest < 5), rarest >= 5
    assert ((rarest >= 3) & few).any() and enough.any()
    assert np.isinf(model.head_penalty_[rarest < 5]).all()
    for rows in (3, 2):
        before = copy.deepcopy(model)
        before._UNESTIMATED_CLASS_ROWS = rows
        before._refresh_states(range(len(before.tasks_)), recompute_global=False)
        assert np.isfinite(before.head_penalty_[few & (rarest >= rows)]).any()
        np.testing.assert_array_equal(
            before.head_penalty_[enough], model.head_penalty_[enough]
        )


def test_without_the_spread_a_head_needs_five_rows_of_a_class():
    """Where the training tasks' spread is not estimated, a task whose
    rarest class has fewer than five rows keeps its prototypes."""
    X, y, groups = _shifted_groups(n_groups=60, n_rows=12, shift=2.0, seed=1)
    model = PrototypicalClassifier(
        max_epochs=1, class_prior="balanced", random_state=0, n_threads=1
    ).fit(X, y, sensitive_features=groups)
    assert model.head_ == "logistic"
    assert_five_row_rule(model, y, groups)
