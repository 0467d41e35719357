"""Validation of the per-row side information: groups, tasks, columns."""

import inspect
import itertools
import numbers

import numpy as np
import pandas as pd


def check_groups(values, n_samples, *, name="sensitive_features", keep_strings=False):
    """Turn per-row group information into one hashable label per row.

    Follows fairlearn's convention for ``sensitive_features``: a 1-D array,
    list or Series gives one group per row; a 2-D array or DataFrame gives
    intersectional groups, one per distinct combination of its columns
    (labels ``"a, b"``; as in fairlearn, a backslash or a comma inside a
    value is escaped with a backslash, so that distinct combinations never
    share a label).

    Parameters
    ----------
    values : array-like of shape (n_samples,) or (n_samples, n_columns) or None
        The group information. ``None`` is returned unchanged.

    n_samples : int
        Number of rows of ``X``; ``values`` must have as many.

    name : str, default="sensitive_features"
        Name of the argument, used in error messages.

    keep_strings : bool, default=False
        Return a 1-D numpy string array as a numpy ``str`` array rather than
        an object array (prediction looks such labels up without a Python
        object per row).

    Returns
    -------
    labels : ndarray of shape (n_samples,) or None
        One label per row. Numbers and strings are kept as they are;
        intersectional groups and mixed objects become strings.

    Examples
    --------
    >>> from skmeta.utils import check_groups
    >>> check_groups([["a", "x"], ["b", "x"]], 2)
    array(['a, x', 'b, x'], dtype=object)
    """
    if values is None:
        return None
    if isinstance(values, pd.DataFrame | pd.Series):
        if values.isna().to_numpy().any():
            raise ValueError(
                f"{name} contains missing values; every row needs a group."
            )
        values = values.to_numpy(dtype=object)
    else:
        values = np.asarray(values)
    if values.ndim == 0 or values.ndim > 2:
        raise ValueError(
            f"{name} must be 1-D or 2-D (one column per sensitive feature), "
            f"got an array with {values.ndim} dimensions."
        )
    if values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} rows but X has {n_samples}; "
            "they must have the same length."
        )
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    # Arrays of one numeric or string type: no Python loop over the rows.
    if values.ndim == 1 and values.dtype.kind in "biu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise ValueError(
                f"{name} contains missing values; every row needs a group."
            )
        if values.ndim == 1:
            return values.astype(np.float64)
    if values.ndim == 1 and values.dtype.kind in "US":
        values = values.astype(str)
        return values if keep_strings else values.astype(object)
    values = values.astype(object)
    if pd.isna(values).any():
        raise ValueError(f"{name} contains missing values; every row needs a group.")
    if values.ndim == 2:
        return np.array([_join(row) for row in values], dtype=object)
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("integer", "boolean"):
        return values.astype(np.int64)
    if kind in ("floating", "mixed-integer-float", "decimal"):
        return values.astype(np.float64)
    if kind == "string":
        return values
    return np.array([str(v) for v in values], dtype=object)


def _join(row):
    """One label for a combination of values: escaped, joined by ``", "``."""
    return ", ".join(
        str(value).replace("\\", "\\\\").replace(",", "\\,") for value in row
    )


def label_map(labels, start=0, mapping=None):
    """``{label: position}`` for ``labels``, positions from ``start``, added
    to a copy of ``mapping``."""
    mapping = {} if mapping is None else dict(mapping)
    for position, label in enumerate(labels, start=start):
        mapping[label] = position
    return mapping


# Multiplier of the polynomial hash of fixed-width strings (a prime).
_STRING_HASH_MULTIPLIER = 1_000_003


def _string_hashes(labels, multiplier=None):
    """A uint64 hash of each string of a 1-D numpy string array.

    The UCS-4 code points are weighted by powers of ``multiplier`` from the
    first character on (wrapping arithmetic), so the NULs that pad a string
    to its array's width add nothing: a string hashes alike in arrays of any
    width.
    """
    if multiplier is None:
        multiplier = _STRING_HASH_MULTIPLIER
    points = np.ascontiguousarray(labels).view(np.uint32).reshape(len(labels), -1)
    hashes = np.zeros(len(labels), dtype=np.uint64)
    power = np.ones(1, dtype=np.uint64)
    for column in points.T:
        hashes += column * power
        power *= np.uint64(multiplier)
    return hashes


