"""The meta-objective's formulas, on hand-made tensors (no network fitted)."""

import numpy as np
import pytest
import torch
from fairlearn.metrics import demographic_parity_difference
from hypothesis import given
from hypothesis import strategies as st

from skmeta._objectives import (
    GroupDRO,
    class_counts,
    fairness_penalty,
    prior_offset,
    shrunk_log_priors,
    weighted_mean,
)
from skmeta.fairness import demographic_parity_penalty, group_gaps


def test_weighted_mean_ignores_zero_weights_and_empty_rows():
    losses = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    weights = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(
        weighted_mean(losses, weights), torch.tensor([1.75, 0.0])
    )


def test_class_counts_by_task_and_pooled_rows():
    tasks = np.array([0, 0, 1, -1, 1])
    y = np.array([0, 1, 1, 0, 1])
    w = np.array([1.0, 2.0, 0.5, 4.0, 1.5])
    counts = class_counts(tasks, y, w, n_tasks=2, n_classes=2)
    np.testing.assert_array_equal(counts, [[5.0, 4.0], [1.0, 2.0], [0.0, 2.0]])
    pooled = np.array([True, True, False, True, False])
    counts = class_counts(tasks, y, w, n_tasks=2, n_classes=2, pooled=pooled)
    np.testing.assert_array_equal(counts[0], [5.0, 2.0])


def test_shrunk_log_priors_formula():
    counts = np.array([[30.0, 10.0], [1.0, 3.0], [0.0, 0.0]])
    log_priors = shrunk_log_priors(counts, strength=4.0).exp().numpy()
    pooled = np.array([0.75, 0.25])
    np.testing.assert_allclose(log_priors[0], pooled)
    np.testing.assert_allclose(log_priors[1], (counts[1] + 4 * pooled) / (4 + 4))
    np.testing.assert_allclose(log_priors[2], pooled)  # no rows: the pooled prior


def test_prior_offsets():
    task, pooled = torch.randn(3, 2), torch.randn(3, 2)
    assert prior_offset("task", task, pooled) is task
    assert prior_offset("pooled", task, pooled) is pooled
    assert (prior_offset("balanced", task, pooled) == 0).all()


def test_group_dro_update_in_log_space():
    dro = GroupDRO(3, step_size=0.5)
    losses = torch.tensor([1.0, 2.0, 3.0, 0.5])
    tasks = torch.tensor([0, 2, 2, -1])  # -1: a pooled episode, no update
    loss = dro.loss(losses, tasks)
    q = np.exp(0.5 * np.array([1.0, 0.0, 2.5]))
    q /= q.sum()
    np.testing.assert_allclose(dro.weights().numpy(), q)
    weights = np.array([q[0], q[2], q[2], 1 / 3])
    assert loss.item() == pytest.approx(
        (weights * losses.numpy()).sum() / weights.sum()
    )


def test_group_dro_weights_recover_after_long_imbalance():
    # Multiplicative weights in float32 underflow to 0 and never come back;
    # in log space a task's weight recovers once its loss is the highest.
    dro = GroupDRO(2, step_size=0.5)
    for _ in range(5000):
        dro.update(torch.tensor([1.0, 0.0]), torch.tensor([0, 1]))
    assert torch.isfinite(dro.log_q).all()
    for _ in range(6000):
        dro.update(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))
    assert dro.weights()[1] > 0.9


@given(
    st.lists(st.integers(0, 1), min_size=6, max_size=30),
    st.lists(st.integers(0, 4), min_size=6, max_size=30),
)
def test_to_overall_equals_fairlearn(pred, groups):
    n = min(len(pred), len(groups))
    pred, groups = np.array(pred[:n]), np.array(groups[:n])
    p = torch.tensor(pred, dtype=torch.float64)
    ours = demographic_parity_penalty(p, torch.tensor(groups), method="to_overall")
    theirs = demographic_parity_difference(
        pred, pred, sensitive_features=groups, method="to_overall"
    )
    if len(np.unique(groups)) < 2:
        theirs = 0.0
    assert ours.item() == pytest.approx(theirs)


def test_mean_to_overall_reaches_every_group():
    proba = torch.tensor([0.9, 0.8, 0.6, 0.5, 0.3, 0.1], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    weights = torch.ones(6)
    values = proba[:, None]
    for method, moved in [("between_groups", 4), ("mean_to_overall", 6)]:
        gap = group_gaps(values, weights, groups, method)[0]
        (grad,) = torch.autograd.grad(gap, proba)
        assert int((grad != 0).sum()) == moved, method


def test_fairness_penalty_reweights_query_rows_to_the_task_prior():
    # One task, a class-balanced query set: rows are reweighted from the
    # episode's 50/50 mix to the task's 80/20 prior before the gap.
    logits = torch.tensor([[[0.0, 2.0], [0.0, 1.0], [0.0, -1.0], [0.0, -2.0]]])
    y = torch.tensor([[1, 1, 0, 0]])
    groups = torch.tensor([[0, 1, 0, 1]])
    weights = torch.ones(1, 4)
    prior = torch.tensor([[0.2, 0.8]]).log()
    penalty = fairness_penalty(
        logits,
        y,
        weights,
        groups,
        constraint="demographic_parity",
        task_log_prior=prior,
        offset=torch.zeros(1, 2),
        temperature=1.0,
        within_tasks=True,
        method="between_groups",
    )
    p1 = torch.sigmoid(logits[0, :, 1] - logits[0, :, 0])
    w = torch.tensor([1.6, 1.6, 0.4, 0.4])  # 0.8 / 0.5 and 0.2 / 0.5
    g0 = (w[0] * p1[0] + w[2] * p1[2]) / (w[0] + w[2])
    g1 = (w[1] * p1[1] + w[3] * p1[3]) / (w[1] + w[3])
    assert penalty.item() == pytest.approx(abs(g0 - g1).item())
