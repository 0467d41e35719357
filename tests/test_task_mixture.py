"""The training tasks' mixture that a new group borrows (``task_mixture``)."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from sklearn.metrics import balanced_accuracy_score

from skmeta import MAMLClassifier, PrototypicalClassifier, _mixture
from skmeta.datasets import make_group_classification

ESTIMATORS = [MAMLClassifier, PrototypicalClassifier]
FAST = dict(max_epochs=2, pretrain_epochs=1, random_state=0)


@pytest.fixture(scope="module")
def types_data():
    """Groups of three kinds: 9 training groups, 3 new ones."""
    X, y, g = make_group_classification(
        n_groups=12, n_samples_per_group=60, shift="types", random_state=0
    )[:3]
    return X, y, g


def _support(X, y, g, group, per_class):
    rows = np.flatnonzero(g == group)
    chosen = np.r_[rows[y[rows] == 0][:per_class], rows[y[rows] == 1][:per_class]]
    return X[chosen], y[chosen], g[chosen]


# ---------------------------------------------------------------- the maths
def test_covariate_moments_and_density_match_formula():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    w = rng.uniform(0.5, 2.0, size=30)
    w[:3] = 0  # not counted
    key = np.repeat([4, 7, 9], 10)
    rows = [np.flatnonzero(key == 9), np.flatnonzero(key == 4)]
    mean, var = _mixture.covariate_moments(X.astype(np.float32), w, rows)
    keep = w > 0
    pooled = np.average(X[keep], axis=0, weights=w[keep])
    pooled_var = np.average((X[keep] - pooled) ** 2, axis=0, weights=w[keep])
    for i, k in enumerate([9, 4]):
        rows = (key == k) & keep
        m = np.average(X[rows], axis=0, weights=w[rows])
        v = np.average((X[rows] - m) ** 2, axis=0, weights=w[rows])
        np.testing.assert_allclose(mean[i], m, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(var[i], v + pooled_var, rtol=1e-5)
    # Accumulated a chunk of rows at a time: the same moments.
    chunked = _mixture._weighted_moments(X, w, chunk=7)
    np.testing.assert_allclose(chunked[0], pooled, rtol=1e-12)
    np.testing.assert_allclose(chunked[1], pooled_var, rtol=1e-10)
    Xq = torch.as_tensor(rng.normal(size=(2, 5, 3)))
    got = _mixture.covariate_log_likelihood(Xq, mean, var).numpy()
    assert got.shape == (2, 5, 2)
    x = Xq.numpy()[:, :, None, :]
    expected = -0.5 * ((x - mean) ** 2 / var + np.log(2 * np.pi * var)).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_cv_evidence_weighs_components_by_the_columns_too():
    # Two components that predict the classes alike: the columns' density
    # alone decides the weights, so the evidence follows the component the
    # fitting rows' columns favour.
    row_ll = torch.log(torch.tensor([[[0.9, 0.6], [0.9, 0.6]]], dtype=torch.float64))
    w = torch.ones(1, 2)
    fit = torch.tensor([[[False, True], [True, False]]])
    held_out = ~fit
    own = torch.log(torch.full((1, 2, 2), 0.7, dtype=torch.float64))
    plain = _mixture.cv_evidence(row_ll, w, fit, held_out, own)
    favour_first = torch.tensor([[[0.0, -50.0], [0.0, -50.0]]], dtype=torch.float64)
    favour_second = favour_first.flip(-1)
    first = _mixture.cv_evidence(row_ll, w, fit, held_out, own, row_lx=favour_first)
    second = _mixture.cv_evidence(row_ll, w, fit, held_out, own, row_lx=favour_second)
    np.testing.assert_allclose(first.item(), 2 * np.log(0.9 / 0.7), rtol=1e-9)
    np.testing.assert_allclose(second.item(), 2 * np.log(0.6 / 0.7), rtol=1e-9)
    assert second < plain < first


def test_support_log_likelihood_matches_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 3, 2)) * 5
    log_proba = torch.log_softmax(torch.as_tensor(logits), -1)
    y = rng.integers(0, 2, size=(2, 4))
    w = rng.uniform(size=(2, 4))
    w[1, 3] = 0  # padding
    got = _mixture.support_log_likelihood(
        log_proba, torch.as_tensor(y), torch.as_tensor(w)
    ).numpy()
    lp = log_proba.numpy()
    expected = np.zeros((2, 3))
    for t in range(2):
        for c in range(3):
            for i in range(4):
                expected[t, c] += w[t, i] * max(lp[t, i, c, y[t, i]], np.log(1e-6))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_top_posterior_is_the_renormalised_posterior():
    ll = torch.tensor([[0.0, -1.0, -3.0, -0.5]], dtype=torch.float64)
    index, weight = _mixture.top_posterior(ll, top=2)
    assert index.tolist() == [[0, 3]]
    np.testing.assert_allclose(weight.numpy(), [softmax([0.0, -0.5])])
    index, weight = _mixture.top_posterior(ll, top=10)  # all four
    np.testing.assert_allclose(
        weight.numpy()[0], softmax(ll.numpy()[0])[index.numpy()[0]]
    )


def test_mix_log_proba_matches_formula():
    rng = np.random.default_rng(1)
    own = torch.log_softmax(torch.as_tensor(rng.normal(size=(5, 3))), -1)
    comp = torch.log_softmax(torch.as_tensor(rng.normal(size=(5, 4, 3))), -1)
    weight = torch.as_tensor(softmax(rng.normal(size=(5, 4)), -1))
    share = torch.tensor([0.0, 0.25, 0.5, 1.0, 0.75], dtype=torch.float64)
    got = _mixture.mix_log_proba(own, comp, weight, share).exp().numpy()
    mixture = (weight.numpy()[..., None] * comp.exp().numpy()).sum(1)
    a = share.numpy()[:, None]
    expected = a * mixture + (1 - a) * own.exp().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_cv_evidence_matches_formula():
    rng = np.random.default_rng(3)
    T, F, m, C = 2, 3, 6, 4
    row_ll = torch.as_tensor(np.log(rng.uniform(0.05, 1, size=(T, m, C))))
    w = torch.as_tensor(rng.uniform(0.5, 2, size=(T, m)))
    fold = np.arange(m) % F
    held_out = torch.as_tensor(np.stack([fold == f for f in range(F)]))
    held_out = held_out[None].expand(T, -1, -1)
    fit = ~held_out
    own = torch.as_tensor(np.log(rng.uniform(0.05, 1, size=(T, F, m))))
    excluded = torch.zeros((T, C), dtype=torch.bool)
    excluded[1, 2] = True
    got = _mixture.cv_evidence(row_ll, w, fit, held_out, own, excluded).numpy()
    r, wn, o = row_ll.numpy(), w.numpy(), own.numpy()
    for t in range(T):
        total = 0.0
        for f in range(F):
            L = (wn[t, fold != f, None] * r[t, fold != f]).sum(0)
            L[excluded[t].numpy()] = -np.inf
            weight = softmax(L)  # all C <= 16 components kept
            for i in np.flatnonzero(fold == f):
                mix = np.log((weight * np.exp(r[t, i])).sum())
                total += wn[t, i] * (mix - o[t, f, i])
        assert got[t] == pytest.approx(total)


def test_group_share_is_the_posterior_of_the_fitted_odds():
    evidence = torch.tensor([0.0, 2.0, -30.0], dtype=torch.float64)
    got = _mixture.group_share(0.25, evidence).numpy()
    expected = 1 / (1 + np.exp(-(np.log(0.25 / 0.75) + evidence.numpy())))
    np.testing.assert_allclose(got, expected)
    # A fitted share of 1 counts as 0.9; 0 stays 0 whatever the evidence.
    assert _mixture.group_share(1.0, evidence)[0].item() == pytest.approx(0.9)
    assert (_mixture.group_share(0.0, evidence) == 0).all()


def test_balanced_accuracy_matches_sklearn():
    rng = np.random.default_rng(2)
    proba = rng.uniform(size=(3, 20, 3))
    y = rng.integers(0, 3, size=(3, 20))
    y[2, 15:] = -1  # padding
    got = _mixture.balanced_accuracy(
        torch.as_tensor(proba), torch.as_tensor(y), 3
    ).numpy()
    for d in range(3):
        valid = y[d] >= 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score(y[d][valid], proba[d].argmax(-1)[valid])
        assert got[d] == pytest.approx(expected)


@pytest.mark.parametrize("own_right", [True, False])
def test_choose_share_follows_the_better_predictor(own_right):
    # Two draws, 6 query rows; the components' log-probabilities: component 0
    # predicts the truth, component 1 its opposite; the own model predicts the
    # truth or its opposite.
    y = torch.tensor([[0, 1, 0, 1, 0, 1], [1, 1, 0, 0, 1, -1]])
    right = torch.nn.functional.one_hot(y.clamp_min(0), 2).double() * 0.8 + 0.1
    wrong = right.flip(-1)
    own = right if own_right else wrong
    comp = torch.stack([right, wrong], 2).log()
    support_ll = torch.tensor([[0.0, -5.0], [0.0, -5.0]], dtype=torch.float64)
    excluded = torch.zeros((2, 2), dtype=torch.bool)
    evidence = torch.zeros(2, dtype=torch.float64)
    share, scores = _mixture.choose_share(own, comp, support_ll, excluded, y, evidence)
    # Ties go to the smallest share: from 0.75 on the mixture decides.
    assert share == (0.0 if own_right else 0.75)
    assert scores.shape == (len(_mixture.GRID),)
    assert scores.max() == 1.0
    # Leaving out the right component leaves the wrong one: share 0 is best
    # or tied (ties go to the smallest share).
    excluded[:, 0] = True
    share, _ = _mixture.choose_share(own, comp, support_ll, excluded, y, evidence)
    assert share == 0.0


def test_choose_share_is_the_one_standard_error_rule():
    rng = np.random.default_rng(4)
    D, Q, C = 12, 30, 3
    y = torch.as_tensor(rng.integers(0, 2, size=(D, Q)))
    own = torch.as_tensor(softmax(rng.normal(size=(D, Q, 2)) * 2, -1))
    comp = torch.log_softmax(torch.as_tensor(rng.normal(size=(D, Q, C, 2)) * 2), -1)
    support_ll = torch.as_tensor(rng.normal(size=(D, C)))
    excluded = torch.zeros((D, C), dtype=torch.bool)
    evidence = torch.as_tensor(rng.normal(size=D))
    share, scores = _mixture.choose_share(own, comp, support_ll, excluded, y, evidence)
    # The rule written out with numpy.
    weight = softmax(support_ll.numpy(), -1)
    mixture = np.einsum("dc,dqck->dqk", weight, comp.exp().numpy())
    per_draw = []
    for a in _mixture.GRID:
        g = _mixture.group_share(a, evidence).numpy()[:, None, None]
        predicted = (g * mixture + (1 - g) * own.numpy()).argmax(-1)
        per_draw.append(
            [balanced_accuracy_score(y.numpy()[d], predicted[d]) for d in range(D)]
        )
    per_draw = np.array(per_draw)
    np.testing.assert_allclose(scores, per_draw.mean(1))
    best = per_draw.mean(1).argmax()
    se = (per_draw[best] - per_draw).std(1, ddof=1) / np.sqrt(D)
    expected = min(
        a
        for a, score in zip(_mixture.GRID, per_draw.mean(1), strict=True)
        if score >= per_draw.mean(1)[best] - se[_mixture.GRID.index(a)]
    )
    assert share == expected
    # per_draw=True: the chosen share's score on each draw as well.
    again, _, draws = _mixture.choose_share(
        own, comp, support_ll, excluded, y, evidence, per_draw=True
    )
    assert again == share
    np.testing.assert_allclose(draws, per_draw[_mixture.GRID.index(share)])


def test_use_columns_needs_a_gain_beyond_one_standard_error():
    rng = np.random.default_rng(0)
    plain = rng.uniform(0.6, 0.8, size=40)
    noise = rng.normal(0, 0.02, size=40)
    assert _mixture.use_columns(plain, plain + 0.05 + noise)
    assert not _mixture.use_columns(plain, plain)
    assert not _mixture.use_columns(plain, plain - 0.05 + noise)
    # A mean gain smaller than its standard error: not enough.
    small = noise - noise.mean() + 0.5 * noise.std(ddof=1) / np.sqrt(40)
    assert not _mixture.use_columns(plain, plain + small)
    assert _mixture.use_columns(plain, plain + small + noise.std(ddof=1) / np.sqrt(40))


# ------------------------------------------------------------ the estimators
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_new_group_prediction_is_the_documented_mixture(Estimator, types_data):
    X, y, g = types_data
    train = g < 9
    kwargs = dict(FAST, class_prior="balanced")
    mixed = Estimator(task_mixture=0.5, **kwargs).fit(
        X[train], y[train], tasks=g[train]
    )
    plain = Estimator(task_mixture=0, **kwargs).fit(X[train], y[train], tasks=g[train])
    # One row per class: no cross-validation, so the group's share is the
    # fitted share (more rows update it, see the test below).
    Xs, ys, gs = _support(X, y, g, 10, 1)
    mixed.partial_fit(Xs, ys, tasks=gs)
    plain.partial_fit(Xs, ys, tasks=gs)
    assert mixed.task_mixture_ == 0.5 and plain.task_mixture_ == 0.0
    new = g == 10
    # The training tasks' models (balanced: no class prior) on the support
    # rows and on the group's rows.
    names = np.unique(g[train])
    p_support = np.stack(
        [plain.predict_proba(Xs, tasks=np.full(len(Xs), t)) for t in names]
    )
    p_new = np.stack(
        [plain.predict_proba(X[new], tasks=np.full(new.sum(), t)) for t in names]
    )
    ll = np.log(np.clip(p_support[:, np.arange(len(ys)), ys], 1e-6, None)).sum(1)
    # Each training task's diagonal Gaussian of the columns (all of its rows
    # kept at fit), its variances widened by the pooled training rows'.
    pooled_var = X[train].var(0)
    for c, t in enumerate(names):
        rows = X[g == t]
        var = rows.var(0) + pooled_var
        ll[c] += (
            -0.5 * (((Xs - rows.mean(0)) ** 2 / var) + np.log(2 * np.pi * var))
        ).sum()
    weight = np.exp(ll - logsumexp(ll))  # 9 components, all kept (top 16)
    mixture = np.einsum("c,cnk->nk", weight, p_new)
    own = plain.predict_proba(X[new], tasks=g[new])
    expected = 0.5 * mixture + 0.5 * own
    np.testing.assert_allclose(
        mixed.predict_proba(X[new], tasks=g[new]), expected, atol=2e-5
    )
    # Training tasks and unknown groups are not mixed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rows in (train, g == 11):
            np.testing.assert_allclose(
                mixed.predict_proba(X[rows], tasks=g[rows]),
                plain.predict_proba(X[rows], tasks=g[rows]),
                atol=1e-6,
            )
    weights = mixed.task_mixture_weights_
    np.testing.assert_array_equal(mixed.task_mixture_tasks_, names)
    assert weights.shape == (10, 9)
    np.testing.assert_allclose(weights[:9], 0)
    np.testing.assert_allclose(weights[9], 0.5 * weight, atol=1e-5)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_group_whose_rows_disagree_leaves_the_mixture(Estimator, types_data):
    # The same rows with their labels flipped: no training task's model
    # predicts them, the group's own model does, and cross-validation on
    # its rows says so: its share falls far below the fitted share, while a
    # group of a training kind keeps a large one.
    X, y, g = types_data
    train = g < 9
    model = Estimator(task_mixture=0.5, **FAST).fit(X[train], y[train], tasks=g[train])
    Xs, ys, _ = _support(X, y, g, 10, 10)
    model.partial_fit(Xs, ys, tasks=np.full(len(ys), "kind"))
    model.partial_fit(Xs, 1 - ys, tasks=np.full(len(ys), "flipped"))
    share = model.task_mixture_weights_.sum(1)[-2:]
    assert share[1] < 0.05 < 0.5 < share[0]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_auto_share_is_chosen_on_the_left_out_training_tasks(Estimator, types_data):
    X, y, g = types_data
    train = g < 9
    model = Estimator(**FAST).fit(X[train], y[train], tasks=g[train])
    scores = model._mixture_scores_
    # The kinds of group are few: borrowing the training tasks' models pays,
    # by more than the rule's standard error.
    assert model.task_mixture_ > 0
    assert scores[_mixture.GRID.index(model.task_mixture_)] > scores[0]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_auto_share_is_scored_on_supports_of_each_size(
    Estimator, types_data, monkeypatch
):
    # Each left-out draw holds a support of five rows per class and, its
    # first row of each class, one of one row per class; both are scored
    # on the same query rows (none of them in either support), and the
    # share and the columns are chosen on all of them together: a share must
    # serve the smallest new groups as well as larger ones.
    X, y, g = types_data
    train = g < 9
    owns, calls = [], []
    left_out_own = Estimator._left_out_own
    score_shares = _mixture.score_shares

    def record_own(self, Xs, ys, ws, Xq, prior, dtype):
        owns.append((Xs, ys, Xq))
        return left_out_own(self, Xs, ys, ws, Xq, prior, dtype)

    def record_scores(*args, **kwargs):
        calls.append(args)
        return score_shares(*args, **kwargs)

    monkeypatch.setattr(Estimator, "_left_out_own", record_own)
    monkeypatch.setattr(_mixture, "score_shares", record_scores)
    Estimator(**FAST).fit(X[train], y[train], tasks=g[train])
    assert _mixture._LOO_SHOTS == (1, 5)
    (X1, y1, Xq1), (X5, y5, Xq5) = owns
    n_draws = len(X5)
    assert n_draws == len(X1) and n_draws % _mixture._LOO_DRAWS == 0
    assert X1.shape[1] == 2 and X5.shape[1] == 10
    assert (y1.sum(1) == 1).all() and (y5.sum(1) == 5).all()  # class-balanced
    torch.testing.assert_close(X1, X5[:, [0, 5]])  # the first row of each class
    assert Xq1 is Xq5
    # No support row is a query row of its draw.
    for support, query in zip(X5, Xq5, strict=True):
        assert not (support[:, None, :] == query[None]).all(-1).any()
    assert len(calls) == 2  # without the columns, then with them
    for own, mixture, y_query, evidence in calls:
        assert own.shape == mixture.shape
        assert len(own) == len(y_query) == len(evidence) == 2 * n_draws
        torch.testing.assert_close(y_query[:n_draws], y_query[n_draws:])
        torch.testing.assert_close(mixture.sum(-1), torch.ones_like(mixture[..., 0]))
        # One row per class leaves no fold to cross-validate: no evidence.
        assert (evidence[:n_draws] == 0).all()
        assert (evidence[n_draws:] != 0).any()


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("columns", [False, True])
def test_auto_columns_choice_decides_the_weights(
    Estimator, columns, types_data, monkeypatch
):
    # Whatever the left-out tasks say, a model fitted with the columns left
    # out weighs a new group's mixture by its classes alone, as a model with
    # the classes' weights would (and with them kept, as a number's model).
    X, y, g = types_data
    train = g < 9
    monkeypatch.setattr(_mixture, "use_columns", lambda plain, cols: columns)
    kwargs = dict(FAST, class_prior="balanced")
    auto = Estimator(**kwargs).fit(X[train], y[train], tasks=g[train])
    assert auto.task_mixture_ > 0
    assert auto.task_mixture_columns_ is columns
    fixed = Estimator(task_mixture=auto.task_mixture_, **kwargs).fit(
        X[train], y[train], tasks=g[train]
    )
    assert fixed.task_mixture_columns_
    if not columns:
        fixed._mixture_covariates_ = None
    Xs, ys, gs = _support(X, y, g, 10, 1)
    auto.partial_fit(Xs, ys, tasks=gs)
    fixed.partial_fit(Xs, ys, tasks=gs)
    new = g == 10
    np.testing.assert_allclose(
        auto.predict_proba(X[new], tasks=g[new]),
        fixed.predict_proba(X[new], tasks=g[new]),
        atol=1e-6,
    )


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_auto_share_is_zero_where_the_mixture_has_no_footing(Estimator, types_data):
    X, y, g = types_data
    # Fewer than 5 training tasks with 10 rows of every class.
    few = g < 4
    model = Estimator(**FAST).fit(X[few], y[few], tasks=g[few])
    assert model.task_mixture_ == 0.0
    assert not hasattr(model, "_mixture_scores_")
    # A fairness penalty: the mixture is not trained for it.
    s = (X[:, 0] > 0).astype(int)
    train = g < 9
    model = Estimator(
        constraints="demographic_parity", fairness_weight=1.0, **FAST
    ).fit(X[train], y[train], tasks=g[train], sensitive_features=s[train])
    assert model.task_mixture_ == 0.0
    # No tasks at all: nothing to mix.
    model = Estimator(task_mixture=1.0, **FAST).fit(X[train], y[train])
    assert model.task_mixture_ == 0.0
    assert model.task_mixture_weights_.shape == (0, 0)
    assert model.task_mixture_columns_ is False


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_mixture_survives_copies_and_leaves_the_model_unchanged(Estimator, types_data):
    X, y, g = types_data
    train = g < 9
    model = Estimator(task_mixture=1.0, **FAST).fit(X[train], y[train], tasks=g[train])
    model.partial_fit(*_support(X, y, g, 9, 2)[:2], tasks=np.full(4, 9))
    rows = g == 9
    before = {k: v.clone() for k, v in model.states_.items()}
    p = model.predict_proba(X[rows], tasks=g[rows])
    np.testing.assert_array_equal(p, model.predict_proba(X[rows], tasks=g[rows]))
    for k, v in model.states_.items():
        assert torch.equal(v, before[k])
    for other in (
        pickle.loads(pickle.dumps(model)),
        copy.deepcopy(model).trim_for_prediction(),
    ):
        np.testing.assert_array_equal(other.predict_proba(X[rows], tasks=g[rows]), p)
    # More rows for the group recompute its weights; other groups keep theirs.
    model.partial_fit(*_support(X, y, g, 10, 2)[:2], tasks=np.full(4, 10))
    np.testing.assert_array_equal(model.predict_proba(X[rows], tasks=g[rows]), p)
    weights = model.task_mixture_weights_
    # Each new group's share: the fitted 1 (as 0.9) updated by its rows.
    assert ((weights[-2:].sum(1) > 0.5) & (weights[-2:].sum(1) <= 1)).all()


def test_multiclass_mixture_runs():
    rng = np.random.default_rng(0)
    n = 900
    X = rng.normal(size=(n, 4))
    g = np.repeat(np.arange(9), n // 9)
    y = (X[:, 0] + (g % 3 - 1) * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.7)
    model = PrototypicalClassifier(**FAST).fit(X[g < 8], y[g < 8], tasks=g[g < 8])
    assert model.task_mixture_ in _mixture.GRID
    model.partial_fit(X[g == 8][:9], y[g == 8][:9], tasks=g[g == 8][:9])
    p = model.predict_proba(X[g == 8], tasks=g[g == 8])
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.isfinite(p).all()


@pytest.mark.parametrize("value", [1.5, -0.1, "always", None])
def test_invalid_task_mixture_is_rejected_before_training(value, types_data):
    X, y, g = types_data
    model = MAMLClassifier(task_mixture=value, **FAST)
    with pytest.raises(ValueError, match="task_mixture"):
        model.fit(X, y, tasks=g)
    assert not hasattr(model, "module_")


def test_maml_keeps_task_states_when_pooled_rows_arrive(types_data):
    # Rows without a group update the pooled state only: the states of the
    # known tasks (adapted from the meta-learned parameters, not from the
    # pooled state) are kept.
    X, y, g = types_data
    model = MAMLClassifier(task_mixture=0, **FAST).fit(X, y, tasks=g)
    before = model.task_states_
    model.partial_fit(X[:10], y[:10])
    for old, new in zip(before, model.task_states_, strict=True):
        for name in old:
            assert torch.equal(old[name], new[name])


def test_maml_evidence_reuses_its_heads_folds(types_data):
    # MAML's logistic correction adapts the network to the same folds as the
    # mixture's evidence: the evidence reads the heads' fold log-likelihoods
    # (cut or padded to its batch's width) instead of adapting again, with
    # the same result as adapting again.
    X, y, g = types_data
    train = g < 9
    model = MAMLClassifier(task_mixture=0.5, **FAST).fit(
        X[train], y[train], tasks=g[train]
    )
    assert model.head_ == "logistic"
    prior = model._prior_state()
    # Two new groups (12 and 7 rows per class), padded to 30 rows for the
    # heads, to fewer (26) and to more than their cross-validated 40 (52)
    # for the evidence.
    parts = [_support(X, y, g, group, n) for group, n in ((9, 12), (10, 7))]

    def padded(width):
        Xp = torch.zeros((2, width, X.shape[1]))
        yp = torch.zeros((2, width), dtype=torch.int64)
        wp = torch.zeros((2, width))
        for i, (Xs, ys, _) in enumerate(parts):
            Xp[i, : len(ys)] = torch.as_tensor(Xs)
            yp[i, : len(ys)], wp[i, : len(ys)] = torch.as_tensor(ys), 1.0
        return Xp, yp, wp

    with torch.no_grad():
        states, _ = model._adapt_states(*padded(30), prior)
        own = states[_mixture.OWN]
        assert len(own) == 2
        assert all(o.shape == (5, 30) and not o.isnan().any() for o in own)
        for width in (26, 52):
            Xp, yp, wp = padded(width)
            n_components = len(model._mixture_components_)
            log_proba = model._component_log_proba(Xp.reshape(-1, X.shape[1]))
            row_ll = _mixture.row_log_likelihood(
                log_proba.view(2, width, n_components, -1), yp
            )
            reused = model._mixture_evidence(Xp, yp, wp, row_ll, prior, own=own)
            again = model._mixture_evidence(Xp, yp, wp, row_ll, prior)
            assert (reused != 0).all()
            torch.testing.assert_close(reused, again, rtol=1e-6, atol=1e-8)
    # And through partial_fit: the shares equal those of adapting again.
    recompute = copy.deepcopy(model)
    recompute._mixture_evidence = lambda *args, own=None, **kw: type(
        model
    )._mixture_evidence(recompute, *args, **kw)
    for m in (model, recompute):
        m.partial_fit(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            tasks=np.concatenate([p[2] for p in parts]),
        )
    np.testing.assert_allclose(
        model.task_mixture_weights_, recompute.task_mixture_weights_, atol=1e-6
    )
    assert (model.task_mixture_weights_[-2:].sum(1) != 0.5).all()


@pytest.mark.parametrize("head", ["logistic", "prototypes"])
def test_protonet_scores_every_component_as_row_by_row(head, types_data):
    """ProtoNet embeds each row once for all components (and multiplies by
    every linear head at once): the mixture's log-probabilities equal those
    of evaluating each (row, component) pair on its own."""
    from skmeta._base import _MetaClassifier

    X, y, g = types_data
    model = PrototypicalClassifier(head=head, **FAST).fit(X, y, tasks=g)
    assert ("coef" in model.states_) == (head == "logistic")
    components = torch.as_tensor(model._mixture_components_)
    assert len(components) > 2
    rows = torch.as_tensor(X[:50], dtype=torch.float32)
    fast = model._repeated_state_logits(rows, components, torch.float32)
    slow = _MetaClassifier._repeated_state_logits(
        model, rows, components, torch.float32
    )
    assert fast.shape == (50 * len(components), 2)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    lp = model._component_log_proba(rows)
    torch.testing.assert_close(
        lp, slow.view(50, len(components), 2).log_softmax(-1), rtol=1e-5, atol=1e-5
    )
    # Each row under its own components (a new group's mixture, the
    # left-out share's queries): the same as the pairs one by one.
    rng = np.random.default_rng(0)
    own = components[torch.as_tensor(rng.integers(0, len(components), (50, 3)))]
    fast = model._repeated_state_logits(rows, own, torch.float32)
    slow = PrototypicalClassifier._state_logits(
        model,
        rows.repeat_interleave(3, 0),
        own.reshape(-1),
        model.states_,
        torch.float32,
    )
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    lp = model._component_log_proba(rows, own)
    torch.testing.assert_close(
        lp, slow.view(50, 3, 2).log_softmax(-1), rtol=1e-5, atol=1e-5
    )


def test_union_of_components_maps_each_needed_component():
    index = torch.tensor([[4, 1, 4], [0, 2, 3], [5, 5, 5]])
    scored, position = _mixture.union_of_components(index, 6)
    assert scored.shape == (3, 3)
    assert scored[0, :2].tolist() == [1, 4]  # needed first, in order
    assert scored[1].tolist() == [0, 2, 3]
    assert scored[2, 0].item() == 5
    # Every needed component sits where ``position`` says.
    assert (scored.gather(1, position.gather(1, index)) == index).all()


@pytest.mark.parametrize("estimator", [MAMLClassifier, PrototypicalClassifier])
def test_left_out_share_scores_only_the_components_it_weighs(estimator):
    """The left-out share scores each draw's queries under the components its
    mixtures weigh (the union of their top ones): the same scores as under
    every component."""
    X, y, g = make_group_classification(
        n_groups=30, n_samples_per_group=40, shift="types", random_state=0
    )
    model = estimator(**FAST).fit(X, y, tasks=g)
    assert len(model._mixture_components_) > _mixture._TOP  # a real subset
    everything = copy.deepcopy(model)

    def every_component(index, n_components):
        scored = torch.arange(n_components).expand(len(index), -1)
        position = torch.arange(n_components).expand(len(index), -1).clone()
        return scored, position

    captured = {}
    original = _mixture.score_shares

    def capture(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.setdefault("scores", []).append(out[1])
        return out

    order, keys, starts, ends = model.support_.tasks.by_key()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_mixture, "score_shares", capture)
        share = model._left_out_share(order, keys, starts, ends)
        subset_scores = captured.pop("scores")
        mp.setattr(_mixture, "union_of_components", every_component)
        share_all = everything._left_out_share(order, keys, starts, ends)
        all_scores = captured.pop("scores")
    assert share == share_all
    for a, b in zip(subset_scores, all_scores, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
