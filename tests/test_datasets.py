import hashlib
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch

from skmeta.datasets import (
    load_adult,
    load_compas,
    load_german_credit,
    load_heart_disease,
    make_group_classification,
)

# shape of data with drop_sensitive True / False, positive rate, sensitive features,
# raw columns the sensitive features come from, whether data has NaN.
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
        "shape": (920, 21),
        "shape_kept": (920, 26),
        "rate": 0.5533,
        "sensitive": ["sex", "site"],
        "raw": ["sex", "site"],
        "nan": True,  # numeric columns keep their missing values
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
    assert np.isnan(X).any() == expected.get("nan", False)
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


# Raw code -> category of the nominal heart disease columns.
_HEART_NOMINAL = {
    "cp": {1: "1", 2: "2", 3: "3", 4: "4"},
    "restecg": {0: "0", 1: "1", 2: "2"},
    "slope": {1: "1", 2: "2", 3: "3"},
    "thal": {3: "normal", 6: "fixed", 7: "reversible"},
}


def _raw_heart_disease():
    """The bundled heart disease file as it is, read without the loader."""
    source = resources.files("skmeta.datasets") / "data" / "heart_disease.csv.gz"
    with source.open("rb") as f:
        return pd.read_csv(f, compression="gzip")


@pytest.fixture(scope="module")
def heart():
    return load_heart_disease(), _raw_heart_disease()


def test_heart_disease_sites_and_target(heart):
    bunch, raw = heart
    assert len(raw) == len(bunch.frame) == 920
    site = bunch.sensitive_features["site"]
    counts = site.value_counts().to_dict()
    assert counts == {
        "Cleveland": 303,
        "Hungary": 294,
        "Switzerland": 123,
        "VA Long Beach": 200,
    }
    np.testing.assert_array_equal(site.astype(str), raw["site"])
    np.testing.assert_array_equal(bunch.target, (raw["num"] > 0).astype(int))
    expected = (raw["num"] > 0).groupby(raw["site"]).mean()
    rates = pd.Series(bunch.target).groupby(site.astype(str).to_numpy()).mean()
    pd.testing.assert_series_equal(rates, expected, check_names=False)
    assert rates.round(3).to_dict() == {
        "Cleveland": 0.459,
        "Hungary": 0.361,
        "Switzerland": 0.935,
        "VA Long Beach": 0.745,
    }
    sex = bunch.sensitive_features["sex"].astype(str).to_numpy()
    np.testing.assert_array_equal(sex, np.where(raw["sex"] == 1, "male", "female"))
    assert bunch.target_names.tolist() == ["no_disease", "disease"]
    for col in ("num", "target", "site", "sex"):
        assert col in bunch.frame
        assert not any(_in_block(n, col) for n in bunch.feature_names), col


def test_heart_disease_zeros_become_missing(heart):
    bunch, raw = heart
    frame = bunch.frame
    numeric = [c for c in raw.columns if c != "site" and c not in _HEART_NOMINAL]
    for col in numeric:
        zero_is_missing = col in ("chol", "trestbps")
        missing = raw[col].isna() | (zero_is_missing & (raw[col] == 0))
        np.testing.assert_array_equal(frame[col].isna(), missing, err_msg=col)
        kept = ~missing.to_numpy()
        np.testing.assert_array_equal(frame[col][kept], raw[col][kept], err_msg=col)
        if col in bunch.feature_names:
            values = bunch.data[:, bunch.feature_names.index(col)]
            np.testing.assert_array_equal(values, frame[col].to_numpy(float))
    # The source's zeros: every Swiss row and 49 VA rows for chol, one VA row for
    # trestbps; zeros elsewhere (oldpeak, ca, fbs, ...) are real values and stay.
    chol_zero = (raw["chol"] == 0).groupby(raw["site"]).sum()
    assert chol_zero.to_dict() == {
        "Cleveland": 0,
        "Hungary": 0,
        "Switzerland": 123,
        "VA Long Beach": 49,
    }
    assert (raw["trestbps"] == 0).sum() == 1
    assert not (frame[["chol", "trestbps"]] == 0).any().any()
    for col in ("oldpeak", "ca", "fbs", "exang"):
        assert (frame[col] == 0).sum() == (raw[col] == 0).sum() > 0
    assert frame["chol"].isna().sum() == 202 and frame["trestbps"].isna().sum() == 60


