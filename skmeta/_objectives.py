"""The meta-objective in pure torch: weighted losses, class priors, fairness, DRO.

Nothing here imports skorch or scikit-learn. The estimators call these
functions with the tensors of a meta-batch; the tests check them on
hand-made tensors, without fitting a network.
"""

import numpy as np
import torch

from .fairness import (
    demographic_parity_penalty,
    equalized_odds_penalty,
    true_positive_rate_parity_penalty,
)

__all__ = [
    "PENALTIES",
    "GroupDRO",
    "class_counts",
    "fairness_penalty",
    "prior_offset",
    "shrunk_log_priors",
    "weighted_mean",
]


def weighted_mean(losses, weights):
    """Mean of ``losses`` weighted along the last axis (0 if no weight)."""
    return (losses * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)


# --------------------------------------------------------------- class priors
def class_counts(tasks, y, weights, n_tasks, n_classes, pooled=None):
    """Summed weight of each class: row 0 over the pooled rows, row t + 1 task t.

    Parameters
    ----------
    tasks, y : ndarray of shape (n_rows,), dtype=int64
        Task codes (``-1``: no task) and encoded classes.

    weights : ndarray of shape (n_rows,)
        Row weights.

    n_tasks, n_classes : int

    pooled : ndarray of shape (n_rows,), dtype=bool, default=None
        Rows that count in row 0; all rows when None.

    Returns
    -------
    counts : ndarray of shape (n_tasks + 1, n_classes), dtype=float64
    """
    weights = np.asarray(weights, dtype=np.float64)
    known = tasks >= 0
    cells = (tasks[known] + 1) * n_classes + y[known]
    counts = np.bincount(
        cells, weights[known], minlength=(n_tasks + 1) * n_classes
    ).reshape(n_tasks + 1, n_classes)
    pooled = slice(None) if pooled is None else pooled
    counts[0] = np.bincount(y[pooled], weights[pooled], n_classes)
    return counts


