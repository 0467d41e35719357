"""Validation and encoding of what users pass: X, y, groups, tasks, weights.

Every public method of the estimators turns its arguments into a
:class:`MetaInput` here, before any training or prediction starts, so that
bad input fails with a message that names the argument, and the arrays the
user passed are never modified (they are copied).
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_array, check_X_y, validate_data

from ._compat import _check_partial_fit_first_call, _check_sample_weight
from .utils._validation import (
    check_groups,
    encode_groups,
    label_map,
    lookup_labels,
    split_sensitive_columns,
    string_index,
)

__all__ = [
    "ConstantPredictorWarning",
    "MetaInput",
    "UnknownGroupWarning",
    "check_unknown",
    "dense",
    "validate_fit_input",
    "validate_predict_input",
]


@dataclass
class MetaInput:
    """Validated rows, encoded for the networks.

    Attributes
    ----------
    X : ndarray or scipy CSR matrix of shape (n_samples, n_features_model)
        Model input (without the sensitive columns), float32. Sparse input
        stays sparse; it is densified a batch of rows at a time.
    task : ndarray of shape (n_samples,), dtype=int64
        Position of each row's task in ``tasks_``; ``-1`` for none.
    group : ndarray of shape (n_samples,), dtype=int64
        Position of each row's sensitive group in ``groups_``; ``-1`` for none.
    weight : ndarray of shape (n_samples,), dtype=float32
        Row weights (ones when none were given).
    y : ndarray of shape (n_samples,), dtype=int64, or None
        Classes encoded as positions in ``classes_``; None at prediction.
    """

    X: np.ndarray
    task: np.ndarray
    group: np.ndarray
    weight: np.ndarray
    y: np.ndarray | None = None

    def as_dict(self):
        """The arrays a skorch ``Dataset`` carries as ``X`` (``y`` apart)."""
        return {
            "X": self.X,
            "task": self.task,
            "group": self.group,
            "weight": self.weight,
        }


def _validate_X(estimator, X, sensitive_features, *, y=None, reset, fitting):
    """Float32 model input, targets and the raw sensitive groups."""
    columns = estimator.sensitive_columns
    if columns is None:
        if fitting:
            X, y = validate_data(
                estimator,
                X,
                y,
                accept_sparse="csr",
                dtype=np.float32,
                copy=True,
                reset=reset,
            )
        else:
            X = validate_data(
                estimator,
                X,
                accept_sparse="csr",
                dtype=np.float32,
                copy=True,
                reset=reset,
            )
        return X, y, sensitive_features
    if sensitive_features is not None:
        raise ValueError(
            "Pass either sensitive_features or sensitive_columns, not both: "
            "sensitive_columns already names the columns of X that hold the "
            "sensitive features."
        )
    if not hasattr(X, "shape") and not hasattr(X, "iloc"):
        X = np.asarray(X, dtype=object)
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    X_model, sensitive = split_sensitive_columns(X, columns)
    if fitting:
        X_model, y = check_X_y(
            X_model, y, accept_sparse="csr", dtype=np.float32, copy=True
        )
    else:
        X_model = check_array(
            X_model, accept_sparse="csr", dtype=np.float32, copy=True, input_name="X"
        )
    return X_model, y, sensitive


def _sensitive_name(estimator):
    return (
        "sensitive_features"
        if estimator.sensitive_columns is None
        else "sensitive_columns"
    )


def _group_columns(values):
    """``(n_columns, names)`` of per-row group information as the user passed
    it: a 1-D array or Series has one column; ``names`` are a DataFrame's
    column labels or a Series' name, None where there are none."""
    if values is None:
        return None
    if isinstance(values, pd.DataFrame):
        return values.shape[1], tuple(values.columns.tolist())
    if isinstance(values, pd.Series):
        return 1, None if values.name is None else (values.name,)
    shape = getattr(values, "shape", None)
    if shape is None and isinstance(values, list | tuple):
        # The first row tells (np.shape would convert the whole list).
        first = values[0] if len(values) else None
        if isinstance(first, list | tuple | np.ndarray):
            return len(first), None
        return 1, None
    if shape is None:
        try:
            shape = np.shape(values)
        except ValueError:  # ragged: check_groups says what is wrong
            return None
    return (shape[1] if len(shape) == 2 else 1), None


