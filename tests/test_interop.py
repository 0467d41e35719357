"""skmeta inside scikit-learn and fairlearn meta-estimators."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import DemographicParity, ExponentiatedGradient
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.metrics import accuracy_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    TunedThresholdClassifierCV,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification
from skmeta.metrics import (
    group_aware_accuracy_scorer,
    neg_demographic_parity_difference_scorer,
)

FAST = dict(max_epochs=3, steps_per_epoch=5, random_state=0)


@pytest.fixture(scope="module")
def biased_frame():
    X, y, groups = make_group_classification(
        n_groups=3,
        n_samples_per_group=300,
        n_features=4,
        group_shift=0.3,
        label_bias=0.7,
        biased_groups=[2],
        random_state=0,
    )
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["group"] = np.array(["x", "y", "z"])[groups]
    train = np.arange(len(y)) % 3 != 0
    return df, y, train


@pytest.mark.parametrize("constraints", ["demographic_parity", "equalized_odds"])
@pytest.mark.parametrize("method", ["predict_proba", "decision_function"])
def test_threshold_optimizer_refits_with_sensitive_columns(
    biased_frame, constraints, method
):
    df, y, train = biased_frame
    est = PrototypicalClassifier(sensitive_columns="group", **FAST)
    to = ThresholdOptimizer(
        estimator=est, constraints=constraints, predict_method=method, prefit=False
    )
    to.fit(df[train], y[train], sensitive_features=df["group"][train])
    # The refitted model kept its per-group adaptation inside fairlearn.
    assert set(to.estimator_.tasks_) == {"x", "y", "z"}
    test = ~train
    before = est.fit(df[train], y[train]).predict(df[test])
    after = to.predict(df[test], sensitive_features=df["group"][test], random_state=0)
    gap = lambda p: demographic_parity_difference(  # noqa: E731
        y[test], p, sensitive_features=df["group"][test]
    )
    if constraints == "demographic_parity":
        assert gap(after) < 0.5 * gap(before)
    else:
        eo = lambda p: equalized_odds_difference(  # noqa: E731
            y[test], p, sensitive_features=df["group"][test]
        )
        assert eo(after) < eo(before)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_threshold_optimizer_on_a_prefit_model(biased_frame, klass):
    df, y, train = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    model = klass(**FAST).fit(X[train], y[train], sensitive_features=groups[train])
    to = ThresholdOptimizer(
        estimator=model,
        constraints="demographic_parity",
        prefit=True,
        predict_method="predict_proba",
    )
    to.fit(X[train], y[train], sensitive_features=groups[train])
    test = ~train
    raw = model.predict(X[test], sensitive_features=groups[test])
    fair = to.predict(X[test], sensitive_features=groups[test], random_state=0)
    gap_raw = demographic_parity_difference(
        y[test], raw, sensitive_features=groups[test]
    )
    gap_fair = demographic_parity_difference(
        y[test], fair, sensitive_features=groups[test]
    )
    assert gap_fair < gap_raw
    assert to.estimator_ is model


def test_exponentiated_gradient_with_maml(biased_frame):
    df, y, train = biased_frame
    groups = df["group"]
    # The groups reach the model through sensitive_columns (EG calls
    # predict(X) alone), so the unconstrained model serves each group its own
    # (biased) state.
    base = MAMLClassifier(
        sensitive_columns="group", max_epochs=3, steps_per_epoch=5, random_state=0
    )
    eg = ExponentiatedGradient(base, constraints=DemographicParity(), max_iter=8)
    with warnings.catch_warnings():
        # fairlearn's own pandas warnings only; skmeta's warnings stay errors.
        warnings.filterwarnings("ignore", module="fairlearn")
        warnings.filterwarnings("ignore", category=FutureWarning)
        eg.fit(df[train], y[train], sensitive_features=groups[train])
    test = ~train
    pred = eg.predict(df[test], random_state=0)
    assert set(np.unique(pred)) <= {0, 1} and len(pred) == test.sum()
    assert len(eg.predictors_) >= 1
    # EG gives MAML the reweighted rows through sample_weight: parity improves
    # over the same model without the constraint.
    raw = base.fit(df[train], y[train]).predict(df[test])
    gap = lambda p: demographic_parity_difference(  # noqa: E731
        y[test], p, sensitive_features=groups[test]
    )
    assert gap(pred) < gap(raw)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_calibration_and_threshold_tuning_with_sensitive_columns(biased_frame, klass):
    # CalibratedClassifierCV and TunedThresholdClassifierCV call predict_proba
    # with X alone, at fit and at prediction: the groups reach every model
    # they fit through the column named in sensitive_columns.
    df, y, train = biased_frame
    test = ~train
    est = klass(sensitive_columns="group", **FAST)
    relabelled = df[test].assign(group=df["group"][test].replace({"z": "x"}))
    z = (df["group"][test] == "z").to_numpy()

    calibrated = CalibratedClassifierCV(est, cv=3).fit(df[train], y[train])
    for fitted in calibrated.calibrated_classifiers_:
        assert set(fitted.estimator.tasks_) == {"x", "y", "z"}
    proba = calibrated.predict_proba(df[test])
    assert np.allclose(proba.sum(1), 1) and np.isfinite(proba).all()
    # Group z's rows are served by group z's models: labelled x, they change.
    moved = np.abs(proba - calibrated.predict_proba(relabelled))
    assert moved[z].max() > 0.05 and moved[~z].max() == 0

    tuned = TunedThresholdClassifierCV(est, cv=3, scoring="balanced_accuracy")
    tuned.fit(df[train], y[train])
    assert set(tuned.estimator_.tasks_) == {"x", "y", "z"}
    scores = tuned.estimator_.predict_proba(df[test])[:, 1]
    expected = tuned.classes_[(scores >= tuned.best_threshold_).astype(int)]
    np.testing.assert_array_equal(tuned.predict(df[test]), expected)
    assert (tuned.predict(relabelled) != tuned.predict(df[test]))[~z].sum() == 0


def test_metric_frame_over_predictions(biased_frame):
    df, y, _ = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    clf = MAMLClassifier(**FAST).fit(X, y, sensitive_features=groups)
    pred = clf.predict(X, sensitive_features=groups)
    frame = MetricFrame(
        metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=groups
    )
    for g in ["x", "y", "z"]:  # each group's accuracy, from its own state
        rows = (groups == g).to_numpy()
        own = clf.predict(X[rows], sensitive_features=groups[rows])
        assert frame.by_group[g] == pytest.approx(np.mean(own == y[rows]))


def test_pipeline_with_routing(biased_frame):
    df, y, train = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    with sklearn.config_context(enable_metadata_routing=True):
        clf = MAMLClassifier(**FAST).set_fit_request(sensitive_features=True)
        clf.set_predict_request(sensitive_features=True)
        pipe = Pipeline(
            [
                (
                    "scale",
                    ColumnTransformer(
                        [("num", StandardScaler(), ["a", "b", "c"])],
                        remainder="passthrough",
                    ),
                ),
                ("clf", clf),
            ]
        )
        pipe.fit(X[train], y[train], sensitive_features=groups[train])
        pred = pipe.predict(X[~train], sensitive_features=groups[~train])
    fitted = pipe.named_steps["clf"]
    assert set(fitted.tasks_) == {"x", "y", "z"}
    direct = fitted.predict(
        pipe[:-1].transform(X[~train]), sensitive_features=groups[~train]
    )
    np.testing.assert_array_equal(pred, direct)


def test_legacy_fit_params_without_routing(biased_frame):
    df, y, _ = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    pipe = Pipeline([("scale", StandardScaler()), ("clf", MAMLClassifier(**FAST))])
    pipe.fit(X, y, clf__sensitive_features=groups)
    assert set(pipe.named_steps["clf"].tasks_) == {"x", "y", "z"}
    search = GridSearchCV(MAMLClassifier(**FAST), {"fairness_weight": [0.0, 1.0]}, cv=2)
    search.fit(X, y, sensitive_features=groups)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_grid_search_over_fairness_with_routing(biased_frame):
    df, y, _ = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    with sklearn.config_context(enable_metadata_routing=True):
        est = PrototypicalClassifier(**FAST).set_fit_request(sensitive_features=True)
        search = GridSearchCV(
            est,
            {"constraints": ["demographic_parity"], "fairness_weight": [0.0, 5.0]},
            scoring={
                "accuracy": group_aware_accuracy_scorer,
                "dpd": neg_demographic_parity_difference_scorer,
            },
            refit="accuracy",
            cv=KFold(3, shuffle=True, random_state=0),
        )
        search.fit(X, y, sensitive_features=groups)
        results = search.cv_results_
        scores = cross_validate(
            est,
            X,
            y,
            params={"sensitive_features": groups},
            cv=3,
            scoring={"dpd": neg_demographic_parity_difference_scorer},
        )
    dpd = -results["mean_test_dpd"]
    assert dpd[1] < dpd[0]  # the penalty lowers the cross-validated disparity
    assert np.isfinite(scores["test_dpd"]).all()


def test_group_kfold_scores_groups_never_seen_in_training(biased_frame):
    df, y, _ = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    cv = GroupKFold(3)
    results = cross_validate(
        MAMLClassifier(**FAST),
        X,
        y,
        groups=groups,
        cv=cv,
        params={"sensitive_features": groups},
        return_estimator=True,
        return_indices=True,
    )
    for est, test in zip(results["estimator"], results["indices"]["test"], strict=True):
        (held_out,) = set(groups.iloc[test])
        assert held_out not in est.tasks_  # scored on the pooled state
    assert np.isfinite(results["test_score"]).all()
    assert results["test_score"].mean() > 0.5


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_sparse_one_hot_pipeline_equals_dense(klass):
    # OneHotEncoder's default output is sparse: it is densified a batch at a
    # time, and the model equals the one fitted on the dense matrix.
    import scipy.sparse as sp
    from sklearn.preprocessing import OneHotEncoder
    from skorch.dataset import ValidSplit

    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 300),
            "size": rng.choice(["s", "m", "l", "xl"], 300),
            "x": rng.normal(size=300),
        }
    )
    y = ((frame["colour"] == "red") ^ (frame["x"] > 0)).astype(int).to_numpy()
    groups = rng.choice(["a", "b"], 300)
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(), ["colour", "size"]),
            ("num", StandardScaler(), ["x"]),
        ],
        sparse_threshold=1.0,
    )
    Xs = encode.fit_transform(frame)
    assert sp.issparse(Xs)
    params = dict(max_epochs=2, random_state=0, train_split=ValidSplit(3))
    sparse = klass(**params).fit(Xs, y, sensitive_features=groups)
    dense = klass(**params).fit(Xs.toarray(), y, sensitive_features=groups)
    np.testing.assert_array_equal(
        sparse.predict_proba(Xs, sensitive_features=groups),
        dense.predict_proba(Xs.toarray(), sensitive_features=groups),
    )
    pipe = Pipeline([("encode", encode), ("clf", klass(max_epochs=2, random_state=0))])
    pipe.fit(frame, y, clf__sensitive_features=groups)
    assert pipe.score(frame, y) > 0.6


def test_routing_needs_no_set_request_calls(biased_frame):
    # The groups are requested by default in fit, predict, predict_proba,
    # decision_function and score: a pipeline and a search route them as is.
    df, y, train = biased_frame
    X, groups = df.drop(columns="group"), df["group"]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("scale", StandardScaler()), ("clf", MAMLClassifier(**FAST))])
        pipe.fit(X[train], y[train], sensitive_features=groups[train])
        Xt = pipe[:-1].transform(X[~train])
        clf = pipe[-1]
        for method in ("predict", "predict_proba", "decision_function"):
            np.testing.assert_array_equal(
                getattr(pipe, method)(X[~train], sensitive_features=groups[~train]),
                getattr(clf, method)(Xt, sensitive_features=groups[~train]),
            )
        score = pipe.score(X[~train], y[~train], sensitive_features=groups[~train])
        expected = accuracy_score(
            y[~train], clf.predict(Xt, sensitive_features=groups[~train])
        )
        assert score == pytest.approx(expected)
        search = GridSearchCV(
            pipe,
            {"clf__max_epochs": [1, 2]},
            scoring=group_aware_accuracy_scorer,
            cv=KFold(3, shuffle=True, random_state=0),
        ).fit(X, y, sensitive_features=groups)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert set(search.best_estimator_[-1].tasks_) == {"x", "y", "z"}


def test_adapt_a_fitted_pipeline_to_a_new_group(biased_frame):
    from skmeta.utils import adapt

    df, y, _ = biased_frame
    X, groups = df.drop(columns="group"), df["group"].to_numpy()
    seen = groups != "z"
    pipe = Pipeline(
        [("scale", StandardScaler()), ("clf", PrototypicalClassifier(**FAST))]
    )
    pipe.fit(X[seen], y[seen], clf__sensitive_features=groups[seen])
    scaler_mean = pipe[0].mean_.copy()
    rows = np.flatnonzero(~seen)[:20]
    adapt(pipe, X.iloc[rows], y[rows], sensitive_features=groups[rows])
    assert "z" in pipe[-1].tasks_
    np.testing.assert_array_equal(pipe[0].mean_, scaler_mean)  # not refitted
    direct = pipe[-1].predict_proba(
        pipe[0].transform(X[~seen]), sensitive_features=groups[~seen]
    )
    # Routing off, Pipeline.predict_proba passes the groups to the final step.
    np.testing.assert_array_equal(
        pipe.predict_proba(X[~seen], sensitive_features=groups[~seen]), direct
    )