def test_heart_disease_nominal_blocks(heart):
    """One-hot blocks hold zeros exactly where the raw value is missing."""
    bunch, raw = heart
    for col, names in _HEART_NOMINAL.items():
        assert raw[col].dropna().isin(list(names)).all(), col  # no silent loss
        block = [n for n in bunch.feature_names if n.startswith(f"{col}=")]
        assert block == sorted(f"{col}={v}" for v in names.values())
        X = bunch.data[:, [bunch.feature_names.index(n) for n in block]]
        assert not np.isnan(X).any()
        np.testing.assert_array_equal(X.sum(axis=1), raw[col].notna())
        present = raw[col].notna().to_numpy()
        chosen = np.array(block)[X[present].argmax(axis=1)]
        expected = [f"{col}={names[v]}" for v in raw[col][present]]
        np.testing.assert_array_equal(chosen, expected)
    # Cleveland is nearly complete, the other sites lack most thal values.
    missing_thal = raw["thal"].isna().groupby(raw["site"]).sum().to_dict()
    assert missing_thal == {
        "Cleveland": 2,
        "Hungary": 266,
        "Switzerland": 52,
        "VA Long Beach": 166,
    }


def test_heart_disease_site_as_feature_and_task(heart):
    bunch, raw = heart
    assert not any(n.startswith("site=") for n in bunch.feature_names)
    kept = load_heart_disease(drop_sensitive=False)
    site_block = [n for n in kept.feature_names if n.startswith("site=")]
    assert site_block == [
        "site=Cleveland",
        "site=Hungary",
        "site=Switzerland",
        "site=VA Long Beach",
    ]
    assert "sex" in kept.feature_names
    X_site = kept.data[:, [kept.feature_names.index(n) for n in site_block]]
    np.testing.assert_array_equal(X_site.sum(axis=0), [303, 294, 123, 200])
    framed = load_heart_disease(as_frame=True, drop_sensitive=False)
    assert {"sex", "site"} <= set(framed.data.columns)
    assert isinstance(framed.data["site"].dtype, pd.CategoricalDtype)
    assert "site" not in load_heart_disease(as_frame=True).data.columns
    # tasks and sensitive features straight from return_X_y.
    X, y, sensitive = load_heart_disease(return_X_y=True, return_sensitive=True)
    assert X.shape == (920, 21) and y.shape == (920,)
    assert list(sensitive.columns) == ["sex", "site"]
    tasks, sex = sensitive["site"], sensitive["sex"]
    assert tasks.nunique() == 4 and sex.nunique() == 2
    X, y = load_heart_disease(return_X_y=True, as_frame=True)
    assert X.shape == (920, 12) and isinstance(y, pd.Series)
    assert X["ca"].isna().sum() == 611 and X["thal"].isna().sum() == 486


def test_heart_disease_keeps_duplicate_rows(heart):
    """Every source row is kept, the two pairs of identical rows included."""
    bunch, _ = heart
    duplicated = bunch.frame.duplicated(keep=False)
    assert np.flatnonzero(duplicated).tolist() == [404, 405, 859, 907]


def test_heart_disease_imputer_pipeline(heart):
    bunch, _ = heart
    prep = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler())
    Xt = prep.fit_transform(bunch.data)
    assert Xt.shape == (920, 28) and not np.isnan(Xt).any()
    clf = make_pipeline(prep, LogisticRegression())
    assert clf.fit(bunch.data, bunch.target).score(bunch.data, bunch.target) > 0.75


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


def _digest(*arrays):
    sha = hashlib.sha256()
    for array in arrays:
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


# Digests of (X, y, groups) and of the tasks (weights, means, sizes, biased_groups)
# with random_state=0, computed with the generator as it was before ``shift``
# existed: the default isotropic model must keep giving the same data.
ISOTROPIC_PINS = [
    ({}, "abe8a8e0ad9b9905", "799592d8d0801290"),
    (
        {"n_groups": 8, "group_sizes": "skewed", "label_bias": 0.5, "flip_y": 0.1},
        "f9b1d0b0f2fd32fd",
        "c02e17e874ccd301",
    ),
    (
        {
            "n_groups": 3,
            "group_sizes": [5, 1, 30],
            "n_features": 4,
            "n_informative": 2,
            "group_shift": 2.0,
        },
        "62778fa23b5a437f",
        "076709ddf7b8732c",
    ),
    (
        {"n_groups": 4, "group_shift": 0.0, "label_bias": 1.0, "biased_groups": [0, 2]},
        "ffb445d7551f9872",
        "52535edeeda4f710",
    ),
]


