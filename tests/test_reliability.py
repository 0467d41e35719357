"""Reliability: bad input, concurrency, divergence, persistence, bookkeeping.

The bad-input matrix is one table across the constructor parameters,
``fit``, ``partial_fit`` and the prediction methods: each case must fail
with a message that names the problem, before any training starts, and
leave every argument as it was.
"""

import copy
import io
import pickle
import threading
import warnings
from unittest import mock

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback, EarlyStopping
from skorch.exceptions import SkorchTrainingImpossibleError

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification
from skmeta.exceptions import ConstantPredictorWarning, UnknownGroupWarning
from skmeta.utils import _validation, check_groups

ESTIMATORS = [MAMLClassifier, PrototypicalClassifier]
FAST = dict(max_epochs=2, steps_per_epoch=4, random_state=0)


@pytest.fixture(params=ESTIMATORS, ids=lambda k: k.__name__)
def klass(request):
    return request.param


def _data(n=30, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    y = (X[:, 0] > 0).astype(int)
    groups = np.array(["a", "b", "c"])[np.arange(n) % 3]
    return X, y, groups


class _Recorder(Callback):
    def initialize(self):
        self.calls = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.calls.append("train_begin")


# (id, method, constructor params, arguments to change, match)
X0, Y0, G0 = _data()
BAD = [
    # fit: X
    ("X-nan", "fit", {}, {"X": np.full((30, 3), np.nan)}, "NaN"),
    ("X-inf", "fit", {}, {"X": np.full((30, 3), np.inf)}, "infinity"),
    ("X-1d", "fit", {}, {"X": np.zeros(30)}, "Expected 2D array"),
    (
        "X-empty",
        "fit",
        {},
        {"X": np.zeros((0, 3)), "y": [], "sensitive_features": None},
        "0 sample",
    ),
    ("X-strings", "fit", {}, {"X": np.full((30, 3), "a")}, "convert"),
    (
        "X-one-row",
        "fit",
        {},
        {"X": X0[:1], "y": Y0[:1], "sensitive_features": None},
        "at least 2 samples",
    ),
    # fit: y
    ("y-length", "fit", {}, {"y": Y0[:-1]}, "inconsistent numbers of samples"),
    ("y-continuous", "fit", {}, {"y": np.linspace(0, 1, 30)}, "Unknown label type"),
    ("y-one-class", "fit", {}, {"y": np.zeros(30)}, "at least 2 classes"),
    ("y-nan", "fit", {}, {"y": np.r_[np.nan, Y0[1:]]}, "NaN"),
    # fit: groups and tasks
    (
        "groups-length",
        "fit",
        {},
        {"sensitive_features": G0[:-1]},
        "sensitive_features has 29 rows",
    ),
    (
        "groups-3d",
        "fit",
        {},
        {"sensitive_features": np.zeros((30, 1, 1))},
        "must be 1-D or 2-D",
    ),
    (
        "groups-none",
        "fit",
        {},
        {"sensitive_features": [None] + ["a"] * 29},
        "missing values",
    ),
    (
        "groups-nan-series",
        "fit",
        {},
        {"sensitive_features": pd.Series([np.nan] + ["a"] * 29)},
        "missing values",
    ),
    ("tasks-length", "fit", {}, {"tasks": np.zeros(31)}, "tasks has 31 rows"),
    ("tasks-missing", "fit", {}, {"tasks": [None] * 30}, "tasks contains missing"),
    # fit: sample_weight
    ("weight-length", "fit", {}, {"sample_weight": np.ones(29)}, "sample_weight"),
    ("weight-negative", "fit", {}, {"sample_weight": -np.ones(30)}, "(?i)negative"),
    (
        "weight-nan",
        "fit",
        {},
        {"sample_weight": np.r_[np.nan, np.ones(29)]},
        "NaN",
    ),
    ("weight-zero", "fit", {}, {"sample_weight": np.zeros(30)}, "non-zero"),
    # fit: combinations
    (
        "constraints-no-groups",
        "fit",
        {"constraints": "demographic_parity", "fairness_weight": 1.0},
        {"sensitive_features": None},
        "needs the groups",
    ),
    (
        "columns-and-groups",
        "fit",
        {"sensitive_columns": [0]},
        {},
        "either sensitive_features or sensitive_columns",
    ),
    (
        "columns-name-on-array",
        "fit",
        {"sensitive_columns": "g"},
        {"sensitive_features": None},
        "is a name, but X is not a pandas DataFrame",
    ),
    (
        "columns-unknown-name",
        "fit",
        {"sensitive_columns": ["nope"]},
        {"X": pd.DataFrame(X0, columns=list("abc")), "sensitive_features": None},
        "not a column",
    ),
    (
        "columns-out-of-range",
        "fit",
        {"sensitive_columns": [7]},
        {"sensitive_features": None},
        "not a column of X",
    ),
    (
        "columns-empty",
        "fit",
        {"sensitive_columns": []},
        {"sensitive_features": None},
        "at least one column",
    ),
    # constructor parameters, checked when fitting starts
    ("n_shots", "fit", {"n_shots": 0}, {}, "n_shots"),
    ("n_queries", "fit", {"n_queries": -1}, {}, "n_queries"),
    ("max_epochs", "fit", {"max_epochs": 0}, {}, "max_epochs"),
    ("meta_batch_size", "fit", {"meta_batch_size": 0}, {}, "meta_batch_size"),
    ("steps_per_epoch", "fit", {"steps_per_epoch": 0}, {}, "steps_per_epoch"),
    ("lr", "fit", {"lr": 0.0}, {}, "'lr'"),
    ("class_prior", "fit", {"class_prior": "x"}, {}, "class_prior"),
    ("constraints", "fit", {"constraints": "parity"}, {}, "constraints"),
    ("fairness_weight", "fit", {"fairness_weight": -1.0}, {}, "fairness_weight"),
    (
        "fairness_temperature",
        "fit",
        {"fairness_temperature": 0.0},
        {},
        "fairness_temperature",
    ),
    ("dro_step_size", "fit", {"dro_step_size": -1.0}, {}, "dro_step_size"),
    ("pooled_episodes", "fit", {"pooled_episodes": 1.5}, {}, "pooled_episodes"),
    ("task_sampling", "fit", {"task_sampling": "rows"}, {}, "task_sampling"),
    (
        "online_meta_update",
        "fit",
        {"online_meta_update": "yes"},
        {},
        "online_meta_update",
    ),
    ("support_size", "fit", {"support_size": 0}, {}, "support_size"),
    ("unknown_groups", "fit", {"unknown_groups": "ignore"}, {}, "unknown_groups"),
    ("inference_dtype", "fit", {"inference_dtype": "float16"}, {}, "inference_dtype"),
    ("random_state", "fit", {"random_state": "x"}, {}, "random_state"),
    ("n_threads", "fit", {"n_threads": 0}, {}, "n_threads"),
    ("compile", "fit", {"compile": True}, {}, "compile"),
    (
        "predict_nonlinearity",
        "fit",
        {"predict_nonlinearity": None},
        {},
        "predict_nonlinearity",
    ),
    (
        "cuda-without-cuda",
        "fit",
        {"device": "cuda" if not torch.cuda.is_available() else "cuda:4096"},
        {},
        "torch.cuda.is_available|cuda",
    ),
    (
        "early-stopping-without-validation",
        "fit",
        {"callbacks": [EarlyStopping(patience=2)]},
        {},
        "needs validation rows",
    ),
    # partial_fit
    (
        "partial-no-classes",
        "partial_fit_first",
        {},
        {},
        "classes must be passed on the first call",
    ),
    ("partial-new-class", "partial_fit", {}, {"y": np.full(30, 7)}, "not in classes_"),
    (
        "partial-other-classes",
        "partial_fit",
        {},
        {"classes": [0, 1, 2]},
        "is not the same as on last call to partial_fit",
    ),
    ("partial-n-features", "partial_fit", {}, {"X": X0[:, :2]}, "X has 2 features"),
    (
        "partial-groups-length",
        "partial_fit",
        {},
        {"sensitive_features": G0[:5]},
        "sensitive_features has 5 rows",
    ),
    # prediction
    ("predict-n-features", "predict", {}, {"X": X0[:, :2]}, "X has 2 features"),
    ("predict-nan", "predict", {}, {"X": np.full((30, 3), np.nan)}, "NaN"),
    (
        "predict-groups-length",
        "predict_proba",
        {},
        {"sensitive_features": G0[:5]},
        "sensitive_features has 5 rows",
    ),
    (
        "predict-unknown-error",
        "predict_proba",
        {"unknown_groups": "error"},
        {"sensitive_features": np.full(30, "zz")},
        "never seen in fit or partial_fit",
    ),
    (
        "predict-tasks-length",
        "decision_function",
        {},
        {"tasks": np.zeros(3)},
        "tasks has 3 rows",
    ),
]


def _arguments(method):
    X, y, groups = _data()
    if method == "fit":
        return {"X": X, "y": y, "sensitive_features": groups}
    if method.startswith("partial_fit"):
        return {"X": X, "y": y, "sensitive_features": groups}
    return {"X": X, "sensitive_features": groups}


@pytest.mark.parametrize(
    "method, params, changes, match",
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input_fails_clearly_before_training(klass, method, params, changes, match):
    recorder = _Recorder()
    params = dict(params)
    callbacks = [recorder, *params.pop("callbacks", [])]
    clf = klass(callbacks=callbacks, **{**FAST, **params})
    if method in ("partial_fit", "predict", "predict_proba", "decision_function"):
        clf.fit(*_data()[:2], sensitive_features=_data()[2])
        recorder.calls = []
    kwargs = {**_arguments(method), **changes}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    before = copy.deepcopy(kwargs)
    call = getattr(clf, "partial_fit" if method == "partial_fit_first" else method)
    with pytest.raises(ValueError, match=match):
        call(**kwargs)
    assert not getattr(recorder, "calls", [])  # no training started
    for key, value in before.items():  # nothing the user passed changed
        if isinstance(value, pd.DataFrame | pd.Series):
            assert value.equals(kwargs[key])
        else:
            np.testing.assert_array_equal(np.asarray(value), np.asarray(kwargs[key]))


def test_the_bad_input_matrix_is_large():
    assert len(BAD) >= 40


@pytest.mark.parametrize(
    "klass, params",
    [
        (MAMLClassifier, {"inner_lr": 0.0}),
        (MAMLClassifier, {"inner_steps": 0}),
        (MAMLClassifier, {"first_order": "yes"}),
        (MAMLClassifier, {"adapt_layers": "middle"}),
        (MAMLClassifier, {"proximal_weight": -1.0}),
        (PrototypicalClassifier, {"shrinkage": -1.0}),
    ],
)
def test_bad_estimator_specific_parameters(klass, params):
    with pytest.raises(ValueError, match=next(iter(params))):
        klass(**params).fit(*_data()[:2])


def test_settings_that_do_nothing_warn(klass):
    X, y, groups = _data(60)
    with pytest.warns(UserWarning, match="fairness_weight=1.0 has no effect"):
        klass(fairness_weight=1.0, **FAST).fit(X, y, sensitive_features=groups)


def test_predict_before_fit_raises_not_fitted(klass):
    with pytest.raises(NotFittedError, match="not fitted"):
        klass().predict(_data()[0])


# --------------------------------------------------------------- concurrency
def test_concurrent_prediction_equals_serial_and_leaves_the_model(klass):
    X, y, groups = _data(600, 4)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    params = {k: v.detach().clone() for k, v in clf.module_.named_parameters()}
    ids = {k: id(v) for k, v in clf.module_.named_parameters()}
    serial = clf.predict_proba(X, sensitive_features=groups)
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(5):
                out = clf.predict_proba(X, sensitive_features=groups)
            results[i] = out
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in results:
        np.testing.assert_array_equal(out, serial)
    for name, p in clf.module_.named_parameters():
        assert isinstance(p, torch.nn.Parameter) and id(p) == ids[name]
        assert p.dtype == torch.float32
        torch.testing.assert_close(p.detach(), params[name], rtol=0, atol=0)


def test_threads_are_restored_after_work_from_several_threads(klass):
    X, y, groups = _data(300)
    before = torch.get_num_threads()
    clf = klass(n_threads=1, **FAST).fit(X, y, sensitive_features=groups)
    assert torch.get_num_threads() == before
    seen = []

    def work():
        clf.predict_proba(X, sensitive_features=groups)
        seen.append(torch.get_num_threads())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.get_num_threads() == before


# ------------------------------------------------------------ divergence
def test_huge_features_stop_training_with_an_actionable_error():
    X, y, groups = _data(200, 3)
    with pytest.raises(FloatingPointError, match="standardise the features"):
        MAMLClassifier(**FAST).fit(X * 1e12, y, sensitive_features=groups)


def test_scores_that_overflow_raise_instead_of_nan():
    """Rows far outside the training scale: a ValueError that says so, never
    NaN probabilities or an arbitrary label (found with a ProtoNet whose
    squared distances overflow float32 at features of 1e30)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 4)).astype(np.float32)
    groups = rng.choice(list("abcd"), 400)
    y = (X[:, 0] + rng.standard_normal(400) > 0).astype(int)
    clf = PrototypicalClassifier(max_epochs=2, random_state=0)
    clf.fit(X, y, sensitive_features=groups)
    far = X[:3] * 1e30
    for method in (
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    ):
        with pytest.raises(ValueError, match=r"3 of 3 row\(s\).*overflow in float32"):
            getattr(clf, method)(far, sensitive_features=groups[:3])
    # One bad row among good ones is named; the good rows are not enough.
    mixed = np.vstack([X[:5], far[:1]])
    with pytest.raises(ValueError, match=r"1 of 6 row\(s\) of X \(the first: row 5\)"):
        clf.predict(mixed, sensitive_features=groups[:6])
    # Scores that overflow however they arise (here NaN from the network).
    clf._logits_array = lambda X, task: np.full((len(task), 2), np.nan)
    with pytest.raises(ValueError, match="cannot score 3 of 3"):
        clf.predict(X[:3], sensitive_features=groups[:3])


def test_large_dro_step_sizes_keep_weights_finite(klass):
    X, y, groups = _data(300, 3)
    clf = klass(dro_step_size=1e4, **FAST).fit(X, y, sensitive_features=groups)
    assert torch.isfinite(clf.dro_weights_).all()
    assert clf.dro_weights_.sum().item() == pytest.approx(1.0)
    assert np.isfinite(clf.predict_proba(X, sensitive_features=groups)).all()


# ----------------------------------------------------------- unknown groups
def test_unknown_group_policy(klass):
    X, y, groups = _data(90)
    clf = klass(unknown_groups="pooled", **FAST).fit(X, y, sensitive_features=groups)
    mixed = groups.copy().astype(object)
    mixed[:3] = "zz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(X, sensitive_features=mixed)  # "pooled": silent
    with pytest.warns(UnknownGroupWarning, match="No row's label is known"):
        clf.predict(X, sensitive_features=np.full(len(X), "zz"))
    clf.set_params(unknown_groups="warn")
    with pytest.warns(UnknownGroupWarning, match="3 of 90 rows"):
        clf.predict(X, sensitive_features=mixed)
    clf.set_params(unknown_groups="error")
    with pytest.raises(ValueError, match="never seen"):
        clf.predict(X, sensitive_features=mixed)
    # Predicting without groups is the documented pooled model: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(X)


def test_label_type_mismatch_is_named(klass):
    X, y, _ = _data(90)
    groups = np.arange(90) % 3
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    with pytest.warns(UnknownGroupWarning, match=r"like 0 \(int\).*like '0' \(str\)"):
        clf.predict(X, sensitive_features=groups.astype(str))


def test_intersectional_labels_do_not_collide():
    labels = check_groups([["a, b", "c"], ["a", "b, c"], ["a\\", "b"]], 3)
    assert len(set(labels)) == 3


@pytest.mark.parametrize("multiplier", [_validation._STRING_HASH_MULTIPLIER, 0])
def test_string_and_integer_labels_are_looked_up_as_python_objects(multiplier):
    # Numpy string and integer arrays take a path without a Python object per
    # row; it must give the object path's positions. Multiplier 0 hashes only
    # the last character, so "g1", "g11" and "x1" collide: the exact check
    # must catch it and fall back.
    rng = np.random.default_rng(0)
    mapping = _validation.label_map(np.array(["g1", "g11", "g2", "é"], dtype=object))
    labels = rng.choice(["g1", "g11", "x1", "g2", "", "é", "g"], size=500)
    codes, uniques = _validation._factorize_strings(labels, multiplier)
    assert np.array_equal(np.array(uniques, dtype=object)[codes], labels)
    expected = _validation.lookup_labels(mapping, labels.astype(object))
    assert set(expected) == {-1, 0, 1, 2, 3}
    with mock.patch.object(_validation, "_STRING_HASH_MULTIPLIER", multiplier):
        got = _validation.lookup_labels(mapping, labels)
    assert np.array_equal(got, expected)
    ints = rng.integers(-3, 8, size=500)
    int_map = _validation.label_map(np.arange(5).astype(object))
    assert np.array_equal(
        _validation.lookup_labels(int_map, ints),
        _validation.lookup_labels(int_map, ints.astype(object)),
    )


def test_string_index_looks_up_as_the_label_map():
    """The sorted hash index of numpy string labels, built at once or grown
    label by label, gives the label map's positions (unknown labels -1,
    strings of other array widths, non-ASCII, the empty string)."""
    rng = np.random.default_rng(1)
    known = np.array(["g1", "g11", "é", "", "group-10"])
    mapping = _validation.label_map(known.astype(object))
    index = _validation.string_index(known)
    grown = _validation.string_index(known[:2])
    for start in range(2, len(known)):
        grown = _validation.string_index(known[start : start + 1], start, grown)
    for part in range(3):
        np.testing.assert_array_equal(grown[part], index[part])
    labels = rng.choice(["g1", "g11", "x1", "é", "", "group-10", "g"], size=400)
    expected = _validation.lookup_labels(mapping, labels.astype(object))
    assert set(expected) == {-1, 0, 1, 2, 3, 4}
    calls = []
    original = _validation._lookup_hashes

    def counted(*args):
        calls.append(1)
        return original(*args)

    with mock.patch.object(_validation, "_lookup_hashes", counted):
        got = _validation.lookup_labels(mapping, labels, index)
    assert calls and np.array_equal(got, expected)
    # Labels of a wider array hash alike (the padding adds nothing).
    wide = labels.astype("U20")
    assert np.array_equal(_validation.lookup_labels(mapping, wide, index), expected)
    # Python strings in an object array (as fitted models keep their labels)
    # give the same index; other objects and integers none.
    for part in range(3):
        np.testing.assert_array_equal(
            _validation.string_index(known.astype(object))[part], index[part]
        )
    assert _validation.string_index(np.array(["a", 1], dtype=object)) is None
    assert _validation.string_index(np.arange(3)) is None


def test_string_index_falls_back_to_the_label_map_on_collisions():
    # Multiplier 0 hashes the first character only.
    with mock.patch.object(_validation, "_STRING_HASH_MULTIPLIER", 0):
        # Two known labels share a hash: no index.
        assert _validation.string_index(np.array(["g1", "g2"])) is None
        index = _validation.string_index(np.array(["a", "b", "c"]))
        assert index is not None
        mapping = _validation.label_map(np.array(["a", "b", "c"], dtype=object))
        # "ax" hashes as "a" without being it: the label map decides.
        labels = np.array(["ax", "b", "zz", "a"])
        assert (
            _validation._lookup_hashes(
                index, labels, _validation._string_hashes(labels)
            )
            is None
        )
        got = _validation.lookup_labels(mapping, labels, index)
    np.testing.assert_array_equal(got, [-1, 1, -1, 0])


def test_task_index_grows_with_new_groups_and_predicts_as_without(klass):
    X, y, groups = _data(90)
    groups = np.asarray(groups).astype(str)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    assert clf._tasks_index_[2] is not None
    for i in range(3):
        clf.partial_fit(X[:6], y[:6], sensitive_features=np.full(6, f"new{i}"))
    grown = clf._tasks_index_[2]
    fresh = _validation.string_index(clf.tasks_)
    for part in range(3):
        np.testing.assert_array_equal(grown[part], fresh[part])
    labels = np.concatenate([groups[:40], np.full(5, "new1"), np.full(5, "none")])
    rows = np.concatenate([X[:40], X[:10]])
    with pytest.warns(UnknownGroupWarning):
        proba = clf.predict_proba(rows, sensitive_features=labels)
    without = copy.copy(clf)
    without._tasks_index_ = clf._tasks_index_[:2] + (None,)
    with pytest.warns(UnknownGroupWarning):
        expected = without.predict_proba(rows, sensitive_features=labels)
    np.testing.assert_array_equal(proba, expected)


def test_string_labels_predict_as_object_labels(klass):
    X, y, groups = _data(90)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    as_strings = np.asarray(groups, dtype=str)
    assert as_strings.dtype.kind == "U"
    assert np.array_equal(
        clf.predict_proba(X, sensitive_features=as_strings),
        clf.predict_proba(X, sensitive_features=as_strings.astype(object)),
    )


# -------------------------------------------------------------- bookkeeping
def test_rows_without_a_task_never_reach_the_sampler_as_a_task(klass):
    X, y, groups = _data(120)
    clf = klass(online_meta_update=True, **FAST).fit(X, y, sensitive_features=groups)
    seen = []
    original = type(clf)._episode_sampler

    def spy(self, data, y, rng):
        seen.append(np.unique(data["task"]))
        return original(self, data, y, rng)

    type(clf)._episode_sampler = spy
    try:
        clf.partial_fit(X[:20], y[:20])  # no groups: the pooled support set
    finally:
        type(clf)._episode_sampler = original
    assert seen and all((codes >= 0).all() for codes in seen)


def test_small_task_warning_names_the_right_task(klass):
    X, y, groups = _data(120)
    groups = groups.astype(object)
    groups[0] = "single"
    with pytest.warns(UserWarning, match="left out of meta-training: single"):
        klass(**FAST).fit(X, y, sensitive_features=groups)


def test_a_known_task_without_weight_gets_the_pooled_state(klass):
    X, y, groups = _data(120)
    w = np.where(groups == "c", 0.0, 1.0)
    clf = klass(class_prior="balanced", **FAST).fit(
        X, y, sensitive_features=groups, sample_weight=w
    )
    c = groups == "c"
    np.testing.assert_allclose(
        clf.predict_proba(X[c], sensitive_features=groups[c]), clf.predict_proba(X[c])
    )


# ------------------------------------------------------------- persistence
def test_pickle_joblib_and_params_round_trips(klass, tmp_path):
    X, y, groups = _data(120)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    expected = clf.predict_proba(X, sensitive_features=groups)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        again.predict_proba(X, sensitive_features=groups), expected
    )
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(
        loaded.predict_proba(X, sensitive_features=groups), expected
    )
    # save_params / load_params into a fitted twin trained differently.
    clf.save_params(f_params=tmp_path / "params.pt", f_prior=tmp_path / "prior.pt")
    twin = klass(**{**FAST, "random_state": 1}).fit(X, y, sensitive_features=groups)
    assert not np.allclose(twin.predict_proba(X, sensitive_features=groups), expected)
    twin.load_params(f_params=tmp_path / "params.pt", f_prior=tmp_path / "prior.pt")
    np.testing.assert_allclose(
        twin.predict_proba(X, sensitive_features=groups), expected, rtol=1e-6, atol=1e-7
    )


def test_load_params_into_a_fresh_object(tmp_path):
    # skorch's restore pattern: a new object, sized with module__*, initialised.
    X, y, groups = _data(120, 4)
    clf = MAMLClassifier(**FAST).fit(X, y, sensitive_features=groups)
    clf.save_params(f_params=tmp_path / "params.pt")
    fresh = MAMLClassifier(module__n_features_in=4, module__n_classes=2).initialize()
    fresh.load_params(f_params=tmp_path / "params.pt")
    for a, b in zip(fresh.module_.parameters(), clf.module_.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_tensor_state_travels_with_skorch_device_mapping(klass):
    # skorch unpickles the attributes in cuda_dependent_attributes_ with a
    # map_location, so a model fitted on a GPU loads where there is none.
    X, y, groups = _data(120)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    state = clf.__getstate__()
    assert "states_" not in state and "log_priors_" not in state
    assert {"states_", "log_priors_"} <= set(clf.cuda_dependent_attributes_)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        restored.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )


def test_support_store_is_bounded_and_trimmable(klass):
    X, y, groups = _data(600)
    clf = klass(support_size=7, **FAST).fit(X, y, sensitive_features=groups)
    store = clf.support_
    for t in range(len(clf.tasks_)):
        rows = store.tasks.rows(t)
        assert np.bincount(store.tasks.y[rows]).max() <= 7
    assert np.bincount(store.pooled.y[: store.pooled.n]).max() <= 7
    # The class weights behind the priors count every row.
    np.testing.assert_allclose(store.counts[0], np.bincount(y))
    expected = clf.predict_proba(X, sensitive_features=groups)
    clf.trim_for_prediction()
    assert not hasattr(clf, "support_")
    trimmed = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        trimmed.predict_proba(X, sensitive_features=groups), expected
    )
    with pytest.raises(SkorchTrainingImpossibleError):
        trimmed.partial_fit(X[:4], y[:4], sensitive_features=groups[:4])


def test_pickled_store_holds_only_the_rows_kept(klass):
    X, y, groups = _data(600)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    # Adding rows reserves room for more (the arrays double).
    clf.partial_fit(X[:6], y[:6], sensitive_features=np.full(6, "new"))
    store = clf.support_.tasks
    copy_ = pickle.loads(pickle.dumps(clf))
    assert len(copy_.support_.tasks.y) == store.n < len(store.y)
    # The copy adapts and predicts as the original does.
    for model in (clf, copy_):
        model.partial_fit(X[6:12], y[6:12], sensitive_features=np.full(6, "new2"))
    np.testing.assert_array_equal(
        copy_.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )


# ------------------------------------------------------------- interruption
class _Interrupt(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt


def test_keyboard_interrupt_leaves_a_usable_model(klass):
    X, y, groups = _data(120)
    clf = klass(max_epochs=10, steps_per_epoch=2, callbacks=[_Interrupt()]).fit(
        X, y, sensitive_features=groups
    )
    assert len(clf.history) == 2
    p = clf.predict_proba(X, sensitive_features=groups)
    assert np.isfinite(p).all()


# ------------------------------------------------------------------ modules
def test_maml_rejects_batch_norm():
    class WithBatchNorm(torch.nn.Module):
        def __init__(self, n_features_in, n_classes):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(n_features_in, 8),
                torch.nn.BatchNorm1d(8),
                torch.nn.Linear(8, n_classes),
            )

        def forward(self, X):
            return self.net(X)

    X, y, groups = _data(60)
    with pytest.raises(ValueError, match="BatchNorm1d.*LayerNorm"):
        MAMLClassifier(WithBatchNorm, **FAST).fit(X, y, sensitive_features=groups)


def test_near_constant_classifier_is_reported(klass):
    X, y, groups = _data(200)
    clf = klass(**FAST).fit(X, y, sensitive_features=groups)
    # Force every prediction to class 0 through the class priors.
    clf.log_priors_ = clf.log_priors_ + torch.tensor([100.0, 0.0], dtype=torch.float64)
    data = type("Data", (), {})()
    data.X, data.task = X.astype(np.float32), np.zeros(len(X), dtype=np.int64)
    data.y, data.weight = y, np.ones(len(y))
    with pytest.warns(ConstantPredictorWarning, match="close to a constant"):
        clf._warn_if_near_constant(data)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_wide_rows_are_evaluated_in_smaller_chunks_with_the_same_results(
    klass, monkeypatch
):
    # Chunks of prediction, adaptation and the task mixture hold at most
    # _CHUNK_FLOATS floats of rows (fewer rows when rows are wide, so that
    # memory does not grow with the columns): a budget of a few rows gives
    # the same fitted model and predictions as the default one chunk.
    import skmeta._mixture as mixture_module
    import skmeta._support as support_module

    X, y, groups = make_group_classification(
        n_groups=8, n_samples_per_group=60, shift="types", random_state=0
    )
    groups = groups.astype(str)
    params = dict(max_epochs=1, steps_per_epoch=3, task_mixture="auto", random_state=0)
    reference = klass(**params).fit(X, y, sensitive_features=groups)
    assert support_module.chunk_rows(X.shape[1]) == support_module._PREDICT_CHUNK
    monkeypatch.setattr(support_module, "_CHUNK_FLOATS", 5 * X.shape[1])
    monkeypatch.setattr(mixture_module, "_MOMENT_FLOATS", 3 * X.shape[1])
    assert support_module.chunk_rows(X.shape[1]) == 5
    assert support_module.chunk_rows(10**9) == 1
    chunked = klass(**params).fit(X, y, sensitive_features=groups)
    assert chunked.task_mixture_ == reference.task_mixture_ > 0
    for name, state in reference.states_.items():
        torch.testing.assert_close(chunked.states_[name], state, rtol=1e-5, atol=1e-6)
    new = dict(sensitive_features=np.r_[groups[:50], ["new"] * 6])
    rows = np.r_[X[:50], X[-6:]]
    for model in (reference, chunked):
        model.partial_fit(X[-6:], y[-6:], sensitive_features=["new"] * 6)
    np.testing.assert_allclose(
        chunked.predict_proba(rows, **new),
        reference.predict_proba(rows, **new),
        rtol=1e-5,
        atol=1e-6,
    )
