import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Bunch

from skmeta.datasets import (
    load_adult,
    load_compas,
    load_german_credit,
    load_heart_disease,
    make_group_classification,
)

# shape of data with drop_sensitive True / False, positive rate, sensitive features,
# raw columns the sensitive features come from.
EXPECTED = {
    load_adult: {
        "shape": (48842, 40),
        "shape_kept": (48842, 47),
        "rate": 0.2393,
        "sensitive": ["sex", "race"],
        "raw": ["race", "sex"],
    },
    load_compas: {
        "shape": (6172, 7),
        "shape_kept": (6172, 15),
        "rate": 0.4551,
        "sensitive": ["race", "sex"],
        "raw": ["race", "sex"],
    },
    load_german_credit: {
        "shape": (1000, 54),
        "shape_kept": (1000, 61),
        "rate": 0.70,
        "sensitive": ["sex", "age_group"],
        "raw": ["status_sex", "age", "sex"],
    },
    load_heart_disease: {
        "shape": (297, 21),
        "shape_kept": (297, 22),
        "rate": 0.2795,
        "sensitive": ["sex"],
        "raw": ["sex"],
    },
}
LOADERS = list(EXPECTED)


def _in_block(name, column):
    return name == column or name.startswith(f"{column}=")


@pytest.fixture(scope="module", params=LOADERS, ids=lambda f: f.__name__)
def loaded(request):
    """One loader with its default Bunch, read once per module."""
    return request.param, request.param()


# Loaders: common contract ----------------------------------------------------------


def test_numeric_bunch(loaded):
    loader, bunch = loaded
    expected = EXPECTED[loader]
    assert isinstance(bunch, Bunch)
    X, y = bunch.data, bunch.target
    assert isinstance(X, np.ndarray) and X.dtype == np.float64
    assert X.shape == expected["shape"]
    assert not np.isnan(X).any()
    assert isinstance(y, np.ndarray) and y.dtype == np.int64
    assert y.shape == (X.shape[0],)
    assert set(np.unique(y)) == {0, 1}
    assert y.mean() == pytest.approx(expected["rate"], abs=5e-4)
    assert len(bunch.feature_names) == X.shape[1]
    assert len(set(bunch.feature_names)) == X.shape[1]
    assert all(isinstance(name, str) for name in bunch.feature_names)
    assert len(bunch.target_names) == 2
    assert len(bunch.frame) == X.shape[0]
    assert "Licence" in bunch.DESCR


def test_sensitive_features(loaded):
    loader, bunch = loaded
    sensitive = bunch.sensitive_features
    assert isinstance(sensitive, pd.DataFrame)
    assert list(sensitive.columns) == EXPECTED[loader]["sensitive"]
    assert len(sensitive) == len(bunch.target)
    assert sensitive.index.equals(pd.RangeIndex(len(bunch.target)))
    for col in sensitive:
        assert isinstance(sensitive[col].dtype, pd.CategoricalDtype)
        assert sensitive[col].notna().all()
        assert sensitive[col].nunique() >= 2


def test_drop_sensitive(loaded):
    loader, bunch = loaded
    raw = EXPECTED[loader]["raw"]
    for col in raw:
        assert not any(_in_block(name, col) for name in bunch.feature_names), col
    kept = loader(drop_sensitive=False)
    assert kept.data.shape == EXPECTED[loader]["shape_kept"]
    for col in raw:
        assert any(_in_block(name, col) for name in kept.feature_names), col
    # The other columns are unchanged, in the same order.
    shared = [i for i, n in enumerate(kept.feature_names) if n in bunch.feature_names]
    np.testing.assert_array_equal(kept.data[:, shared], bunch.data)
    pd.testing.assert_frame_equal(kept.sensitive_features, bunch.sensitive_features)


@pytest.mark.parametrize("drop_sensitive", [True, False])
def test_as_frame(loaded, drop_sensitive):
    loader, bunch = loaded
    framed = loader(as_frame=True, drop_sensitive=drop_sensitive)
    X, y = framed.data, framed.target
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    assert list(X.columns) == framed.feature_names
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.to_numpy(), bunch.target)
    assert set(X.columns) <= set(framed.frame.columns)
    assert any(isinstance(dtype, pd.CategoricalDtype) for dtype in X.dtypes)
    for col, dtype in X.dtypes.items():
        assert isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(
            dtype
        ), col
    assert (set(EXPECTED[loader]["raw"]) <= set(X.columns)) is not drop_sensitive
    pd.testing.assert_frame_equal(framed.sensitive_features, bunch.sensitive_features)


def test_return_X_y(loaded):
    loader, bunch = loaded
    X, y = loader(return_X_y=True)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    X, y, sensitive = loader(return_X_y=True, return_sensitive=True)
    assert X.shape == bunch.data.shape
    pd.testing.assert_frame_equal(sensitive, bunch.sensitive_features)
    X, y, sensitive = loader(return_X_y=True, return_sensitive=True, as_frame=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)
    # return_sensitive alone still gives the Bunch, which holds sensitive_features.
    assert isinstance(loader(return_sensitive=True), Bunch)