def _factorize_string_hashes(labels, multiplier=None):
    """``(codes, uniques, unique_hashes)`` of a 1-D numpy string array,
    ``uniques`` a numpy array; ``unique_hashes`` is None where two different
    strings share a hash (the codes are then those of the Python strings)."""
    labels = np.ascontiguousarray(labels)
    codes, unique_hashes = pd.factorize(_string_hashes(labels, multiplier))
    # One row of each code stands for it (which one does not matter: a code
    # holding two different strings fails the check below either way).
    member = np.empty(len(unique_hashes), dtype=np.int64)
    member[codes] = np.arange(len(labels))
    uniques = labels[member]
    if not np.array_equal(uniques[codes], labels):
        codes, uniques = pd.factorize(labels.astype(object))
        return codes, np.asarray(uniques), None
    return codes, uniques, unique_hashes


def _factorize_strings(labels, multiplier=None):
    """``pd.factorize`` of a 1-D numpy string array, without Python objects.

    Each string's UCS-4 code points are hashed to one uint64
    (:func:`_string_hashes`), and the hashes are factorised. Codes are
    exact: every row is compared with a row of its code, and on any
    collision the labels are factorised as Python strings instead.

    Returns
    -------
    codes : ndarray of shape (n_samples,), dtype=int64
    uniques : list of str
    """
    codes, uniques, _ = _factorize_string_hashes(labels, multiplier)
    # Python strings: they hash faster than numpy's str_ scalars.
    return codes, uniques.tolist()