def shrunk_log_priors(counts, strength):
    """Log class frequencies per row of ``counts``, shrunk to row 0's.

    Each row's frequencies are ``(n_tk + a * pi_k) / (n_t + a)`` where ``pi``
    are the frequencies of row 0 (the pooled rows) and ``a = strength``;
    row 0 keeps ``pi``.

    Returns
    -------
    log_priors : torch.Tensor of shape counts.shape, dtype=float64
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    pooled = counts[0] / counts[0].sum().clamp_min(1e-12)
    priors = (counts + strength * pooled) / (counts.sum(1, keepdim=True) + strength)
    priors[0] = pooled
    return priors.clamp_min(1e-12).log()


def prior_offset(kind, task_log_prior, pooled_log_prior):
    """Offset added to the logits for a ``class_prior`` of ``kind``.

    ``"task"``: each row's task log prior; ``"pooled"``: the pooled one;
    ``"balanced"``: none.
    """
    if kind == "task":
        return task_log_prior
    if kind == "pooled":
        return pooled_log_prior
    return torch.zeros_like(task_log_prior)


# ------------------------------------------------------------------- fairness
def _demographic_parity(proba, y, groups, sample_weight, method):
    """:func:`~skmeta.fairness.demographic_parity_penalty` (``y`` unused)."""
    return demographic_parity_penalty(proba, groups, sample_weight, method=method)


def _equalized_odds(proba, y, groups, sample_weight, method):
    return equalized_odds_penalty(proba, y, groups, sample_weight, method=method)


def _true_positive_rate_parity(proba, y, groups, sample_weight, method):
    return true_positive_rate_parity_penalty(
        proba, y, groups, sample_weight, method=method
    )


#: The penalty of each value of the estimators' ``constraints`` parameter, as
#: ``penalty(proba, y, groups, sample_weight, method)``.
PENALTIES = {
    "demographic_parity": _demographic_parity,
    "equalized_odds": _equalized_odds,
    "true_positive_rate_parity": _true_positive_rate_parity,
}

#: How the training penalty combines the groups: each group against the mean
#: of all rows, averaged over groups (see :mod:`skmeta.fairness`).
TRAINING_METHOD = "mean_to_overall"


def fairness_penalty(
    logits,
    y,
    weights,
    groups,
    *,
    constraint,
    task_log_prior,
    offset,
    temperature,
    within_tasks,
    method=TRAINING_METHOD,
):
    """The ``constraint`` penalty on the query predictions of a meta-batch.

    Probabilities are ``softmax((logits + offset) / temperature)``: the
    class prior in force, at a temperature that makes the penalty follow
    hard decisions when below 1. Query rows are reweighted from their
    episode's class mix to ``exp(task_log_prior)``, so that the penalty
    estimates the gap on the task's rows rather than on a class-balanced
    sample. Groups are compared within each task (``within_tasks``, one
    penalty per task, averaged) or across the whole meta-batch.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_tasks, n_rows, n_classes)
    y, weights, groups : torch.Tensor of shape (n_tasks, n_rows)
    constraint : str
        A key of :data:`PENALTIES`.
    task_log_prior, offset : torch.Tensor of shape (n_tasks, n_classes)
    temperature : float
    within_tasks : bool
    method : str, default="mean_to_overall"
        How groups are compared (see :func:`skmeta.fairness.group_gaps`).

    Returns
    -------
    penalty : torch.Tensor of shape ()
    """
    n_classes = logits.shape[-1]
    proba = torch.softmax((logits + offset[:, None, :]) / temperature, dim=-1)
    onehot = torch.nn.functional.one_hot(y, n_classes).to(weights.dtype)
    mix = (onehot * weights[..., None]).sum(1)
    mix = mix / mix.sum(-1, keepdim=True).clamp_min(1e-12)
    ratio = task_log_prior.exp() / mix.clamp_min(1e-12)
    weights = weights * ratio.gather(1, y)
    penalty = PENALTIES[constraint]
    if within_tasks:
        return penalty(proba, y, groups, weights, method).mean()
    return penalty(
        proba.flatten(0, 1), y.flatten(), groups.flatten(), weights.flatten(), method
    )


# ------------------------------------------------------------------ group DRO
class GroupDRO:
    """Multiplicative weights over tasks, kept in log space (group DRO).

    Weights ``q`` start uniform over ``n_tasks``; :meth:`update` sets
    ``log q_t <- log q_t + step_size * L_t`` for every task ``t`` seen in a
    meta-batch (``L_t`` its mean loss there) and renormalises with
    ``logsumexp``. Log weights are float64, so no weight underflows to a
    value it cannot come back from.

    Parameters
    ----------
    n_tasks : int
    step_size : float
    """

    def __init__(self, n_tasks, step_size):
        self.step_size = step_size
        self.log_q = torch.full((n_tasks,), -np.log(n_tasks), dtype=torch.float64)

    def update(self, task_losses, tasks):
        """Raise the weight of the tasks of a meta-batch by their losses.

        Parameters
        ----------
        task_losses : torch.Tensor of shape (n_episodes,)
        tasks : torch.Tensor of shape (n_episodes,)
            Task of each episode; negative (pooled episodes) are skipped.
        """
        with torch.no_grad():
            known = tasks >= 0
            n = len(self.log_q)
            losses = task_losses.detach().to("cpu", torch.float64)[known.cpu()]
            idx = tasks[known].cpu()
            total = torch.zeros(n, dtype=torch.float64).index_add_(0, idx, losses)
            count = torch.zeros(n, dtype=torch.float64).index_add_(
                0, idx, torch.ones_like(losses)
            )
            mean = total / count.clamp_min(1)
            self.log_q = self.log_q + self.step_size * mean * (count > 0)
            self.log_q = self.log_q - torch.logsumexp(self.log_q, 0)

    def weights(self):
        """The weights ``q``, summing to 1 (float64, on the CPU)."""
        return self.log_q.exp()

    def loss(self, task_losses, tasks):
        """Update on a meta-batch, then its ``q``-weighted loss.

        Episodes drawn from all rows (``tasks < 0``) weigh ``1 / n_tasks``.
        """
        self.update(task_losses, tasks)
        q = self.weights().to(device=task_losses.device, dtype=task_losses.dtype)
        n = len(q)
        weights = torch.where(tasks >= 0, q[tasks.clamp_min(0)], 1 / n)
        return (weights * task_losses).sum() / weights.sum()
