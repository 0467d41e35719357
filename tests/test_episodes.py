"""The episode sampler: sizes, disjointness, task membership, pooled episodes."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from skmeta import MAMLClassifier, _episodes
from skmeta._episodes import EpisodeLoader, EpisodeSampler


@st.composite
def labelled_tasks(draw):
    n = draw(st.integers(2, 80))
    n_classes = draw(st.integers(2, 3))
    tasks = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    return tasks, y, n_classes


@given(
    labelled_tasks(),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**16),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.integers(1, 3),
    st.sampled_from(["uniform", "proportional"]),
)
def test_episodes_follow_the_small_task_rule(
    data, n_shots, n_queries, seed, pooled, n_batches, task_sampling
):
    tasks, y, n_classes = data
    sampler = EpisodeSampler(
        tasks,
        y,
        n_classes,
        n_shots=n_shots,
        n_queries=n_queries,
        meta_batch_size=3,
        rng=np.random.default_rng(seed),
        pooled_episodes=pooled,
        task_sampling=task_sampling,
    )
    for t in np.unique(tasks):
        counts = np.bincount(y[tasks == t], minlength=n_classes)
        usable = counts.max() >= 2 and (counts > 0).sum() >= 2
        # Tasks of a single class, or without a class of two rows, are left out.
        assert (t in sampler.eligible) == usable
    if sampler.eligible.size == 0:
        assert set(sampler.excluded) == set(np.unique(tasks))
        return
    supports, queries, tasks_drawn = sampler.sample_many(n_batches)
    assert supports.shape == (n_batches, 3, n_classes * n_shots)
    assert queries.shape == (n_batches, 3, n_classes * n_queries)
    for support, query, task_ids in zip(supports, queries, tasks_drawn, strict=True):
        _check_meta_batch(sampler, tasks, y, n_classes, support, query, task_ids)
        if pooled == 0.0:
            assert (task_ids >= 0).all()
        if pooled == 1.0:
            assert (task_ids == -1).all()


def _check_meta_batch(sampler, tasks, y, n_classes, support, query, task_ids):
    n_shots, n_queries = sampler.n_shots, sampler.n_queries
    uniform = sampler.task_sampling == "uniform"
    if uniform and len(sampler.eligible) >= len(task_ids) and (task_ids >= 0).all():
        assert len(set(task_ids)) == len(task_ids)  # distinct tasks in a batch
    for i, t in enumerate(task_ids):
        s, q = support[i][support[i] >= 0], query[i][query[i] >= 0]
        assert not set(s) & set(q)  # support and query are disjoint
        rows = np.flatnonzero(tasks == t) if t >= 0 else np.arange(len(y))
        assert set(s) | set(q) <= set(rows)
        for c in range(n_classes):
            n_c = int((y[rows] == c).sum())
            block_s = support[i, c * n_shots : (c + 1) * n_shots]
            block_q = query[i, c * n_queries : (c + 1) * n_queries]
            assert (y[block_s[block_s >= 0]] == c).all()
            expected = sampler.split_sizes(n_c) if n_c else (0, 0)
            assert ((block_s >= 0).sum(), (block_q >= 0).sum()) == expected


def test_one_meta_batch_drawn_alone_or_as_a_block_of_one_is_the_same():
    rng = np.random.RandomState(0)
    tasks, y = rng.randint(0, 5, 300), rng.randint(0, 2, 300)

    def sampler():
        return EpisodeSampler(
            tasks, y, 2, n_shots=3, n_queries=4, meta_batch_size=3,
            rng=np.random.default_rng(1), pooled_episodes=0.3,
        )  # fmt: skip

    alone, block = sampler().sample(), sampler().sample_many(1)
    for a, b in zip(alone, block, strict=True):
        np.testing.assert_array_equal(a, b[0])


@pytest.mark.parametrize("task_sampling", ["uniform", "proportional"])
def test_tasks_are_drawn_uniformly_or_in_proportion_to_their_rows(task_sampling):
    # Tasks of 10, 30 and 160 rows (the second of one class: not eligible,
    # so the others share all the draws).
    sizes = np.array([10, 30, 160])
    tasks = np.repeat(np.arange(3), sizes)
    y = np.arange(sizes.sum()) % 2
    y[tasks == 1] = 0
    sampler = EpisodeSampler(
        tasks, y, 2, n_shots=2, n_queries=3, meta_batch_size=4,
        rng=np.random.default_rng(0), task_sampling=task_sampling,
    )  # fmt: skip
    np.testing.assert_array_equal(sampler.eligible, [0, 2])
    _, _, drawn = sampler.sample_many(500)
    counts = np.bincount(drawn.ravel(), minlength=3)
    assert counts[1] == 0
    expected = [0.5, 0.5] if task_sampling == "uniform" else [10 / 170, 160 / 170]
    assert stats.chisquare(counts[[0, 2]], np.multiply(expected, 2000)).pvalue > 1e-3


def test_proportional_sampling_draws_distinct_rows_of_a_task_in_each_episode():
    tasks = np.repeat([0, 1], [12, 400])
    y = np.arange(412) % 2
    sampler = EpisodeSampler(
        tasks, y, 2, n_shots=2, n_queries=3, meta_batch_size=8,
        rng=np.random.default_rng(3), task_sampling="proportional",
    )  # fmt: skip
    support, query, drawn = sampler.sample_many(20)
    for b in range(20):
        _check_meta_batch(sampler, tasks, y, 2, support[b], query[b], drawn[b])
    # Task 0 holds 3 % of the rows: most meta-batches hold only task 1.
    assert (drawn == 1).mean() > 0.9


def test_task_sampling_in_fit(grouped_data):
    X, y, groups = grouped_data
    # Unequal tasks: the first group alone keeps a fifth of its rows.
    names = np.unique(groups)
    keep = (groups != names[0]) | (np.arange(len(y)) % 5 == 0)
    X, y, groups = X[keep], y[keep], groups[keep]
    params = dict(max_epochs=2, steps_per_epoch=5, random_state=0)
    assert MAMLClassifier().get_params()["task_sampling"] == "proportional"
    p = MAMLClassifier(**params).fit(X, y, sensitive_features=groups)
    u = MAMLClassifier(task_sampling="uniform", **params)
    u.fit(X, y, sensitive_features=groups)
    assert not np.allclose(p.predict_proba(X), u.predict_proba(X))
    with pytest.raises(ValueError, match="task_sampling"):
        MAMLClassifier(task_sampling="rows").fit(X, y)


def test_same_seed_same_episodes():
    rng = np.random.RandomState(0)
    tasks, y = rng.randint(0, 4, 200), rng.randint(0, 2, 200)
    draws = [
        EpisodeSampler(
            tasks,
            y,
            2,
            n_shots=3,
            n_queries=5,
            meta_batch_size=4,
            rng=np.random.default_rng(7),
        ).sample()
        for _ in range(2)
    ]
    for a, b in zip(*draws, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pooled_episodes_get_the_pooled_class_prior():
    rng = np.random.RandomState(0)
    tasks, y = rng.randint(0, 3, 90), rng.randint(0, 2, 90)
    sampler = EpisodeSampler(
        tasks,
        y,
        2,
        n_shots=2,
        n_queries=3,
        meta_batch_size=6,
        rng=np.random.default_rng(0),
        pooled_episodes=0.5,
    )
    data = {
        "X": rng.normal(size=(90, 2)).astype(np.float32),
        "weight": np.ones(90, np.float32),
        "group": tasks,
    }
    log_prior = torch.log(torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]))
    pooled = torch.log(torch.tensor([0.6, 0.4]))
    loader = EpisodeLoader(
        data,
        y,
        sampler,
        n_steps=1,
        device="cpu",
        log_prior=log_prior,
        pooled_log_prior=pooled,
    )
    ((batch, _),) = list(loader)
    for t, row in zip(batch["task"].tolist(), batch["log_prior"], strict=True):
        torch.testing.assert_close(row, pooled if t < 0 else log_prior[t])
    assert (batch["task"] < 0).any() and (batch["task"] >= 0).any()


def test_pooled_episodes_with_fairness_and_dro(grouped_data):
    X, y, groups = grouped_data
    clf = MAMLClassifier(
        pooled_episodes=0.5,
        dro_step_size=0.3,
        constraints="demographic_parity",
        fairness_weight=1.0,
        max_epochs=2,
        steps_per_epoch=5,
        random_state=0,
    ).fit(X, y, sensitive_features=groups)
    assert np.isfinite(clf.history[:, "train_loss"]).all()
    # Task episodes moved the DRO weights away from uniform; pooled episodes
    # (task -1) take part in training without a weight of their own.
    weights = clf.dro_weights_.numpy()
    assert weights.shape == (3,) and weights.std() > 1e-4
    plain = MAMLClassifier(max_epochs=2, steps_per_epoch=5, random_state=0)
    mixed = MAMLClassifier(
        pooled_episodes=1.0, max_epochs=2, steps_per_epoch=5, random_state=0
    )
    p = plain.fit(X, y, sensitive_features=groups).predict_proba(X)
    m = mixed.fit(X, y, sensitive_features=groups).predict_proba(X)
    assert not np.allclose(p, m)


@pytest.mark.parametrize("small_cell", [4, 0])
def test_episode_rows_are_drawn_uniformly(monkeypatch, small_cell):
    # Class 0 has 50 rows (drawn with replacement, repeats dropped), class 1
    # has 7 (shuffled whole); with small_cell=0 every cell takes the first
    # path, and the 7-row cell falls back to ``Generator.choice`` whenever 10
    # draws hold fewer than 5 distinct rows.
    monkeypatch.setattr(_episodes, "_SMALL_CELL", small_cell)
    y = np.r_[np.zeros(50, int), np.ones(7, int)]
    sampler = EpisodeSampler(
        np.zeros(57, int),
        y,
        2,
        n_shots=2,
        n_queries=3,
        meta_batch_size=50,
        rng=np.random.default_rng(0),
    )
    first_support, first_query = [], []
    for _ in range(100):
        support, query, _ = sampler.sample()
        for row_s, row_q in zip(support, query, strict=True):
            assert len(set(row_s) | set(row_q)) == 10  # distinct, none padded
        first_support.append(support[:, [0, 2]])
        first_query.append(query[:, [0, 3]])
    first_support, first_query = np.vstack(first_support), np.vstack(first_query)
    # Every row is as likely in every slot: the first support slot and the
    # first query slot of each class.
    for slots in (first_support, first_query):
        for c, rows in ((0, np.arange(50)), (1, np.arange(50, 57))):
            counts = np.bincount(slots[:, c] - rows[0], minlength=len(rows))
            assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("sparse", [False, True])
def test_loader_gathers_the_sampled_rows(sparse):
    rng = np.random.RandomState(0)
    # Task 1 has 3 rows of class 0: its episodes have padded slots.
    tasks = np.r_[np.zeros(40, int), np.ones(5, int)]
    y = np.r_[rng.randint(0, 2, 40), [0, 0, 0, 1, 1]]
    X = rng.normal(size=(45, 3)).astype(np.float32)
    data = {
        "X": sp.csr_matrix(X) if sparse else X,
        "weight": rng.uniform(0.5, 2, 45).astype(np.float32),
        "group": rng.randint(0, 3, 45),
    }

    def sampler():  # the same draws each time
        return EpisodeSampler(
            tasks,
            y,
            2,
            n_shots=3,
            n_queries=4,
            meta_batch_size=6,
            rng=np.random.default_rng(0),
        )

    expected = sampler().sample()
    loader = EpisodeLoader(data, y, sampler(), n_steps=1, device="cpu")
    ((batch, _),) = list(loader)
    np.testing.assert_array_equal(batch["task"].numpy(), expected[2])
    for idx, prefix in zip(expected[:2], ("support_", "query_"), strict=True):
        assert (idx < 0).any()
        real = idx >= 0
        got = {k: batch[prefix + k].numpy() for k in "Xywg"}
        np.testing.assert_array_equal(got["X"][real], X[idx[real]])
        np.testing.assert_array_equal(got["y"][real], y[idx[real]])
        np.testing.assert_array_equal(got["w"][real], data["weight"][idx[real]])
        np.testing.assert_array_equal(got["g"][real], data["group"][idx[real]])
        # Padded slots weigh nothing and hold zeros.
        assert (got["w"][~real] == 0).all() and (got["X"][~real] == 0).all()


@pytest.mark.parametrize(
    "n_samples, n_tasks, expected",
    [
        (100, 1, 10),  # the floor
        (1_800, 18, 36),  # many small tasks: two meta-batches per task
        (100_000, 18, 313),  # many rows: the rows decide (8 * 2 * 20 per step)
        (20_000, 5_000, 100),  # many tasks: capped
        (200_000, 5_000, 625),  # the cap never lowers the rows' count
    ],
)
def test_default_steps_per_epoch(n_samples, n_tasks, expected):
    steps = _episodes.default_steps_per_epoch(n_samples, 2, 5, 15, 8, n_tasks=n_tasks)
    assert steps == expected


@pytest.mark.parametrize("task_source", ["groups", "pooled"])
def test_fit_counts_the_eligible_tasks_for_the_default_epoch(task_source):
    # 30 groups of 20 rows, one of them single-class (left out of episodes).
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 20)
    X = rng.standard_normal((600, 3)).astype(np.float32)
    y = np.tile([0, 1], 300)
    y[groups == 0] = 1
    clf = MAMLClassifier(max_epochs=1, pretrain_epochs=0, random_state=0)
    if task_source == "groups":
        with pytest.warns(UserWarning, match="1 task"):
            clf.fit(X, y, sensitive_features=groups)
        expected = 2 * 29
    else:
        clf.fit(X, y)
        expected = 10
    assert len(clf.history[-1, "batches"]) == expected


def test_variable_shots_draws_each_support_size_for_all_classes_of_an_episode():
    rng = np.random.default_rng(0)
    tasks = np.repeat(np.arange(4), 60)
    y = np.tile(np.arange(3), 80)
    S, Q = 4, 5
    kwargs = dict(n_shots=S, n_queries=Q, meta_batch_size=3)
    fixed = EpisodeSampler(tasks, y, 3, rng=np.random.default_rng(0), **kwargs)
    fixed_support, _, fixed_tasks = fixed.sample_many(200)
    assert (fixed_support >= 0).all()
    sampler = EpisodeSampler(tasks, y, 3, rng=rng, variable_shots=True, **kwargs)
    support, query, task_ids = sampler.sample_many(200)
    per_class = (support.reshape(200, 3, 3, S) >= 0).sum(-1)  # (batch, task, class)
    # The same size for every class of an episode, every size from 1 to S.
    assert (per_class == per_class[..., :1]).all()
    sizes = per_class[..., 0].ravel()
    assert set(sizes.tolist()) == set(range(1, S + 1))
    counts = np.bincount(sizes, minlength=S + 1)[1:]
    assert counts.min() > 0.15 * len(sizes)  # about uniform (1/4 each)
    # The kept support rows are the first ones drawn (the same stream draws
    # the same rows as without variable_shots); the query is unchanged in
    # size and disjoint from the support, and every row is of its task.
    np.testing.assert_array_equal(task_ids, fixed_tasks)
    kept = support >= 0
    np.testing.assert_array_equal(support[kept], fixed_support[kept])
    assert (query >= 0).all()
    for b in range(200):
        for t in range(3):
            kept = support[b, t][support[b, t] >= 0]
            assert not set(kept) & set(query[b, t])
            assert (tasks[kept] == task_ids[b, t]).all()


def test_variable_shots_in_fit(grouped_data):
    X, y, groups = grouped_data
    params = dict(max_epochs=2, steps_per_epoch=5, random_state=0)
    fixed = MAMLClassifier(**params).fit(X, y, sensitive_features=groups)
    variable = MAMLClassifier(variable_shots=True, **params)
    variable.fit(X, y, sensitive_features=groups)
    assert np.isfinite(variable.history[:, "train_loss"]).all()
    assert not np.allclose(
        fixed.predict_proba(X, sensitive_features=groups),
        variable.predict_proba(X, sensitive_features=groups),
    )
    with pytest.raises(ValueError, match="variable_shots"):
        MAMLClassifier(variable_shots="yes").fit(X, y)
