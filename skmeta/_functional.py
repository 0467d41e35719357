"""Adaptation maths in pure torch: the MAML inner loop and prototypes.

Nothing here imports skorch or scikit-learn, and nothing holds state: every
function takes tensors (and, for the inner loop, a module evaluated only
through :func:`torch.func.functional_call`) and returns new tensors. The
estimators in ``_maml.py`` and ``_prototypical.py`` wire these functions to
their fitted attributes.
"""

import math

import torch
from torch import nn
from torch.func import functional_call, grad

__all__ = [
    "InnerLearningRates",
    "balance_classes",
    "class_sums",
    "inner_loop",
    "prototype_logits",
    "shrunk_prototypes",
    "step_scale",
]


# ----------------------------------------------------------------------- MAML
def inner_loop(
    module,
    params,
    buffers,
    criterion,
    X,
    y,
    w,
    *,
    inner_lr,
    n_steps,
    first_order,
    proximal_weight=0.0,
):
    """Adapt ``params`` with ``n_steps`` gradient steps on a weighted support set.

    Purely functional: ``module`` is only evaluated through
    :func:`torch.func.functional_call`, ``params`` is never modified.
    With ``first_order=False`` the result stays differentiable with respect
    to ``params`` through the inner gradients (second-order MAML); with
    ``first_order=True`` the inner gradients are treated as constants.

    Parameters
    ----------
    module : torch.nn.Module
        The network whose parameters are adapted.

    params, buffers : dict of str to torch.Tensor
        Starting parameters and the module's buffers.

    criterion : callable
        Per-row loss ``criterion(logits, y)``.

    X, y, w : torch.Tensor
        Support rows, their encoded classes and weights.

    inner_lr : float or dict of str to torch.Tensor
        Step size, or one step size tensor per parameter (same shapes).

    n_steps : int
        Number of gradient steps.

    first_order : bool
        Whether to drop second-order terms.

    proximal_weight : float, default=0.0
        Weight ``mu`` of ``mu / 2 * ||theta - theta_0||^2`` in the support
        loss.

    Returns
    -------
    params : dict of str to torch.Tensor
        The adapted parameters.
    """
    start = params

    def support_loss(p):
        losses = criterion(functional_call(module, (p, buffers), (X,)), y)
        loss = (losses * w).sum() / w.sum().clamp_min(1e-12)
        if proximal_weight:
            loss = loss + proximal_weight / 2 * sum(
                ((p[name] - start[name]) ** 2).sum() for name in p
            )
        return loss

    for _ in range(n_steps):
        grads = grad(support_loss)(params)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {
            name: p
            - (inner_lr[name] if isinstance(inner_lr, dict) else inner_lr) * grads[name]
            for name, p in params.items()
        }
    return params


def step_scale(w, n_classes, n_shots):
    """How far a support set of total weight ``w.sum()`` may move.

    Each support row moves the parameters as far as a row of a training
    episode did: a support set lighter than an episode's
    (``n_classes * n_shots`` rows) takes proportionally smaller steps; a
    heavier one takes the same steps on a less noisy gradient.
    """
    return (w.sum() / (n_classes * n_shots)).clamp(max=1.0)


def balance_classes(y, w, n_classes):
    """Row weights rescaled so that every class present sums to 1."""
    class_w = torch.zeros(n_classes, dtype=w.dtype, device=w.device)
    class_w = class_w.index_add(0, y, w)
    return w / class_w.clamp_min(1e-12)[y]


class InnerLearningRates(nn.Module):
    """Learned per-parameter step sizes of the inner loop (Meta-SGD).

    Holds one log step size per entry of each parameter of ``module``, so
    the step sizes stay positive.

    Parameters
    ----------
    module : torch.nn.Module
        The network whose parameters are adapted.

    init : float
        Initial step size of every entry.
    """

    def __init__(self, module, init):
        super().__init__()
        self.names = [name for name, _ in module.named_parameters()]
        self.log_lr = nn.ParameterList(
            nn.Parameter(torch.full_like(p, math.log(init), requires_grad=True))
            for _, p in module.named_parameters()
        )

    def forward(self):
        """Step sizes by parameter name."""
        return {
            name: log_lr.exp()
            for name, log_lr in zip(self.names, self.log_lr, strict=True)
        }


# ----------------------------------------------------------------- prototypes
def class_sums(embeddings, y, w, n_classes):
    """Weighted sums of embeddings and weights per class.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (..., n_rows, dim)
    y : torch.Tensor of shape (..., n_rows), encoded classes
    w : torch.Tensor of shape (..., n_rows), row weights
    n_classes : int

    Returns
    -------
    sums : torch.Tensor of shape (..., n_classes, dim)
    counts : torch.Tensor of shape (..., n_classes)
    """
    onehot = nn.functional.one_hot(y, n_classes).to(embeddings.dtype) * w[..., None]
    return onehot.transpose(-1, -2) @ embeddings, onehot.sum(-2)


def shrunk_prototypes(sums, counts, prior, shrinkage):
    """Prototypes ``(sums + shrinkage * prior) / (counts + shrinkage)``.

    A class without rows keeps the prior; a class without a prior (NaN) gets
    its plain mean; a class with neither stays NaN.
    """
    kappa = shrinkage * (~torch.isnan(prior).any(-1)).to(sums.dtype)
    denom = counts + kappa
    shrunk = (sums + kappa[..., None] * torch.nan_to_num(prior)) / denom.clamp_min(
        1e-12
    )[..., None]
    return torch.where((denom > 0)[..., None], shrunk, prior.expand_as(shrunk))


def prototype_logits(embeddings, prototypes):
    """Minus squared Euclidean distances; ``-inf`` for missing (NaN) prototypes.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (..., n_rows, dim)
    prototypes : torch.Tensor of shape (..., n_classes, dim)

    Returns
    -------
    logits : torch.Tensor of shape (..., n_rows, n_classes)
    """
    missing = torch.isnan(prototypes).any(-1)
    diff = embeddings.unsqueeze(-2) - torch.nan_to_num(prototypes).unsqueeze(-3)
    logits = -(diff**2).sum(-1)
    return logits.masked_fill(missing.unsqueeze(-2), float("-inf"))
