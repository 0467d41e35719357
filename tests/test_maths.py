"""The meta-learning maths against finite differences and hand computations."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from skmeta import MAMLClassifier, PrototypicalClassifier


def _episodes(n_tasks=3, n_support=6, n_query=5, n_features=3, n_classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    ep = {}
    for prefix, n in [("support_", n_support), ("query_", n_query)]:
        ep[prefix + "X"] = torch.randn(
            n_tasks, n, n_features, generator=g, dtype=torch.float64
        )
        ep[prefix + "y"] = torch.randint(0, n_classes, (n_tasks, n), generator=g)
        w = torch.rand(n_tasks, n, generator=g, dtype=torch.float64) + 0.5
        w[:, -1] = 0.0  # a padded slot
        ep[prefix + "w"] = w
    return ep


def _fitted_float64(klass, **params):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = klass(max_epochs=1, steps_per_epoch=1, random_state=0, **params).fit(X, y)
    clf.module_.double()
    return clf


def _unrolled_maml_loss(clf, params, ep, step_sizes=None):
    """Explicit per-task loop with torch.autograd.grad: the reference.

    Each task descends ``[sum_i b_i CE_i + lam / 2 ||p - p0||^2] / (n + lam)``
    where ``b`` are the support weights rescaled so that each class present
    weighs the same and all sum to ``n``, the summed support weight.
    """
    ce = torch.nn.functional.cross_entropy
    if step_sizes is None:
        step_sizes = dict.fromkeys(params, clf.inner_lr)
    lam = clf._prior_strength_value()
    losses = []
    for t in range(ep["support_X"].shape[0]):
        ys, ws = ep["support_y"][t], ep["support_w"][t]
        n = ws.sum()
        classes = [k for k in range(2) if ws[ys == k].sum() > 0]
        balanced = torch.zeros_like(ws)
        for k in classes:
            balanced[ys == k] = ws[ys == k] / ws[ys == k].sum() * n / len(classes)
        p = dict(params)
        for _ in range(clf.inner_steps):
            ls = ce(
                functional_call(clf.module_, p, (ep["support_X"][t],)),
                ys,
                reduction="none",
            )
            if clf.first_order:  # the data gradient is a constant
                data = torch.autograd.grad(
                    (ls * balanced).sum() / n, list(p.values()), retain_graph=True
                )
                grads = [
                    (n * g.detach() + lam * (p[k] - params[k])) / (n + lam)
                    for k, g in zip(p, data, strict=True)
                ]
            else:
                prior = sum(((p[k] - params[k]) ** 2).sum() for k in p)
                objective = ((ls * balanced).sum() + lam / 2 * prior) / (n + lam)
                grads = torch.autograd.grad(
                    objective, list(p.values()), create_graph=True
                )
            p = {
                k: v - step_sizes[k] * g
                for (k, v), g in zip(p.items(), grads, strict=True)
            }
        lq = ce(
            functional_call(clf.module_, p, (ep["query_X"][t],)),
            ep["query_y"][t],
            reduction="none",
        )
        wq = ep["query_w"][t]
        losses.append((lq * wq).sum() / wq.sum())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
def test_maml_meta_gradient_matches_unrolled_reference(first_order, inner_steps):
    clf = _fitted_float64(
        MAMLClassifier, first_order=first_order, inner_steps=inner_steps, inner_lr=0.3
    )
    ep = _episodes()
    params = dict(clf.module_.named_parameters())
    loss, _ = clf._episode_loss(ep)
    grads = torch.autograd.grad(loss, list(params.values()))
    ref_loss = _unrolled_maml_loss(clf, params, ep)
    ref_grads = torch.autograd.grad(ref_loss, list(params.values()))
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_with_learned_prior_and_step_sizes(first_order):
    clf = _fitted_float64(
        MAMLClassifier,
        first_order=first_order,
        inner_steps=2,
        inner_lr=0.2,
        learn_inner_lr=True,
    )
    clf.meta_sgd_.double()
    clf.prior_.double()
    with torch.no_grad():
        clf.prior_.log["strength"].fill_(np.log(1.7))
    with torch.no_grad():  # distinct step sizes per entry
        for log_lr in clf.meta_sgd_.log_lr:
            log_lr.add_(0.3 * torch.randn_like(log_lr))
    ep = _episodes()
    params = dict(clf.module_.named_parameters())
    learned = list(clf.meta_sgd_.parameters()) + list(clf.prior_.parameters())
    loss, _ = clf._episode_loss(ep)
    grads = torch.autograd.grad(loss, list(params.values()) + learned)
    ref = _unrolled_maml_loss(clf, params, ep, step_sizes=clf.meta_sgd_())
    ref_grads = torch.autograd.grad(ref, list(params.values()) + learned)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)
    # The step sizes and the prior strength are meta-learned: gradients reach
    # them (the strength, through the weights of the two terms even in first
    # order).
    assert all(g.abs().sum() > 0 for g in grads[len(params) :])


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(inner_steps):
    clf = _fitted_float64(MAMLClassifier, inner_steps=inner_steps, inner_lr=0.3)
    ep = _episodes()
    params = dict(clf.module_.named_parameters())
    loss, _ = clf._episode_loss(ep)
    grads = torch.autograd.grad(loss, list(params.values()))
    eps = 1e-6
    rng = np.random.RandomState(0)
    with torch.no_grad():
        for (name, p), g in zip(params.items(), grads, strict=True):
            for idx in [tuple(rng.randint(s) for s in p.shape) for _ in range(3)]:
                old = p[idx].item()
                p[idx] = old + eps
                up = clf._episode_loss(ep)[0].item()
                p[idx] = old - eps
                down = clf._episode_loss(ep)[0].item()
                p[idx] = old
                fd = (up - down) / (2 * eps)
                assert g[idx].item() == pytest.approx(fd, rel=1e-6, abs=1e-8), name


def test_first_order_differs_from_second_order():
    ep = _episodes()
    g = {}
    for fo in [False, True]:
        clf = _fitted_float64(MAMLClassifier, first_order=fo, inner_lr=0.5)
        params = dict(clf.module_.named_parameters())
        g[fo] = torch.autograd.grad(clf._episode_loss(ep)[0], list(params.values()))
    pairs = zip(g[False], g[True], strict=True)
    diff = max((a - b).abs().max().item() for a, b in pairs)
    assert diff > 1e-6


def test_first_order_gradient_is_query_gradient_at_adapted_parameters():
    clf = _fitted_float64(
        MAMLClassifier,
        first_order=True,
        inner_lr=0.3,
        inner_steps=1,
        prior_strength=0.0,
    )
    ep = _episodes(n_tasks=1)
    ep["support_y"][0] = torch.tensor([0, 1, 0, 1, 0, 1])
    ep["support_w"][0] = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    params = dict(clf.module_.named_parameters())
    grads = torch.autograd.grad(clf._episode_loss(ep)[0], list(params.values()))
    # Adapt with detached gradients, then differentiate the query loss there.
    ce = torch.nn.functional.cross_entropy
    leaf = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    ys, ws = ep["support_y"][0], ep["support_w"][0]
    balanced = ws / torch.where(ys == 0, ws[ys == 0].sum(), ws[ys == 1].sum())
    support_loss = (
        ce(
            functional_call(clf.module_, leaf, (ep["support_X"][0],)),
            ys,
            reduction="none",
        )
        * balanced
    ).sum() / balanced.sum()
    inner_grads = torch.autograd.grad(support_loss, list(leaf.values()))
    at = {
        k: (v.detach() - 0.3 * g).requires_grad_()
        for (k, v), g in zip(leaf.items(), inner_grads, strict=True)
    }
    lq = ce(
        functional_call(clf.module_, at, (ep["query_X"][0],)),
        ep["query_y"][0],
        reduction="none",
    )
    wq = ep["query_w"][0]
    expected = torch.autograd.grad((lq * wq).sum() / wq.sum(), list(at.values()))
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)


def test_padded_slots_do_not_change_the_meta_gradient():
    clf = _fitted_float64(MAMLClassifier)
    ep = _episodes()
    padded = {k: v.clone() for k, v in ep.items()}
    padded["support_X"][:, -1] = 1e3  # weight 0 rows: their content is irrelevant
    padded["query_X"][:, -1] = -1e3
    params = list(clf.module_.parameters())
    a = torch.autograd.grad(clf._episode_loss(ep)[0], params)
    b = torch.autograd.grad(clf._episode_loss(padded)[0], params)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-12, atol=1e-14)


def _proto_reference(clf, ep, shrinkage, scale):
    """-log softmax(-s ||f(x) - c_y||^2), prototypes written out row by row."""
    f = lambda X: clf.module_(X).detach().numpy()  # noqa: E731
    n_tasks, n_classes = ep["support_X"].shape[0], len(clf.classes_)
    emb_s = [f(ep["support_X"][t]) for t in range(n_tasks)]
    ys, ws = ep["support_y"].numpy(), ep["support_w"].numpy()
    pooled = np.stack(
        [
            sum(
                ws[t, i] * emb_s[t][i]
                for t in range(n_tasks)
                for i in range(ys.shape[1])
                if ys[t, i] == k
            )
            / sum(
                ws[t, i]
                for t in range(n_tasks)
                for i in range(ys.shape[1])
                if ys[t, i] == k
            )
            for k in range(n_classes)
        ]
    )
    task_losses = []
    for t in range(n_tasks):
        protos = []
        for k in range(n_classes):
            rows = ys[t] == k
            s = (ws[t, rows, None] * emb_s[t][rows]).sum(0)
            n = ws[t, rows].sum()
            protos.append((s + shrinkage * pooled[k]) / (n + shrinkage))
        protos = np.stack(protos)
        q = f(ep["query_X"][t])
        d = scale * ((q[:, None, :] - protos[None]) ** 2).sum(-1)
        logp = -d - np.log(np.exp(-d).sum(1, keepdims=True))
        yq, wq = ep["query_y"][t].numpy(), ep["query_w"][t].numpy()
        nll = -logp[np.arange(len(yq)), yq]
        task_losses.append((nll * wq).sum() / wq.sum())
    return float(np.mean(task_losses))


@pytest.mark.parametrize("shrinkage", [0.0, 2.0, "learn"])
def test_prototypical_loss_matches_formula(shrinkage):
    clf = _fitted_float64(
        PrototypicalClassifier,
        shrinkage=shrinkage,
        distance_scale=0.7 if shrinkage != "learn" else "learn",
        module__embedding_dim=4,
    )
    if shrinkage == "learn":
        clf.prior_.double()
    ep = _episodes(n_support=8)
    ep["support_y"][:, :2] = torch.tensor([0, 1])  # every task has both classes
    ep["support_w"][:, :2] = 1.0
    loss, logits = clf._episode_loss(ep)
    expected = _proto_reference(clf, ep, clf.prior_strength_, clf.distance_scale_)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert logits.shape == (3, 5, 2)


def test_prototypical_predict_proba_is_softmax_of_minus_squared_distances(
    grouped_data,
):
    X, y, groups = grouped_data
    clf = PrototypicalClassifier(
        max_epochs=2,
        class_prior="balanced",
        inference_dtype="float64",
        head="prototypes",
        random_state=0,
    ).fit(X, y, sensitive_features=groups)
    Xt = torch.as_tensor(X[:10].astype(np.float32), dtype=torch.float64)
    emb = torch.func.functional_call(
        clf.module_, {k: v.double() for k, v in clf.module_.state_dict().items()}, (Xt,)
    ).numpy()
    protos = clf.global_state_.double().numpy()
    d = clf.distance_scale_ * ((emb[:, None] - protos[None]) ** 2).sum(-1)
    expected = np.exp(-d) / np.exp(-d).sum(1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X[:10]), expected, rtol=1e-9)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_class_prior_adds_shrunk_log_frequencies(klass, grouped_data):
    X, y, groups = grouped_data
    params = dict(
        max_epochs=1,
        steps_per_epoch=2,
        n_shots=3,
        inference_dtype="float64",
        random_state=0,
    )
    task = klass(**params).fit(X, y, sensitive_features=groups)
    balanced = klass(class_prior="balanced", **params).fit(
        X, y, sensitive_features=groups
    )
    pooled = np.bincount(y) / len(y)
    for g in ["a", "c"]:
        rows = groups == g
        counts = np.bincount(y[rows], minlength=2)
        prior = (counts + 2 * 3 * pooled) / (counts.sum() + 2 * 3)
        shift = np.log(task.predict_proba(X[rows], sensitive_features=groups[rows]))
        shift -= np.log(
            balanced.predict_proba(X[rows], sensitive_features=groups[rows])
        )
        shift -= np.log(prior)
        np.testing.assert_allclose(shift - shift[:, :1], 0.0, atol=1e-9)
    # Unknown tasks use the pooled frequencies.
    shift = np.log(task.predict_proba(X)) - np.log(balanced.predict_proba(X))
    shift -= np.log(pooled)
    np.testing.assert_allclose(shift - shift[:, :1], 0.0, atol=1e-9)


def test_one_map_step_weighs_the_rows_against_the_prior():
    # One step from theta_0: the data term weighs n / (n + lam) of the mean
    # loss gradient (the distance to theta_0 is still 0): two rows against a
    # prior of 6 rows move a quarter of a plain step.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = MAMLClassifier(
        max_epochs=1,
        steps_per_epoch=1,
        inner_steps=1,
        inner_lr=0.4,
        prior_strength=6.0,
        random_state=0,
    ).fit(X, y)
    support = X[:2].copy(), np.array([0, 1])
    clf.partial_fit(*support, tasks=["new", "new"])
    theta = {k: v.detach().double() for k, v in clf.module_.named_parameters()}
    leaf = {k: v.clone().requires_grad_() for k, v in theta.items()}
    logits = functional_call(
        clf.module_.double(), leaf, (torch.tensor(support[0]).double(),)
    )
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(support[1]))
    grads = torch.autograd.grad(loss, list(leaf.values()))
    state = clf.task_states_[list(clf.tasks_).index("new")]
    for (name, value), g in zip(theta.items(), grads, strict=True):
        np.testing.assert_allclose(
            state[name].double().numpy(),
            (value - 2 / (2 + 6) * 0.4 * g).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
    assert clf.adaptation_weight_[-1] == pytest.approx(0.25)


def test_map_adaptation_reduces_gracefully_at_both_ends():
    # Few rows: the adapted parameters stay near theta_0. Many rows that
    # disagree with theta_0 (labels flipped): the state ends near the fit to
    # those rows alone (prior strength 0). The prior is worth 20 rows here.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    params = dict(max_epochs=2, random_state=0, inference_dtype="float64")
    clf = MAMLClassifier(**params).fit(X, y)
    lam = 20.0
    Xn = rng.normal(size=(400, 3)).astype(np.float32)
    yn = 1 - (Xn[:, 0] > 0).astype(int)  # the opposite rule
    theta = torch.cat([p.detach().flatten() for p in clf.module_.parameters()])

    def moved(rows, strength):
        fitted = MAMLClassifier(**params, prior_strength=strength).fit(X, y)
        fitted.module_.load_state_dict(clf.module_.state_dict())
        fitted.partial_fit(Xn[:rows], yn[:rows], tasks=["new"] * rows)
        state = torch.cat([v.flatten() for v in fitted.task_states_[-1].values()])
        return state, fitted

    few, _ = moved(2, lam)
    many, fitted = moved(400, lam)
    alone, _ = moved(400, 0.0)
    d_few = (few - theta).norm() / (alone - theta).norm()
    d_many = (many - alone).norm() / (alone - theta).norm()
    assert d_few < 0.15
    assert d_many < 0.25
    accuracy = (fitted.predict(Xn, tasks=["new"] * 400) == yn).mean()
    assert accuracy > 0.8  # the group's own rule, not the meta-learned one


class _GeneralMLP(torch.nn.Module):
    """The default MLP's layers behind a forward of its own: general path."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        from skmeta.modules import MLP

        self.inner = MLP(n_features_in, n_classes, hidden_units=(8, 8))

    def forward(self, X):
        return self.inner(X)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("learn_inner_lr", [False, True])
