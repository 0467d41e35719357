"""partial_fit: sklearn's incremental contract and few-shot adaptation."""

import copy

import numpy as np
import pytest
import torch

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta._input import _encode_tasks
from skmeta.exceptions import UnknownGroupWarning
from skmeta.utils import encode_groups

FAST = dict(max_epochs=2, steps_per_epoch=5, random_state=0)


@pytest.fixture(
    params=[MAMLClassifier, PrototypicalClassifier], ids=lambda k: k.__name__
)
def klass(request):
    return request.param


@pytest.fixture(scope="module")
def shifted():
    """Groups a, b for training; group "new" has the opposite rule."""
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 3))
    groups = np.array(["a", "b", "new", "new"] * 100, dtype=object)
    sign = np.where(groups == "new", -1.0, 1.0)
    y = (sign * X[:, 0] > 0).astype(int)
    return X, y, groups


def test_first_call_needs_classes_and_runs_one_epoch(klass, shifted):
    X, y, groups = shifted
    clf = klass(**FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=[0, 1], sensitive_features=groups[:50])
    assert len(clf.history) == 1
    np.testing.assert_array_equal(clf.classes_, [0, 1])


def test_first_call_keeps_classes_absent_from_the_batch(klass, shifted):
    X, y, groups = shifted
    clf = klass(**FAST).partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_unseen_group_becomes_known_after_one_call(klass, shifted):
    X, y, groups = shifted
    train, new = groups != "new", groups == "new"
    clf = klass(**FAST).fit(X[train], y[train], sensitive_features=groups[train])
    meta = [p.detach().clone() for p in clf.module_.parameters()]
    with pytest.warns(UnknownGroupWarning):
        before_new = clf.predict_proba(X[new], sensitive_features=groups[new])
    before_old = clf.predict_proba(X[train], sensitive_features=groups[train])

    support = np.flatnonzero(new)[:10]
    clf.partial_fit(X[support], y[support], sensitive_features=groups[support])

    assert "new" in clf.tasks_
    after_new = clf.predict_proba(X[new], sensitive_features=groups[new])
    assert not np.allclose(before_new, after_new)
    np.testing.assert_array_equal(
        clf.predict_proba(X[train], sensitive_features=groups[train]), before_old
    )
    for a, b in zip(meta, clf.module_.parameters(), strict=True):
        assert torch.equal(a, b)  # meta-learned parameters untouched
    history_length = len(clf.history)
    clf.partial_fit(X[support], y[support], sensitive_features=groups[support])
    assert len(clf.history) == history_length  # adaptation is not training


def test_repeated_calls_accumulate_support_rows(klass, shifted):
    X, y, groups = shifted
    train = groups != "new"
    clf = klass(**FAST).fit(X[train], y[train], sensitive_features=groups[train])
    rows = np.flatnonzero(groups == "new")
    clf.partial_fit(X[rows[:4]], y[rows[:4]], sensitive_features=groups[rows[:4]])
    one = clf.predict_proba(X[rows], sensitive_features=groups[rows])
    clf.partial_fit(X[rows[4:8]], y[rows[4:8]], sensitive_features=groups[rows[4:8]])
    two = clf.predict_proba(X[rows], sensitive_features=groups[rows])
    code = list(clf.tasks_).index("new")
    assert len(clf.support_.tasks.rows(code)) == 8
    # Same as adapting on the 8 rows at once.
    other = klass(**FAST).fit(X[train], y[train], sensitive_features=groups[train])
    other.partial_fit(X[rows[:8]], y[rows[:8]], sensitive_features=groups[rows[:8]])
    np.testing.assert_allclose(
        other.predict_proba(X[rows], sensitive_features=groups[rows]), two
    )
    assert not np.allclose(one, two)


def test_one_row_per_class_is_enough(klass, shifted):
    X, y, groups = shifted
    train = groups != "new"
    clf = klass(**FAST).fit(X[train], y[train], sensitive_features=groups[train])
    rows = np.flatnonzero(groups == "new")
    two = [rows[y[rows] == 0][0], rows[y[rows] == 1][0]]
    clf.partial_fit(X[two], y[two], sensitive_features=groups[two])
    p = clf.predict_proba(X[rows], sensitive_features=groups[rows])
    assert np.isfinite(p).all()


def test_adaptation_helps_a_new_group():
    # Training groups follow different rules; the new group follows one of
    # them, so a model adapted on its rows beats the pooled model.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1200, 2))
    groups = np.repeat(["a", "b", "c", "d", "new", "new"], 200).astype(object)
    rule = {"a": X[:, 0], "b": -X[:, 0], "c": X[:, 1], "d": -X[:, 1], "new": -X[:, 0]}
    y = (np.select([groups == g for g in rule], list(rule.values())) > 0).astype(int)
    train = groups != "new"
    rows = np.flatnonzero(~train)
    support, query = rows[:20], rows[20:]
    for klass in [MAMLClassifier, PrototypicalClassifier]:
        clf = klass(max_epochs=10, random_state=0).fit(
            X[train], y[train], sensitive_features=groups[train]
        )
        before = clf.score(X[query], y[query])
        clf.partial_fit(X[support], y[support], sensitive_features=groups[support])
        after = np.mean(
            clf.predict(X[query], sensitive_features=groups[query]) == y[query]
        )
        assert after > max(before + 0.15, 0.75), klass.__name__


def test_unknown_class_is_an_error(klass, shifted):
    X, y, groups = shifted
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:3], [0, 1, 7], sensitive_features=groups[:3])
    with pytest.raises(
        ValueError, match="is not the same as on last call to partial_fit"
    ):
        clf.partial_fit(X[:3], y[:3], classes=[0, 1, 2], sensitive_features=groups[:3])


