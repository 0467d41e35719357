"""Adaptation maths in pure torch: the MAML inner loop and prototypes.

Nothing here imports skorch or scikit-learn, and nothing holds state: every
function takes tensors (and, for the inner loop, a module evaluated only
through :func:`torch.func.functional_call`) and returns new tensors. The
estimators in ``_maml.py`` and ``_prototypical.py`` wire these functions to
their fitted attributes.
"""

import copy
import math
import threading
import weakref

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = [
    "InnerLearningRates",
    "balance_classes",
    "blocked_forward",
    "class_sums",
    "inner_loop",
    "prototype_logits",
    "shrunk_prototypes",
    "stateless_forward",
    "step_scale",
]

_THREAD = threading.local()


def _private_copy(module):
    """This thread's copy of ``module``, in evaluation mode, for functional calls.

    :func:`torch.func.functional_call` swaps the tensors of the module it is
    given for the duration of the call, so two threads calling it on one
    module see each other's tensors. Prediction therefore calls it on a copy
    that belongs to the calling thread; the copy's own tensors are never read
    (every parameter and buffer is passed in), only its structure.
    """
    copies = getattr(_THREAD, "copies", None)
    if copies is None:
        copies = _THREAD.copies = weakref.WeakKeyDictionary()
    private = copies.get(module)
    if private is None:
        private = copy.deepcopy(module).eval().requires_grad_(False)
        copies[module] = private
    return private


def stateless_forward(module, params, buffers, X):
    """``module(X)`` with the given tensors, in evaluation mode; thread-safe.

    Never modifies ``module``: the call runs on this thread's private copy.
    """
    return functional_call(_private_copy(module), (params, buffers), (X,))


def blocked_forward(module, states, buffers, X, index, *, max_block_params=2**24):
    """Rows evaluated with their own parameters, many parameter sets at once.

    Row ``i`` is evaluated with the parameters ``{name: v[index[i]]}`` of
    ``states``. Rows are grouped by ``index`` into blocks of equal size (one
    set of parameters per block, padding at the end of each group), and the
    blocks are evaluated together under :func:`torch.func.vmap`; no Python
    loop runs over the parameter sets.

    Parameters
    ----------
    module : torch.nn.Module
    states : dict of str to torch.Tensor of shape (n_states, ...)
    buffers : dict of str to torch.Tensor
    X : torch.Tensor of shape (n_rows, n_features)
    index : torch.Tensor of shape (n_rows,), dtype=int64
    max_block_params : int, default=2**24
        Most parameter entries gathered at once (bounds the memory used).

    Returns
    -------
    out : torch.Tensor of shape (n_rows, n_outputs)
    """
    n = len(X)
    order = torch.argsort(index, stable=True)
    present, counts = torch.unique_consecutive(index[order], return_counts=True)
    # Blocks of about the mean number of rows per parameter set: padding stays
    # below one block per set, so below n rows in all.
    size = int(min(4096, max(16, -(-n // len(present)))))
    n_blocks = -(-counts // size)
    block_state = present.repeat_interleave(n_blocks)
    first_row = torch.cumsum(counts, 0) - counts
    first_block = torch.cumsum(n_blocks, 0) - n_blocks
    rank = torch.arange(n, device=X.device) - first_row.repeat_interleave(counts)
    row_block = first_block.repeat_interleave(counts) + rank // size
    row_slot = rank % size
    blocks = X.new_zeros((len(block_state), size, X.shape[1]))
    blocks[row_block, row_slot] = X[order]

    private = _private_copy(module)

    def evaluate(params, x):
        return functional_call(private, (params, buffers), (x,))

    per_block = sum(v[0].numel() for v in states.values())
    chunk = max(1, max_block_params // max(per_block, 1))
    outputs = []
    for start in range(0, len(block_state), chunk):
        which = block_state[start : start + chunk]
        params = {name: v[which].to(X.dtype) for name, v in states.items()}
        outputs.append(vmap(evaluate)(params, blocks[start : start + chunk]))
    out_blocks = torch.cat(outputs)
    out = out_blocks.new_empty((n, out_blocks.shape[-1]))
    out[order] = out_blocks[row_block, row_slot]
    return out


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
    onehot = nn.functional.one_hot(y, n_classes).to(w.dtype)
    class_w = (onehot * w[..., None]).sum(-2)
    return w / class_w.clamp_min(1e-12).gather(-1, y)


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


def shrunk_prototypes(sums, counts, prior, prior_present, shrinkage):
    """Prototypes ``(sums + shrinkage * prior) / (counts + shrinkage)``.

    Parameters
    ----------
    sums : torch.Tensor of shape (..., n_classes, dim)
    counts : torch.Tensor of shape (..., n_classes)
    prior : torch.Tensor of shape (..., n_classes, dim)
    prior_present : torch.Tensor of shape (..., n_classes), dtype=bool
        Classes that have a prior prototype.
    shrinkage : float or torch.Tensor broadcastable to counts

    Returns
    -------
    prototypes : torch.Tensor of shape (..., n_classes, dim)
        A class without rows keeps the prior; a class without a prior gets
        its plain mean; a class with neither gets zeros, and is marked
        missing.
    present : torch.Tensor of shape (..., n_classes), dtype=bool
    """
    kappa = shrinkage * prior_present.to(sums.dtype)
    denom = counts + kappa
    present = denom > 0
    prototypes = (sums + kappa[..., None] * prior) / denom.clamp_min(1e-12)[..., None]
    return prototypes * present[..., None].to(sums.dtype), present


def prototype_logits(embeddings, prototypes, present):
    """Minus squared Euclidean distances to the prototypes.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (..., n_rows, dim)
    prototypes : torch.Tensor of shape (..., n_classes, dim)
    present : torch.Tensor of shape (..., n_classes), dtype=bool
        Classes with a prototype; the others get the most negative finite
        logit of the dtype (probability 0, and no NaN in any precision).

    Returns
    -------
    logits : torch.Tensor of shape (..., n_rows, n_classes)
    """
    diff = embeddings.unsqueeze(-2) - prototypes.unsqueeze(-3)
    logits = -(diff**2).sum(-1)
    return logits.masked_fill(~present.unsqueeze(-2), torch.finfo(logits.dtype).min)