def _groups_columns(estimator, sensitive, tasks):
    """:func:`_group_columns` of ``sensitive_features`` (None where they come
    from ``sensitive_columns``, columns of ``X`` that scikit-learn checks) and
    of ``tasks``, by argument name."""
    return {
        "sensitive_features": None
        if estimator.sensitive_columns is not None
        else _group_columns(sensitive),
        "tasks": _group_columns(tasks),
    }


def _check_group_columns(estimator, columns):
    """Group information at prediction (or a later ``partial_fit``) has the
    columns of fit's (``columns`` from :func:`_groups_columns`): as many, and
    the same names in the same order where both have names (a DataFrame's
    columns are matched in order, as scikit-learn does for ``X``; reordered
    or other columns would make every group unknown)."""
    fitted_columns = estimator.__dict__.get("_group_columns_", {})
    for name, described in columns.items():
        _check_columns_of(estimator, name, fitted_columns.get(name), described)


def _check_columns_of(estimator, name, fitted, columns):
    if fitted is None or columns is None:
        return
    (n_fit, names_fit), (n, names) = fitted, columns
    described = f"{n_fit} column(s)" + (
        f" {list(names_fit)!r}" if names_fit is not None else ""
    )
    if n != n_fit:
        raise ValueError(
            f"{name} has {n} column(s), but {type(estimator).__name__} was "
            f"fitted with {described}: a group is the combination of the same "
            f"columns as in fit."
        )
    if names_fit is not None and names is not None and names != names_fit:
        raise ValueError(
            f"{name} has the columns {list(names)!r}, but "
            f"{type(estimator).__name__} was fitted with {list(names_fit)!r}: "
            "pass the same columns, in the same order."
        )


def _task_labels(task_source, sensitive, tasks):
    """The labels that define each row's task, given where tasks come from."""
    if task_source == "tasks":
        return tasks
    if task_source == "sensitive_features":
        return sensitive
    return tasks if tasks is not None else sensitive


