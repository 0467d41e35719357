"""Loaders for the tabular data sets bundled with skmeta.

The files in ``data/`` are gzip CSVs read with :mod:`importlib.resources`; nothing is
downloaded. Each loader turns its raw table (``frame``) into features, a 0/1 target and
a table of sensitive features in the same way, driven by a :class:`_Spec`.
"""

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_adult", "load_compas", "load_german_credit", "load_heart_disease"]


@dataclass(frozen=True)
class _Spec:
    """How one raw table becomes ``data``, ``target`` and ``sensitive_features``."""

    name: str  # file stem in data/ and descr/
    target: str  # target column of the raw table
    positive: object  # value of the target column that means class 1
    target_names: tuple[str, str]
    features: tuple[str, ...]  # columns always in ``data``
    sensitive_columns: tuple[str, ...]  # raw columns dropped when drop_sensitive=True
    sensitive: dict  # output column -> function(frame) -> values


def _read(name):
    """Read ``data/<name>.csv.gz``; strip string values and make them categorical."""
    source = resources.files(__package__) / "data" / f"{name}.csv.gz"
    with source.open("rb") as f:
        frame = pd.read_csv(f, compression="gzip")
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].str.strip()
    return frame


def _categorize(frame):
    """Turn string columns into ``category`` with sorted categories."""
    for col in frame.columns:
        if pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].astype("category")
    return frame.reset_index(drop=True)


def _descr(name):
    return (resources.files(__package__) / "descr" / f"{name}.rst").read_text(
        encoding="utf-8"
    )


def _encode(frame):
    """One-hot encode categorical columns; numeric and boolean columns pass through.

    Columns are named ``col=value`` in category order; a missing value gives a row of
    zeros in its column's block. Each block takes the place of its column, which
    ``pd.get_dummies`` does not do: it moves every block after the other columns.
    """
    blocks, names = [], []
    for col, values in frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            categories = values.cat.categories
            codes = values.cat.codes.to_numpy()
            blocks.append(codes[:, None] == np.arange(len(categories)))
            names.extend(f"{col}={value}" for value in categories)
        else:
            blocks.append(values.to_numpy(dtype=np.float64)[:, None])
            names.append(col)
    return np.hstack(blocks).astype(np.float64), names


def _load(frame, spec, *, return_X_y, as_frame, return_sensitive, drop_sensitive):
    """Build the Bunch (or tuple) every loader returns from the filtered raw table."""
    keep = set(spec.features)
    if not drop_sensitive:
        keep.update(spec.sensitive_columns)
    X = frame[[col for col in frame.columns if col in keep]]
    target = (frame[spec.target] == spec.positive).astype(np.int64).rename(spec.target)
    sensitive = pd.DataFrame(
        {col: pd.Categorical(func(frame)) for col, func in spec.sensitive.items()}
    )
    if as_frame:
        feature_names = list(X.columns)
    else:
        X, feature_names = _encode(X)
        target = target.to_numpy()
    if return_X_y:
        return (X, target, sensitive) if return_sensitive else (X, target)
    return Bunch(
        data=X,
        target=target,
        sensitive_features=sensitive,
        feature_names=feature_names,
        target_names=np.array(spec.target_names),
        frame=frame,
        DESCR=_descr(spec.name),
    )


_PARAMETERS = """return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    as_frame : bool, default=False
        If True, ``data`` is a DataFrame of the raw columns (categorical columns with
        the ``category`` dtype, numeric columns as numbers) and ``target`` a Series.
        If False, ``data`` is a float64 array in which every categorical column is
        one-hot encoded as columns named ``column=value`` (a missing value gives zeros
        in all columns of its block; a missing numeric value stays NaN).

    return_sensitive : bool, default=False
        If True and ``return_X_y`` is True, return
        ``(data, target, sensitive_features)``. Ignored when ``return_X_y`` is False,
        since the Bunch always holds ``sensitive_features``.

    drop_sensitive : bool, default=True
        If True, the raw columns the sensitive features are made from are left out of
        ``data``. If False, they are kept in ``data`` (one-hot encoded when
        ``as_frame=False``)."""

_RETURNS = """data : {ndarray, DataFrame}
            The features, see ``as_frame``.
        target : {ndarray, Series} of int64
            The 0/1 target.
        sensitive_features : DataFrame
            The sensitive features, one ``category`` column each, whatever
            ``as_frame`` is.
        feature_names : list of str
            Names of the columns of ``data``.
        target_names : ndarray of str
            The meaning of target 0 and target 1.
        frame : DataFrame
            The raw table after row filtering and cleaning, with every column,
            including the ones left out of ``data``.
        DESCR : str
            Description of the data set: provenance, licence, columns, preprocessing."""


