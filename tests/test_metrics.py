"""Fairness scorers (metadata routing into predict) and the trade-off display."""

import copy
import pickle
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import sklearn
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    make_derived_metric,
)
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError, UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import PrototypicalClassifier
from skmeta.metrics import (
    FAIRNESS_SCORERS,
    FairnessTradeoffDisplay,
    demographic_parity_ratio_scorer,
    group_aware_accuracy_scorer,
    make_accuracy_disparity_scorer,
    make_fairness_scorer,
    neg_demographic_parity_difference_scorer,
    neg_equal_opportunity_difference_scorer,
    neg_equalized_odds_difference_scorer,
    pareto_front,
    worst_group_accuracy_scorer,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def routing():
    return sklearn.config_context(enable_metadata_routing=True)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted_lr():
    rng = np.random.RandomState(0)
    n = 200
    X = rng.normal(size=(n, 3))
    groups = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y = (X[:, 0] + 0.8 * (groups == "a") + 0.3 * rng.normal(size=n) > 0.3).astype(int)
    return LogisticRegression().fit(X, y), X, y, groups


def _worst_group(y, p, s, sample_weight=None):
    """The lowest per-group (weighted) accuracy, computed group by group."""
    y, p, s = np.asarray(y), np.asarray(p), np.asarray(s)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
    return min(
        np.sum(w[s == g] * (y[s == g] == p[s == g])) / np.sum(w[s == g])
        for g in np.unique(s)
    )


HAND = {
    "neg_dpd": (
        neg_demographic_parity_difference_scorer,
        lambda y, p, s: -demographic_parity_difference(y, p, sensitive_features=s),
    ),
    "dpr": (
        demographic_parity_ratio_scorer,
        lambda y, p, s: demographic_parity_ratio(y, p, sensitive_features=s),
    ),
    "neg_eod": (
        neg_equalized_odds_difference_scorer,
        lambda y, p, s: -equalized_odds_difference(y, p, sensitive_features=s),
    ),
    "neg_eopp": (
        neg_equal_opportunity_difference_scorer,
        lambda y, p, s: -equal_opportunity_difference(y, p, sensitive_features=s),
    ),
    "worst": (worst_group_accuracy_scorer, _worst_group),
    "group_acc": (group_aware_accuracy_scorer, lambda y, p, s: accuracy_score(y, p)),
    "acc_minus_dpd": (
        make_accuracy_disparity_scorer(0.5),
        lambda y, p, s: (
            accuracy_score(y, p)
            - 0.5 * demographic_parity_difference(y, p, sensitive_features=s)
        ),
    ),
    "acc_minus_eod": (
        make_accuracy_disparity_scorer(2.0, disparity="equalized_odds_difference"),
        lambda y, p, s: (
            accuracy_score(y, p)
            - 2.0 * equalized_odds_difference(y, p, sensitive_features=s)
        ),
    ),
    "to_overall": (
        make_fairness_scorer(
            demographic_parity_difference,
            greater_is_better=False,
            method="to_overall",
        ),
        lambda y, p, s: (
            -demographic_parity_difference(
                y, p, sensitive_features=s, method="to_overall"
            )
        ),
    ),
}


@pytest.mark.parametrize("name", list(HAND))
def test_scorer_equals_fairlearn_metric(fitted_lr, name):
    clf, X, y, groups = fitted_lr
    scorer, by_hand = HAND[name]
    expected = by_hand(y, clf.predict(X), groups)
    assert scorer(clf, X, y, sensitive_features=groups) == pytest.approx(expected)
    assert scorer.score(clf, X, y, sensitive_features=groups) == pytest.approx(expected)
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        scorer(clf, X, y)


def test_named_scorers_and_sign_convention(fitted_lr):
    clf, X, y, groups = fitted_lr
    assert set(FAIRNESS_SCORERS) == {
        "neg_demographic_parity_difference",
        "demographic_parity_ratio",
        "neg_equalized_odds_difference",
        "neg_equal_opportunity_difference",
        "worst_group_accuracy",
        "group_aware_accuracy",
    }
    for name, scorer in FAIRNESS_SCORERS.items():
        value = scorer(clf, X, y, sensitive_features=groups)
        if name.startswith("neg_"):
            assert value < 0, name  # a negated difference; this model is unfair
        else:
            assert 0 < value <= 1, name


def test_sample_weight_reaches_the_metric(fitted_lr):
    clf, X, y, groups = fitted_lr
    w = np.random.RandomState(1).uniform(0.1, 2.0, size=len(y))
    p = clf.predict(X)
    got = worst_group_accuracy_scorer(
        clf, X, y, sensitive_features=groups, sample_weight=w
    )
    assert got == pytest.approx(_worst_group(y, p, groups, sample_weight=w))
    assert got != pytest.approx(_worst_group(y, p, groups))
    got = neg_demographic_parity_difference_scorer(
        clf, X, y, sensitive_features=groups, sample_weight=w
    )
    expected = demographic_parity_difference(
        y, p, sensitive_features=groups, sample_weight=w
    )
    assert got == pytest.approx(-expected)


def test_response_method_predict_proba(fitted_lr):
    clf, X, y, groups = fitted_lr
    worst_auc = make_derived_metric(metric=roc_auc_score, transform="group_min")
    scorer = make_fairness_scorer(worst_auc, response_method="predict_proba")
    expected = MetricFrame(
        metrics=roc_auc_score,
        y_true=y,
        y_pred=clf.predict_proba(X)[:, 1],
        sensitive_features=groups,
    ).group_min()
    assert scorer(clf, X, y, sensitive_features=groups) == pytest.approx(expected)
    assert "response_method='predict_proba'" in repr(scorer)


def test_intersectional_dataframe_groups(fitted_lr):
    clf, X, y, groups = fitted_lr
    frame = pd.DataFrame({"g": groups, "h": np.arange(len(y)) % 2})
    expected = -demographic_parity_difference(
        y, clf.predict(X), sensitive_features=frame
    )
    got = neg_demographic_parity_difference_scorer(clf, X, y, sensitive_features=frame)
    assert got == pytest.approx(expected)


def test_default_request_and_repr():
    scorer = neg_demographic_parity_difference_scorer
    requests = scorer.get_metadata_routing().score.requests
    assert requests == {"sensitive_features": True, "sample_weight": None}
    assert repr(scorer) == (
        "make_fairness_scorer(demographic_parity_difference, greater_is_better=False)"
    )
    assert repr(worst_group_accuracy_scorer) == (
        "make_fairness_scorer(worst_group_accuracy)"
    )
    assert repr(make_accuracy_disparity_scorer(0.3)) == (
        "make_accuracy_disparity_scorer(fairness_weight=0.3, "
        "disparity='demographic_parity_difference')"
    )
    # set_score_request, as sklearn generates it, raises when routing is off
    with pytest.raises(RuntimeError, match="metadata routing is enabled"):
        copy.deepcopy(scorer).set_score_request(sample_weight=True)
    with routing():
        own = copy.deepcopy(scorer).set_score_request(sample_weight=True)
    assert own.get_metadata_routing().score.requests["sample_weight"] is True
    # ... on a copy: the shared object keeps its default
    assert scorer.get_metadata_routing().score.requests["sample_weight"] is None


def test_pickle_round_trip(fitted_lr):
    clf, X, y, groups = fitted_lr
    with routing():
        requested = make_accuracy_disparity_scorer(0.5).set_score_request(
            sample_weight=False
        )
    for scorer in [*FAIRNESS_SCORERS.values(), requested]:
        clone = pickle.loads(pickle.dumps(scorer))
        assert repr(clone) == repr(scorer)
        assert clone(clf, X, y, sensitive_features=groups) == scorer(
            clf, X, y, sensitive_features=groups
        )
        assert str(clone.get_metadata_routing()) == str(scorer.get_metadata_routing())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="response_method"):
        make_fairness_scorer(demographic_parity_difference, response_method="bogus")
    with pytest.raises(TypeError, match="callable"):
        make_fairness_scorer("demographic_parity_difference")
    with pytest.raises(ValueError, match="fairness_weight"):
        make_accuracy_disparity_scorer(-1.0)
    with pytest.raises(ValueError, match="disparity must be one of"):
        make_accuracy_disparity_scorer(disparity="bogus")


