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
small (few rows) and batched, and no per-problem Python loop runs. Where a
problem has fewer features than rows it is solved in the features' space
instead (:func:`shrunk_logistic` picks the smaller, with the same optimum).
For two classes the logits' difference carries everything: a logistic
regression on it with the penalty halved (the two classes' changes are
opposite), solved in one column. A cross-validation's problems (every fold
and penalty of a task) share the task's rows: in the features' space they
are solved together, with a task's matrix products for all of them
(:func:`_binary_primal_shared`).
"""

import numpy as np
import torch
from torch import nn

# Newton iterations; the step sizes tried by the line search at each (down
# to 1/4096: with a small penalty and separable rows the full steps overshoot
# far).
_NEWTON_ITERATIONS = 20
# Stop when every gradient (in the rows' space) is below this.
_TOLERANCE = 1e-6
_STEPS = torch.tensor([2.0**-i for i in range(13)] + [0.0], dtype=torch.float64)
# Below this many variables in a batch the line search tries every step size
# in one pass (the call's cost is its operations' dispatch); above, the full
# step first (see _newton).
_ONE_PASS_SEARCH = 2**13

# The per-task heads: the penalties tried (and infinity: the prior head), the
# folds, the rows of a task used to choose the penalty (the cost of the
# choice grows with their cube) and to fit the head, and the most floats of a
# problem's kernel or line search (problems times max(rows^2, 14 rows)) held at
# once.
_HEAD_PENALTIES = torch.tensor(
    [10.0 ** (k / 2) for k in range(-4, 9)], dtype=torch.float64
)
_HEAD_FOLDS = 5
_HEAD_CV_ROWS = 40
_HEAD_ROWS = 256
_HEAD_BUDGET = 2**20
# Most floats of the Newton systems built and factored at once (_spd_solve).
_SOLVE_CHUNK = 2**17


def _head_dtype(device):
    """The heads are fitted in float64, or float32 where the device has no
    float64 (Apple's MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def head_order(w):
    """Each task's rows for its head: rows of weight 0 (padding) last, the
    others in a fixed scrambled order of their slots (independent of the
    batch a task is in)."""
    slot = torch.arange(w.shape[-1], device=w.device)
    scrambled = (slot * 2654435761) % 2**32
    return torch.where(w > 0, scrambled, 2**40).argsort(-1)


def cv_rows(y, w, n_classes):
    """The rows each task's penalty is chosen on: its head order's first
    ``_HEAD_CV_ROWS`` (``order``, ``rows``), their classes and weights, the
    one-hot of their classes (0 for rows of weight 0) and the rows of each
    task's rarest class (``n_min``)."""
    order = head_order(w)
    rows = order[:, : min(w.shape[-1], _HEAD_CV_ROWS)]
    cv_y, cv_w = y.gather(1, rows), w.gather(1, rows)
    onehot = nn.functional.one_hot(cv_y, n_classes) * (cv_w > 0)[..., None]
    return order, rows, cv_y, cv_w, onehot, onehot.sum(1).min(-1).values


def cv_chunk(m):
    """Tasks per batch of the penalty's cross-validation on ``m`` rows."""
    n_problems = _HEAD_FOLDS * len(_HEAD_PENALTIES)
    return max(1, _HEAD_BUDGET // (n_problems * max(m * m, 14 * m)))


def stratified_folds(onehot, n_min, w):
    """Masks ``(fit, held_out, used)`` of shape (T, _HEAD_FOLDS, m) of each
    task's stratified folds: ``K = min(_HEAD_FOLDS, n_min)`` folds, the r-th
    row of a class in fold r mod K (folds from K on are empty)."""
    rank = (onehot.cumsum(1) * onehot).sum(-1) - 1
    n_folds = n_min.clamp(max=_HEAD_FOLDS)
    fold = rank % n_folds[:, None]
    folds = torch.arange(_HEAD_FOLDS, device=w.device)
    used = (folds < n_folds[:, None])[..., None] & (w > 0)[:, None]
    held_out = used & (fold[:, None] == folds[:, None])  # (T, F, m)
    return used & ~held_out, held_out, used


class CVFolds:
    """The rows and stratified folds on which each padded task's head
    chooses its penalty (:func:`cv_rows`, :func:`stratified_folds`), for
    heads whose folds adapt a model to each fold's rows: ``tasks`` are those
    with at least two rows of every class."""

    def __init__(self, y, w, n_classes):
        order, rows, cv_y, cv_w, onehot, n_min = cv_rows(y, w, n_classes)
        self.order, self.rows, self.y, self.w = order, rows, cv_y, cv_w
        self.onehot, self.n_min = onehot, n_min
        self.tasks = (n_min >= 2).nonzero().flatten()

    def chunks(self, max_tasks):
        """The tasks in batches of the cross-validation's size."""
        m = self.rows.shape[1]
        per_chunk = min(cv_chunk(m), max(1, max_tasks // _HEAD_FOLDS))
        return [
            self.tasks[start : start + per_chunk]
            for start in range(0, len(self.tasks), per_chunk)
        ]

    def masks(self, chunk):
        """``(fit, held_out, used)`` of the tasks ``chunk``."""
        return stratified_folds(self.onehot[chunk], self.n_min[chunk], self.w[chunk])

    def live(self, chunk):
        """Which folds of :meth:`inputs` fit on any row, a mask of shape
        (len(chunk) * _HEAD_FOLDS,): a task has ``min(_HEAD_FOLDS, n_min)``
        folds, the others hold no row (their models need not be adapted)."""
        n_folds = self.n_min[chunk].clamp(max=_HEAD_FOLDS)
        folds = torch.arange(_HEAD_FOLDS, device=n_folds.device)
        return (folds < n_folds[:, None]).reshape(-1)

    def inputs(self, X, chunk):
        """The padded supports ``(X, y, w)`` of the folds of the tasks
        ``chunk``, task by task (shape (len(chunk) * _HEAD_FOLDS, m, ...)):
        a fold holds the task's ``m`` cross-validated rows, those it fits on
        weighted."""
        m, d = self.rows.shape[1], X.shape[-1]
        rows = self.rows[chunk]
        x = X[chunk].gather(1, rows[..., None].expand(-1, -1, d))
        fit = self.masks(chunk)[0]
        xf = x[:, None].expand(-1, _HEAD_FOLDS, -1, -1).reshape(-1, m, d)
        yf = self.y[chunk, None].expand(-1, _HEAD_FOLDS, -1).reshape(-1, m)
        wf = (self.w[chunk, None] * fit).reshape(-1, m)
        return xf, yf, wf


def scatter_folds(live, values):
    """``values`` of the live folds (:meth:`CVFolds.live`) in place, zeros in
    the empty folds (which hold no row: their values are never read)."""
    out = values.new_zeros((len(live),) + values.shape[1:])
    out[live] = values
    return out


def choose_penalty(phi, f0, y, w, fit, held_out, used, tolerance=1.0, max_penalty=None):
    """Each task's penalty by cross-validation (0: the prior head).

    ``phi`` (T, m, p) are the features of the task's rows, ``f0``
    (T, F, m, K) the logits of each fold's prior head on them, ``fit``,
    ``held_out`` and ``used`` the folds' masks (:func:`stratified_folds`).
    Every penalty of ``_HEAD_PENALTIES`` is fitted in every fold; the prior
    head and these heads are scored by their summed held-out cross-entropy,
    and the largest penalty (the prior head first) whose loss is within
    ``tolerance`` standard errors of the smallest wins (the standard error of
    the paired per-row differences); ``tolerance`` is a number or one per
    task, a tensor (T,). ``max_penalty`` (T,), where given, restricts the
    tasks where it is finite to the penalties up to it (see
    :func:`allowed_candidates`).
    """
    candidates, row_loss = cv_losses(phi, f0, y, w, fit, held_out)
    allowed = allowed_candidates(candidates, max_penalty)
    return one_standard_error_choice(
        candidates, row_loss, used.any(1), tolerance, allowed
    )


def allowed_candidates(candidates, max_penalty):
    """Which candidates of :func:`cv_losses` each task may take, a mask
    (T, C), or None (all) where ``max_penalty`` is None.

    A task whose ``max_penalty`` is infinite may take any; one whose
    ``max_penalty`` is finite takes a head of its own (not the prior head),
    of a penalty up to ``max_penalty`` (at least the smallest penalty tried).
    """
    if max_penalty is None:
        return None
    max_penalty = max_penalty.to(candidates)[:, None]
    smallest = candidates[candidates > 0].min()
    capped = (candidates > 0) & (candidates <= max_penalty.clamp_min(smallest))
    return capped | max_penalty.isinf()


def cv_losses(phi, f0, y, w, fit, held_out, solutions=False):
    """The candidates of :func:`choose_penalty` and each row's held-out loss.

    Returns ``candidates`` (C,), the penalties from the largest down with 0
    (the prior head) first, and ``row_loss`` (T, C, m), each row's weighted
    cross-entropy under each candidate in the fold that holds it out. With
    ``solutions``, also each fold's heads' change ``theta - theta_0`` (T, F,
    C, K, p) in the candidates' order (0 for the prior head): a "fold" that
    fits every row and holds none out gives the heads of the task's rows.
    """
    n_tasks, m = y.shape
    n_folds = fit.shape[1]
    n_classes, p = f0.shape[-1], phi.shape[-1]
    penalties = _HEAD_PENALTIES.to(phi.device, phi.dtype)
    n_pen = len(penalties)
    n_fit = int(fit.sum(-1).max())
    if n_classes == 2 and n_fit > p:
        # In the features' space, every fold and penalty of a task at once:
        # they share the task's rows (a fold weighs the rows it fits on).
        h0 = (f0[..., 1] - f0[..., 0])[:, :, None].expand(-1, -1, n_pen, -1)
        fold_w = (w[:, None] * fit)[:, :, None].expand(-1, -1, n_pen, -1)
        u = _binary_primal_shared(
            phi,
            h0.reshape(n_tasks, n_folds * n_pen, m),
            y.to(phi.dtype),
            fold_w.reshape(n_tasks, n_folds * n_pen, m),
            (penalties / 2).repeat(n_folds).expand(n_tasks, -1),
        )
        h = (u @ phi.mT).view(n_tasks, n_folds, n_pen, m, 1)
        change = torch.cat([-h / 2, h / 2], -1)
        u = u.view(n_tasks, n_folds, n_pen, 1, p)
        delta = torch.cat([-u / 2, u / 2], -2) if solutions else None
    else:
        change, delta = _fold_changes(phi, f0, y, w, fit, penalties, n_fit, solutions)
    candidates, row_loss = held_out_losses(f0, change, y, w, held_out, penalties)
    if not solutions:
        return candidates, row_loss
    delta = torch.cat([torch.zeros_like(delta[:, :, :1]), delta.flip(2)], 2)
    return candidates, row_loss, delta


def held_out_losses(f0, change, y, w, held_out, penalties):
    """:func:`cv_losses`'s ``candidates`` and ``row_loss`` from the changes
    ``change`` (T, F, P, m, K) that its heads of the penalties ``penalties``
    (P,) make to the folds' prior logits ``f0`` (T, F, m, K)."""
    logits = torch.cat(
        [f0[:, :, None], f0[:, :, None] + change], 2
    )  # (T, F, 1 + P, m, K): the prior head first
    nll = (
        -logits.log_softmax(-1)
        .gather(-1, y[:, None, None, :, None].expand(*logits.shape[:-1], 1))
        .squeeze(-1)
    )
    # Each used row is held out once: its loss under each candidate.
    row_loss = (nll * (w[:, None] * held_out)[:, :, None]).sum(1)  # (T, C, m)
    # Candidates from the largest penalty down (the prior head first).
    candidates = torch.cat([penalties.new_zeros(1), penalties.flip(0)])
    row_loss = torch.cat([row_loss[:, :1], row_loss[:, 1:].flip(1)], 1)
    return candidates, row_loss


def _fold_changes(phi, f0, y, w, fit, penalties, n_fit, solutions):
    """The logits' changes ``(T, F, P, m, K)`` of :func:`cv_losses`'s heads
    and, with ``solutions``, the heads' changes ``(T, F, P, K, p)``, each
    fold's problems solved on its fitting rows (``n_fit`` at most)."""
    n_tasks, m = y.shape
    n_folds = fit.shape[1]
    n_classes, p = f0.shape[-1], phi.shape[-1]
    # Each fold's problems hold its fitting rows only (a held-out row's
    # coefficients would stay 0): the rows' kernel shrinks from m to the
    # most fitting rows of a fold, and the solves with its cube.
    fit_rows = (~fit).to(torch.int8).sort(dim=-1, stable=True).indices[..., :n_fit]
    # Only the folds that fit on some row are solved (a task of few rows has
    # fewer folds than _HEAD_FOLDS); the others' heads stay the prior's.
    live = fit.any(-1).flatten().nonzero().flatten()
    n_live = len(live)

    def pairs(t):  # (T, F, ...) -> the live folds' (L, ...)
        return t.flatten(0, 1).index_select(0, live)

    def scatter(t):  # the live folds' (L, ...) -> (T, F, ...), 0 elsewhere
        out = t.new_zeros((n_tasks * n_folds,) + t.shape[1:])
        out[live] = t
        return out.view(n_tasks, n_folds, *t.shape[1:])

    fit_w = pairs((w[:, None] * fit).gather(-1, fit_rows))  # (L, n_fit)
    fit_f0 = pairs(f0.gather(-2, fit_rows[..., None].expand(-1, -1, -1, n_classes)))
    fit_y = pairs(y[:, None].expand(-1, n_folds, -1).gather(-1, fit_rows))
    n_pen = len(penalties)
    shape = (n_live, n_pen)
    args = (
        fit_f0[:, None].expand(*shape, n_fit, n_classes).reshape(-1, n_fit, n_classes),
        fit_y[:, None].expand(*shape, n_fit).reshape(-1, n_fit),
        fit_w[:, None].expand(*shape, n_fit).reshape(-1, n_fit),
        penalties.repeat(n_live),
    )
    fit_phi = phi[:, None].expand(-1, n_folds, -1, -1)
    if n_fit > p or solutions:  # each fold's fitting rows' features
        fit_phi = fit_phi.gather(-2, fit_rows[..., None].expand(-1, -1, -1, p))
    if n_fit <= p:  # in the rows' space, one kernel per task
        gram = phi @ phi.mT
        cross = gram[:, None].expand(-1, n_folds, -1, -1)
        cross = cross.gather(-1, fit_rows[:, :, None].expand(-1, -1, m, -1))
        kernel = pairs(cross.gather(-2, fit_rows[..., None].expand(-1, -1, -1, n_fit)))
        kernel = kernel[:, None].expand(*shape, n_fit, n_fit)
        beta = shrunk_logistic_dual(kernel.reshape(-1, n_fit, n_fit), *args)
        beta = scatter(beta.reshape(*shape, n_fit, n_classes))
        change = cross[:, :, None] @ beta
        delta = beta.mT @ fit_phi[:, :, None] if solutions else None
    else:  # in the features' space
        fit_phi = pairs(fit_phi)[:, None].expand(*shape, n_fit, p)
        delta = shrunk_logistic(fit_phi.reshape(-1, n_fit, p), *args)
        delta = scatter(delta.reshape(*shape, n_classes, p))
        change = phi[:, None, None] @ delta.mT
    return change, delta


def one_standard_error_choice(
    candidates, row_loss, rows_used, tolerance=1.0, allowed=None
):
    """The one-standard-error rule over the candidates of :func:`cv_losses`.

    The largest penalty (the first candidate) whose summed loss exceeds the
    smallest by at most ``tolerance`` standard errors of their difference
    (the rows' differences are paired) wins. ``rows_used`` (T, m) marks each
    task's rows; ``tolerance`` is a number or one per task, a tensor (T,);
    ``allowed`` (T, C), where given, the candidates each task may take (the
    rule runs among those; :func:`allowed_candidates`).
    """
    index = one_standard_error_index(row_loss, rows_used, tolerance, allowed)
    return candidates[index]


def one_standard_error_index(row_loss, rows_used, tolerance=1.0, allowed=None):
    """The index of each task's candidate under
    :func:`one_standard_error_choice`."""
    n_tasks = row_loss.shape[0]
    loss = row_loss.sum(-1)
    if allowed is not None:
        loss = loss.masked_fill(~allowed, torch.inf)
    best = loss.argmin(1)
    diff = row_loss - row_loss[torch.arange(n_tasks), best][:, None]
    n_used = rows_used.sum(-1, keepdim=True).to(row_loss.dtype)  # (T, 1)
    rows_used = rows_used[:, None]
    mean = diff.sum(-1) / n_used
    var = ((diff - mean[..., None]) ** 2 * rows_used).sum(-1) / (n_used - 1)
    excess = loss - loss.gather(1, best[:, None])
    if torch.is_tensor(tolerance):
        tolerance = tolerance.to(loss)[:, None]
    within = excess <= tolerance * (var * n_used).sqrt()
    return within.to(torch.int8).argmax(1)


def _newton(G, alpha, newton_step, loss, beta, n_iter, Gbeta=None, dual=True):
    """Newton's method with a line search, in the rows' space (``dual``) or
    in the features' space.

    ``G`` maps the variables ``beta`` to the change of the logits ``Gbeta``
    (the kernel in the rows' space, the features in the features' space).
    ``newton_step(active, G_active, Gbeta, beta)`` gives, for the problems
    ``active`` (indices into the batch, ``G_active`` their ``G``), the
    gradient ``g`` (its size decides convergence) and ``solve(keep,
    G_kept)``, the Newton step of the problems ``keep`` (a mask, None for
    all) still moving, so that a converged problem costs no solve;
    ``loss(active, Gbeta)`` gives their data term (``Gbeta`` may have leading
    dims). The penalty is ``alpha / 2`` times the squared change of the head:
    ``beta . Gbeta`` in the rows' space, ``|beta|^2`` in the features'. The
    logits are linear in the step, so every step size of
    ``_STEPS`` is tried at the cost of one product by ``G``; the one of
    smallest objective wins (0 when none decreases it), per problem (in a
    large batch the smaller steps are tried only where the full step is
    worse than half of it: the objective is convex along the step, so the
    choice is the same). A problem that has converged leaves the batch and
    stays put, so that each problem's iterates do not depend on the others
    of the batch and the work follows the problems still moving (in a
    cross-validation most converge in under half the iterations of the
    slowest).
    """
    steps = _STEPS.to(beta)
    Gbeta = torch.zeros_like(beta) if Gbeta is None else Gbeta
    active = torch.arange(len(beta), device=beta.device)
    for _ in range(n_iter):
        beta_a, Gbeta_a = beta[active], Gbeta[active]
        G_a = G[active] if len(active) < len(G) else G
        g, solve = newton_step(active, G_a, Gbeta_a, beta_a)
        moving = g.flatten(1).abs().amax(1) >= _TOLERANCE
        if moving.all():
            step = solve(None, G_a)
        else:
            active, G_a = active[moving], G_a[moving]
            beta_a, Gbeta_a = beta_a[moving], Gbeta_a[moving]
            if not len(active):
                break
            step = solve(moving, G_a)
        Gstep = _times(G_a, step)
        trial = (loss, alpha, dual, active, beta_a, Gbeta_a, step, Gstep)
        if step.numel() < _ONE_PASS_SEARCH:
            best = _line_values(*trial, steps).argmin(0)
        else:
            # The objective is convex along the step: where the full step
            # is no worse than half of it, no smaller step is better, and
            # the other step sizes are tried only for the other problems.
            first = _line_values(*trial, steps[:2])
            best = torch.zeros(len(active), dtype=torch.long, device=beta.device)
            rest = ~(first[0] <= first[1]) | first[0].isinf()
            if rest.any():
                rows = rest.nonzero().flatten()
                others = _line_values(
                    *trial[:3], *[x[rows] for x in trial[3:]], steps[2:]
                )
                best[rows] = torch.cat([first[:, rows], others]).argmin(0)
        t_best = steps[best].view((-1,) + (1,) * (beta.dim() - 1))
        beta[active] = beta_a + t_best * step
        Gbeta[active] = Gbeta_a + t_best * Gstep
    return beta


def _line_values(loss, alpha, dual, active, beta, Gbeta, step, Gstep, t):
    """The objective of :func:`_newton`'s problems ``active`` at the step
    sizes ``t`` (S,) along ``step``: shape (S, problems), NaN as inf."""
    t = t.view((-1,) + (1,) * beta.dim())
    trial, trial_G = beta + t * step, Gbeta + t * Gstep
    square = trial * (trial_G if dual else trial)
    values = loss(active, trial_G) + 0.5 * alpha[active] * square.flatten(2).sum(-1)
    return torch.nan_to_num(values, nan=torch.inf)


def _kept(keep, *tensors):
    """The tensors' problems ``keep`` (a mask; None keeps them all)."""
    return tensors if keep is None else tuple(t[keep] for t in tensors)


def _spd_solve(matrix, rhs):
    """``M^-1 rhs`` for a batch of symmetric positive definite ``M`` (B, n,
    n), ``rhs`` (B, n), by Cholesky.

    ``matrix(rows)`` builds the matrices of the problems ``rows`` (a slice):
    they are built and factored a chunk of about a megabyte at a time, which
    stays in the CPU's cache (a batch at once is written to fresh memory,
    then read again by the factorisation). A chunk whose factorisation fails
    (not positive definite in floating point), or a device without a
    batched Cholesky, is solved by LU instead: the same solution.
    """
    n_problems, n = rhs.shape
    per_chunk = max(1, _SOLVE_CHUNK // (n * n))
    out = torch.empty_like(rhs)
    for start in range(0, n_problems, per_chunk):
        rows = slice(start, start + per_chunk)
        M = matrix(rows)
        b = rhs[rows, :, None]
        try:
            L, info = torch.linalg.cholesky_ex(M)
        except NotImplementedError:  # e.g. an accelerator without it
            L, info = None, None
        if info is None or bool((info != 0).any()):
            out[rows] = torch.linalg.solve(M, b).squeeze(-1)
        else:
            out[rows] = torch.cholesky_solve(b, L).squeeze(-1)
    return out


def _times(G, beta):
    """``G @ beta`` for ``beta`` of shape (B, n) or (B, n, K)."""
    if beta.dim() == 2:
        return (G @ beta[..., None]).squeeze(-1)
    return G @ beta


def _binary_loss(h0, y, w):
    """The data term of binary problems: ``loss(active, h)``, the weighted
    logistic loss of the logit differences ``h0 + h``."""
    sign = 2.0 * y - 1.0

    def loss(active, h):
        margin = sign[active] * (h0[active] + h)
        return (w[active] * nn.functional.softplus(-margin)).sum(-1)

    return loss


def _multiclass_loss(f0, Y, w):
    """The data term of multiclass problems: ``loss(active, h)``, the
    weighted cross-entropy of the logits ``f0 + h`` (``Y`` one-hot)."""

    def loss(active, h):
        logits = (f0[active] + h).log_softmax(-1)
        return -(w[active] * (Y[active] * logits).sum(-1)).sum(-1)

    return loss


def _binary_dual(G, h0, y, w, alpha, n_iter):
    """``delta`` of shape (B, n): the logit difference is ``h0 + G delta``."""

    def newton_step(active, G_a, Gdelta, delta):
        # (D G + alpha I) step = -g, D the rows' logistic curvatures. With
        # S = D^(1/2), (D G + alpha I)^-1 = (I - S (S G S + alpha I)^-1 S G)
        # / alpha, whose matrix is symmetric positive definite (Cholesky, in
        # large batches, where the factorisations' cost is their arithmetic).
        y_a, w_a, a = y[active], w[active], alpha[active][:, None]
        p = torch.sigmoid(h0[active] + Gdelta)
        g = w_a * (p - y_a) + a * delta

        def solve(keep, G_k):
            g_k, p_k, w_k, a_k = _kept(keep, g, p, w_a, a)
            if G_k.numel() <= _SOLVE_CHUNK:  # a small batch: fewest operations
                M = (w_k * p_k * (1 - p_k))[..., None] * G_k
                M.diagonal(dim1=-2, dim2=-1).add_(a_k)
                return -torch.linalg.solve(M, g_k[..., None]).squeeze(-1)
            s = (w_k * p_k * (1 - p_k)).sqrt()

            def matrix(rows):
                s_r = s[rows]
                M = s_r[..., None] * G_k[rows] * s_r[..., None, :]
                M.diagonal(dim1=-2, dim2=-1).add_(a_k[rows])
                return M

            z = _spd_solve(matrix, s * _times(G_k, g_k))
            return -(g_k - s * z) / a_k

        return g, solve

    delta = torch.zeros_like(h0)
    return _newton(G, alpha, newton_step, _binary_loss(h0, y, w), delta, n_iter)


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

        def solve(keep, G_k):
            g_k, P_k, w_k, a_k = _kept(keep, g, P, w_a, a)
            W = w_k[..., None, None] * (
                torch.diag_embed(P_k) - P_k[..., :, None] * P_k[..., None, :]
            )
            M = W[:, :, :, None, :] * G_k[:, :, None, :, None]
            M = M.reshape(len(g_k), n * K, n * K)
            M.diagonal(dim1=-2, dim2=-1).add_(a_k[:, None])
            step = torch.linalg.solve(M, g_k.reshape(len(g_k), n * K, 1))
            return -step.reshape(len(g_k), n, K)

        return g, solve

    beta = torch.zeros_like(f0)
    return _newton(G, alpha, newton_step, _multiclass_loss(f0, Y, w), beta, n_iter)


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


def _binary_primal(Phi, h0, y, w, alpha, n_iter):
    """``u`` of shape (B, p): the logit difference is ``h0 + Phi u``."""

    def newton_step(active, Phi_a, h, u):
        # (Phi^T D Phi + alpha I) step = -g, D the rows' curvatures.
        y_a, w_a, a = y[active], w[active], alpha[active][:, None]
        p = torch.sigmoid(h0[active] + h)
        g = (Phi_a.mT @ (w_a * (p - y_a))[..., None]).squeeze(-1) + a * u

        def solve(keep, Phi_k):
            g_k, p_k, w_k, a_k = _kept(keep, g, p, w_a, a)
            d = w_k * p_k * (1 - p_k)

            def matrix(rows):
                Phi_r = Phi_k[rows]
                M = Phi_r.mT @ (d[rows][..., None] * Phi_r)
                M.diagonal(dim1=-2, dim2=-1).add_(a_k[rows])
                return M

            return -_spd_solve(matrix, g_k)

        return g, solve

    u = h0.new_zeros(Phi.shape[0], Phi.shape[-1])
    loss = _binary_loss(h0, y, w)
    return _newton(
        Phi, alpha, newton_step, loss, u, n_iter, torch.zeros_like(h0), dual=False
    )


def _binary_primal_shared(Phi, h0, y, w, alpha, n_iter=_NEWTON_ITERATIONS):
    """``u`` of shape (T, Q, p) for Q binary problems per task that share
    the task's rows: the logit difference of problem ``q`` of task ``t`` is
    ``h0[t, q] + Phi[t] u[t, q]``, its data term weighted by ``w[t, q]``.

    The problems of :func:`cv_losses` (every fold and penalty of a task)
    differ only in their rows' weights, offsets and penalties, so the
    products by the rows' features are a task's matrix products, one for
    all its problems, rather than a small product per problem, and the
    Newton matrices ``Phi^T D Phi`` are the curvatures ``D`` times each
    row's outer product ``phi phi^T``, computed once. The iterates are
    those of :func:`_binary_primal` (the same Newton steps and line search;
    a problem whose gradient is below ``_TOLERANCE`` stays put), up to
    floating-point rounding.

    ``Phi`` (T, m, p); ``h0`` and ``w`` (T, Q, m); ``y`` (T, m), 0 or 1;
    ``alpha`` (T, Q), positive and finite (rows of weight 0 do not count).
    """
    n_tasks, m, p = Phi.shape
    n_problems = h0.shape[1]
    steps = _STEPS.to(Phi)
    # Each row's outer product, its lower triangle (the matrices are
    # symmetric), and where those entries sit in a flattened (p, p) matrix.
    low = torch.tril_indices(p, p, device=Phi.device)
    outer = Phi[..., low[0]] * Phi[..., low[1]]  # (T, m, p (p + 1) / 2)
    places = torch.stack([low[0] * p + low[1], low[1] * p + low[0]])
    y = y[:, None]
    u = Phi.new_zeros(n_tasks, n_problems, p)
    h = torch.zeros_like(h0)
    tasks = torch.arange(n_tasks, device=Phi.device)
    # The tasks still moving, and their inputs (gathered anew when some stop).
    inputs = (Phi, outer, h0, y, w, alpha)
    for _ in range(n_iter):
        Phi_a, outer_a, h0_a, y_a, w_a, a = inputs
        u_a, h_a = (u, h) if len(tasks) == n_tasks else (u[tasks], h[tasks])
        prob = torch.sigmoid(h0_a + h_a)
        g = (w_a * (prob - y_a)) @ Phi_a + a[..., None] * u_a
        moving = g.abs().amax(-1) >= _TOLERANCE  # (t, Q)
        keep = moving.any(1)
        if not keep.all():
            tasks, moving, g, prob = tasks[keep], moving[keep], g[keep], prob[keep]
            if not len(tasks):
                break
            inputs = tuple(x[keep] for x in inputs)
            Phi_a, outer_a, h0_a, y_a, w_a, a = inputs
            u_a, h_a = u[tasks], h[tasks]
        n_a = len(tasks)
        # The Newton steps of the problems still moving (0 for the others).
        rows = moving.flatten().nonzero().flatten()
        lower = ((w_a * prob * (1 - prob)) @ outer_a).flatten(0, 1)[rows]
        M = lower.new_empty(len(rows), p * p)
        M.index_copy_(1, places[0], lower).index_copy_(1, places[1], lower)
        M = M.view(-1, p, p)
        M.diagonal(dim1=-2, dim2=-1).add_(a.flatten()[rows, None])
        solved = _spd_solve(M.__getitem__, g.flatten(0, 1).index_select(0, rows))
        step = torch.zeros_like(u_a).flatten(0, 1)
        step[rows] = -solved
        step = step.view(n_a, n_problems, p)
        Gstep = step @ Phi_a.mT  # (t, Q, m)

        # The line search of _newton's large batches, on the problems
        # flattened: where the full step is no worse than half of it (the
        # objective is convex along the step), no smaller step is better.
        flat = [x.flatten(0, 1) for x in (h0_a, y_a.expand_as(h0_a), w_a)]
        trial = (_binary_loss(*flat), a.flatten(), False)
        moves = [x.flatten(0, 1) for x in (u_a, h_a, step, Gstep)]
        first = _line_values(*trial, slice(None), *moves, steps[:2])
        best = torch.zeros(n_a * n_problems, dtype=torch.long, device=Phi.device)
        rest = (~(first[0] <= first[1]) | first[0].isinf()) & moving.flatten()
        if rest.any():
            index = rest.nonzero().flatten()
            others = _line_values(*trial, index, *[x[index] for x in moves], steps[2:])
            best[index] = torch.cat([first[:, index], others]).argmin(0)
        best = best.view(n_a, n_problems)
        t_best = steps[best][..., None]
        u_new, h_new = u_a + t_best * step, h_a + t_best * Gstep
        if n_a == n_tasks:
            u, h = u_new, h_new
        else:
            u[tasks], h[tasks] = u_new, h_new
    return u


def _multiclass_primal(Phi, f0, y, w, alpha, n_iter):
    """``v`` of shape (B, p, K): the logits are ``f0 + Phi v``."""
    B, n, K = f0.shape
    p = Phi.shape[-1]
    Y = nn.functional.one_hot(y, K).to(f0.dtype)

    def newton_step(active, Phi_a, h, v):
        # H[(a,k),(b,l)] = sum_i Phi_ia Phi_ib W_i[k,l] + alpha 1[(a,k)=(b,l)].
        w_a, a = w[active], alpha[active]
        P = (f0[active] + h).softmax(-1)
        g = Phi_a.mT @ (w_a[..., None] * (P - Y[active])) + a[:, None, None] * v

        def solve(keep, Phi_k):
            g_k, P_k, w_k, a_k = _kept(keep, g, P, w_a, a)
            W = w_k[..., None, None] * (
                torch.diag_embed(P_k) - P_k[..., :, None] * P_k[..., None, :]
            )

            def matrix(rows):
                Phi_r = Phi_k[rows]
                M = torch.einsum("bia,bic,bikl->bakcl", Phi_r, Phi_r, W[rows])
                M = M.reshape(len(Phi_r), p * K, p * K)
                M.diagonal(dim1=-2, dim2=-1).add_(a_k[rows][:, None])
                return M

            step = _spd_solve(matrix, g_k.reshape(len(g_k), p * K))
            return -step.reshape(len(g_k), p, K)

        return g, solve

    v = f0.new_zeros(B, p, K)
    loss = _multiclass_loss(f0, Y, w)
    return _newton(
        Phi, alpha, newton_step, loss, v, n_iter, torch.zeros_like(f0), dual=False
    )


def shrunk_logistic(phi, f0, y, w, alpha, n_iter=_NEWTON_ITERATIONS):
    """The change ``theta - theta_0`` of the shrunk logistic heads of a batch.

    Solved in the rows' space (:func:`shrunk_logistic_dual`) or, where the
    problems have fewer features than rows, in the features' space: the
    objective is strictly convex, so both reach the same optimum.

    Parameters
    ----------
    phi : torch.Tensor of shape (B, n, p)
        Features of each problem's rows.
    f0, y, w, alpha
        As in :func:`shrunk_logistic_dual`.

    Returns
    -------
    delta : torch.Tensor of shape (B, K, p)
        The logits of any row ``phi`` are ``theta_0 phi + delta phi``.
    """
    n, p = phi.shape[-2:]
    if n <= p:
        beta = shrunk_logistic_dual(phi @ phi.mT, f0, y, w, alpha, n_iter)
        return beta.mT @ phi
    if f0.shape[-1] == 2:
        h0 = f0[..., 1] - f0[..., 0]
        u = _binary_primal(phi, h0, y.to(phi.dtype), w, alpha / 2, n_iter)
        return torch.stack([-u / 2, u / 2], -2)
    return _multiclass_primal(phi, f0, y, w, alpha, n_iter).mT


# How far the training tasks' linear models spread around the pooled one
# (task_spread): the tasks counted need this many rows of each class; at most
# _SPREAD_ROWS of a class and _SPREAD_TASKS tasks are used, and the fits are
# ridge logistic regressions of this penalty on standardised columns.
_SPREAD_MIN_ROWS = 10
_SPREAD_ROWS = 100
_SPREAD_TASKS = 1000
_SPREAD_PENALTY = 1.0
_SPREAD_POOLED_ROWS = 20000


def task_spread(X, y, w, task, seed, device=None):
    """Between-task variance of linear models, beyond their sampling noise.

    For two classes, fits a ridge logistic regression (on standardised
    columns and an intercept) to the pooled rows of the tasks counted, with
    coefficients ``u``, and to each half of each such task's rows (split
    within each class) a ridge logistic regression shrunk toward ``u``, with
    changes ``d_A``, ``d_B`` from it (shrunk toward the pooled coefficients
    rather than 0, so that neither shrinkage nor the small-sample inflation
    of a logistic fit's coefficients acts along ``u``). The halves' errors
    are independent, so the mean over tasks of ``d_A . d_B``, divided by the
    number of coefficients, estimates the variance ``tau2`` of a task's
    coefficients around the pooled ones without the noise of fitting them (a
    method-of-moments, empirical-Bayes estimate; about 0, or negative, where
    the tasks differ less than their noise). The ridge shrinks the changes
    of small tasks, so ``tau2`` errs low where tasks have few rows.

    Returns ``(tau2, curvature, n_tasks)``: ``curvature`` is the mean
    ``p (1 - p)`` of the pooled model on its rows, so that a task's
    coefficients fitted on ``n`` rows have a sampling variance of about
    ``1 / (n curvature)`` each; ``n_tasks`` the tasks counted. ``tau2`` is
    NaN where fewer than two tasks have ``_SPREAD_MIN_ROWS`` rows of each
    class.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    _, inverse = np.unique(task, return_inverse=True)
    n_keys = int(inverse.max()) + 1 if len(inverse) else 0
    counts = np.zeros((n_keys, 2), dtype=np.int64)
    np.add.at(counts, (inverse, y), 1)
    eligible = np.flatnonzero(counts.min(1) >= _SPREAD_MIN_ROWS)
    if len(eligible) < 2:
        return np.nan, np.nan, len(eligible)
    if len(eligible) > _SPREAD_TASKS:
        eligible = np.sort(rng.choice(eligible, _SPREAD_TASKS, replace=False))
    # Each counted task's rows, up to _SPREAD_ROWS per class in a random
    # order, alternately in two halves.
    order = np.lexsort((rng.random(len(y)), y, inverse))
    cells = inverse[order] * 2 + y[order]
    starts = np.searchsorted(cells, np.arange(2 * n_keys))
    ends = np.append(starts[1:], len(order))
    halves = ([], [])
    for t in eligible:
        rows = [order[starts[c] : ends[c]][:_SPREAD_ROWS] for c in (2 * t, 2 * t + 1)]
        halves[0].append(np.concatenate([r[::2] for r in rows]))
        halves[1].append(np.concatenate([r[1::2] for r in rows]))
    used = np.concatenate(halves[0] + halves[1])
    dtype = torch.float64
    Z = torch.as_tensor(np.asarray(X)[used], dtype=dtype, device=device)
    std = Z.std(0)
    Z = (Z - Z.mean(0)) / torch.where(std > 0, std, 1.0)
    Z = torch.cat([Z, Z.new_ones(len(used), 1)], 1)
    Y = torch.as_tensor(y[used], device=device)
    W = torch.as_tensor(np.asarray(w)[used], dtype=dtype, device=device)
    position = np.empty(len(y), dtype=np.int64)
    position[used] = np.arange(len(used))

    def fit(problems, offset=None):
        """Ridge logistic coefficients of the logit difference, one row of
        coefficients per set of rows in ``problems``, padded in one batch;
        with ``offset`` (coefficients), shrunk toward them instead of 0 (the
        change from them)."""
        m = max(len(rows) for rows in problems)
        index = np.zeros((len(problems), m), dtype=np.int64)
        valid = np.zeros((len(problems), m), dtype=bool)
        for i, rows in enumerate(problems):
            index[i, : len(rows)] = position[rows]
            valid[i, : len(rows)] = True
        index = torch.as_tensor(index, device=Z.device)
        weight = W[index] * torch.as_tensor(valid, device=Z.device)
        phi = Z[index]
        f0 = phi.new_zeros(len(problems), m, 2)
        if offset is not None:
            f0[..., 1] = phi @ offset
        alpha = phi.new_full((len(problems),), _SPREAD_PENALTY)
        delta = shrunk_logistic(phi, f0, Y[index], weight, alpha)
        return delta[:, 1] - delta[:, 0]

    sample = used
    if len(sample) > _SPREAD_POOLED_ROWS:
        sample = rng.choice(used, _SPREAD_POOLED_ROWS, replace=False)
    pooled = fit([sample])[0]
    p1 = torch.sigmoid(Z[position[sample]] @ pooled)
    weight = W[position[sample]]
    curvature = float((weight * p1 * (1 - p1)).sum() / weight.sum())
    n = len(eligible)
    per_chunk = max(1, 2**21 // (2 * _SPREAD_ROWS * Z.shape[1]))
    products = []
    for start in range(0, n, per_chunk):
        chunk = range(start, min(n, start + per_chunk))
        u = fit([halves[0][i] for i in chunk] + [halves[1][i] for i in chunk], pooled)
        k = len(chunk)
        products.append((u[:k] * u[k:]).sum(1))
    tau2 = float(torch.cat(products).mean()) / Z.shape[1]
    return tau2, curvature, n