def _fill_doc(func):
    """Insert the shared parameter and return descriptions into a loader docstring."""
    func.__doc__ = func.__doc__.replace("[parameters]", _PARAMETERS).replace(
        "[returns]", _RETURNS
    )
    return func


# Adult ---------------------------------------------------------------------------

_ADULT = _Spec(
    name="adult",
    target="income",
    positive=">50K",
    target_names=("<=50K", ">50K"),
    features=(
        "age",
        "workclass",
        "education-num",
        "marital-status",
        "occupation",
        "relationship",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
    ),
    sensitive_columns=("race", "sex"),
    sensitive={"sex": lambda f: f["sex"], "race": lambda f: f["race"]},
)


@_fill_doc
def load_adult(
    *, return_X_y=False, as_frame=False, return_sensitive=False, drop_sensitive=True
):
    """Load the UCI Adult census income data set (48,842 rows).

    Classify whether a person earns more than 50,000 dollars a year
    (``target`` 1 = ``>50K``, 23.9 % of the rows). Training and test files of the
    original release are joined; ``split`` says which row came from which. The
    sensitive features are ``sex`` and ``race``. ``native-country`` (41 countries,
    most of them tiny) is not a feature but is kept in ``frame`` as a natural column
    of groups (tasks). ``fnlwgt`` is a sampling weight and ``education`` repeats
    ``education-num``; both are left out of ``data``. Missing values (``?`` in the
    original) are missing in ``frame`` and all-zero blocks in the encoded ``data``.
    Source: Becker and Kohavi (1996), UCI Machine Learning Repository, CC BY 4.0.

    Parameters
    ----------
    [parameters]

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        [returns]
        split : ndarray of str
            ``"train"`` (32,561 rows) or ``"test"`` (16,281 rows): the original
            split. Not a feature.

    (data, target) : tuple if ``return_X_y`` is True
        With ``return_sensitive=True``, ``(data, target, sensitive_features)``.

    See Also
    --------
    load_compas : ProPublica's COMPAS recidivism data.
    load_german_credit : Statlog German credit data.

    Examples
    --------
    >>> from skmeta.datasets import load_adult
    >>> adult = load_adult()
    >>> adult.data.shape
    (48842, 40)
    >>> list(adult.sensitive_features.columns)
    ['sex', 'race']
    >>> int((adult.split == "train").sum())
    32561
    >>> X, y, groups = load_adult(return_X_y=True, return_sensitive=True)
    >>> groups.shape
    (48842, 2)
    """
    frame = _categorize(_read("adult"))
    bunch = _load(
        frame,
        _ADULT,
        return_X_y=return_X_y,
        as_frame=as_frame,
        return_sensitive=return_sensitive,
        drop_sensitive=drop_sensitive,
    )
    if not return_X_y:
        bunch.split = frame["split"].to_numpy(dtype=str)
    return bunch


# COMPAS --------------------------------------------------------------------------

_COMPAS = _Spec(
    name="compas",
    target="two_year_recid",
    positive=1,
    target_names=("no_recid", "recid"),
    features=(
        "age",
        "juv_fel_count",
        "juv_misd_count",
        "juv_other_count",
        "priors_count",
        "c_charge_degree",
    ),
    sensitive_columns=("race", "sex"),
    sensitive={"race": lambda f: f["race"], "sex": lambda f: f["sex"]},
)