def validate_fit_input(
    estimator, X, y, sensitive_features, tasks, sample_weight, *, classes, reset
):
    """Validate and encode the arguments of ``fit`` or ``partial_fit``.

    With ``reset=True`` (``fit``, first ``partial_fit``) this sets the
    vocabulary of ``estimator``: ``classes_``, ``n_features_in_`` (and
    ``feature_names_in_``), ``n_features_model_``, ``task_source_``,
    ``tasks_`` and ``groups_``. Otherwise tasks never seen become known
    (appended to ``tasks_``).

    Returns
    -------
    data : MetaInput
    """
    name = type(estimator).__name__
    X, y, sensitive = _validate_X(
        estimator, X, sensitive_features, y=y, reset=reset, fitting=True
    )
    n_samples = X.shape[0]
    check_classification_targets(y)
    columns = _groups_columns(estimator, sensitive, tasks)
    if not reset:
        _check_group_columns(estimator, columns)
    sensitive = check_groups(sensitive, n_samples, name=_sensitive_name(estimator))
    tasks = check_groups(tasks, n_samples, name="tasks")
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True, copy=True
        )
        if not np.isfinite(sample_weight).all():
            raise ValueError("sample_weight must be finite.")
        total = sample_weight.sum()
        if total <= 0:
            raise ValueError(
                "sample_weight sums to 0: no row would count. Give at least one "
                "row a positive weight."
            )
        # Weights are relative: rescaled to sum to the number of rows that
        # count, so that the rules counting rows see effective row counts.
        sample_weight = sample_weight * (np.count_nonzero(sample_weight) / total)
        sample_weight = sample_weight.astype(np.float32)
    else:
        sample_weight = np.ones(n_samples, dtype=np.float32)

    if reset:
        if (
            estimator.constraints is not None
            and estimator.fairness_weight > 0
            and sensitive is None
        ):
            raise ValueError(
                f"constraints={estimator.constraints!r} with fairness_weight > 0 "
                "needs the groups: pass sensitive_features to fit, or set "
                "sensitive_columns."
            )
        if n_samples < 2:
            raise ValueError(
                f"{name} needs at least 2 samples to form a support and a query "
                f"set; got n_samples = {n_samples}."
            )
        estimator.classes_ = unique_labels(y if classes is None else classes)
        if len(estimator.classes_) < 2:
            raise ValueError(
                f"{name} needs samples of at least 2 classes; got only class "
                f"{estimator.classes_[0]!r}."
            )
        estimator.n_features_model_ = X.shape[1]
        estimator._group_columns_ = columns
        if tasks is not None:
            estimator.task_source_ = "tasks"
        elif sensitive is not None:
            estimator.task_source_ = "sensitive_features"
        else:
            estimator.task_source_ = "pooled"
        labels = _task_labels(estimator.task_source_, sensitive, tasks)
        estimator.tasks_ = (
            np.unique(labels) if labels is not None else np.array([], dtype=object)
        )
        _set_task_index(estimator)
        estimator.groups_ = (
            np.unique(sensitive)
            if sensitive is not None
            else np.array([], dtype=object)
        )
        estimator._groups_index_ = (
            estimator.groups_,
            label_map(estimator.groups_),
            None,
        )
    elif classes is not None:
        _check_partial_fit_first_call(estimator, classes)  # raises if they differ
    unseen = np.setdiff1d(np.unique(y), estimator.classes_)
    if unseen.size:
        raise ValueError(
            f"y contains classes {unseen!r} that are not in classes_="
            f"{estimator.classes_!r}; pass all classes with `classes` on the first "
            "call to partial_fit."
        )
    y_enc = np.searchsorted(estimator.classes_, y).astype(np.int64)

    labels = _task_labels(estimator.task_source_, sensitive, tasks)
    if labels is None:
        task_codes = np.full(n_samples, -1, dtype=np.int64)
    else:
        task_codes = _encode_tasks(estimator, labels)
        if (task_codes < 0).any():  # unseen tasks become known (partial_fit)
            new = pd_unique(labels[task_codes < 0])
            previous = estimator.tasks_
            estimator.tasks_ = np.concatenate([previous, new])
            _set_task_index(estimator, previous)
            task_codes = _encode_tasks(estimator, labels)
    group_codes = (
        _encode_known(estimator, "_groups_index_", estimator.groups_, sensitive)
        if sensitive is not None
        else np.full(n_samples, -1, dtype=np.int64)
    )
    return MetaInput(
        X=X, task=task_codes, group=group_codes, weight=sample_weight, y=y_enc
    )


def _set_task_index(estimator, previous=None):
    """Cache a hash map of ``tasks_`` (and of ``groups_``), and for numpy
    string labels a sorted hash index (:func:`string_index`), which looks up
    many distinct labels without a Python object each.

    When tasks are appended to ``previous`` (``partial_fit``), the map and
    index grow from the cached ones: only the new labels are hashed, so
    adding a group costs about the same with 10 or 10,000 groups known. They
    are copied, never changed in place, so a shallow copy of the estimator
    keeps its own.
    """
    tasks = estimator.tasks_
    cached = estimator.__dict__.get("_tasks_index_")
    if previous is not None and cached is not None and cached[0] is previous:
        new = tasks[len(previous) :]
        mapping = label_map(new, len(previous), cached[1])
        index = (
            None if cached[2] is None else string_index(new, len(previous), cached[2])
        )
    else:
        mapping, index = label_map(tasks), string_index(tasks)
    estimator._tasks_index_ = (tasks, mapping, index)