@pytest.mark.parametrize("adapt_layers", ["all", "last"])
@pytest.mark.parametrize("n_features", [3, 8])
def test_closed_form_inner_loop_equals_the_general_path(
    first_order, learn_inner_lr, adapt_layers, n_features
):
    # The default MLP adapts with hand-written gradients; any other module
    # with torch.func.grad under vmap. Same weights, same episode: same
    # meta-loss and meta-gradient. With 8 features the first layer's change
    # is kept as A.T @ X (6 support rows < 2 * 8 inputs).
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, n_features))
    y = (X[:, 0] > 0).astype(int)
    groups = np.arange(120) % 4
    params = dict(
        max_epochs=1,
        steps_per_epoch=1,
        inner_steps=2,
        first_order=first_order,
        learn_inner_lr=learn_inner_lr,
        prior_strength=0.2,
        adapt_layers=adapt_layers,
        random_state=0,
    )
    fast = MAMLClassifier(module__hidden_units=(8, 8), **params).fit(
        X, y, sensitive_features=groups
    )
    general = MAMLClassifier(_GeneralMLP, **params).fit(X, y, sensitive_features=groups)
    assert fast._fast_layers(training=True) is not None
    assert general._fast_layers(training=True) is None
    general.module_.inner.load_state_dict(fast.module_.state_dict())
    if learn_inner_lr:
        general.meta_sgd_.load_state_dict(fast.meta_sgd_.state_dict())
    # Adaptation to every task and prediction agree (float32).
    general._refresh_states(range(len(general.tasks_)), recompute_global=True)
    np.testing.assert_allclose(
        fast.predict_proba(X, sensitive_features=groups),
        general.predict_proba(X, sensitive_features=groups),
        rtol=1e-4,
        atol=1e-6,
    )
    if learn_inner_lr:
        fast.meta_sgd_.double()
        general.meta_sgd_.double()
    fast.module_.double()
    general.module_.double()
    ep = _episodes(n_features=n_features)
    loss_fast, _ = fast._episode_loss(ep)
    loss_general, _ = general._episode_loss(ep)
    torch.testing.assert_close(loss_fast, loss_general, rtol=1e-10, atol=1e-12)
    g_fast = torch.autograd.grad(loss_fast, list(fast.module_.parameters()))
    g_general = torch.autograd.grad(loss_general, list(general.module_.parameters()))
    for a, b in zip(g_fast, g_general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_factored_weight_changes_equal_dense_ones(first_order):
    # Wide layers keep their inner-loop changes as low-rank factors, and the
    # first layer its change as A.T @ X; the adapted parameters, the meta-loss
    # and all gradients (the prior strength's too) equal those of the dense
    # computation.
    from skmeta._functional import materialize, mlp_forward, mlp_inner_loop
    from skmeta.modules import MLP

    torch.manual_seed(0)
    module = MLP(5, 3, hidden_units=(32, 32)).double()
    layers = [("net.0.weight", "net.0.bias", torch.nn.ReLU)]
    layers += [("net.2.weight", "net.2.bias", torch.nn.ReLU)]
    layers += [("net.4.weight", "net.4.bias", None)]
    params = dict(module.named_parameters())
    X = torch.randn(4, 6, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (4, 6))
    w = torch.rand(4, 6, dtype=torch.float64)
    Xq, yq = torch.randn(4, 7, 5, dtype=torch.float64), torch.randint(0, 3, (4, 7))
    lam = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    results = []
    for low_rank, factor_first in [
        (set(), False),
        ({name for name, _, _ in layers}, False),
        (set(), True),
        ({name for name, _, _ in layers}, True),
    ]:
        adapted, factors = mlp_inner_loop(
            layers,
            params,
            X,
            y,
            w,
            inner_lr=0.4,
            n_steps=3,
            first_order=first_order,
            prior_strength=lam,
            low_rank=low_rank,
            factor_first=factor_first,
        )
        assert bool(factors) == bool(low_rank or factor_first)
        logits = mlp_forward(layers, adapted, Xq, factors)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), yq.flatten())
        grads = torch.autograd.grad(loss, [*params.values(), lam])
        results.append((materialize(adapted, factors), loss, grads))
    dense, loss_d, grads_d = results[0]
    for factored, loss_f, grads_f in results[1:]:
        for name in dense:
            torch.testing.assert_close(
                factored[name], dense[name], rtol=1e-10, atol=1e-12
            )
        torch.testing.assert_close(loss_f, loss_d, rtol=1e-12, atol=1e-14)
        for a, b in zip(grads_f, grads_d, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_last_layer_adaptation_keeps_the_representation():
    # adapt_layers="last" (ANIL): task states hold the last layer only, and a
    # task's prediction is the shared representation followed by its layer.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    groups = np.arange(200) % 4
    y = (X[:, 0] * (groups - 1.5) > 0).astype(int)
    # head="none": the network alone (the logistic correction is tested in
    # test_maml_head.py).
    clf = MAMLClassifier(
        adapt_layers="last",
        head="none",
        max_epochs=2,
        inference_dtype="float64",
        random_state=0,
    ).fit(X, y, sensitive_features=groups)
    assert set(clf.task_states_[0]) == {"net.2.weight", "net.2.bias"}
    with torch.no_grad():
        body = clf.module_.net[:2](torch.as_tensor(X, dtype=torch.float32)).double()
        state = clf.task_states_[1]
        logits = body @ state["net.2.weight"].double().T + state["net.2.bias"].double()
    rows = groups == 1
    expected = torch.softmax(logits[rows], 1).numpy()
    # class_prior="task" adds the group's log class frequencies: compare the
    # balanced predictions.
    clf.set_params(class_prior="balanced")
    np.testing.assert_allclose(
        clf.predict_proba(X[rows], sensitive_features=groups[rows]),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )
