"""The training tasks' mixture that a new group borrows (``task_mixture``).

After ``fit`` every training task keeps its adapted model. They are draws
from the distribution of groups, so they give an empirical prior over group
models: a new group whose support rows ``S`` are likely under training task
``t`` may be served by its model. The mixture predicts
``sum_t w_t p_t(y | x)`` with ``w_t`` proportional to
``p_t(S) = prod_{i in S} (q_t(x_i) p_t(y_i | x_i)) ** weight_i`` (a uniform
prior over the training tasks, each row's class likelihood clipped at
``_MIN_PROBA``), the Bayes predictive under that prior, kept to its ``_TOP``
largest weights. ``q_t`` is a diagonal Gaussian density of the columns, its
means and variances those of task ``t``'s rows at ``fit``, each variance
widened by the pooled rows' (:func:`covariate_moments`): groups that differ
in where their rows lie, not only in how they are labelled, are told apart
from a row or two, and the widening keeps one column a task never varies
(a one-hot category) from deciding alone. Where the columns tell groups
apart but not their labels, ``q_t`` misleads, so it is used only where the
left-out training tasks say it pays (:func:`use_columns`; ``q_t = 1``
otherwise). A
new group's prediction averages it with the group's own adapted model:
``a * mixture + (1 - a) * own``, in class probabilities before the class
prior. The group's share ``a`` is the fitted share as prior odds updated by
the cross-validated evidence of its rows (:func:`cv_evidence`,
:func:`group_share`).

``task_mixture="auto"`` chooses the fitted share at the end of ``fit`` from
``GRID`` by leaving training tasks out: for each of up to ``_LOO_TASKS``
training tasks with at least ``max(_LOO_SHOTS) + 5`` rows of every class,
``_LOO_DRAWS`` supports of ``max(_LOO_SHOTS)`` rows per class, each also cut
to its first rows of each class for the other sizes of ``_LOO_SHOTS`` (one
row per class: the share must serve the smallest new groups, whose rows say
least about their labels, as well as larger ones), its own model adapted to
each support as a new group's would be, the mixture over the other training
tasks, the group's share by the rule above; the smallest share within one
standard error of the best mean balanced accuracy on up to ``_LOO_QUERY`` of
its other rows (the same for every size), over the draws of every size, wins
(:func:`choose_share`), once without ``q_t`` and once with it. The functions
here are the tensor algebra; the estimator supplies the models'
log-probabilities.
"""

import math

import numpy as np
import torch

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
_TOP = 16  # components kept per new group
_MAX_COMPONENTS = 256  # training tasks in the mixture (the largest)
_MIN_TASKS = 5  # training tasks to leave out before "auto" mixes at all
_LOO_TASKS = 64
_LOO_SHOTS = (1, 5)  # rows per class of the left-out supports
_LOO_DRAWS = 2
_LOO_QUERY = 200
_MIN_PROBA = 1e-6
# Most floats of a chunk of rows in _weighted_moments (float64: 128 MB).
_MOMENT_FLOATS = 2**24
_MAX_SHARE = 0.9  # a fitted share of 1 as prior odds

# The keys of the mixture in an estimator's ``states_``.
SHARE, INDEX, WEIGHT = "mixture_share", "mixture_index", "mixture_weight"
KEYS = (SHARE, INDEX, WEIGHT)
# A transient key of the states ``_adapt_states`` returns (never stored):
# each task's held-out log-likelihoods under its own model of each head fold,
# which an estimator whose head adapts the model to the folds has computed
# already (shape (n_tasks, n_folds, n_cv_rows), NaN for tasks without folds).
OWN = "own_fold_log_likelihood"


def row_log_likelihood(log_proba, y):
    """Each row's log-likelihood of its class under each component, at least
    ``log _MIN_PROBA``: shape (n_tasks, n_rows, n_components), float64.

    ``log_proba`` of shape (n_tasks, n_rows, n_components, n_classes), ``y``
    of shape (n_tasks, n_rows).
    """
    index = y[:, :, None, None].expand(-1, -1, log_proba.shape[2], 1)
    row = log_proba.gather(-1, index).squeeze(-1).to(torch.float64)
    return row.clamp_min(math.log(_MIN_PROBA))


def own_log_likelihood(logits, y):
    """Each row's log-probability of its class under each fold's own model,
    at least ``log _MIN_PROBA``: shape (n_tasks, n_folds, n_rows), float64.

    ``logits`` of shape (n_tasks, n_folds, n_rows, n_classes), ``y`` of
    shape (n_tasks, n_rows).
    """
    index = y[:, None, :, None].expand(*logits.shape[:-1], 1)
    row = logits.log_softmax(-1).gather(-1, index).squeeze(-1).to(torch.float64)
    return row.clamp_min(math.log(_MIN_PROBA))