@pytest.mark.parametrize("shift", [None, "isotropic"])
@pytest.mark.parametrize("kwargs, data_digest, tasks_digest", ISOTROPIC_PINS)
def test_generator_isotropic_is_unchanged(kwargs, data_digest, tasks_digest, shift):
    if shift is not None:
        kwargs = {**kwargs, "shift": shift}
    X, y, groups, tasks = make_group_classification(
        **kwargs, random_state=0, return_tasks=True
    )
    assert _digest(X, y, groups) == data_digest
    assert _digest(tasks.weights, tasks.means, tasks.sizes, tasks.biased_groups) == (
        tasks_digest
    )
    assert "types" not in tasks and "shift_basis" not in tasks


def test_generator_isotropic_exact_values():
    X, y, groups, tasks = make_group_classification(
        2, 2, 2, random_state=0, return_tasks=True
    )
    expected_X = [
        [3.9225380684864675e-01, 5.3897357834345305e-01],
        [1.2360819339097882e00, 4.5996412343979470e-02],
        [1.4424696472608272e00, 1.4098720338528992e-04],
        [6.1908777992367270e-01, 1.3785949028141262e00],
    ]
    np.testing.assert_array_equal(X, expected_X)
    np.testing.assert_array_equal(y, [0, 1, 1, 1])
    np.testing.assert_array_equal(groups, [1, 0, 1, 0])
    np.testing.assert_array_equal(
        tasks.weights,
        [
            [2.742790330073403, 2.641050407568681],
            [3.6316103361176317, -0.5771206715091877],
        ],
    )
    np.testing.assert_array_equal(
        tasks.means,
        [
            [0.4750442087627947, -0.07567860414884894],
            [-0.05160942589677892, 0.20529925096918616],
        ],
    )
    np.testing.assert_allclose(
        tasks.intercepts, [-1.1030756538204178, 0.30590776610750925], rtol=1e-14
    )


