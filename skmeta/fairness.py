"""Differentiable fairness penalties on predicted probabilities.

Each penalty measures how far sensitive groups are apart in a weighted mean
of predicted probabilities. With ``method="between_groups"`` (the default)
it is the largest gap between two groups, the quantity that fairlearn's
metric of the same name measures on hard predictions:

- ``demographic_parity``: the gap in the mean probability of the positive
  class (``fairlearn.metrics.demographic_parity_difference``);
- ``equalized_odds``: the larger of the gaps conditioned on ``y = 1``
  (true positive rate) and on ``y = 0`` (false positive rate)
  (``fairlearn.metrics.equalized_odds_difference``);
- ``true_positive_rate_parity``: the gap conditioned on ``y = 1``
  (``fairlearn.metrics.equal_opportunity_difference``).

With hard 0/1 probabilities the penalties equal those metrics. Multiclass
problems take each class in turn as the positive class (one-vs-rest) and
report the largest gap. Groups without rows (or without rows of the
conditioning class) are left out; a gap needs two groups, else it is 0.

``method="to_overall"`` is the largest gap between a group and all rows
together (fairlearn's ``method="to_overall"``), and ``"mean_to_overall"``
the mean over groups of that gap: every group's gap counts, so its gradient
reaches every group, not the two extreme ones. The estimators train with
``"mean_to_overall"``, which stays informative with many groups, and report
fairlearn's metrics.

The functions accept a leading batch dimension: with ``proba`` of shape
``(n_tasks, n_rows, n_classes)`` they return one penalty per task.
"""

import torch

__all__ = [
    "demographic_parity_penalty",
    "equalized_odds_penalty",
    "true_positive_rate_parity_penalty",
]


def _as_tensors(proba, y, groups, sample_weight):
    """Tensors on one device; a 1-D ``proba`` (P(class 1)) gets two columns."""
    proba = torch.as_tensor(proba)
    if not proba.is_floating_point():
        proba = proba.to(torch.float64)
    if proba.ndim == 1:
        proba = torch.stack([1 - proba, proba], dim=-1)
    groups = torch.as_tensor(groups, device=proba.device)
    if sample_weight is None:
        sample_weight = torch.ones(groups.shape, dtype=proba.dtype, device=proba.device)
    sample_weight = torch.as_tensor(
        sample_weight, dtype=proba.dtype, device=proba.device
    )
    if y is not None:
        y = torch.as_tensor(y, device=proba.device)
    return proba, y, groups, sample_weight


METHODS = ("between_groups", "to_overall", "mean_to_overall")


