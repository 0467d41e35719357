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
    "LearnedPrior",
    "balance_classes",
    "blocked_forward",
    "class_sums",
    "inner_loop",
    "prototype_logits",
    "shrunk_prototypes",
    "stateless_forward",
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


# Fewest rows in a block of blocked_forward. On CPU, torch evaluates a batched
# product of (M x K) by (K x N) matrices with a plain loop when M * K * N < 400
# and with BLAS above; the two round differently, which would make a row's
# float32 prediction depend on how many rows of its group are predicted with
# it. Blocks are therefore large enough for BLAS in every adapted layer
# (4 rows for the default MLP, whose smallest layer is 64 x 2), and 16 rows
# when the states are not all matrices and vectors.
_BLAS_MIN_PRODUCT = 400
_MIN_BLOCK = 4
_MIN_BLOCK_OTHER = 16


def _min_block(states):
    """Fewest rows per block for ``states`` (see ``_BLAS_MIN_PRODUCT``)."""
    if any(v.dim() > 3 for v in states.values()):
        return _MIN_BLOCK_OTHER
    areas = [v[0].numel() for v in states.values() if v.dim() == 3]
    if not areas:
        return _MIN_BLOCK_OTHER
    return max(_MIN_BLOCK, -(-_BLAS_MIN_PRODUCT // min(areas)))


def blocked_forward(
    module,
    states,
    buffers,
    X,
    index,
    *,
    forward=None,
    shared=None,
    max_block_params=2**24,
    max_block_rows=2**13,
):
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
    forward : callable, default=None
        ``forward(params, blocks)`` evaluating blocks of shape
        ``(n_blocks, size, n_features)`` with per-block parameters; by default
        ``module`` under :func:`torch.func.vmap`.
    shared : dict of str to torch.Tensor, default=None
        Parameters every row uses (no state dimension), e.g. the layers that
        adaptation leaves as they are.
    max_block_params : int, default=2**24
        Most parameter entries gathered at once (bounds the memory used).
    max_block_rows : int, default=2**13
        Most rows (padding included) evaluated at once. Small chunks keep
        each layer's output in cache and below the size at which the
        allocator maps fresh pages for every call: a forward pass over
        10,000 blocks of 16 rows ran 2.6 times faster in chunks of 1,024
        blocks than in one.

    Returns
    -------
    out : torch.Tensor of shape (n_rows, n_outputs)
    """
    n = len(X)
    order = torch.argsort(index, stable=True)
    present, counts = torch.unique_consecutive(index[order], return_counts=True)
    # Blocks of about the mean number of rows per parameter set: padding stays
    # below one block per set, so below n rows in all.
    min_block = _min_block(states)
    size = int(min(4096, max(min_block, -(-n // len(present)))))
    n_blocks = -(-counts // size)
    # The same number of blocks per set, each as small as it can be: a group
    # of 5,000 rows takes 2 blocks of 2,500 rows, not 2 of 4,096.
    size = max(min_block, int((-(-counts // n_blocks)).max()))
    block_state = present.repeat_interleave(n_blocks)
    first_row = torch.cumsum(counts, 0) - counts
    first_block = torch.cumsum(n_blocks, 0) - n_blocks
    rank = torch.arange(n, device=X.device) - first_row.repeat_interleave(counts)
    # Each sorted row's slot in the flattened blocks, and the row each slot
    # reads (padding slots read row 0; their outputs are never read). Built
    # with index_copy_ and index_select: on CPU, advanced indexing such as
    # X[order] ran more than ten times slower than X.index_select(0, order).
    slot = first_block.repeat_interleave(counts) * size + rank
    source = torch.zeros(len(block_state) * size, dtype=torch.long, device=X.device)
    source.index_copy_(0, slot, order)
    blocks = X.index_select(0, source).view(len(block_state), size, X.shape[1])

    shared = {} if shared is None else shared
    if forward is None:
        private = _private_copy(module)

        def evaluate(params, x):
            return functional_call(private, ({**shared, **params}, buffers), (x,))

        forward = vmap(evaluate)
    else:
        given = forward

        def forward(params, x):
            return given({**shared, **params}, x)

    per_block = sum(v[0].numel() for v in states.values())
    chunk = max(1, min(max_block_params // max(per_block, 1), max_block_rows // size))
    # Parameter sets of consecutive states, one block each (every group
    # present, none over a block): slices of the states, not gathered copies.
    first, last = int(present[0]), int(present[-1])
    consecutive = len(block_state) == len(present) == last - first + 1
    outputs = []
    for start in range(0, len(block_state), chunk):
        if consecutive:
            stop = min(start + chunk, len(block_state))
            which = slice(first + start, first + stop)
            params = {name: v[which] for name, v in states.items()}
        else:
            which = block_state[start : start + chunk]
            params = {name: v.index_select(0, which) for name, v in states.items()}
        params = {name: v.to(X.dtype) for name, v in params.items()}
        outputs.append(forward(params, blocks[start : start + chunk]))
    out_blocks = torch.cat(outputs)
    destination = torch.empty_like(slot).index_copy_(0, order, slot)
    return out_blocks.reshape(-1, out_blocks.shape[-1]).index_select(0, destination)


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
    prior_strength=0.0,
    n_rows=None,
    frozen=None,
):
    r"""Adapt ``params`` by gradient steps on a weighted support set (MAP).

    Each step descends the MAP objective

    .. math::

        L(\theta) = \frac{\sum_i w_i \ell_i(\theta)
            + \frac{\lambda}{2} \lVert \theta - \theta_0 \rVert^2}{n + \lambda}

    where :math:`\ell_i` is the loss of support row ``i``, :math:`\theta_0`
    the starting ``params``, :math:`\lambda` the ``prior_strength`` and
    :math:`n` the number of (effective) rows, ``n_rows``; the weights enter
    as relative weights (they are rescaled to sum to :math:`n`). Its gradient
    is :math:`(n \nabla \bar\ell + \lambda (\theta - \theta_0)) / (n +
    \lambda)` with :math:`\bar\ell` the weighted mean loss: with few rows
    the prior holds the parameters near :math:`\theta_0`, with many the rows
    decide. :math:`\lambda = 0` is plain MAML on the weighted mean loss.

    Purely functional: ``module`` is only evaluated through
    :func:`torch.func.functional_call`, ``params`` is never modified. With
    ``first_order=False`` the result stays differentiable with respect to
    ``params`` through the inner gradients (second-order MAML); with
    ``first_order=True`` the inner gradients of the support loss are treated
    as constants: the adapted parameters then move one for one with
    :math:`\theta_0` (the prior's pull, exact, adds no second-order term), and
    ``prior_strength`` still gets its gradient.

    Parameters
    ----------
    module : torch.nn.Module
        The network whose parameters are adapted.

    params, buffers : dict of str to torch.Tensor
        Starting parameters and the module's buffers.

    criterion : callable
        Per-row loss ``criterion(logits, y)``.

    X, y, w : torch.Tensor
        Support rows, their encoded classes and (relative) weights.

    inner_lr : float or dict of str to torch.Tensor
        Step size, or one step size tensor per parameter (same shapes).

    n_steps : int
        Number of gradient steps.

    first_order : bool
        Whether to drop second-order terms.

    prior_strength : float or torch.Tensor, default=0.0
        :math:`\lambda \geq 0`, in rows.

    n_rows : float or torch.Tensor, default=None
        :math:`n`; ``w.sum()`` when None.

    frozen : dict of str to torch.Tensor, default=None
        Parameters of ``module`` that are not adapted (used as they are).

    Returns
    -------
    params : dict of str to torch.Tensor
        The adapted parameters.
    """
    start = params
    n = w.sum() if n_rows is None else torch.as_tensor(n_rows, dtype=w.dtype)
    data_share = n / (n + prior_strength).clamp_min(1e-12)
    prior_share = 1.0 - data_share

    frozen = {} if frozen is None else frozen

    def mean_loss(p):
        losses = criterion(functional_call(module, ({**frozen, **p}, buffers), (X,)), y)
        return (losses * w).sum() / w.sum().clamp_min(1e-12)

    for _ in range(n_steps):
        grads = grad(mean_loss)(params)
        new = {}
        for name, p in params.items():
            g = grads[name].detach() if first_order else grads[name]
            lr = inner_lr[name] if isinstance(inner_lr, dict) else inner_lr
            new[name] = p - lr * (data_share * g + prior_share * (p - start[name]))
        params = new
    return params


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


class LearnedPrior(nn.Module):
    """Positive strengths learned by the outer loop (empirical Bayes).

    Each strength is kept as its logarithm, so it stays positive.

    Parameters
    ----------
    **start : float
        Starting value of each strength, by name.
    """

    def __init__(self, **start):
        super().__init__()
        self.log = nn.ParameterDict(
            {
                name: nn.Parameter(torch.tensor(math.log(value)))
                for name, value in start.items()
            }
        )

    def forward(self):
        """The strengths by name."""
        return {name: value.exp() for name, value in self.log.items()}


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


def prototype_logits(embeddings, prototypes, present, scale=1.0):
    """Minus squared Euclidean distances to the prototypes, times ``scale``.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (..., n_rows, dim)
    prototypes : torch.Tensor of shape (..., n_classes, dim)
    present : torch.Tensor of shape (..., n_classes), dtype=bool
        Classes with a prototype; the others get the most negative finite
        logit of the dtype (probability 0, and no NaN in any precision).
    scale : float or torch.Tensor, default=1.0
        Inverse temperature of the softmax over the logits.

    Returns
    -------
    logits : torch.Tensor of shape (..., n_rows, n_classes)
    """
    diff = embeddings.unsqueeze(-2) - prototypes.unsqueeze(-3)
    logits = -scale * (diff**2).sum(-1)
    return logits.masked_fill(~present.unsqueeze(-2), torch.finfo(logits.dtype).min)


# -------------------------------------------------- MAML fast path for MLPs
# Each activation: its forward, and its backward ``(upstream, z, h) ->
# upstream * f'(z)`` given the pre-activation z and the output h = f(z).
# ReLU's is torch's own backward kernel (``upstream`` where z > 0, else 0;
# differentiable in ``upstream`` for second order): on the CPU much faster
# than the same ``torch.where``.
_ACTIVATIONS = {
    nn.ReLU: (torch.relu, lambda g, z, h: torch.ops.aten.threshold_backward(g, z, 0)),
    nn.Tanh: (torch.tanh, lambda g, z, h: g * (1 - h * h)),
    nn.Identity: (lambda z: z, lambda g, z, h: g),
}


def mlp_layers(module, *, dropout_ok=False):
    """The layers of a plain MLP, or None when ``module`` is anything else.

    A plain MLP is a :class:`skmeta.modules.EmbeddingMLP` (or
    :class:`~skmeta.modules.MLP`) whose layers are ``Linear`` layers with a
    bias, separated by ``ReLU``, ``Tanh`` or ``Identity``. ``Dropout`` layers
    are allowed when inactive (``p=0``, or ``dropout_ok`` for evaluation).
    Its inner-loop gradients can be written in closed form
    (:func:`mlp_inner_loop`).

    Returns
    -------
    layers : list of (weight name, bias name, activation class or None)
        The activation after each ``Linear`` (None after the last).
    """
    from .modules import EmbeddingMLP

    if (
        not isinstance(module, EmbeddingMLP)
        or type(module).forward is not EmbeddingMLP.forward
        or getattr(module, "skip", False)
    ):
        return None
    leaves = [
        (name, layer)
        for name, layer in module.named_modules()
        if not any(True for _ in layer.children())
    ]
    sequence = []
    for name, layer in leaves:
        if isinstance(layer, nn.Dropout):
            if layer.p > 0 and not dropout_ok:
                return None
            continue
        sequence.append((name, layer))
    layers = []
    for i, (name, layer) in enumerate(sequence):
        if i % 2 == 0:
            if type(layer) is not nn.Linear or layer.bias is None:
                return None
            layers.append((f"{name}.weight", f"{name}.bias", None))
        else:
            if type(layer) not in _ACTIVATIONS:
                return None
            layers[-1] = (*layers[-1][:2], type(layer))
    if not layers or len(sequence) % 2 == 0:
        return None
    return layers


def _low_rank_layers(layers, params, n_rows, n_steps, inner_lr):
    """Which weight matrices the inner loop keeps as low-rank updates.

    An inner step changes a weight matrix by a product of the layer's
    back-propagated errors and inputs, of rank at most the number of support
    rows; after ``n_steps`` steps the change has rank at most ``n_steps *
    n_rows``. Keeping it factored is cheaper than materialising one matrix
    per task when that rank is small against the matrix (wide layers); it
    needs one step size per matrix (not Meta-SGD's one per entry).
    """
    if isinstance(inner_lr, dict):
        return set()
    rank = n_steps * n_rows
    return {
        weight
        for weight, _, _ in layers
        if rank * sum(params[weight].shape) < params[weight].numel()
    }


def _linear(h, W0, b, factors):
    """``h @ W.T + b`` for ``W = W0 + U.T @ V`` given as ``factors = (U, V)``
    (or a dense per-task ``W`` given as ``W0`` with ``factors=None``)."""
    if W0.dim() == 2 and b.dim() == 1:
        z = torch.nn.functional.linear(h, W0, b)
    elif h.dim() == 3 and W0.dim() == 3:
        z = torch.baddbmm(b.unsqueeze(-2), h, W0.transpose(-1, -2))
    else:
        z = h @ W0.transpose(-1, -2) + b.unsqueeze(-2)
    if factors is not None:
        U, V = factors
        z = z + (h @ V.transpose(-1, -2)) @ U
    return z


def mlp_inner_loop(
    layers,
    params,
    X,
    y,
    w,
    *,
    inner_lr,
    n_steps,
    first_order,
    prior_strength=0.0,
    n_rows=None,
    low_rank=None,
    adapt_from=0,
    factor_first=None,
):
    """:func:`inner_loop` for a plain MLP and cross-entropy, batched over tasks.

    The support-loss gradients are written in closed form (backpropagation
    by hand), so no :func:`torch.func.grad` runs; the result stays
    differentiable with respect to ``params`` (second order) through those
    formulas. It equals :func:`inner_loop` under :func:`torch.func.vmap` with
    ``criterion=CrossEntropyLoss(reduction="none")`` (the tests compare them).

    An inner step changes a weight matrix by a product of back-propagated
    errors and inputs, of rank at most the number of support rows. The
    change of each weight matrix in ``low_rank`` is kept factored as
    ``U.T @ V`` (its rank grows by the support rows at each step) instead of
    one dense matrix per task, so that wide layers cost in proportion to the
    support rows, not to the matrix (by default: the matrices for which that
    is cheaper, see :func:`_low_rank_layers`).

    Parameters
    ----------
    layers : list
        As returned by :func:`mlp_layers`.
    params : dict of str to torch.Tensor
        Shared starting parameters (no task dimension).
    X : torch.Tensor of shape (n_tasks, n_rows, n_features)
    y, w : torch.Tensor of shape (n_tasks, n_rows)
    inner_lr : float or dict of str to torch.Tensor
    n_steps : int
    first_order : bool
    prior_strength : float or torch.Tensor, default=0.0
    n_rows : torch.Tensor of shape (n_tasks,), default=None
        Effective rows of each task; ``w.sum(-1)`` when None.
    low_rank : set of str, default=None
        Weight matrices kept factored; chosen by cost when None.
    adapt_from : int, default=0
        Layers before this one are not adapted (their output is computed once,
        with the shared parameters): ``len(layers) - 1`` adapts the last layer
        only (ANIL).
    factor_first : bool, default=None
        Keep the change of the first adapted weight matrix as ``A.T @ X``,
        with ``X`` its (fixed) support input: every inner step adds to ``A``
        instead of growing the rank. Its support pre-activations are then
        ``X @ W0.T + (X @ X.T) @ A``, and no weight gradient is formed. Chosen
        when that is cheaper (fewer support rows than twice its inputs) when
        None; not with per-entry step sizes.

    Returns
    -------
    adapted : dict of str to torch.Tensor
        Each adapted bias and dense weight: its per-task tensor; each factored
        weight: the shared starting matrix; each layer not adapted: its shared
        parameters.
    factors : dict of str to (torch.Tensor, torch.Tensor)
        ``(U, V)`` of each factored weight, of shapes ``(n_tasks, rank,
        n_out)`` and ``(n_tasks, rank, n_in)``. :func:`mlp_forward` evaluates
        ``adapted`` with them and :func:`materialize` turns them into
        per-task matrices.
    """
    n_tasks, n_classes = X.shape[0], params[layers[-1][0]].shape[0]
    frozen, layers = layers[:adapt_from], layers[adapt_from:]
    if frozen:
        X = mlp_forward(frozen, params, X)
    if low_rank is None:
        low_rank = _low_rank_layers(layers, params, X.shape[1], n_steps, inner_lr)
    if factor_first is None:
        factor_first = not isinstance(inner_lr, dict) and X.shape[1] < 2 * X.shape[2]
    # The weight kept as A.T @ X (None: none).
    first = layers[0][0] if factor_first else None
    if factor_first:
        # The first adapted layer always sees the same support input X, so
        # its change stays A.T @ X (rank: the support rows).
        X0 = X @ params[first].transpose(-1, -2)
        gram = X @ X.transpose(-1, -2)
    start = params
    adapted, factors = {}, {}
    for weight, bias, _ in frozen:
        adapted[weight], adapted[bias] = params[weight], params[bias]
    for weight, bias, _ in layers:
        if weight == first:
            adapted[weight] = params[weight]
            factors[weight] = (None, X.detach() if first_order else X)
        elif weight in low_rank:
            adapted[weight] = params[weight]
            W = params[weight]
            factors[weight] = (
                W.new_zeros((n_tasks, 0, W.shape[0])),
                W.new_zeros((n_tasks, 0, W.shape[1])),
            )
        else:
            # Shared until the first step makes it per task.
            adapted[weight] = params[weight]
        adapted[bias] = params[bias].expand(n_tasks, *params[bias].shape)
    row_w = (w / w.sum(-1, keepdim=True).clamp_min(1e-12)).unsqueeze(-1)
    onehot = nn.functional.one_hot(y, n_classes).to(X.dtype)
    n = w.sum(-1) if n_rows is None else n_rows
    no_prior = (
        not torch.is_tensor(prior_strength) or not prior_strength.requires_grad
    ) and float(prior_strength) == 0
    data_share = n / (n + prior_strength).clamp_min(1e-12)
    if no_prior:
        data_share = torch.ones_like(data_share)
    prior_share = 1.0 - data_share
    lr_of = inner_lr.__getitem__ if isinstance(inner_lr, dict) else lambda _: inner_lr
    for _ in range(n_steps):
        inputs, pre, h = [], [], X
        for weight, bias, activation in layers:
            inputs.append(h)
            if weight == first:
                z = X0 + adapted[bias].unsqueeze(-2)
                if factors[first][0] is not None:
                    z = z + gram @ factors[first][0]
            else:
                z = _linear(h, adapted[weight], adapted[bias], factors.get(weight))
            pre.append(z)
            h = _ACTIVATIONS[activation][0](z) if activation is not None else z
        delta = (torch.softmax(h, -1) - onehot) * row_w
        new_adapted, new_factors = {}, {}
        for i in range(len(layers) - 1, -1, -1):
            weight, bias, _ = layers[i]
            d, x = (
                (delta.detach(), inputs[i].detach())
                if first_order
                else (
                    delta,
                    inputs[i],
                )
            )
            if i:
                W = adapted[weight]
                upstream = delta @ W
                if weight in factors:
                    U, V = factors[weight]
                    upstream = upstream + (delta @ U.transpose(-1, -2)) @ V
                backward = _ACTIVATIONS[layers[i - 1][2]][1]
                delta = backward(upstream, pre[i - 1], inputs[i])
            lr = lr_of(weight)
            ds = data_share.view(-1, 1, 1)
            if weight == first:
                A = factors[weight][0]
                step = -lr * (d if no_prior else ds * d)
                if A is not None:
                    if not no_prior:
                        A = A * (1 - lr * prior_share.view(-1, 1, 1))
                    step = A + step
                new_factors[weight] = (step, factors[weight][1])
                new_adapted[weight] = adapted[weight]
            elif weight in factors:
                U, V = factors[weight]
                if not no_prior:
                    U = U * (1 - lr_of(weight) * prior_share.view(-1, 1, 1))
                new_factors[weight] = (
                    torch.cat([U, -lr * ds * d], dim=1),
                    torch.cat([V, x], dim=1),
                )
                new_adapted[weight] = adapted[weight]
            else:
                W = adapted[weight]
                if not no_prior:
                    decay = lr * prior_share.view(-1, 1, 1)
                    W, d_w = W - decay * (W - start[weight]), ds * d
                else:
                    d_w = d
                if not torch.is_tensor(lr):  # one fused W - lr * d_w.T @ x
                    new_adapted[weight] = torch.baddbmm(
                        W, d_w.transpose(-1, -2), x, alpha=-lr
                    )
                else:
                    new_adapted[weight] = W - lr * (d_w.transpose(-1, -2) @ x)
            gb = d.sum(-2)
            b = adapted[bias]
            lr = lr_of(bias)
            if no_prior and not torch.is_tensor(lr):
                new_adapted[bias] = torch.add(b, gb, alpha=-lr)
            else:
                step = data_share.view(-1, 1) * gb
                if not no_prior:
                    step = step + prior_share.view(-1, 1) * (b - start[bias])
                new_adapted[bias] = b - lr * step
        # Keep the parameters' order (the module's), for the per-task states.
        new_adapted.update(
            {name: adapted[name] for name in adapted if name not in new_adapted}
        )
        adapted = {name: new_adapted[name] for name in start if name in new_adapted}
        factors = new_factors
    if first is not None and factors[first][0] is None:  # no step taken
        del factors[first]
    for weight, _, _ in layers:
        if weight not in factors and adapted[weight].dim() == 2:  # no step taken
            adapted[weight] = adapted[weight].expand(n_tasks, *adapted[weight].shape)
    return adapted, factors


def mlp_forward(layers, adapted, X, factors=None):
    """Batched MLP forward pass: ``X`` of shape (n_tasks, n_rows, n_features).

    ``adapted`` holds one set of weights per task (leading dimension) or one
    shared set (no leading dimension); ``factors`` the factored weight changes
    of :func:`mlp_inner_loop`, if any.
    """
    factors = {} if factors is None else factors
    h = X
    for weight, bias, activation in layers:
        h = _linear(h, adapted[weight], adapted[bias], factors.get(weight))
        if activation is not None:
            h = _ACTIVATIONS[activation][0](h)
    return h


def materialize(adapted, factors):
    """Per-task parameters: each factored weight becomes ``W0 + U.T @ V``."""
    out = dict(adapted)
    for weight, (U, V) in factors.items():
        out[weight] = adapted[weight] + U.transpose(-1, -2) @ V
    return out