def test_one_hot_blocks(loaded):
    """Each categorical column becomes a block with at most one 1 per row."""
    loader, bunch = loaded
    framed = loader(as_frame=True)
    for col, dtype in framed.data.dtypes.items():
        block = [i for i, n in enumerate(bunch.feature_names) if _in_block(n, col)]
        if not isinstance(dtype, pd.CategoricalDtype):
            assert len(block) == 1
            continue
        assert len(block) == len(dtype.categories)
        totals = bunch.data[:, block].sum(axis=1)
        np.testing.assert_array_equal(totals, framed.data[col].notna().to_numpy())


# Loaders: one data set at a time ---------------------------------------------------


def test_adult_split_and_excluded_columns():
    adult = load_adult()
    assert (adult.split == "train").sum() == 32561
    assert (adult.split == "test").sum() == 16281
    for col in ("fnlwgt", "education", "native-country", "split"):
        assert col in adult.frame
        assert not any(_in_block(n, col) for n in adult.feature_names)
    assert "education-num" in adult.feature_names
    assert adult.frame["native-country"].nunique() == 41
    # Missing workclass: an all-zero block.
    block = [n.startswith("workclass=") for n in adult.feature_names]
    missing = adult.frame["workclass"].isna().to_numpy()
    assert missing.sum() == 2799
    assert not adult.data[np.ix_(missing, block)].any()
    assert "CC BY 4.0" in adult.DESCR


def test_compas_filter_and_leakage():
    compas = load_compas(drop_sensitive=False)
    frame = compas.frame
    assert len(frame) == 6172
    assert frame["days_b_screening_arrest"].between(-30, 30).all()
    assert (frame["is_recid"] != -1).all()
    assert set(frame["c_charge_degree"]) == {"F", "M"}
    assert frame["score_text"].notna().all()
    leaky = [
        "decile_score",
        "score_text",
        "v_decile_score",
        "v_score_text",
        "is_recid",
        "is_violent_recid",
        "id",
        "c_charge_desc",
        "c_jail_in",
        "c_jail_out",
        "days_b_screening_arrest",
        "age_cat",
    ]
    for col in leaky:
        assert col in frame
        assert not any(_in_block(n, col) for n in compas.feature_names), col
    assert pd.api.types.is_datetime64_any_dtype(frame["c_jail_in"])
    assert frame["age_cat"].nunique() == 3
    assert compas.sensitive_features["race"].value_counts()["African-American"] == 3175


def test_german_credit_sensitive_columns():
    german = load_german_credit()
    age_group = german.sensitive_features["age_group"]
    assert list(age_group.cat.categories) == ["<25", ">=25"]
    np.testing.assert_array_equal(age_group == "<25", german.frame["age"] < 25)
    np.testing.assert_array_equal(
        german.sensitive_features["sex"].astype(str), german.frame["sex"].astype(str)
    )
    assert german.target_names.tolist() == ["bad", "good"]
    np.testing.assert_array_equal(german.target, german.frame["credit"] == "good")


def test_heart_disease_cleaning_and_sex():
    heart = load_heart_disease()
    frame = heart.frame
    assert len(frame) == 297
    assert set(frame["cp"]) == {1, 2, 3, 4}
    assert set(frame["thal"]) == {"fixed", "normal", "reversible"}
    assert not frame.duplicated(["age", "sex", "trestbps", "chol", "thalach"]).any()
    sex = heart.sensitive_features["sex"].astype(str).to_numpy()
    np.testing.assert_array_equal(sex, np.where(frame["sex"] == 1, "male", "female"))
    assert "target" not in heart.feature_names


def test_loaders_take_keyword_arguments_only():
    with pytest.raises(TypeError):
        load_adult(True)


# Generator -------------------------------------------------------------------------


def test_generator_defaults():
    X, y, groups = make_group_classification(random_state=0)
    assert X.shape == (1000, 6) and X.dtype == np.float64
    assert y.shape == (1000,) and y.dtype == np.int64
    assert groups.shape == (1000,) and groups.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(np.bincount(groups), np.full(10, 100))
    assert 0.35 < y.mean() < 0.65


def test_generator_is_deterministic():
    first = make_group_classification(random_state=3, group_sizes="skewed")
    second = make_group_classification(
        random_state=np.random.RandomState(3), group_sizes="skewed"
    )
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = make_group_classification(random_state=4, group_sizes="skewed")
    assert not np.array_equal(first[0], other[0])


def test_generator_tasks_shared_across_group_sizes():
    *_, equal = make_group_classification(random_state=0, return_tasks=True)
    *_, skewed = make_group_classification(
        random_state=0, return_tasks=True, group_sizes="skewed", flip_y=0.1
    )
    np.testing.assert_array_equal(equal.weights, skewed.weights)
    np.testing.assert_array_equal(equal.means, skewed.means)


def test_generator_group_sizes():
    sizes = [5, 1, 30]
    _, _, groups = make_group_classification(3, group_sizes=sizes, random_state=0)
    np.testing.assert_array_equal(np.bincount(groups), sizes)
    _, _, groups = make_group_classification(
        20, 50, group_sizes="skewed", random_state=0
    )
    counts = np.bincount(groups, minlength=20)
    assert counts.sum() == 20 * 50
    assert counts.min() >= 2
    assert counts[0] == counts.max()
    assert counts.max() > 10 * np.median(counts)
    assert (counts < 50).sum() >= 15  # many small groups