@_fill_doc
def load_compas(
    *, return_X_y=False, as_frame=False, return_sensitive=False, drop_sensitive=True
):
    """Load ProPublica's COMPAS two-year recidivism data (6,172 rows).

    Classify whether a defendant from Broward County, Florida, was charged with a new
    offence within two years (``target`` 1 = ``two_year_recid``, 45.5 % of the rows).
    ProPublica's row filter is applied to the 7,214 raw rows: the arrest lies within
    30 days of the COMPAS screening (``days_b_screening_arrest`` in [-30, 30]),
    ``is_recid != -1``, ``c_charge_degree != "O"`` and ``score_text != "N/A"``;
    6,172 rows remain. The features are ``age``, the juvenile and prior counts and
    the charge degree; the sensitive features are ``race`` and ``sex``. The COMPAS
    tool's own scores (``decile_score``, ``score_text``, ``v_decile_score``,
    ``v_score_text``), the outcome columns ``is_recid`` and ``is_violent_recid``, the
    dates, ``id`` and ``c_charge_desc`` are never features; they stay in ``frame``,
    as does ``age_cat``, a natural column of groups. Source: ProPublica (2016),
    https://github.com/propublica/compas-analysis.

    Parameters
    ----------
    [parameters]

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        [returns]

    (data, target) : tuple if ``return_X_y`` is True
        With ``return_sensitive=True``, ``(data, target, sensitive_features)``.

    See Also
    --------
    load_adult : UCI Adult census income data.

    Examples
    --------
    >>> from skmeta.datasets import load_compas
    >>> compas = load_compas()
    >>> compas.data.shape
    (6172, 7)
    >>> compas.feature_names[-2:]
    ['c_charge_degree=F', 'c_charge_degree=M']
    >>> float(compas.frame["decile_score"].mean())  # a baseline, not a feature
    4.418...
    """
    frame = _read("compas")
    keep = (
        frame["days_b_screening_arrest"].between(-30, 30)
        & (frame["is_recid"] != -1)
        & (frame["c_charge_degree"] != "O")
        & frame["score_text"].notna()  # read_csv reads "N/A" as missing
    )
    frame = frame[keep].copy()
    for col in ("c_jail_in", "c_jail_out"):
        frame[col] = pd.to_datetime(frame[col], format="%Y-%m-%d %H:%M:%S")
    return _load(
        _categorize(frame),
        _COMPAS,
        return_X_y=return_X_y,
        as_frame=as_frame,
        return_sensitive=return_sensitive,
        drop_sensitive=drop_sensitive,
    )


# German credit -------------------------------------------------------------------

_GERMAN = _Spec(
    name="german_credit",
    target="credit",
    positive="good",
    target_names=("bad", "good"),
    features=(
        "status",
        "duration",
        "credit_history",
        "purpose",
        "credit_amount",
        "savings",
        "present_employment",
        "installment_rate",
        "other_debtors",
        "present_residence_since",
        "property",
        "installment_plans",
        "housing",
        "number_of_existing_credits",
        "job",
        "number_of_people_liable_for",
        "telephone",
        "foreign_worker",
    ),
    sensitive_columns=("status_sex", "age", "sex"),
    sensitive={
        "sex": lambda f: f["sex"],
        "age_group": lambda f: pd.Categorical(
            np.where(f["age"] < 25, "<25", ">=25"), categories=["<25", ">=25"]
        ),
    },
)


@_fill_doc
def load_german_credit(
    *, return_X_y=False, as_frame=False, return_sensitive=False, drop_sensitive=True
):
    """Load the Statlog German credit data set (1,000 rows).

    Classify whether a loan applicant is a good credit risk (``target`` 1 =
    ``good``, 70 % of the rows). The sensitive features are ``sex`` (derived from
    the original ``status_sex`` attribute) and ``age_group`` (``"<25"`` or
    ``">=25"``, from ``age``). With ``drop_sensitive=True``, ``sex``, ``status_sex``
    (which encodes sex) and ``age`` are all left out of ``data``. The data set's
    documentation asks for a cost matrix: predicting good for a bad risk costs 5,
    the reverse costs 1. Source: Hofmann (1994), UCI Machine Learning Repository,
    CC BY 4.0.

    Parameters
    ----------
    [parameters]

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        [returns]

    (data, target) : tuple if ``return_X_y`` is True
        With ``return_sensitive=True``, ``(data, target, sensitive_features)``.

    See Also
    --------
    load_adult : UCI Adult census income data.

    Examples
    --------
    >>> from skmeta.datasets import load_german_credit
    >>> X, y, groups = load_german_credit(return_X_y=True, return_sensitive=True)
    >>> X.shape, float(y.mean())
    ((1000, 54), 0.7)
    >>> groups["age_group"].value_counts().to_dict()
    {'>=25': 851, '<25': 149}
    """
    return _load(
        _categorize(_read("german_credit")),
        _GERMAN,
        return_X_y=return_X_y,
        as_frame=as_frame,
        return_sensitive=return_sensitive,
        drop_sensitive=drop_sensitive,
    )


# Heart disease -------------------------------------------------------------------

# Codebook of the nominal columns (UCI heart-disease.names): raw code -> category.
_HEART_CODES = {
    "cp": {1: 1, 2: 2, 3: 3, 4: 4},
    "restecg": {0: 0, 1: 1, 2: 2},
    "slope": {1: 1, 2: 2, 3: 3},
    "thal": {3: "normal", 6: "fixed", 7: "reversible"},
}
# Measurements recorded as 0 when they were not taken (no living patient has them).
_HEART_ZERO_IS_MISSING = ("trestbps", "chol")