def _encode_known(estimator, cache, known, labels):
    """Positions of ``labels`` in ``known`` (``-1``: unknown), through the
    map cached in ``estimator.<cache>`` when it is current.

    Prediction only reads the cache (it never changes the fitted model).
    """
    cached = estimator.__dict__.get(cache)
    if cached is None or cached[0] is not known:
        return encode_groups(labels, known)
    return lookup_labels(cached[1], labels, cached[2])


def _encode_tasks(estimator, labels):
    """Positions of ``labels`` in ``tasks_`` (``-1``: unknown), with the cache."""
    return _encode_known(estimator, "_tasks_index_", estimator.tasks_, labels)


def validate_predict_input(estimator, X, sensitive_features, tasks):
    """Validate and encode the arguments of the prediction methods.

    Rows whose group (or task) was never seen follow the estimator's
    ``unknown_groups`` policy (see :func:`check_unknown`).

    Returns
    -------
    data : MetaInput
        ``group`` is all ``-1`` and ``weight`` all ones: prediction uses
        neither.
    """
    X, _, sensitive = _validate_X(
        estimator, X, sensitive_features, reset=False, fitting=False
    )
    n_samples = X.shape[0]
    _check_group_columns(estimator, _groups_columns(estimator, sensitive, tasks))
    sensitive = check_groups(
        sensitive, n_samples, name=_sensitive_name(estimator), keep_strings=True
    )
    tasks = check_groups(tasks, n_samples, name="tasks", keep_strings=True)
    labels = _task_labels(estimator.task_source_, sensitive, tasks)
    if labels is None or len(estimator.tasks_) == 0:
        # No groups given, or a model that knows none: the pooled model.
        codes = np.full(n_samples, -1, dtype=np.int64)
    else:
        codes = _encode_tasks(estimator, labels)
        check_unknown(estimator, labels, codes)
    return MetaInput(
        X=X,
        task=codes,
        group=np.full(n_samples, -1, dtype=np.int64),
        weight=np.ones(n_samples, dtype=np.float32),
    )


class UnknownGroupWarning(UserWarning):
    """Rows of groups (or tasks) never seen were predicted by the pooled model."""


class ConstantPredictorWarning(UserWarning):
    """A fitted model predicts one class for almost every training row."""


def check_unknown(estimator, labels, codes):
    """Apply ``unknown_groups`` to the rows whose label is not in ``tasks_``."""
    unknown = codes < 0
    if not unknown.any():
        return
    policy = estimator.unknown_groups
    names = pd_unique(labels[unknown])
    shown = ", ".join(repr(_python(v)) for v in names[:10]) + (
        f" and {len(names) - 10} more" if len(names) > 10 else ""
    )
    what = "tasks" if estimator.task_source_ == "tasks" else "sensitive groups"
    message = (
        f"{int(unknown.sum())} of {len(codes)} rows belong to {what} never seen "
        f"in fit or partial_fit: {shown}."
    )
    if unknown.all():
        message += " No row's label is known."
        known, label = _python(estimator.tasks_[0]), _python(labels[0])
        if type(known) is not type(label):
            message += (
                f" The labels seen are like {known!r} ({type(known).__name__}); "
                f"these are like {label!r} ({type(label).__name__})."
            )
    if policy == "error":
        raise ValueError(
            message + " Adapt to them first with partial_fit, or set "
            "unknown_groups='warn' or 'pooled' to predict them with the model "
            "adapted to the pooled data."
        )
    if policy == "warn" or unknown.all():
        warnings.warn(
            message + " They are predicted with the model adapted to the pooled "
            "data (unknown_groups='pooled' silences this warning unless no row "
            "is known; partial_fit adapts to a new group).",
            UnknownGroupWarning,
            stacklevel=4,
        )


def _python(value):
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def pd_unique(values):
    """Unique values in order of appearance."""
    _, first = np.unique(values.astype(str), return_index=True)
    return values[np.sort(first)]


def dense(X):
    """``X`` as a dense float32 array (a sparse matrix is densified)."""
    return X.toarray() if sp.issparse(X) else X