# --------------------------------------------------------------- routing
CALLS = []


class GroupRecorder(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; records what predict receives."""

    def __init__(self, sensitive_columns=None):
        self.sensitive_columns = sensitive_columns

    def fit(self, X, y, sensitive_features=None):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[counts.argmax()]
        return self

    def predict(self, X, sensitive_features=None):
        CALLS.append(
            (len(X), None if sensitive_features is None else len(sensitive_features))
        )
        return np.full(len(X), self.majority_)


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def test_grid_search_passes_groups_to_predict(grouped_data, calls):
    X, y, groups = grouped_data
    scoring = {
        "accuracy": "accuracy",
        "dpd": neg_demographic_parity_difference_scorer,
    }
    with routing():
        clf = GroupRecorder().set_fit_request(sensitive_features=True)
        search = GridSearchCV(
            clf,
            {"sensitive_columns": [None]},
            scoring=scoring,
            refit="accuracy",
            cv=KFold(3),
        )
        search.fit(X, y, sensitive_features=groups)
    # per fold: predict(X) for "accuracy", then predict(X, sensitive_features)
    # with the test fold's groups for "dpd"
    assert calls == [(100, None), (100, 100)] * 3
    assert np.isfinite(search.cv_results_["mean_test_dpd"]).all()


def test_groups_not_passed_when_read_from_columns(grouped_data, calls):
    X, y, groups = grouped_data
    clf = GroupRecorder(sensitive_columns=0).fit(X, y)
    neg_demographic_parity_difference_scorer(clf, X, y, sensitive_features=groups)
    assert calls == [(300, None)]


def test_pipeline_final_step_gets_groups(grouped_data, calls):
    X, y, groups = grouped_data
    scorer = neg_demographic_parity_difference_scorer
    pipe = Pipeline([("scale", StandardScaler()), ("clf", GroupRecorder())])
    pipe.fit(X, y)
    scorer(pipe, X, y, sensitive_features=groups)  # routing off
    assert calls.pop() == (300, 300)
    with routing():
        pipe[-1].set_predict_request(sensitive_features=True)
        scorer(pipe, X, y, sensitive_features=groups)
        assert calls.pop() == (300, 300)
        pipe[-1].set_predict_request(sensitive_features="groups_alias")
        scorer(pipe, X, y, sensitive_features=groups)
        assert calls.pop() == (300, 300)
        pipe[-1].set_predict_request(sensitive_features=False)
        scorer(pipe, X, y, sensitive_features=groups)
        assert calls.pop() == (300, None)
        unset = Pipeline([("clf", GroupRecorder())]).fit(X, y)
        with pytest.raises(UnsetMetadataPassedError, match="set_predict_request"):
            scorer(unset, X, y, sensitive_features=groups)


def test_explicit_no_predict_request_is_honoured(grouped_data, calls):
    X, y, groups = grouped_data
    clf = GroupRecorder().fit(X, y)
    with routing():
        clf.set_predict_request(sensitive_features=False)
        neg_demographic_parity_difference_scorer(clf, X, y, sensitive_features=groups)
    assert calls == [(300, None)]
    neg_demographic_parity_difference_scorer(clf, X, y, sensitive_features=groups)
    assert calls[-1] == (300, 300)  # requests do not apply with routing off


def test_fitted_search_predicts_with_best_estimator(grouped_data, calls):
    X, y, groups = grouped_data
    search = GridSearchCV(GroupRecorder(), {"sensitive_columns": [None]}, cv=2)
    search.fit(X, y)
    calls.clear()
    worst_group_accuracy_scorer(search, X, y, sensitive_features=groups)
    assert calls == [(300, 300)]


def test_routing_off_gives_nan_or_raises(fitted_lr):
    _, X, y, groups = fitted_lr
    search = GridSearchCV(
        LogisticRegression(),
        {"C": [1.0]},
        scoring={"acc": "accuracy", "dpd": neg_demographic_parity_difference_scorer},
        refit="acc",
        cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_dpd"]).all()
    search.set_params(error_score="raise")
    with pytest.raises(ValueError, match="^Enable metadata routing"):
        search.fit(X, y)


@pytest.fixture(scope="module")
def proto_search(grouped_data):
    X, y, groups = grouped_data
    scoring = {
        "accuracy": "accuracy",
        "dpd": neg_demographic_parity_difference_scorer,
        "worst": worst_group_accuracy_scorer,
        "group_accuracy": group_aware_accuracy_scorer,
        "tradeoff": make_accuracy_disparity_scorer(0.5),
    }
    with routing():
        clf = PrototypicalClassifier(
            max_epochs=2, steps_per_epoch=3, random_state=0
        ).set_fit_request(sensitive_features=True)
        search = GridSearchCV(
            clf,
            {"n_shots": [2, 5]},
            scoring=scoring,
            refit="accuracy",
            cv=3,
            error_score="raise",
        )
        search.fit(X, y, sensitive_features=groups)
    return search


def test_grid_search_over_prototypical_classifier(proto_search, grouped_data):
    X, y, groups = grouped_data
    results = proto_search.cv_results_
    for key in ["dpd", "worst", "group_accuracy", "tradeoff"]:
        scores = results[f"mean_test_{key}"]
        assert scores.shape == (2,)
        assert np.isfinite(scores).all(), key
    assert (results["mean_test_dpd"] <= 0).all()
    assert ((results["mean_test_worst"] > 0) & (results["mean_test_worst"] <= 1)).all()
    # the split scores are those of the scorers on each fold's model
    assert hasattr(proto_search, "best_estimator_")
    best = proto_search.best_estimator_
    expected = -demographic_parity_difference(
        y, best.predict(X, sensitive_features=groups), sensitive_features=groups
    )
    got = neg_demographic_parity_difference_scorer(
        best, X, y, sensitive_features=groups
    )
    assert got == pytest.approx(expected)


def test_cross_validate_under_routing(grouped_data):
    X, y, groups = grouped_data
    scoring = {
        "accuracy": group_aware_accuracy_scorer,
        "dpd": neg_demographic_parity_difference_scorer,
    }
    with routing():
        clf = PrototypicalClassifier(
            max_epochs=1, steps_per_epoch=2, random_state=0
        ).set_fit_request(sensitive_features=True)
        out = cross_validate(
            clf,
            X,
            y,
            scoring=scoring,
            cv=KFold(2),
            params={"sensitive_features": groups},
            error_score="raise",
        )
    assert np.isfinite(out["test_dpd"]).all() and out["test_dpd"].shape == (2,)
    assert np.isfinite(out["test_accuracy"]).all()


def test_threshold_optimizer_in_grid_search(fitted_lr):
    _, X, y, groups = fitted_lr
    with routing():
        to = ThresholdOptimizer(
            estimator=LogisticRegression(), predict_method="predict_proba"
        ).set_fit_request(sensitive_features=True)
        search = GridSearchCV(
            to,
            {"constraints": ["demographic_parity", "equalized_odds"]},
            scoring={
                "acc": group_aware_accuracy_scorer,
                "dpd": neg_demographic_parity_difference_scorer,
            },
            refit="acc",
            cv=3,
            error_score="raise",
        )
        search.fit(X, y, sensitive_features=groups)
    assert np.isfinite(search.cv_results_["mean_test_dpd"]).all()
    assert np.isfinite(search.cv_results_["mean_test_acc"]).all()


# --------------------------------------------------------------- display
def test_pareto_front_hand_example():
    accuracy = [0.9, 0.8, 0.7, 0.85, 0.8, 0.95, np.nan]
    disparity = [0.3, 0.1, 0.2, 0.3, 0.1, 0.5, 0.0]
    # 0.7/0.2 is dominated by 0.8/0.1, 0.85/0.3 by 0.9/0.3; ties both kept;
    # NaN never on the front
    expected = [True, True, False, False, True, True, False]
    np.testing.assert_array_equal(pareto_front(accuracy, disparity), expected)
    assert pareto_front([], []).shape == (0,)
    with pytest.raises(ValueError, match="same length"):
        pareto_front([0.1, 0.2], [0.1])


def _fake_cv_results():
    return {
        "params": [
            {"clf__C": 0.1, "clf__penalty": "l2", "scale": "passthrough"},
            {"clf__C": 1.0, "clf__penalty": "l2", "scale": "passthrough"},
            {"clf__C": 10.0, "clf__penalty": "l2", "scale": "passthrough"},
            {"clf__C": 100.0, "clf__penalty": "l2", "scale": "passthrough"},
        ],
        "mean_test_accuracy": np.array([0.70, 0.80, 0.85, 0.84]),
        "mean_test_dpd": np.array([-0.05, -0.10, -0.20, -0.30]),
    }


def test_display_from_cv_results():
    display = FairnessTradeoffDisplay.from_cv_results(_fake_cv_results())
    assert isinstance(display.ax_, matplotlib.axes.Axes)
    assert display.figure_ is display.ax_.figure
    assert display.scatter_.get_offsets().shape == (4, 2)
    # negated scores were flipped ("auto"): lower is fairer on the x axis
    np.testing.assert_allclose(display.disparity, [0.05, 0.10, 0.20, 0.30])
    np.testing.assert_array_equal(display.pareto_mask, [True, True, True, False])
    np.testing.assert_allclose(display.line_.get_xdata(), [0.05, 0.10, 0.20])
    np.testing.assert_allclose(display.line_.get_ydata(), [0.70, 0.80, 0.85])
    # only the varying parameter, without the pipeline prefix
    assert display.labels == ["C=0.1", "C=1", "C=10", "C=100"]
    assert [a.get_text() for a in display.annotations_] == display.labels
    assert display.ax_.get_xlabel() == "dpd (lower is fairer)"
    assert display.ax_.get_ylabel() == "accuracy"


def test_display_options():
    results = _fake_cv_results()
    _, ax = plt.subplots()
    display = FairnessTradeoffDisplay.from_cv_results(
        results,
        accuracy="accuracy",
        disparity="dpd",
        negate_disparity=False,
        ax=ax,
        annotate=False,
        marker="x",
    )
    assert display.ax_ is ax and display.annotations_ == []
    np.testing.assert_allclose(display.disparity, results["mean_test_dpd"])
    # taken as they are, the negative values make the last two optimal
    np.testing.assert_array_equal(display.pareto_mask, [False, False, True, True])
    frame = pd.DataFrame(results)
    display = FairnessTradeoffDisplay.from_cv_results(frame, annotate=False)
    assert display.pareto_mask.sum() == 3
    with pytest.raises(KeyError, match="mean_test_accuracy"):
        FairnessTradeoffDisplay.from_cv_results(results, disparity="eod")
    with pytest.raises(ValueError, match="negate_disparity"):
        FairnessTradeoffDisplay.from_cv_results(results, negate_disparity="yes")


def test_display_constructor_and_plot():
    display = FairnessTradeoffDisplay([0.9, 0.8], [0.3, 0.1], labels=["a", "b"])
    assert not hasattr(display, "ax_")
    assert display.plot() is display
    assert len(display.line_.get_xdata()) == 2
    with pytest.raises(ValueError, match="labels"):
        FairnessTradeoffDisplay([0.9, 0.8], [0.3, 0.1], labels=["a"])


def test_display_from_estimator(proto_search):
    display = FairnessTradeoffDisplay.from_estimator(
        proto_search, accuracy="group_accuracy", disparity="dpd"
    )
    results = proto_search.cv_results_
    n = len(results["params"])
    assert display.scatter_.get_offsets().shape == (n, 2)
    expected = pareto_front(
        results["mean_test_group_accuracy"], -results["mean_test_dpd"]
    )
    np.testing.assert_array_equal(display.pareto_mask, expected)
    assert len(display.line_.get_xdata()) == expected.sum() >= 1
    assert display.labels == ["n_shots=2", "n_shots=5"]
    assert display.ax_.get_ylabel() == "group_accuracy"
    with pytest.raises(NotFittedError):
        FairnessTradeoffDisplay.from_estimator(GridSearchCV(GroupRecorder(), {}))


def test_display_from_pipeline_search(fitted_lr):
    _, X, y, groups = fitted_lr
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    with routing():
        search = GridSearchCV(
            pipe,
            {"clf__C": [0.01, 1.0, 100.0]},
            scoring={
                "accuracy": "accuracy",
                "dpd": neg_demographic_parity_difference_scorer,
            },
            refit="accuracy",
            cv=3,
        )
        search.fit(X, y, sensitive_features=groups)
    display = FairnessTradeoffDisplay.from_estimator(search)
    assert display.labels == ["C=0.01", "C=1", "C=100"]
    assert display.scatter_.get_offsets().shape == (3, 2)
    assert (display.disparity >= 0).all()