_HEART = _Spec(
    name="heart_disease",
    target="target",
    positive=1,
    target_names=("no_disease", "disease"),
    features=(
        "age",
        "cp",
        "trestbps",
        "chol",
        "fbs",
        "restecg",
        "thalach",
        "exang",
        "oldpeak",
        "slope",
        "ca",
        "thal",
    ),
    sensitive_columns=("sex", "site"),
    sensitive={
        "sex": lambda f: f["sex"].map({0: "female", 1: "male"}),
        "site": lambda f: f["site"],
    },
)


@_fill_doc
def load_heart_disease(
    *, return_X_y=False, as_frame=False, return_sensitive=False, drop_sensitive=True
):
    """Load the UCI heart disease data set from four hospitals (920 rows).

    Classify the angiographic diagnosis of coronary artery disease (``target`` 1 =
    disease: ``num`` 1 to 4, more than 50 % narrowing of a major vessel; 55.3 % of
    the rows). The rows come from four hospitals, given by ``site``: Cleveland (303
    rows, 45.9 % positive), Hungary (294, 36.1 %), Switzerland (123, 93.5 %) and VA
    Long Beach (200, 74.5 %), a real shift between groups that suits meta-learning
    with one site per task. The sensitive features are ``sex`` (``"female"`` or
    ``"male"``) and ``site``: pass ``sensitive_features["site"]`` as the tasks and
    ``sensitive_features["sex"]`` as the sensitive feature, or the other way round.
    Neither is in ``data`` unless ``drop_sensitive=False``. Every row of the source
    is kept, duplicates included (see ``DESCR``).

    Missing values are kept, not dropped: outside Cleveland ``ca``, ``thal`` and
    ``slope`` are mostly missing, and a ``chol`` or ``trestbps`` of 0 in the source
    (every Swiss row and 49 VA rows for ``chol``, one VA row for ``trestbps``)
    means "not measured" and is turned into a missing value. The nominal columns
    ``cp``, ``restecg``, ``slope`` and ``thal`` are one-hot encoded, a missing value
    giving zeros in all columns of its block; the numeric columns keep NaN. The
    skmeta estimators, like most scikit-learn ones, reject NaN: put an imputer such
    as ``SimpleImputer(add_indicator=True)`` in front of them (see the Examples).
    Source: Janosi, Steinbrunn, Pfisterer and Detrano (1988), UCI Machine Learning
    Repository, CC BY 4.0.

    Parameters
    ----------
    [parameters]

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        [returns]

    (data, target) : tuple if ``return_X_y`` is True
        With ``return_sensitive=True``, ``(data, target, sensitive_features)``.

    See Also
    --------
    load_german_credit : Statlog German credit data.
    sklearn.impute.SimpleImputer : Fill in the missing values.

    Examples
    --------
    >>> from skmeta.datasets import load_heart_disease
    >>> heart = load_heart_disease()
    >>> heart.data.shape, round(float(heart.target.mean()), 3)
    ((920, 21), 0.553)
    >>> heart.sensitive_features["site"].value_counts().to_dict()
    {'Cleveland': 303, 'Hungary': 294, 'VA Long Beach': 200, 'Switzerland': 123}
    >>> heart.sensitive_features["sex"].value_counts().to_dict()
    {'male': 726, 'female': 194}
    >>> heart.frame.groupby("site", observed=True)["target"].mean().round(3).to_dict()
    {'Cleveland': 0.459, 'Hungary': 0.361, 'Switzerland': 0.935, 'VA Long Beach': 0.745}

    One site per task, ``sex`` as the sensitive feature, and the missing values
    imputed, with an indicator column for each feature that has any:

    >>> import numpy as np
    >>> from sklearn.impute import SimpleImputer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y, sensitive = load_heart_disease(return_X_y=True, return_sensitive=True)
    >>> tasks, sex = sensitive["site"], sensitive["sex"]
    >>> int(np.isnan(X).any(axis=1).sum())  # rows with a missing numeric value
    618
    >>> prep = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler())
    >>> Xt = prep.fit_transform(X)
    >>> Xt.shape, bool(np.isnan(Xt).any())  # 7 numeric columns have missing values
    ((920, 28), False)
    """
    frame = _read("heart_disease")
    for col in _HEART_ZERO_IS_MISSING:
        frame[col] = frame[col].mask(frame[col] == 0)
    for col, codes in _HEART_CODES.items():
        # A value outside the codebook would become missing; the source has none.
        categories = pd.CategoricalDtype(sorted(set(codes.values())))
        frame[col] = frame[col].map(codes).astype(categories)
    return _load(
        _categorize(frame),
        _HEART,
        return_X_y=return_X_y,
        as_frame=as_frame,
        return_sensitive=return_sensitive,
        drop_sensitive=drop_sensitive,
    )
