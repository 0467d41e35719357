"""Behaviour of both estimators: inputs, groups, tasks, determinism, skorch."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone, is_classifier
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import ValidSplit

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta._input import validate_fit_input
from skmeta.exceptions import UnknownGroupWarning

ESTIMATORS = [MAMLClassifier, PrototypicalClassifier]
FAST = dict(max_epochs=2, steps_per_epoch=5, random_state=0)


@pytest.fixture(params=ESTIMATORS, ids=lambda k: k.__name__)
def klass(request):
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_numeric_arrays_and_string_labels(klass, grouped_data, dtype):
    X, y, groups = grouped_data
    labels = np.array(["no", "yes"])[y]
    clf = klass(**FAST).fit(X.astype(dtype), labels, sensitive_features=groups)
    assert is_classifier(clf)
    assert clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    pred = clf.predict(X, sensitive_features=groups)
    assert set(pred) <= {"no", "yes"}
    proba = clf.predict_proba(X, sensitive_features=groups)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    scores = clf.decision_function(X, sensitive_features=groups)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    np.testing.assert_array_equal(scores > 0, proba[:, 1] > 0.5)
    np.testing.assert_allclose(
        np.exp(clf.predict_log_proba(X, sensitive_features=groups)), proba
    )


def test_multiclass_non_contiguous_labels_and_dataframe(klass, grouped_data):
    X, _, groups = grouped_data
    y = np.digitize(X[:, 0], [-0.5, 0.5]) * 5 + 3  # {3, 8, 13}
    df = pd.DataFrame(X, columns=list("abcd"))
    clf = klass(**FAST).fit(df, y, sensitive_features=pd.Series(groups))
    np.testing.assert_array_equal(clf.classes_, [3, 8, 13])
    np.testing.assert_array_equal(clf.feature_names_in_, list("abcd"))
    assert clf.predict_proba(df).shape == (len(X), 3)
    assert clf.decision_function(df).shape == (len(X), 3)
    assert set(clf.predict(df)) <= {3, 8, 13}


def test_same_seed_same_predictions_and_global_rng_untouched(klass, grouped_data):
    X, y, groups = grouped_data
    torch.manual_seed(123)
    state = torch.get_rng_state()
    p1 = klass(**FAST).fit(X, y, sensitive_features=groups).predict_proba(X)
    assert torch.equal(torch.get_rng_state(), state)
    p2 = klass(**FAST).fit(X, y, sensitive_features=groups).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)
    p3 = (
        klass(**{**FAST, "random_state": 1})
        .fit(X, y, sensitive_features=groups)
        .predict_proba(X)
    )
    assert not np.allclose(p1, p3)


def test_groups_have_their_own_state(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    assert clf.task_source_ == "sensitive_features"
    np.testing.assert_array_equal(clf.tasks_, ["a", "b", "c"])
    assert len(clf.task_states_) == 3
    known = clf.predict_proba(X, sensitive_features=groups)
    unknown = clf.predict_proba(X)  # the pooled state
    assert not np.allclose(known, unknown)
    # An unseen group label falls back to the pooled state, with a warning.
    with pytest.warns(UnknownGroupWarning, match="never seen.*'zzz'"):
        fallback = clf.predict_proba(X, sensitive_features=np.full(len(X), "zzz"))
    np.testing.assert_allclose(fallback, unknown)
    # A row's prediction does not depend on the other rows of the call.
    np.testing.assert_allclose(
        clf.predict_proba(X[:7], sensitive_features=groups[:7]), known[:7]
    )


def test_tasks_separate_from_sensitive_features(klass, grouped_data):
    X, y, groups = grouped_data
    sites = np.arange(len(X)) % 4
    clf = klass(**FAST).fit(X, y, sensitive_features=groups, tasks=sites)
    assert clf.task_source_ == "tasks"
    np.testing.assert_array_equal(clf.tasks_, [0, 1, 2, 3])
    np.testing.assert_array_equal(clf.groups_, ["a", "b", "c"])
    p = clf.predict_proba(X, tasks=sites)
    assert not np.allclose(p, clf.predict_proba(X))


def test_pooled_when_no_groups(klass, grouped_data):
    X, y, _ = grouped_data
    clf = klass(**FAST).fit(X, y)
    assert clf.task_source_ == "pooled"
    assert len(clf.tasks_) == 0
    assert clf.score(X, y) > 0.6


def test_intersectional_groups_from_2d_sensitive_features(klass, grouped_data):
    X, y, groups = grouped_data
    sf = pd.DataFrame({"g": groups, "h": np.where(X[:, 2] > 0, "x", "z")})
    clf = klass(**FAST).fit(X, y, sensitive_features=sf)
    assert "a, x" in clf.tasks_ and len(clf.tasks_) == 6
    np.testing.assert_allclose(
        clf.predict_proba(X, sensitive_features=sf),
        clf.predict_proba(X, sensitive_features=sf.to_numpy()),
    )


def test_sensitive_columns_equal_sensitive_features(klass, grouped_data):
    X, y, groups = grouped_data
    df = pd.DataFrame(X, columns=list("abcd")).assign(group=groups)
    by_column = klass(sensitive_columns="group", **FAST).fit(df, y)
    by_argument = klass(**FAST).fit(X, y, sensitive_features=groups)
    assert by_column.n_features_in_ == 5
    np.testing.assert_allclose(
        by_column.predict_proba(df),
        by_argument.predict_proba(X, sensitive_features=groups),
    )
    # Positions work on arrays; the groups may be any column.
    arr = np.column_stack([groups == "a", X]).astype(float)
    by_position = klass(sensitive_columns=[0], **FAST).fit(arr, y)
    np.testing.assert_array_equal(by_position.tasks_, [0.0, 1.0])
    assert by_position.predict(arr).shape == (len(X),)


def test_small_groups_follow_the_documented_rule(klass, grouped_data):
    X, y, groups = grouped_data
    groups = groups.astype(object)
    groups[0] = "single"  # one row: no query set possible
    groups[1:4] = "tiny"
    y = y.copy()
    y[1:4] = 1  # one class only
    with pytest.warns(UserWarning, match="left out of meta-training: single"):
        clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    assert {"single", "tiny"} <= set(clf.tasks_)
    p = clf.predict_proba(X[:4], sensitive_features=groups[:4])
    assert np.isfinite(p).all()


def test_inputs_are_not_modified(klass, grouped_data):
    X, y, groups = grouped_data
    df = pd.DataFrame(X, columns=list("abcd")).assign(g=groups)
    w = np.linspace(0.5, 2, len(X))
    copies = [X.copy(), y.copy(), groups.copy(), df.copy(), w.copy()]
    clf = klass(**FAST).fit(X, y, sensitive_features=groups, sample_weight=w)
    clf.partial_fit(X[:5], y[:5], sensitive_features=groups[:5], sample_weight=w[:5])
    clf.predict_proba(X, sensitive_features=groups)
    klass(sensitive_columns="g", **FAST).fit(df, y).predict(df)
    for before, after in zip(copies, [X, y, groups, df, w], strict=True):
        if isinstance(before, pd.DataFrame):
            pd.testing.assert_frame_equal(before, after)
        else:
            np.testing.assert_array_equal(before, after)


def test_predict_checks(klass, grouped_data):
    X, y, groups = grouped_data
    with pytest.raises(Exception, match="not fitted"):
        klass().predict(X)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="sensitive_features has 5 rows"):
        clf.predict(X, sensitive_features=groups[:5])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full_like(X, np.nan))


def test_group_columns_must_match_fit(klass, grouped_data):
    """Groups given by other columns than in fit raise, rather than making
    every row an unknown group served by the pooled model."""
    X, y, groups = grouped_data
    rng = np.random.default_rng(0)
    sf = pd.DataFrame({"g": groups, "h": rng.choice(["u", "v"], len(y))})
    clf = klass(**FAST).fit(X, y, sensitive_features=sf)
    expected = clf.predict_proba(X, sensitive_features=sf)
    # The same columns, as a DataFrame, an array or a list of rows: served.
    np.testing.assert_array_equal(
        clf.predict_proba(X, sensitive_features=sf.to_numpy()), expected
    )
    np.testing.assert_array_equal(
        clf.predict_proba(X, sensitive_features=sf.to_numpy().tolist()), expected
    )
    with pytest.raises(ValueError, match=r"columns \['h', 'g'\].*\['g', 'h'\]"):
        clf.predict(X, sensitive_features=sf[["h", "g"]])
    with pytest.raises(ValueError, match=r"1 column\(s\).*2 column\(s\) \['g', 'h'\]"):
        clf.predict(X, sensitive_features=sf["g"])
    with pytest.raises(ValueError, match=r"1 column\(s\).*2 column\(s\)"):
        clf.predict_proba(X, sensitive_features=groups)
    before = clf.tasks_.copy()
    with pytest.raises(ValueError, match=r"sensitive_features has the columns"):
        clf.partial_fit(X[:6], y[:6], sensitive_features=sf[["h", "g"]][:6])
    np.testing.assert_array_equal(clf.tasks_, before)  # raised before any change
    # A Series' name counts as its column's; tasks are checked alike.
    clf = klass(**FAST).fit(X, y, tasks=pd.Series(groups, name="site"))
    clf.predict(X, tasks=pd.Series(groups, name="site"))
    clf.predict(X, tasks=groups)  # no name: the count alone is checked
    with pytest.raises(ValueError, match=r"tasks has the columns \['ward'\]"):
        clf.predict(X, tasks=pd.Series(groups, name="ward"))
    with pytest.raises(ValueError, match=r"tasks has 2 column\(s\)"):
        clf.partial_fit(X[:6], y[:6], tasks=sf[:6])
    # A refit forgets the columns of the previous fit.
    clf.fit(X, y, tasks=sf)
    clf.predict(X, tasks=sf)


def test_skorch_parameters_history_and_callbacks(klass, grouped_data, capsys):
    X, y, groups = grouped_data
    hidden = {"module__hidden_units": (8, 8)}
    clf = klass(
        max_epochs=30,
        steps_per_epoch=3,
        random_state=0,
        verbose=1,
        optimizer=torch.optim.SGD,
        lr=0.05,
        optimizer__momentum=0.9,
        callbacks=[
            ("stop", EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)),
            ("sched", LRScheduler("StepLR", step_size=1, gamma=0.5)),
        ],
        **hidden,
    ).fit(X, y, sensitive_features=groups)
    assert 1 < len(clf.history) < 30  # early stopping fired
    assert clf.module_.net[2].out_features == 8
    assert isinstance(clf.optimizer_, torch.optim.SGD)
    assert clf.optimizer_.param_groups[0]["lr"] < 0.05
    assert "train_loss" in capsys.readouterr().out
    assert clone(clf).get_params()["module__hidden_units"] == (8, 8)
    clf.set_params(module__hidden_units=(4,))
    assert clf.module_.net[0].out_features == 4


def test_train_split_gives_validation_scores(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(
        max_epochs=2,
        steps_per_epoch=5,
        random_state=0,
        train_split=ValidSplit(4, stratified=True),
        callbacks=[EpochScoring("roc_auc", name="valid_auc", lower_is_better=False)],
    ).fit(X, y, sensitive_features=groups)
    for key in ["valid_loss", "valid_acc", "valid_auc"]:
        assert len(clf.history[:, key]) == 2
    # After fitting, every row (validation rows too) is in the support set.
    assert clf.support_.pooled.n == len(y)
    # The validation rows were predicted as predict would, with every task
    # adapted to its training rows: rebuild that state and compare.
    dataset = clf.get_dataset(X.astype(np.float32), y)
    train, valid = ValidSplit(4, stratified=True)(dataset, y)
    rows_train, rows_valid = np.asarray(train.indices), np.asarray(valid.indices)
    # The fitted network and tasks are kept; only the support set changes.
    replay = copy.deepcopy(clf)
    codes = validate_fit_input(
        replay, X, y, groups, None, None, classes=None, reset=False
    )
    subset = type(codes)(
        X=codes.X[rows_train],
        task=codes.task[rows_train],
        group=codes.group[rows_train],
        weight=codes.weight[rows_train],
        y=codes.y[rows_train],
    )
    replay._set_support(replay._new_support(subset))
    pred = replay.predict(X[rows_valid], sensitive_features=groups[rows_valid])
    assert clf.history[-1, "valid_acc"] == pytest.approx(np.mean(pred == y[rows_valid]))
    proba = replay.predict_proba(X[rows_valid], sensitive_features=groups[rows_valid])
    valid_loss = -np.mean(np.log(proba[np.arange(len(rows_valid)), y[rows_valid]]))
    assert clf.history[-1, "valid_loss"] == pytest.approx(valid_loss, rel=1e-4)


def test_pickle_and_clone(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        restored.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )
    fresh = clone(clf)
    assert not hasattr(fresh, "classes_")
    assert fresh.get_params()["random_state"] == 0


def test_warm_start_continues_training(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(warm_start=True, **FAST).fit(X, y, sensitive_features=groups)
    before = [p.detach().clone() for p in clf.module_.parameters()]
    clf.fit(X, y, sensitive_features=groups)
    assert len(clf.history) == 4
    assert any(
        not torch.equal(a, b)
        for a, b in zip(before, clf.module_.parameters(), strict=True)
    )


def test_learned_step_sizes_are_trained_and_pickled(grouped_data):
    X, y, groups = grouped_data
    clf = MAMLClassifier(learn_inner_lr=True, inner_lr=0.2, **FAST)
    clf.fit(X, y, sensitive_features=groups)
    step_sizes = torch.cat([s.flatten() for s in clf.meta_sgd_().values()])
    assert not torch.allclose(step_sizes, torch.full_like(step_sizes, 0.2))
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        restored.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )


def test_learned_prior_takes_larger_steps_unless_placed(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(lr=2e-3, **FAST).fit(X, y, sensitive_features=groups)
    prior = {id(p) for p in clf.prior_.parameters()}
    (group,) = [
        g for g in clf.optimizer_.param_groups if {id(p) for p in g["params"]} & prior
    ]
    assert {id(p) for p in group["params"]} == prior
    assert group["lr"] == pytest.approx(30 * 2e-3)
    others = [g for g in clf.optimizer_.param_groups if g is not group]
    assert others and all(g["lr"] == pytest.approx(2e-3) for g in others)
    # optimizer__param_groups naming the prior places it as the user says.
    placed = klass(
        lr=2e-3, optimizer__param_groups=[("log.*", {"lr": 0.5})], **FAST
    ).fit(X, y, sensitive_features=groups)
    lrs = [
        g["lr"]
        for g in placed.optimizer_.param_groups
        if {id(p) for p in g["params"]} & {id(p) for p in placed.prior_.parameters()}
    ]
    assert lrs == [0.5]


def test_history_records_the_learned_prior_each_epoch(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    strengths = clf.history[:, "prior_strength"]
    assert len(strengths) == FAST["max_epochs"]
    assert strengths[-1] == pytest.approx(clf.prior_strength_)
    assert strengths[0] != strengths[-1]  # learned, so it moved
    if klass is PrototypicalClassifier:
        assert clf.history[-1, "distance_scale"] == pytest.approx(clf.distance_scale_)
    fixed = klass(**FAST).set_params(
        **{"prior_strength" if klass is MAMLClassifier else "shrinkage": 3.0}
    )
    fixed.fit(X, y, sensitive_features=groups)
    assert "prior_strength" not in fixed.history[-1]


def test_warm_start_keeps_classes_and_replaces_tasks(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(warm_start=True, **FAST).fit(X, y, sensitive_features=groups)
    clf.fit(
        X[groups == "a"], y[groups == "a"], sensitive_features=groups[groups == "a"]
    )
    np.testing.assert_array_equal(clf.tasks_, ["a"])
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    with pytest.raises(ValueError, match="keep its 4 model features"):
        clf.fit(X[:, :3], y)
    clf = klass(warm_start=True, **FAST).fit(X, y, sensitive_features=groups)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.fit(X, y + 5)


def test_progress_bar_total_is_the_meta_batches_run(klass, grouped_data):
    from skorch.callbacks import ProgressBar

    class Recording(ProgressBar):
        def on_epoch_begin(self, net, **kwargs):
            super().on_epoch_begin(net, **kwargs)
            self.totals_ = [*getattr(self, "totals_", []), self.pbar_.total]

    X, y, groups = grouped_data
    bar = Recording()
    clf = klass(callbacks=[bar], **{**FAST, "steps_per_epoch": 7})
    clf.fit(X, y, sensitive_features=groups)
    run = [len(clf.history[e, "batches"]) for e in range(len(clf.history))]
    assert bar.totals_ == run == [7] * FAST["max_epochs"]


def test_history_and_batch_callbacks_see_every_meta_batch(klass, grouped_data):
    # The training loop is skorch's, with the batch size read from the task
    # ids: the history and batch callbacks must see what skorch's would.
    class Counting(Callback):
        def initialize(self):
            self.begin_, self.end_, self.losses_ = 0, 0, []
            return self

        def on_batch_begin(self, net, batch=None, training=None, **kwargs):
            assert training and batch[1] is None and "support_X" in batch[0]
            self.begin_ += 1

        def on_batch_end(self, net, batch=None, training=None, **kwargs):
            self.end_ += 1
            self.losses_.append(kwargs["loss"].item())

    X, y, groups = grouped_data
    counting = Counting()
    clf = klass(
        callbacks=[counting], **{**FAST, "steps_per_epoch": 3, "meta_batch_size": 2}
    ).fit(X, y, sensitive_features=groups)
    epochs = FAST["max_epochs"]
    assert counting.begin_ == counting.end_ == 3 * epochs
    assert clf.history[:, "train_batch_count"] == [3] * epochs
    assert clf.history[:, "batches", :, "train_batch_size"] == [[2] * 3] * epochs
    recorded = clf.history[:, "batches", :, "train_loss"]
    assert np.allclose(np.ravel(recorded), counting.losses_)
    assert np.allclose(clf.history[:, "train_loss"], np.mean(recorded, axis=1))


def test_progress_bar_and_checkpoint(klass, grouped_data, tmp_path):
    from skorch.callbacks import Checkpoint, ProgressBar

    X, y, groups = grouped_data
    clf = klass(
        callbacks=[
            ProgressBar(),
            Checkpoint(monitor="train_loss_best", dirname=str(tmp_path)),
        ],
        **FAST,
    ).fit(X, y, sensitive_features=groups)
    assert (tmp_path / "params.pt").exists()
    assert any(row["event_cp"] for row in clf.history)
    other = klass(**{**FAST, "random_state": 1}).fit(X, y, sensitive_features=groups)
    before = other.predict_proba(X, sensitive_features=groups)
    other.load_params(f_params=str(tmp_path / "params.pt"))
    saved = torch.load(tmp_path / "params.pt", weights_only=True)
    for name, value in other.module_.state_dict().items():
        assert torch.equal(value, saved[name])
    # The task states follow the loaded network.
    after = other.predict_proba(X, sensitive_features=groups)
    assert not np.allclose(before, after)
    fresh = pickle.loads(pickle.dumps(other))
    fresh._refresh_states(range(len(fresh.tasks_)), recompute_global=True)
    np.testing.assert_allclose(after, fresh.predict_proba(X, sensitive_features=groups))


def test_pretraining_trains_the_module_on_weighted_pooled_rows(klass, grouped_data):
    X, y, groups = grouped_data
    clf = klass(pretrain_epochs=30, **FAST).fit(X, y, sensitive_features=groups)
    # Rows of zero weight take no part: pretraining with them gives the same
    # network as without them.
    X2, y2 = np.vstack([X, X[:7] * 5]), np.r_[y, 1 - y[:7]]
    w2 = np.r_[np.ones(len(y)), np.zeros(7)]
    datasets = [
        validate_fit_input(
            clf, X, y, groups, None, None, classes=clf.classes_, reset=False
        ),
        validate_fit_input(
            clf,
            X2,
            y2,
            np.r_[groups, groups[:7]],
            None,
            w2,
            classes=clf.classes_,
            reset=False,
        ),
    ]
    states = []
    for data in datasets:
        torch.manual_seed(0)
        clf.initialize()
        start = copy.deepcopy(clf.module_.state_dict())
        clf._pretrain(data, seed=3)
        states.append(copy.deepcopy(clf.module_.state_dict()))
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name])
    assert any(not torch.equal(start[n], v) for n, v in states[0].items())
    if klass is MAMLClassifier:
        # The module is the classifier: its class-balanced loss went down.
        def balanced_loss(state):
            clf.module_.load_state_dict(state)
            with torch.no_grad():
                out = clf.module_(torch.as_tensor(X, dtype=torch.float32))
            losses = torch.nn.functional.cross_entropy(
                out, torch.as_tensor(y), reduction="none"
            )
            return sum(losses[torch.as_tensor(y == c)].mean() for c in (0, 1))

        assert balanced_loss(states[0]) < 0.9 * balanced_loss(start)


def test_pretraining_runs_when_the_network_is_initialised_only(
    klass, grouped_data, monkeypatch
):
    X, y, groups = grouped_data
    calls = []
    original = klass._pretrain
    monkeypatch.setattr(
        klass, "_pretrain", lambda self, *a: calls.append(1) or original(self, *a)
    )
    klass(pretrain_epochs=0, **FAST).fit(X, y, sensitive_features=groups)
    assert calls == []
    clf = klass(pretrain_epochs=1, warm_start=True, **FAST)
    clf.fit(X, y, sensitive_features=groups)
    assert calls == [1]
    clf.fit(X, y, sensitive_features=groups)  # warm start: continues
    assert calls == [1]
    clf = klass(pretrain_epochs=1, **FAST)
    clf.partial_fit(X, y, classes=[0, 1], sensitive_features=groups)
    clf.partial_fit(X[:20], y[:20], sensitive_features=groups[:20])
    assert calls == [1, 1]


def test_pretraining_leaves_the_validation_rows_out(klass, grouped_data, monkeypatch):
    X, y, groups = grouped_data
    seen = []
    original = klass._pretrain
    monkeypatch.setattr(
        klass,
        "_pretrain",
        lambda self, data, seed: seen.append(data) or original(self, data, seed),
    )
    split = ValidSplit(4, stratified=True)
    clf = klass(pretrain_epochs=1, train_split=split, **FAST)
    clf.fit(X, y, sensitive_features=groups)
    dataset = clf.get_dataset(X.astype(np.float32), y)
    train, valid = split(dataset, y)
    rows_train = np.asarray(train.indices)
    assert len(seen) == 1 and len(seen[0].y) == len(rows_train) < len(y)
    np.testing.assert_array_equal(seen[0].X, X[rows_train].astype(np.float32))
    np.testing.assert_array_equal(seen[0].y, y[rows_train])
