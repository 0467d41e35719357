"""Logistic heads shrunk toward a prior head, many problems at once.

A head is a linear map of the features ``phi = [embedding, x, 1]`` to the
class logits. The shrunk head minimises, for each problem,

    sum_i w_i CE(theta phi_i, y_i) + alpha / 2 ||theta - theta_0||^2

(``CE`` the softmax cross-entropy, ``theta_0`` the prior head), its MAP
estimate under an isotropic Gaussian prior centred at ``theta_0``. At the
optimum ``theta - theta_0 = beta^T Phi`` for some ``beta`` of shape
``(n_rows, n_classes)`` (the penalty gradient must cancel a sum of the rows'
gradients), so it is solved in the rows' space, with the kernel
``G = Phi Phi^T``, by Newton's method with a line search: the problems are
small (few rows) and batched, and no per-problem Python loop runs. For two
classes the logits' difference carries everything: a logistic regression on
it with the penalty halved (the two classes' changes are opposite), solved in
one column.
"""

import torch
from torch import nn

# Newton iterations; the step sizes tried by the line search at each (down
# to 1/4096: with a small penalty and separable rows the full steps overshoot
# far).
_NEWTON_ITERATIONS = 20
# Stop when every gradient (in the rows' space) is below this.
_TOLERANCE = 1e-6
_STEPS = torch.tensor([2.0**-i for i in range(13)] + [0.0], dtype=torch.float64)


def _newton(G, alpha, newton_step, loss, beta, n_iter):
    """Newton's method in the rows' space with a line search.

    ``newton_step(active, G_active, Gbeta, beta)`` gives, for the problems
    ``active`` (indices into the batch, ``G_active`` their kernels), the
    gradient ``g`` (its size decides convergence) and the Newton step;
    ``loss(active, Gbeta)`` gives their data term (``Gbeta`` may have leading
    dims). The logits are linear in the step, so every step size of
    ``_STEPS`` is tried at the cost of one product by ``G``; the one of
    smallest objective wins (0 when none decreases it), per problem. A
    problem that has converged leaves the batch and stays put, so that each
    problem's iterates do not depend on the others of the batch and the work
    follows the problems still moving (in a cross-validation most converge
    in under half the iterations of the slowest).
    """
    steps = _STEPS.to(beta)
    t = steps.view((-1,) + (1,) * beta.dim())
    Gbeta = torch.zeros_like(beta)
    active = torch.arange(len(beta), device=beta.device)
    for _ in range(n_iter):
        beta_a, Gbeta_a = beta[active], Gbeta[active]
        G_a = G[active] if len(active) < len(G) else G
        g, step = newton_step(active, G_a, Gbeta_a, beta_a)
        moving = g.flatten(1).abs().amax(1) >= _TOLERANCE
        if not moving.all():
            active, step, G_a = active[moving], step[moving], G_a[moving]
            beta_a, Gbeta_a = beta_a[moving], Gbeta_a[moving]
            if not len(active):
                break
        Gstep = _times(G_a, step)
        trial_beta = beta_a + t * step
        trial_Gbeta = Gbeta_a + t * Gstep
        penalty = (trial_beta * trial_Gbeta).flatten(2).sum(-1)
        values = loss(active, trial_Gbeta) + 0.5 * alpha[active] * penalty
        best = torch.nan_to_num(values, nan=torch.inf).argmin(0)
        index = torch.arange(len(active), device=beta.device)
        beta[active] = trial_beta[best, index]
        Gbeta[active] = trial_Gbeta[best, index]
    return beta


def _times(G, beta):
    """``G @ beta`` for ``beta`` of shape (B, n) or (B, n, K)."""
    if beta.dim() == 2:
        return (G @ beta[..., None]).squeeze(-1)
    return G @ beta


def _binary_dual(G, h0, y, w, alpha, n_iter):
    """``delta`` of shape (B, n): the logit difference is ``h0 + G delta``."""
    sign = 2.0 * y - 1.0

    def newton_step(active, G_a, Gdelta, delta):
        # (D G + alpha I) step = -g, D the rows' logistic curvatures.
        y_a, w_a, a = y[active], w[active], alpha[active][:, None]
        p = torch.sigmoid(h0[active] + Gdelta)
        g = w_a * (p - y_a) + a * delta
        M = (w_a * p * (1 - p))[..., None] * G_a
        M.diagonal(dim1=-2, dim2=-1).add_(a)
        return g, -torch.linalg.solve(M, g[..., None]).squeeze(-1)

    def loss(active, Gdelta):
        margin = sign[active] * (h0[active] + Gdelta)
        return (w[active] * nn.functional.softplus(-margin)).sum(-1)

    delta = torch.zeros_like(h0)
    return _newton(G, alpha, newton_step, loss, delta, n_iter)


def _multiclass_dual(G, f0, y, w, alpha, n_iter):
    """``beta`` of shape (B, n, K): the logits are ``f0 + G beta``."""
    B, n, K = f0.shape
    Y = nn.functional.one_hot(y, K).to(f0.dtype)

    def newton_step(active, G_a, Gbeta, beta):
        # (W G + alpha I) step = -g, where W_i = w_i (diag p_i - p_i p_i^T)
        # acts on each row's K logits: M[(i,k),(j,l)] = W_i[k,l] G[i,j].
        w_a, a = w[active], alpha[active]
        P = (f0[active] + Gbeta).softmax(-1)
        g = w_a[..., None] * (P - Y[active]) + a[:, None, None] * beta
        W = w_a[..., None, None] * (
            torch.diag_embed(P) - P[..., :, None] * P[..., None, :]
        )
        M = W[:, :, :, None, :] * G_a[:, :, None, :, None]
        M = M.reshape(len(active), n * K, n * K)
        M.diagonal(dim1=-2, dim2=-1).add_(a[:, None])
        step = torch.linalg.solve(M, g.reshape(len(active), n * K, 1))
        return g, -step.reshape(len(active), n, K)

    def loss(active, Gbeta):
        logits = (f0[active] + Gbeta).log_softmax(-1)
        return -(w[active] * (Y[active] * logits).sum(-1)).sum(-1)

    beta = torch.zeros_like(f0)
    return _newton(G, alpha, newton_step, loss, beta, n_iter)


def shrunk_logistic_dual(G, f0, y, w, alpha, n_iter=_NEWTON_ITERATIONS):
    """Rows' coefficients of the shrunk logistic heads of a batch of problems.

    Parameters
    ----------
    G : torch.Tensor of shape (B, n, n)
        Kernel ``Phi Phi^T`` of each problem's rows.
    f0 : torch.Tensor of shape (B, n, K)
        Logits of the prior head on each row.
    y : torch.Tensor of shape (B, n), encoded classes
    w : torch.Tensor of shape (B, n)
        Row weights; rows of weight 0 do not count (their coefficients
        stay 0), so one kernel serves every fold of a cross-validation.
    alpha : torch.Tensor of shape (B,)
        Penalties, positive and finite.

    Returns
    -------
    beta : torch.Tensor of shape (B, n, K)
        ``theta - theta_0 = beta^T Phi``; the logits of any row ``phi`` are
        ``theta_0 phi + beta^T Phi phi``.
    """
    if f0.shape[-1] == 2:
        h0 = f0[..., 1] - f0[..., 0]
        delta = _binary_dual(G, h0, y.to(G.dtype), w, alpha / 2, n_iter)
        return torch.stack([-delta / 2, delta / 2], -1)
    return _multiclass_dual(G, f0, y, w, alpha, n_iter)
