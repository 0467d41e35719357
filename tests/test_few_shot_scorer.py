"""make_few_shot_scorer: adaptation to unseen groups, scored as the benchmark does."""

import copy

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification
from skmeta.metrics import make_few_shot_scorer


@pytest.fixture(scope="module")
def data():
    X, y, groups = make_group_classification(
        n_groups=6, n_samples_per_group=60, random_state=0
    )
    return X, y, groups


@pytest.fixture(scope="module")
def fitted(data):
    X, y, groups = data
    seen = groups < 4
    clf = PrototypicalClassifier(max_epochs=1, random_state=0)
    return clf.fit(X[seen], y[seen], sensitive_features=groups[seen])


def _manual(
    clf, X, y, groups, n_shots, draws, random_state=0, metric=balanced_accuracy_score
):
    """The protocol written out: per draw and unseen group (in order of first
    appearance), n_shots rows of each class, partial_fit on a copy, balanced
    accuracy (or ``metric``) on the rest. Returns (draws, groups) scores."""
    unseen = [g for g in dict.fromkeys(groups.tolist()) if g not in clf.tasks_]
    out = np.empty((draws, len(unseen)))
    for draw in range(draws):
        rng = np.random.default_rng([random_state, draw])
        for i, g in enumerate(unseen):
            rows = np.flatnonzero(groups == g)
            support = np.concatenate(
                [
                    rng.choice(rows[y[rows] == c], n_shots, replace=False)
                    for c in clf.classes_
                ]
            )
            query = np.setdiff1d(rows, support)
            model = copy.deepcopy(clf).partial_fit(
                X[support], y[support], sensitive_features=groups[support]
            )
            pred = model.predict(X[query], sensitive_features=groups[query])
            out[draw, i] = metric(y[query], pred)
    return out


def test_score_is_the_written_out_protocol(data, fitted):
    X, y, groups = data
    # Test rows: the two unseen groups and some rows of a seen one (left out).
    rows = np.flatnonzero((groups >= 4) | (np.arange(len(y)) < 30))
    X, y, groups = X[rows], y[rows], groups[rows]
    expected = _manual(fitted, X, y, groups, n_shots=3, draws=2)
    scorer = make_few_shot_scorer(n_shots=3, n_draws=2)
    assert scorer(fitted, X, y, sensitive_features=groups) == pytest.approx(
        expected.mean(1).mean(), abs=1e-12
    )
    worst = make_few_shot_scorer(n_shots=3, n_draws=2, aggregate="min")
    assert worst(fitted, X, y, sensitive_features=groups) == pytest.approx(
        expected.min(1).mean(), abs=1e-12
    )
    assert expected.min(1).mean() < expected.mean(1).mean()


def test_leaves_the_estimator_and_inputs_unchanged(data, fitted):
    X, y, groups = data
    seen = groups < 4
    before = (
        fitted.tasks_.copy(),
        fitted.predict_proba(X[seen], sensitive_features=groups[seen]),
    )
    X_in, y_in, g_in = X.copy(), y.copy(), groups.copy()
    make_few_shot_scorer()(fitted, X, y, sensitive_features=groups)
    np.testing.assert_array_equal(fitted.tasks_, before[0])
    np.testing.assert_array_equal(
        fitted.predict_proba(X[seen], sensitive_features=groups[seen]), before[1]
    )
    np.testing.assert_array_equal(X, X_in)
    np.testing.assert_array_equal(y, y_in)
    np.testing.assert_array_equal(groups, g_in)


def test_other_metric_and_seed(data, fitted):
    X, y, groups = data
    expected = _manual(
        fitted, X, y, groups, 4, 1, random_state=7, metric=accuracy_score
    )
    scorer = make_few_shot_scorer(n_shots=4, metric=accuracy_score, random_state=7)
    got = scorer(fitted, X, y, sensitive_features=groups)
    assert got == pytest.approx(expected.mean(), abs=1e-12)
    # Another seed draws other support sets.
    other = make_few_shot_scorer(n_shots=4, metric=accuracy_score, random_state=8)
    assert other(fitted, X, y, sensitive_features=groups) != got