def test_rows_without_a_task_update_the_pooled_state(klass, shifted):
    X, y, groups = shifted
    clf = klass(**FAST).fit(X, y)
    before = clf.predict_proba(X)
    clf.partial_fit(X[:30], 1 - y[:30])
    assert not np.allclose(before, clf.predict_proba(X))


def test_online_meta_update_follows_the_meta_leader(klass, shifted):
    X, y, groups = shifted
    train = groups != "new"
    clf = klass(online_meta_update=True, **FAST)
    clf.fit(X[train], y[train], sensitive_features=groups[train])
    meta = [p.detach().clone() for p in clf.module_.parameters()]
    old = clf.predict_proba(X[train], sensitive_features=groups[train])
    rows = np.flatnonzero(groups == "new")[:10]
    clf.partial_fit(X[rows], y[rows], sensitive_features=groups[rows])
    assert len(clf.history) == FAST["max_epochs"] + 1
    assert any(
        not torch.equal(a, b)
        for a, b in zip(meta, clf.module_.parameters(), strict=True)
    )
    # Every task is adapted again from the updated meta-parameters.
    assert not np.allclose(
        old, clf.predict_proba(X[train], sensitive_features=groups[train])
    )
    assert "new" in clf.tasks_


def test_task_prototypes_follow_a_changed_global_state(shifted):
    X, y, groups = shifted
    clf = PrototypicalClassifier(**FAST).fit(X, y, sensitive_features=groups)
    before = [state.clone() for state in clf.task_states_]
    clf.partial_fit(X[:40], 1 - y[:40])  # rows without a task: new global state
    prior = clf.global_state_
    for t, state in enumerate(clf.task_states_):
        # Each task's prototypes shrink toward the new global prototypes.
        rows = clf.support_.tasks.rows(t)
        with torch.no_grad():
            emb = clf.module_(torch.as_tensor(clf.support_.tasks.X[rows])).double()
        yt = clf.support_.tasks.y[rows]
        expected = torch.stack(
            [
                (emb[yt == k].sum(0) + clf.prior_strength_ * prior[k].double())
                / ((yt == k).sum() + clf.prior_strength_)
                for k in range(2)
            ]
        )
        torch.testing.assert_close(state.double(), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(state, before[t])


def test_new_groups_extend_the_label_map_without_touching_copies(shifted):
    """Each new group adds one entry to the cached label map (no rebuild of
    the whole table), and a shallow copy made before keeps its own map."""
    X, y, groups = shifted
    clf = PrototypicalClassifier(max_epochs=1, steps_per_epoch=2, random_state=0)
    clf.fit(X, y, sensitive_features=groups)
    before = copy.copy(clf)
    known = len(clf.tasks_)
    for i in range(3):
        clf.partial_fit(X[:4], y[:4], sensitive_features=np.full(4, f"new{i}"))
    tasks, mapping, _ = clf._tasks_index_
    assert tasks is clf.tasks_ and len(mapping) == known + 3
    assert [mapping[t] for t in clf.tasks_] == list(range(known + 3))
    assert len(before._tasks_index_[1]) == known
    # Codes through the map equal those of a fresh table, with repeated and
    # unknown labels.
    labels = np.array(["new2", groups[0], "nope", "new0", groups[0]], dtype=object)
    np.testing.assert_array_equal(
        _encode_tasks(clf, labels), encode_groups(labels, clf.tasks_)
    )
    assert list(_encode_tasks(clf, labels)[[0, 2, 3]]) == [known + 2, -1, known]


def test_class_priors_updated_for_the_touched_tasks_equal_a_recomputation(
    klass, shifted
):
    # partial_fit recomputes the class priors of the tasks it touches (and of
    # new ones) only; they equal the priors computed from scratch.
    from skmeta._objectives import shrunk_log_priors

    X, y, groups = shifted
    seen = groups != "new"
    clf = klass(**FAST).fit(X[seen], y[seen], sensitive_features=groups[seen])
    rng = np.random.RandomState(0)
    for i, name in enumerate(["new", "a", "other", "new"]):
        rows = rng.choice(len(y), 7 + i, replace=False)
        clf.partial_fit(X[rows], y[rows], sensitive_features=[name] * len(rows))
    expected = shrunk_log_priors(clf.class_counts_, clf._prior_strength())
    assert clf.log_priors_.shape == (len(clf.tasks_) + 1, 2)
    torch.testing.assert_close(clf.log_priors_, expected, rtol=0, atol=0)
    # Rows without a task change the pooled frequencies: all recomputed.
    clf.partial_fit(X[:30], y[:30])
    expected = shrunk_log_priors(clf.class_counts_, clf._prior_strength())
    torch.testing.assert_close(clf.log_priors_, expected, rtol=0, atol=0)


def test_cpu_partial_fit_seeds_only_the_cpu_generator(klass, shifted, monkeypatch):
    # torch.manual_seed also queues lazy seeding calls for every accelerator
    # backend, each recording a stack trace: a quarter of a small partial_fit.
    X, y, groups = shifted
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    expected = copy.deepcopy(clf).partial_fit(
        X[:10], y[:10], sensitive_features=["other"] * 10
    )

    def forbidden(seed):
        raise AssertionError("torch.manual_seed called on the CPU")

    monkeypatch.setattr(torch, "manual_seed", forbidden)
    clf.partial_fit(X[:10], y[:10], sensitive_features=["other"] * 10)
    np.testing.assert_array_equal(
        clf.predict_proba(X, sensitive_features=groups),
        expected.predict_proba(X, sensitive_features=groups),
    )