def string_index(labels, start=0, index=None):
    """A hash index of the string labels ``labels`` (positions from
    ``start``), added to a copy of ``index``: ``(hashes, positions,
    labels)``, the hashes sorted; None where labels are not strings (a numpy
    string array, or an object array of Python strings) or two of them share
    a hash (lookups then use the label map).

    Adding labels to an index costs a copy of its arrays (no hashing of the
    labels already in it).
    """
    labels = np.asarray(labels)
    if labels.ndim == 1 and labels.dtype == object and len(labels):
        # Python strings (as fitted models keep them), and nothing else.
        if not all(type(label) is str for label in labels):
            return None
        labels = labels.astype(str)
    if labels.ndim != 1 or labels.dtype.kind != "U":
        return None
    if index is None and start:
        return None
    hashes = _string_hashes(labels)
    positions = np.arange(start, start + len(labels), dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    hashes, positions = hashes[order], positions[order]
    known = labels
    if index is not None:  # merged into the sorted arrays of ``index``
        known = np.concatenate([index[2], labels])
        where = np.searchsorted(index[0], hashes)
        hashes = np.insert(index[0], where, hashes)
        positions = np.insert(index[1], where, positions)
    if (hashes[1:] == hashes[:-1]).any():
        return None
    return hashes, positions, known


def lookup_labels(mapping, labels, index=None):
    """Positions of ``labels`` in ``mapping`` (``-1``: unknown).

    The labels are factorised first (in C), so the Python work is one lookup
    per distinct label, whatever the number of rows. Numpy string and
    integer arrays are factorised without a Python object per row; numpy
    strings are looked up in ``index`` (:func:`string_index` of the same
    labels as ``mapping``) where given, without a Python object per
    distinct label either.
    """
    labels = np.asarray(labels)
    if len(labels) == 0 or not mapping:
        return np.full(len(labels), -1, dtype=np.int64)
    if labels.ndim == 1 and labels.dtype.kind == "U":
        codes, uniques, hashes = _factorize_string_hashes(labels)
        if index is not None and hashes is not None:
            positions = _lookup_hashes(index, uniques, hashes)
            if positions is not None:
                return positions[codes]
        uniques = uniques.tolist()
    elif labels.ndim == 1 and labels.dtype.kind in "iu":
        codes, uniques = pd.factorize(labels)
        uniques = uniques.tolist()
    else:
        labels = labels.astype(object, copy=False)
        codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    # map() with dict.get runs the lookups without a Python-level loop.
    positions = np.fromiter(
        map(mapping.get, uniques, itertools.repeat(-1)),
        dtype=np.int64,
        count=len(uniques),
    )
    out = positions[codes]
    out[codes < 0] = -1
    return out


def _lookup_hashes(index, uniques, hashes):
    """Positions of the distinct labels ``uniques`` (their ``hashes``) in
    the :func:`string_index` ``index``, -1 for unknown ones; None where a
    hash matches a different label (the caller uses the label map)."""
    known_hashes, known_positions, known = index
    at = np.searchsorted(known_hashes, hashes).clip(max=len(known_hashes) - 1)
    hit = known_hashes[at] == hashes
    positions = known_positions[at]
    same = hit & (known[positions] == uniques)
    if (hit & ~same).any():
        return None
    return np.where(same, positions, -1)


def encode_groups(labels, known):
    """Map group labels to their position in ``known``, ``-1`` when unknown.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Labels as returned by :func:`check_groups`.

    known : ndarray of shape (n_known,)
        The labels with a position.

    Returns
    -------
    codes : ndarray of shape (n_samples,), dtype=int64

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.utils import encode_groups
    >>> encode_groups(np.array(["b", "z", "a"], dtype=object), np.array(["a", "b"]))
    array([ 1, -1,  0])
    """
    return lookup_labels(label_map(np.asarray(known, dtype=object)), labels)


def split_sensitive_columns(X, columns):
    """Take the sensitive columns out of ``X``.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        The full input, sensitive columns included.

    columns : str, int or list of str or int
        Column names (DataFrame only) or positions.

    Returns
    -------
    X_model : ndarray or DataFrame
        ``X`` without the sensitive columns.

    sensitive : ndarray of shape (n_samples, n_columns), dtype=object
        The sensitive columns.
    """
    if isinstance(columns, str | numbers.Integral):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise ValueError("sensitive_columns must name at least one column of X.")
    if isinstance(X, pd.DataFrame):
        names = list(X.columns)
        positions = []
        for col in columns:
            if isinstance(col, numbers.Integral) and not isinstance(col, bool):
                if not -len(names) <= col < len(names):
                    raise ValueError(
                        f"sensitive_columns entry {col} is not a column of X, "
                        f"which has {len(names)} columns."
                    )
                positions.append(col % len(names))
            elif col in names:
                positions.append(names.index(col))
            else:
                raise ValueError(
                    f"sensitive_columns entry {col!r} is not a column of X; "
                    f"the columns are {names}."
                )
        sensitive = X.iloc[:, positions].to_numpy(dtype=object)
        return X.drop(columns=[names[p] for p in positions]), sensitive
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    if getattr(X, "ndim", 2) != 2:
        raise ValueError(
            f"Expected a 2D X with sensitive_columns, got X of shape {X.shape}."
        )
    n_columns = X.shape[1]
    positions = []
    for col in columns:
        if not isinstance(col, numbers.Integral) or isinstance(col, bool):
            raise ValueError(
                f"sensitive_columns entry {col!r} is a name, but X is not a pandas "
                "DataFrame; pass column positions (integers) instead."
            )
        if not -n_columns <= col < n_columns:
            raise ValueError(
                f"sensitive_columns entry {col} is not a column of X, which has "
                f"{n_columns} columns."
            )
        positions.append(col % n_columns)
    keep = np.setdiff1d(np.arange(n_columns), positions)
    X = np.asarray(X)
    return X[:, keep], np.asarray(X[:, positions], dtype=object)


def accepts(obj, name, *, explicitly=False, unknown=False):
    """Whether ``obj(...)`` takes a keyword argument ``name``.

    Parameters
    ----------
    obj : callable or class
    name : str
    explicitly : bool, default=False
        If True, ``name`` must be in the signature; ``**kwargs`` is not enough.
    unknown : bool, default=False
        The answer when ``obj`` has no signature to read.
    """
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return unknown
    if name in params:
        return True
    return not explicitly and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