def test_grid_search_with_group_kfold_and_tasks():
    X, y, tasks = make_group_classification(
        n_groups=6, n_samples_per_group=60, random_state=1
    )
    sex = np.where(np.arange(len(y)) % 2, "f", "m")
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            MAMLClassifier(max_epochs=1, inner_steps=2, random_state=0),
            {"prior_strength": [1.0, 100.0]},
            scoring={
                "mean": make_few_shot_scorer(n_shots=5),
                "worst": make_few_shot_scorer(n_shots=5, aggregate="min"),
            },
            refit="mean",
            cv=GroupKFold(n_splits=3),
        ).fit(X, y, tasks=tasks, sensitive_features=sex, groups=tasks)
    mean = search.cv_results_["mean_test_mean"]
    worst = search.cv_results_["mean_test_worst"]
    assert np.isfinite(mean).all() and np.isfinite(worst).all()
    assert (worst <= mean + 1e-12).all()
    assert search.best_estimator_.task_source_ == "tasks"


def test_cross_validate_with_dataframe(data):
    X, y, groups = data
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            PrototypicalClassifier(max_epochs=1, random_state=0),
            frame,
            y,
            cv=GroupKFold(n_splits=2),
            scoring=make_few_shot_scorer(n_shots=5),
            params={"sensitive_features": pd.Series(groups), "groups": groups},
        )
    assert np.isfinite(result["test_score"]).all()


def test_seen_groups_only_is_an_error(data, fitted):
    X, y, groups = data
    seen = groups < 4
    with pytest.raises(ValueError, match="GroupKFold"):
        make_few_shot_scorer()(
            fitted, X[seen], y[seen], sensitive_features=groups[seen]
        )


def test_too_few_rows_is_an_error(data, fitted):
    X, y, groups = data
    with pytest.raises(ValueError, match="n_shots=40"):
        make_few_shot_scorer(n_shots=40)(fitted, X, y, sensitive_features=groups)


def test_missing_groups_and_wrong_estimators(data, fitted):
    X, y, groups = data
    with pytest.raises(ValueError, match="sensitive_features"):
        make_few_shot_scorer()(fitted, X, y)
    pooled = PrototypicalClassifier(max_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="pooled task"):
        make_few_shot_scorer()(pooled, X, y, sensitive_features=groups)
    with pytest.raises(NotFittedError):
        make_few_shot_scorer()(
            PrototypicalClassifier(), X, y, sensitive_features=groups
        )
    lr = LogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression"):
        make_few_shot_scorer()(lr, X, y, sensitive_features=groups)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_shots": 0}, "n_shots"),
        ({"n_shots": 2.5}, "n_shots"),
        ({"n_shots": True}, "n_shots"),
        ({"n_draws": 0}, "n_draws"),
        ({"aggregate": "max"}, "aggregate"),
        ({"metric": "accuracy"}, "metric"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": None}, "random_state"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_few_shot_scorer(**kwargs)


def test_repr():
    assert repr(make_few_shot_scorer()) == "make_few_shot_scorer(n_shots=5)"
    assert repr(
        make_few_shot_scorer(2, metric=accuracy_score, n_draws=3, aggregate="min")
    ) == (
        "make_few_shot_scorer(n_shots=2, metric=accuracy_score, n_draws=3, "
        "aggregate='min')"
    )


def test_groups_read_from_columns_of_X(data):
    X, y, groups = data
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["group"] = groups
    seen = groups < 4
    clf = PrototypicalClassifier(
        max_epochs=1, sensitive_columns="group", random_state=0
    ).fit(frame[seen], y[seen])
    plain = PrototypicalClassifier(max_epochs=1, random_state=0).fit(
        X[seen], y[seen], sensitive_features=groups[seen]
    )
    scorer = make_few_shot_scorer(n_shots=3)
    # The same model and support draws whether the groups come as an
    # argument or as a column of X.
    assert scorer(clf, frame, y) == pytest.approx(
        scorer(plain, X, y, sensitive_features=groups), abs=1e-12
    )