def _weighted_moments(X, w, chunk=65536):
    """Weighted column means and variances of the rows ``X``, accumulated
    in float64 a chunk of rows at a time (no float64 copy of ``X``; fewer
    rows per chunk for wide rows, at most ``_MOMENT_FLOATS`` floats)."""
    d = X.shape[1]
    chunk = max(1, min(chunk, _MOMENT_FLOATS // max(1, d)))
    total, first, second = 0.0, np.zeros(d), np.zeros(d)
    for start in range(0, len(X), chunk):
        x = np.asarray(X[start : start + chunk], dtype=np.float64)
        wc = np.asarray(w[start : start + chunk], dtype=np.float64)
        total += wc.sum()
        first += wc @ x
        second += wc @ (x * x)
    total = max(total, 1e-12)
    mean = first / total
    return mean, np.maximum(second / total - mean * mean, 0.0)


def covariate_moments(X, w, rows):
    """Means and widened variances of the columns of each component's rows.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The training tasks' rows.
    w : ndarray of shape (n,)
        Row weights (0: not counted).
    rows : list of ndarray
        Each component's rows (indices into ``X``).

    Returns
    -------
    mean, var : ndarray of shape (n_components, d), float64
        Each component's weighted column means and variances, the weighted
        variances of all the rows of ``X`` added to the latter (each at
        least ``1e-6``).
    """
    _, pooled_var = _weighted_moments(X, w)
    mean = np.zeros((len(rows), X.shape[1]))
    var = np.zeros_like(mean)
    for i, r in enumerate(rows):
        mean[i], var[i] = _weighted_moments(X[r], w[r])
    return mean, var + np.maximum(pooled_var, 1e-6)


def covariate_log_likelihood(X, mean, var):
    """Each row's log-density under each component's diagonal Gaussian.

    ``X`` of shape (..., d); ``mean`` and ``var`` of shape (n_components,
    d) (:func:`covariate_moments`). Returns shape (..., n_components),
    float64: ``-1/2 sum_j ((x_j - mean_cj)^2 / var_cj + log(2 pi var_cj))``.
    """
    X = X.to(torch.float64)
    mean = torch.as_tensor(mean, dtype=torch.float64, device=X.device)
    var = torch.as_tensor(var, dtype=torch.float64, device=X.device)
    # Expanded: ((x - m)^2 / v).sum = x^2 . (1/v) - 2 x . (m/v) + (m^2/v).sum
    inv = 1.0 / var
    quadratic = (X * X) @ inv.T - 2.0 * X @ (mean * inv).T + (mean * mean * inv).sum(-1)
    log_norm = torch.log(2 * math.pi * var).sum(-1)
    return -0.5 * (quadratic.clamp_min(0.0) + log_norm)


def cv_evidence(row_ll, w, fit, held_out, own_held_out, excluded=None, row_lx=None):
    """The cross-validated evidence for the mixture against the own model.

    For each fold the mixture's weights come from the fold's fitting rows
    (their classes' and, with ``row_lx``, their columns' likelihoods; its
    ``_TOP`` most likely components); each held-out row scores the log
    of the mixture's probability of its class minus the own model's (adapted
    to the fold's fitting rows); the evidence is their weighted sum.

    Parameters
    ----------
    row_ll : tensor of shape (n_tasks, n_rows, n_components)
        :func:`row_log_likelihood` of the rows.
    w : tensor of shape (n_tasks, n_rows)
        Row weights.
    fit, held_out : tensor of shape (n_tasks, n_folds, n_rows), bool
        The folds' fitting and held-out rows.
    own_held_out : tensor of shape (n_tasks, n_folds, n_rows)
        Each row's log-probability of its class under the own model of each
        fold (only its held-out rows are read).
    excluded : tensor of shape (n_tasks, n_components), bool, default=None
        Components left out of the mixture.
    row_lx : tensor of shape (n_tasks, n_rows, n_components), default=None
        Each row's :func:`covariate_log_likelihood`, added to the weights'.

    Returns
    -------
    tensor of shape (n_tasks,), float64
    """
    w = w.to(torch.float64)
    weighing = row_ll if row_lx is None else row_ll + row_lx
    fold_ll = torch.einsum("tfm,tmc->tfc", fit * w[:, None], weighing)
    if excluded is not None:
        fold_ll = fold_ll.masked_fill(excluded[:, None], -math.inf)
    index, weight = top_posterior(fold_ll)  # (T, F, top)
    chosen = row_ll[:, None].expand(-1, fit.shape[1], -1, -1)
    chosen = chosen.gather(3, index[:, :, None].expand(-1, -1, row_ll.shape[1], -1))
    mixture = torch.logsumexp(chosen + weight.log()[:, :, None], -1)  # (T, F, m)
    difference = (mixture - own_held_out.to(torch.float64)) * w[:, None]
    return torch.where(held_out, difference, 0.0).sum((1, 2))


def group_share(share, evidence):
    """A group's share of the mixture: the fitted share as prior odds (1
    counts as ``_MAX_SHARE``) updated by the group's evidence, ``sigmoid(
    logit(share) + evidence)``; 0 where the fitted share is 0."""
    share = torch.as_tensor(share, dtype=torch.float64)
    prior = share.clamp(max=_MAX_SHARE)
    logit = prior.log() - torch.log1p(-prior)
    out = torch.sigmoid(logit + evidence.to(torch.float64))
    return torch.where(share > 0, out, 0.0)


def support_log_likelihood(log_proba, y, w):
    """Each component's log-likelihood of each task's support rows.

    Parameters
    ----------
    log_proba : tensor of shape (n_tasks, n_rows, n_components, n_classes)
        The components' log-probabilities of the (padded) support rows.
    y : tensor of shape (n_tasks, n_rows)
        Classes, as positions.
    w : tensor of shape (n_tasks, n_rows)
        Row weights (0: padding).

    Returns
    -------
    tensor of shape (n_tasks, n_components), float64
        ``sum_i w_i * max(log p_c(y_i | x_i), log _MIN_PROBA)``.
    """
    row = row_log_likelihood(log_proba, y)
    return (row * w[..., None].to(torch.float64)).sum(1)


def top_posterior(log_likelihood, top=_TOP):
    """The ``top`` components of largest posterior weight under a uniform
    prior, and their weights renormalised to sum to 1.

    Returns ``(index, weight)``, each of shape ``(n_tasks, min(top,
    n_components))``; ``weight`` is float64.
    """
    top = min(top, log_likelihood.shape[-1])
    values, index = log_likelihood.topk(top, dim=-1)
    return index, torch.softmax(values, -1)


def mix_log_proba(own_log_proba, component_log_proba, weight, share):
    """Log-probabilities of ``share * mixture + (1 - share) * own``.

    Parameters
    ----------
    own_log_proba : tensor of shape (n, n_classes)
    component_log_proba : tensor of shape (n, n_top, n_classes)
    weight : tensor of shape (n, n_top)
        Each row's mixture weights (summing to 1).
    share : tensor of shape (n,)
        The mixture's share, in [0, 1].
    """
    log_w = weight.to(component_log_proba.dtype).log()
    mixture = torch.logsumexp(component_log_proba + log_w[..., None], 1)
    share = share.to(own_log_proba.dtype)[:, None]
    return torch.logaddexp(share.log() + mixture, torch.log1p(-share) + own_log_proba)


def balanced_accuracy(proba, y, n_classes):
    """Balanced accuracy of the predictions ``argmax(proba)`` per draw.

    ``proba`` of shape (..., n_rows, n_classes), ``y`` of shape
    (..., n_rows) with -1 for padding rows. The recall of each class present
    among the rows, averaged over those classes.
    """
    predicted = proba.argmax(-1)
    valid = y >= 0
    recalls = []
    present = []
    for c in range(n_classes):
        of_class = (y == c) & valid
        n = of_class.sum(-1)
        hit = (of_class & (predicted == c)).sum(-1)
        recalls.append(hit / n.clamp_min(1))
        present.append(n > 0)
    recalls = torch.stack(recalls, -1).to(torch.float64)
    present = torch.stack(present, -1)
    return (recalls * present).sum(-1) / present.sum(-1).clamp_min(1)


def choose_share(
    own_proba,
    component_log_proba,
    support_ll,
    excluded,
    y_query,
    evidence,
    *,
    per_draw=False,
):
    """The grid share that serves the left-out supports best.

    Parameters
    ----------
    own_proba : tensor of shape (n_draws, n_query, n_classes)
        The own models' probabilities of the query rows.
    component_log_proba : tensor of shape (n_draws, n_query, n_components,
            n_classes)
        The components' log-probabilities of the query rows.
    support_ll : tensor of shape (n_draws, n_components)
        The components' log-likelihoods of each draw's support rows.
    excluded : tensor of shape (n_draws, n_components), bool
        The components left out of each draw's mixture (the left-out task's
        own model).
    y_query : tensor of shape (n_draws, n_query)
        Query classes; -1 for padding.
    evidence : tensor of shape (n_draws,)
        Each draw's :func:`cv_evidence`: a share ``a`` of the grid serves
        the draw with the share ``group_share(a, evidence)``, as a new group
        would be.
    per_draw : bool, default=False
        Also return the chosen share's balanced accuracy on each draw.

    Returns
    -------
    share : float
        The smallest share whose mean balanced accuracy is within one
        standard error of the best's (the standard error of the paired
        per-draw differences): the mixture must clearly pay to be used.
    scores : ndarray of shape (len(GRID),)
        Each share's mean balanced accuracy.
    draws : ndarray of shape (n_draws,)
        With ``per_draw=True``: the chosen share's score on each draw.
    """
    mixture = mixture_proba(component_log_proba, support_ll, excluded)
    return score_shares(own_proba, mixture, y_query, evidence, per_draw=per_draw)


def union_of_components(index, n_components):
    """The components each draw needs, from its chosen ones ``index``
    (n_draws, k; repeats allowed): ``(scored, position)``, where ``scored``
    (n_draws, u) holds each draw's distinct components in increasing order
    (padded with components it does not need, so that every draw has as
    many as the one that needs most) and ``position`` (n_draws,
    n_components) the column of ``scored`` that holds each needed component.
    """
    needed = torch.zeros(
        (len(index), n_components), dtype=torch.bool, device=index.device
    )
    needed.scatter_(1, index, True)
    width = max(1, int(needed.sum(1).max()))
    # Needed components first, each group in increasing order (stable).
    scored = (~needed).to(torch.int8).argsort(dim=1, stable=True)[:, :width]
    position = torch.zeros_like(needed, dtype=torch.int64)
    columns = torch.arange(width, device=index.device).expand_as(scored)
    position.scatter_(1, scored, columns)
    return scored, position


def mixture_proba(component_log_proba, support_ll, excluded, position=None):
    """The mixture's class probabilities of each draw's query rows (float64,
    shape (n_draws, n_query, n_classes)): the components' probabilities
    weighted by their posterior given the support rows (:func:`top_posterior`;
    the arguments as in :func:`choose_share`). ``position``, where given
    (:func:`union_of_components`), maps each component to its column of
    ``component_log_proba``, which then holds only the components needed."""
    n_classes = component_log_proba.shape[-1]
    ll = support_ll.masked_fill(excluded, -math.inf)
    index, weight = top_posterior(ll)
    if position is not None:
        index = position.gather(1, index)
    chosen = component_log_proba.gather(
        2,
        index[:, None, :, None].expand(-1, component_log_proba.shape[1], -1, n_classes),
    )
    return (chosen.to(torch.float64).exp() * weight[:, None, :, None]).sum(2)


def score_shares(own_proba, mixture, y_query, evidence, *, per_draw=False):
    """:func:`choose_share` given the mixture's probabilities
    (:func:`mixture_proba`): draws whose mixtures were computed apart (each
    size of support) are scored together."""
    n_classes = own_proba.shape[-1]
    own = own_proba.to(torch.float64)
    per_draw_scores = []
    for a in GRID:
        a = group_share(a, evidence)[:, None, None]
        proba = a * mixture + (1 - a) * own
        per_draw_scores.append(
            balanced_accuracy(proba, y_query, n_classes).cpu().numpy()
        )
    per_draw_scores = np.array(per_draw_scores)  # (len(GRID), n_draws)
    scores = per_draw_scores.mean(1)
    # One-standard-error rule: the smallest share whose score is within one
    # standard error (of its paired differences with the best) of the best.
    best = int(np.argmax(scores))
    difference = per_draw_scores[best] - per_draw_scores
    n = per_draw_scores.shape[1]
    se = difference.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(len(GRID))
    within = np.flatnonzero(scores >= scores[best] - se)
    chosen = int(within[0])
    if per_draw:
        return GRID[chosen], scores, per_draw_scores[chosen]
    return GRID[chosen], scores


def use_columns(plain, with_columns):
    """Whether the columns' density should weigh the mixture: the left-out
    draws' scores (each share's, chosen by :func:`choose_share`) without and
    with it; the columns are used only where they score higher by more than
    one standard error of the paired per-draw differences."""
    difference = np.asarray(with_columns) - np.asarray(plain)
    n = len(difference)
    se = difference.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    return bool(difference.mean() > se)