def test_generator_tasks_explain_labels():
    X, y, groups, tasks = make_group_classification(
        n_features=8, n_informative=3, random_state=0, return_tasks=True
    )
    assert tasks.weights.shape == (10, 8) and tasks.means.shape == (10, 8)
    assert not tasks.weights[:, 3:].any() and not tasks.shared_weights[3:].any()
    np.testing.assert_array_equal(tasks.sizes, np.bincount(groups))
    rule = np.einsum("nf,nf->n", X, tasks.weights[groups]) + tasks.intercepts[groups]
    assert ((rule > 0) == y).mean() > 0.8
    *_, noisy = make_group_classification(random_state=0, flip_y=1.0, return_tasks=True)
    X, y, groups = make_group_classification(random_state=0, flip_y=1.0)
    rule = np.einsum("nf,nf->n", X, noisy.weights[groups]) + noisy.intercepts[groups]
    assert abs(((rule > 0) == y).mean() - 0.5) < 0.1


def test_generator_label_bias():
    X, y, groups, tasks = make_group_classification(
        20, 200, label_bias=0.5, random_state=0, return_tasks=True
    )
    np.testing.assert_array_equal(tasks.biased_groups, np.arange(10, 20))
    _, y_fair, _ = make_group_classification(20, 200, random_state=0)
    biased = np.isin(groups, tasks.biased_groups)
    assert y[~biased].mean() == pytest.approx(y_fair[~biased].mean())
    assert y[biased].mean() == pytest.approx(y_fair[biased].mean() / 2, abs=0.01)
    _, y, groups = make_group_classification(
        4, label_bias=1.0, biased_groups=[0, 2], random_state=0
    )
    assert y[np.isin(groups, [0, 2])].sum() == 0
    assert y[np.isin(groups, [1, 3])].mean() > 0.3


def test_generator_default_biased_groups_are_the_smaller_half():
    *_, tasks = make_group_classification(
        9, group_sizes="skewed", label_bias=0.3, random_state=0, return_tasks=True
    )
    assert len(tasks.biased_groups) == 4
    others = np.setdiff1d(np.arange(9), tasks.biased_groups)
    assert tasks.sizes[tasks.biased_groups].max() <= tasks.sizes[others].min()


def _pooled_and_per_group_accuracy(group_shift):
    X, y, groups = make_group_classification(
        10, 400, group_shift=group_shift, random_state=0
    )
    train = np.arange(len(y)) % 2 == 0
    pooled = LogisticRegression().fit(X[train], y[train]).score(X[~train], y[~train])
    per_group = np.mean(
        [
            LogisticRegression()
            .fit(X[train & (groups == g)], y[train & (groups == g)])
            .score(X[~train & (groups == g)], y[~train & (groups == g)])
            for g in range(10)
        ]
    )
    return pooled, per_group


def test_generator_group_shift():
    pooled, per_group = _pooled_and_per_group_accuracy(0.0)
    assert pooled >= per_group - 0.01  # one shared rule: pooling loses nothing
    pooled, per_group = _pooled_and_per_group_accuracy(1.5)
    assert per_group - pooled > 0.1  # distinct rules: pooling loses a lot


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_groups": 0}, "n_groups must be >= 1"),
        ({"n_groups": 2.5}, "n_groups must be an integer"),
        ({"n_samples_per_group": 0}, "n_samples_per_group must be >= 1"),
        ({"n_features": True}, "n_features must be an integer"),
        ({"n_informative": 0}, "n_informative must be >= 1"),
        ({"n_informative": 7}, "n_informative must be <= n_features=6"),
        ({"group_shift": -1.0}, "group_shift must be >= 0"),
        ({"group_shift": "big"}, "group_shift must be a real number"),
        ({"label_bias": 1.5}, r"label_bias must be in \[0.0, 1.0\]"),
        ({"label_bias": float("nan")}, "label_bias must be in"),
        ({"flip_y": -0.1}, r"flip_y must be in \[0.0, 1.0\]"),
        ({"group_sizes": "huge"}, 'group_sizes must be "equal", "skewed"'),
        ({"group_sizes": [10, 10]}, r"group_sizes must be .* 10 \(n_groups\)"),
        ({"group_sizes": [0] * 10}, "group_sizes must be"),
        ({"group_sizes": [1.5] * 10}, "group_sizes must be"),
        (
            {"group_sizes": "skewed", "n_samples_per_group": 1},
            "n_samples_per_group must be >= 2",
        ),
        ({"biased_groups": [10]}, r"biased_groups must hold group ids in \[0"),
        ({"biased_groups": [-1]}, "biased_groups must hold group ids"),
        ({"biased_groups": [[0]]}, "biased_groups must be a 1-D"),
        ({"biased_groups": ["a"]}, "biased_groups must be a 1-D"),
    ],
)
def test_generator_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_group_classification(**kwargs)