def group_gaps(values, weights, groups, method="between_groups"):
    """How far the weighted group means of ``values`` are apart.

    Parameters
    ----------
    values : torch.Tensor of shape (..., n_rows, n_columns)
    weights : torch.Tensor of shape (..., n_rows)
        Rows with weight 0 do not count.
    groups : torch.Tensor of shape (..., n_rows)
        Integer group codes; negative codes do not count.
    method : {"between_groups", "to_overall", "mean_to_overall"}
        Largest minus smallest group mean; largest distance of a group mean
        to the mean of all counted rows; mean of those distances over groups.

    Returns
    -------
    gaps : torch.Tensor of shape (..., n_columns)
        0 where fewer than two groups have rows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    n_groups = int(groups.max().item()) + 1 if groups.numel() else 0
    if n_groups < 2:
        return values.new_zeros(values.shape[:-2] + values.shape[-1:])
    onehot = torch.nn.functional.one_hot(groups.clamp_min(0), n_groups).to(values.dtype)
    onehot = onehot * ((groups >= 0).to(values.dtype) * weights)[..., None]
    totals = onehot.sum(-2)  # (..., n_groups)
    means = (onehot.transpose(-1, -2) @ values) / totals.clamp_min(1e-12)[..., None]
    present = (totals > 0)[..., None]
    enough = present.sum(-2) >= 2
    if method == "between_groups":
        high = means.masked_fill(~present, float("-inf")).amax(-2)
        low = means.masked_fill(~present, float("inf")).amin(-2)
        gaps = high - low
    else:
        overall = (totals[..., None] * means).sum(-2, keepdim=True) / totals.sum(
            -1
        ).clamp_min(1e-12)[..., None, None]
        distance = (means - overall).abs().masked_fill(~present, 0.0)
        if method == "to_overall":
            gaps = distance.amax(-2)
        else:
            gaps = distance.sum(-2) / present.sum(-2).clamp_min(1)
    return torch.where(enough, gaps, torch.zeros_like(gaps))


def _positive_classes(n_classes):
    # Binary problems have one positive class, as in fairlearn.
    return [1] if n_classes == 2 else list(range(n_classes))


def _conditional_gap(proba, y, groups, weights, *, rates, method):
    """Largest group gap in P(positive) among rows that are (not) positive.

    ``rates`` lists which conditions count: ``True`` for rows of the
    positive class (true positive rate), ``False`` for the others (false
    positive rate).
    """
    gaps = []
    for positive in _positive_classes(proba.shape[-1]):
        for is_positive in rates:
            mask = ((y == positive) == is_positive).to(weights.dtype)
            gaps.append(
                group_gaps(proba[..., [positive]], weights * mask, groups, method)[
                    ..., 0
                ]
            )
    return torch.stack(gaps, -1).amax(-1)


def demographic_parity_penalty(
    proba, sensitive_features, sample_weight=None, *, method="between_groups"
):
    """Largest gap between groups in the mean probability of a positive class.

    Parameters
    ----------
    proba : torch.Tensor of shape (..., n_rows, n_classes) or (n_rows,)
        Predicted probabilities; a 1-D tensor holds P(class 1).

    sensitive_features : torch.Tensor of shape (..., n_rows)
        Integer group codes; negative codes are ignored.

    sample_weight : torch.Tensor of shape (..., n_rows), default=None
        Row weights.

    method : {"between_groups", "to_overall", "mean_to_overall"}, \
            default="between_groups"
        How the group gaps are combined (see the module description).

    Returns
    -------
    penalty : torch.Tensor of shape (...)
        Differentiable with respect to ``proba``.

    Examples
    --------
    >>> import torch
    >>> from skmeta.fairness import demographic_parity_penalty
    >>> p = torch.tensor([0.9, 0.7, 0.2, 0.4])
    >>> demographic_parity_penalty(p, torch.tensor([0, 0, 1, 1]))
    tensor(0.5000)
    """
    proba, _, groups, weights = _as_tensors(
        proba, None, sensitive_features, sample_weight
    )
    columns = _positive_classes(proba.shape[-1])
    return group_gaps(proba[..., columns], weights, groups, method).amax(-1)


def equalized_odds_penalty(
    proba, y, sensitive_features, sample_weight=None, *, method="between_groups"
):
    """Largest gap between groups in true or false positive rates.

    Parameters
    ----------
    proba : torch.Tensor of shape (..., n_rows, n_classes) or (n_rows,)
        Predicted probabilities; a 1-D tensor holds P(class 1).

    y : torch.Tensor of shape (..., n_rows)
        Encoded true classes.

    sensitive_features : torch.Tensor of shape (..., n_rows)
        Integer group codes; negative codes are ignored.

    sample_weight : torch.Tensor of shape (..., n_rows), default=None
        Row weights.

    method : {"between_groups", "to_overall", "mean_to_overall"}, \
            default="between_groups"
        How the group gaps are combined (see the module description).

    Returns
    -------
    penalty : torch.Tensor of shape (...)

    Examples
    --------
    >>> import torch
    >>> from skmeta.fairness import equalized_odds_penalty
    >>> p = torch.tensor([1.0, 0.0, 1.0, 1.0])
    >>> y, groups = torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1])
    >>> equalized_odds_penalty(p, y, groups)
    tensor(1.)
    """
    proba, y, groups, weights = _as_tensors(proba, y, sensitive_features, sample_weight)
    return _conditional_gap(
        proba, y, groups, weights, rates=(True, False), method=method
    )


def true_positive_rate_parity_penalty(
    proba, y, sensitive_features, sample_weight=None, *, method="between_groups"
):
    """Largest gap between groups in the true positive rate.

    Parameters
    ----------
    proba : torch.Tensor of shape (..., n_rows, n_classes) or (n_rows,)
        Predicted probabilities; a 1-D tensor holds P(class 1).

    y : torch.Tensor of shape (..., n_rows)
        Encoded true classes.

    sensitive_features : torch.Tensor of shape (..., n_rows)
        Integer group codes; negative codes are ignored.

    sample_weight : torch.Tensor of shape (..., n_rows), default=None
        Row weights.

    method : {"between_groups", "to_overall", "mean_to_overall"}, \
            default="between_groups"
        How the group gaps are combined (see the module description).

    Returns
    -------
    penalty : torch.Tensor of shape (...)

    Examples
    --------
    >>> import torch
    >>> from skmeta.fairness import true_positive_rate_parity_penalty
    >>> p = torch.tensor([1.0, 0.0, 0.0, 1.0])
    >>> y = torch.tensor([1, 1, 1, 0])
    >>> true_positive_rate_parity_penalty(p, y, torch.tensor([0, 0, 1, 1]))
    tensor(0.5000)
    """
    proba, y, groups, weights = _as_tensors(proba, y, sensitive_features, sample_weight)
    return _conditional_gap(proba, y, groups, weights, rates=(True,), method=method)
