"""The training tasks' mixture that a new group borrows (``task_mixture``).

After ``fit`` every training task keeps its adapted model. They are draws
from the distribution of groups, so they give an empirical prior over group
models: a new group whose support rows ``S`` are likely under training task
``t``'s model may be served by it. The mixture predicts
``sum_t w_t p_t(y | x)`` with ``w_t`` proportional to
``p_t(S) = prod_{i in S} p_t(y_i | x_i) ** weight_i`` (a uniform prior over
the training tasks, each row's likelihood clipped at ``_MIN_PROBA``), the
Bayes predictive under that prior, kept to its ``_TOP`` largest weights. A
new group's prediction averages it with the group's own adapted model:
``a * mixture + (1 - a) * own``, in class probabilities before the class
prior; ``a`` is one share for every new group of a fitted model.

``task_mixture="auto"`` chooses ``a`` at the end of ``fit`` from ``GRID`` by
leaving training tasks out: for each of up to ``_LOO_TASKS`` training tasks
with at least ``_LOO_SHOTS + 5`` rows of every class, ``_LOO_DRAWS`` supports
of ``_LOO_SHOTS`` rows per class, its own model adapted to them as a new
group's would be, the mixture over the other training tasks; the share of
highest mean balanced accuracy on up to ``_LOO_QUERY`` of its other rows wins
(the smallest on ties). The functions here are the tensor algebra; the
estimator supplies the models' log-probabilities.
"""

import math

import numpy as np
import torch

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
_TOP = 16  # components kept per new group
_MAX_COMPONENTS = 256  # training tasks in the mixture (the largest)
_MIN_TASKS = 5  # training tasks to leave out before "auto" mixes at all
_LOO_TASKS = 64
_LOO_SHOTS = 5
_LOO_DRAWS = 2
_LOO_QUERY = 200
_MIN_PROBA = 1e-6

# The keys of the mixture in an estimator's ``states_``.
SHARE, INDEX, WEIGHT = "mixture_share", "mixture_index", "mixture_weight"
KEYS = (SHARE, INDEX, WEIGHT)


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
    index = y[:, :, None, None].expand(-1, -1, log_proba.shape[2], 1)
    row = log_proba.gather(-1, index).squeeze(-1).to(torch.float64)
    row = row.clamp_min(math.log(_MIN_PROBA))
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


def choose_share(own_proba, component_log_proba, support_ll, excluded, y_query):
    """The grid share of highest mean balanced accuracy over the left-out
    supports (the smallest on ties).

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

    Returns
    -------
    share : float
    scores : ndarray of shape (len(GRID),)
        Each share's mean balanced accuracy.
    """
    n_classes = own_proba.shape[-1]
    ll = support_ll.masked_fill(excluded, -math.inf)
    index, weight = top_posterior(ll)
    chosen = component_log_proba.gather(
        2, index[:, None, :, None].expand(-1, y_query.shape[1], -1, n_classes)
    )
    mixture = (chosen.to(torch.float64).exp() * weight[:, None, :, None]).sum(2)
    own = own_proba.to(torch.float64)
    scores = np.array(
        [
            balanced_accuracy(a * mixture + (1 - a) * own, y_query, n_classes)
            .mean()
            .item()
            for a in GRID
        ]
    )
    return GRID[int(np.argmax(scores))], scores