@pytest.mark.parametrize("shift", ["types", "low_rank"])
def test_generator_structured_shift_shapes_and_determinism(shift):
    kwargs = {
        "n_groups": 7,
        "n_features": 5,
        "n_informative": 3,
        "shift": shift,
        "n_types": 4,
        "shift_rank": 2,
        "group_sizes": "skewed",
        "return_tasks": True,
    }
    X, y, groups, tasks = make_group_classification(**kwargs, random_state=0)
    assert X.shape == (700, 5) and y.shape == groups.shape == (700,)
    np.testing.assert_array_equal(tasks.sizes, np.bincount(groups, minlength=7))
    assert tasks.weights.shape == tasks.means.shape == (7, 5)
    assert not tasks.weights[:, 3:].any()
    np.testing.assert_allclose(
        tasks.intercepts, -np.einsum("gf,gf->g", tasks.means, tasks.weights)
    )
    if shift == "types":
        assert tasks.types.dtype == np.int64
        np.testing.assert_array_equal(tasks.types, [0, 1, 2, 3, 0, 1, 2])
        assert tasks.type_weights.shape == tasks.type_means.shape == (4, 5)
        assert not tasks.type_weights[:, 3:].any()
        assert "shift_basis" not in tasks
    else:
        assert tasks.shift_basis.shape == (5, 2)
        assert not tasks.shift_basis[3:].any()
        assert "types" not in tasks
    again = make_group_classification(**kwargs, random_state=np.random.RandomState(0))
    for a, b in zip((X, y, groups), again[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    for key in tasks:
        np.testing.assert_array_equal(tasks[key], again[3][key])
    other = make_group_classification(**kwargs, random_state=1)
    assert not np.array_equal(tasks.weights, other[3].weights)
    # The group rules do not depend on group_sizes or flip_y.
    *_, equal = make_group_classification(
        **{**kwargs, "group_sizes": "equal"}, flip_y=0.2, random_state=0
    )
    for key in tasks:
        if key != "sizes":
            np.testing.assert_array_equal(tasks[key], equal[key])
    # Same w0 as the isotropic model; same input means as well under "low_rank".
    *_, isotropic = make_group_classification(
        **{**kwargs, "shift": "isotropic"}, random_state=0
    )
    np.testing.assert_array_equal(tasks.shared_weights, isotropic.shared_weights)
    if shift == "low_rank":
        np.testing.assert_array_equal(tasks.means, isotropic.means)


def _rms(values):
    return float(np.sqrt(np.mean(np.square(values))))


def test_generator_types():
    """Groups of one type nearly share their weights; types differ by group_shift."""
    group_shift, n_types = 1.5, 10
    X, y, groups, tasks = make_group_classification(
        40,
        5,
        40,
        group_shift=group_shift,
        shift="types",
        n_types=n_types,
        return_tasks=True,
        random_state=0,
    )
    types, weights = tasks.types, tasks.weights
    np.testing.assert_array_equal(types, np.arange(40) % n_types)
    same = types[:, None] == types[None, :]
    diff = weights[:, None, :] - weights[None, :, :]
    off_diagonal = ~np.eye(40, dtype=bool)
    within = _rms(diff[same & off_diagonal])
    between = _rms(diff[~same])
    # Per coordinate, sqrt(2) * within_type_shift (group_shift / 10 by default)
    # within a type, sqrt(2 * (group_shift**2 + within_type_shift**2)) between.
    assert within == pytest.approx(np.sqrt(2) * group_shift / 10, rel=0.1)
    assert between == pytest.approx(np.sqrt(2 * 1.01) * group_shift, rel=0.1)
    assert within < between / 5
    # Each type strays from w0 by group_shift, each group from its type by
    # within_type_shift; the input means follow at half these scales.
    assert _rms(tasks.type_weights - tasks.shared_weights) == pytest.approx(
        group_shift, rel=0.1
    )
    assert _rms(weights - tasks.type_weights[types]) == pytest.approx(
        group_shift / 10, rel=0.1
    )
    assert _rms(tasks.type_means) == pytest.approx(group_shift / 2, rel=0.1)
    assert _rms(tasks.means - tasks.type_means[types]) == pytest.approx(
        group_shift / 20, rel=0.1
    )
    # An explicit within_type_shift; 0 makes the groups of a type identical.
    *_, tasks = make_group_classification(
        6, 5, shift="types", n_types=2, within_type_shift=0.0, return_tasks=True
    )
    np.testing.assert_array_equal(tasks.weights[0], tasks.weights[2])
    np.testing.assert_array_equal(tasks.means[1], tasks.means[5])
    assert not np.array_equal(tasks.weights[0], tasks.weights[1])


@pytest.mark.parametrize("shift_rank", [1, 3, 8])
def test_generator_low_rank(shift_rank):
    """The weight shifts lie in the span of the shared basis."""
    n_groups, n_features, n_informative, group_shift = 300, 10, 8, 0.7
    *_, tasks = make_group_classification(
        n_groups,
        2,
        n_features,
        n_informative=n_informative,
        group_shift=group_shift,
        shift="low_rank",
        shift_rank=shift_rank,
        return_tasks=True,
        random_state=0,
    )
    basis = tasks.shift_basis
    assert basis.shape == (n_features, shift_rank)
    np.testing.assert_allclose(basis.T @ basis, np.eye(shift_rank), atol=1e-12)
    assert not basis[n_informative:].any()
    shifts = tasks.weights - tasks.shared_weights
    residual = shifts - shifts @ basis @ basis.T
    assert np.abs(residual).max() < 1e-12
    assert np.linalg.matrix_rank(shifts) == shift_rank
    # Squared norms as in the isotropic model: group_shift**2 * n_informative.
    norms = np.square(shifts).sum(axis=1)
    expected = group_shift**2 * n_informative
    assert norms.mean() == pytest.approx(expected, rel=0.15)
    *_, isotropic = make_group_classification(
        n_groups,
        2,
        n_features,
        n_informative=n_informative,
        group_shift=group_shift,
        return_tasks=True,
        random_state=0,
    )
    iso_norms = np.square(isotropic.weights - isotropic.shared_weights).sum(axis=1)
    assert iso_norms.mean() == pytest.approx(expected, rel=0.15)


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
        ({"shift": "diagonal"}, "shift must be one of 'isotropic', 'types'"),
        ({"shift": None}, "shift must be one of"),
        ({"n_types": 0}, "n_types must be >= 1"),
        ({"n_types": 1.5}, "n_types must be an integer"),
        ({"within_type_shift": -0.1}, "within_type_shift must be >= 0"),
        ({"within_type_shift": float("nan")}, "within_type_shift must be >= 0"),
        ({"within_type_shift": "small"}, "within_type_shift must be a real number"),
        ({"shift_rank": 0}, "shift_rank must be >= 1"),
        ({"shift_rank": True}, "shift_rank must be an integer"),
        ({"shift_rank": 7}, "shift_rank must be <= n_informative=6"),
        (
            {"shift_rank": 3, "n_informative": 2},
            "shift_rank must be <= n_informative=2",
        ),
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
