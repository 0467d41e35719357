"""Scorers for fairness metrics that request ``sensitive_features``.

scikit-learn's scorers call ``estimator.predict(X)`` with ``X`` alone, and
sklearn routes metadata only to the estimator's ``fit`` and to the scorer.
The scorers here are objects that receive ``sensitive_features`` through
metadata routing (they request it by default) and hand it on to the
estimator's ``predict`` when that method accepts it, so that group-aware
estimators (skmeta's meta-learners, fairlearn's ``ThresholdOptimizer``) are
scored on the predictions they make for each group. The metric itself is
always fairlearn's (or any function with the fairlearn signature
``metric(y_true, y_pred, *, sensitive_features, ...)``).

Sign convention: every scorer follows scikit-learn's "greater is better".
Metrics where lower is better (differences between groups) are negated, and
the scorer's name says so with a ``neg_`` prefix, as in sklearn's
``neg_log_loss``.
"""

import numbers

import numpy as np
from fairlearn.metrics import (
    accuracy_score_group_min,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import UNUSED, get_routing_for_object

from .._compat import BaseSearchCV, _MetadataRequester, _routing_enabled
from ..utils._validation import accepts

__all__ = [
    "FAIRNESS_SCORERS",
    "demographic_parity_ratio_scorer",
    "group_aware_accuracy_scorer",
    "make_accuracy_disparity_scorer",
    "make_fairness_scorer",
    "neg_demographic_parity_difference_scorer",
    "neg_equal_opportunity_difference_scorer",
    "neg_equalized_odds_difference_scorer",
    "worst_group_accuracy_scorer",
]

_RESPONSE_METHODS = ("predict", "predict_proba", "decision_function")

_DISPARITIES = {
    "demographic_parity_difference": demographic_parity_difference,
    "equalized_odds_difference": equalized_odds_difference,
    "equal_opportunity_difference": equal_opportunity_difference,
}

_ROUTING_HELP = (
    "Enable metadata routing with `sklearn.set_config(enable_metadata_routing=True)` "
    "or `with sklearn.config_context(enable_metadata_routing=True): ...`, pass "
    "`sensitive_features=` to the search's fit (or `params={'sensitive_features': "
    "...}` to cross_validate), and make the estimator's fit request it, e.g. "
    "`estimator.set_fit_request(sensitive_features=True)` (inside the routing "
    "context)."
)


def _final_estimator(estimator):
    """The estimator that makes the predictions of ``estimator``."""
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _request_value(estimator, method):
    """Request value of ``estimator.method`` for ``sensitive_features``."""
    try:
        requests = getattr(get_routing_for_object(estimator), method).requests
    except AttributeError:  # a router, or an object without routing
        return None
    return requests.get("sensitive_features")


def _group_kwargs(estimator, method, sensitive_features):
    """Keyword arguments that pass the groups to ``estimator.method``.

    Empty when the estimator predicts from ``X`` alone: its predict method
    does not take ``sensitive_features``, or (skmeta) it reads the groups from
    columns of ``X`` (``sensitive_columns``), or, under routing, the estimator
    (the final step of a pipeline) explicitly does not request them for
    ``method``.
    """
    final = _final_estimator(estimator)
    if getattr(final, "sensitive_columns", None) is not None:
        return {}
    if not accepts(getattr(final, method), "sensitive_features", explicitly=True):
        return {}
    if _routing_enabled():
        # An explicit "not requested" is honoured. A pipeline routes what its
        # final step requested: an alias is the name it expects, and an unset
        # request is passed on so that sklearn explains which request to set.
        request = _request_value(final, method)
        if request is False:
            return {}
        if final is not estimator and isinstance(request, str):
            return {request: sensitive_features}
    # Routing off, ``Pipeline.predict(X, **params)`` passes every param to the
    # final step.
    return {"sensitive_features": sensitive_features}


def worst_group_accuracy(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """Accuracy of the group on which the predictions are least accurate.

    fairlearn's ``accuracy_score_group_min``: the smallest per-group
    accuracy.
    """
    return float(
        accuracy_score_group_min(
            y_true,
            y_pred,
            sensitive_features=sensitive_features,
            sample_weight=sample_weight,
        )
    )


def _accuracy_minus_disparity(
    y_true,
    y_pred,
    *,
    sensitive_features,
    fairness_weight,
    disparity,
    sample_weight=None,
):
    """Accuracy minus ``fairness_weight`` times a fairlearn disparity."""
    metric = _DISPARITIES.get(disparity, disparity)
    gap = metric(
        y_true,
        y_pred,
        sensitive_features=sensitive_features,
        **({} if sample_weight is None else {"sample_weight": sample_weight}),
    )
    accuracy = accuracy_score(y_true, y_pred, sample_weight=sample_weight)
    return float(accuracy - fairness_weight * gap)


def _name(func):
    return getattr(func, "__name__", None) or repr(func)


class _FairnessScorer(_MetadataRequester):
    """Scorer that takes ``sensitive_features`` and passes it to predict.

    Made by :func:`make_fairness_scorer`; see there.
    """

    # Requested by default: users need no `set_score_request` (which raises
    # when routing is off). `estimator` and `y_true` are positional arguments,
    # not metadata; `sample_weight` keeps sklearn's default (unset) request.
    __metadata_request__score = {
        "sensitive_features": True,
        "estimator": UNUSED,
        "y_true": UNUSED,
    }

    def __init__(self, metric, *, sign=1, response_method="predict", kwargs=None):
        self._metric = metric
        self._sign = sign
        self._response_method = response_method
        self._kwargs = {} if kwargs is None else dict(kwargs)

    def _response(self, estimator, X, sensitive_features):
        if isinstance(estimator, BaseSearchCV) and hasattr(
            estimator, "best_estimator_"
        ):
            # A fitted search predicts with best_estimator_, whose predict
            # may take the groups when the search's own predict does not.
            estimator = estimator.best_estimator_
        method = self._response_method
        kwargs = _group_kwargs(estimator, method, sensitive_features)
        y_pred = getattr(estimator, method)(X, **kwargs)
        if method != "predict":
            y_pred = np.asarray(y_pred)
            if y_pred.ndim == 2 and y_pred.shape[1] == 2:
                y_pred = y_pred[:, 1]  # score of classes_[1]
        return y_pred

    def score(
        self, estimator, X, y_true, *, sensitive_features=None, sample_weight=None
    ):
        """Score ``estimator`` on ``X``, with the groups of the rows.

        Parameters
        ----------
        estimator : object
            Fitted estimator. Its ``predict`` (or ``response_method``) gets
            ``sensitive_features`` when it accepts them.

        X : array-like of shape (n_samples, n_features)
            Test data.

        y_true : array-like of shape (n_samples,)
            True labels.

        sensitive_features : array-like of shape (n_samples,) or \
                (n_samples, n_sensitive)
            Sensitive group of each row. Required; routed to the scorer by
            scikit-learn when metadata routing is enabled.

        sample_weight : array-like of shape (n_samples,), default=None
            Passed to the metric. Under routing, request it with
            ``set_score_request(sample_weight=True)``.

        Returns
        -------
        score : float
            The metric, negated for metrics where lower is better.
        """
        if sensitive_features is None:
            if not _routing_enabled():
                raise ValueError(
                    "Enable metadata routing: scikit-learn passes "
                    f"sensitive_features to scorers only through it, and {self!r} "
                    "got none. " + _ROUTING_HELP
                )
            raise ValueError(
                f"{self!r} needs sensitive_features, and got none: pass "
                "sensitive_features= to the search's fit (or params= to "
                "cross_validate)."
            )
        y_pred = self._response(estimator, X, sensitive_features)
        kwargs = dict(self._kwargs)
        if accepts(self._metric, "sensitive_features", unknown=True):
            kwargs["sensitive_features"] = sensitive_features
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return self._sign * float(self._metric(y_true, y_pred, **kwargs))

    def __call__(
        self, estimator, X, y_true, *, sensitive_features=None, sample_weight=None
    ):
        """Same as :meth:`score`; scikit-learn calls scorers this way."""
        return self.score(
            estimator,
            X,
            y_true,
            sensitive_features=sensitive_features,
            sample_weight=sample_weight,
        )

    def _accept_sample_weight(self):
        # Read by sklearn's multi-metric scorer when routing is off.
        return accepts(self._metric, "sample_weight", unknown=True)

    def __repr__(self):
        args = [_name(self._metric)]
        if self._sign < 0:
            args.append("greater_is_better=False")
        if self._response_method != "predict":
            args.append(f"response_method={self._response_method!r}")
        args += [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"make_fairness_scorer({', '.join(args)})"


class _AccuracyDisparityScorer(_FairnessScorer):
    """Accuracy minus a weighted disparity; see make_accuracy_disparity_scorer."""

    def __init__(self, fairness_weight, disparity):
        super().__init__(
            _accuracy_minus_disparity,
            kwargs={"fairness_weight": fairness_weight, "disparity": disparity},
        )

    def __repr__(self):
        disparity = self._kwargs["disparity"]
        if not isinstance(disparity, str):
            disparity = _name(disparity)
        return (
            "make_accuracy_disparity_scorer("
            f"fairness_weight={self._kwargs['fairness_weight']!r}, "
            f"disparity={disparity!r})"
        )


def make_fairness_scorer(
    metric, *, greater_is_better=True, response_method="predict", **kwargs
):
    """Make a scorer from a fairlearn-style metric, passing groups to predict.

    The scorer receives ``sensitive_features`` through scikit-learn's
    metadata routing; it requests them by default, so no
    ``set_score_request`` is needed. It predicts with
    ``estimator.predict(X, sensitive_features=...)`` when the estimator's
    ``predict`` takes ``sensitive_features`` (skmeta's classifiers,
    fairlearn's ``ThresholdOptimizer``; for a :class:`~sklearn.pipeline.Pipeline`,
    its final step), with ``estimator.predict(X)`` otherwise, then returns
    ``sign * metric(y_true, y_pred, sensitive_features=..., **kwargs)``.

    Metadata routing must be enabled (``sklearn.set_config(
    enable_metadata_routing=True)`` or ``sklearn.config_context``); the
    scorer raises a :class:`ValueError` when called without
    ``sensitive_features``. For a skmeta estimator in a
    :class:`~sklearn.pipeline.Pipeline` under routing, request the groups at
    predict time too: ``set_predict_request(sensitive_features=True)``.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred, *, sensitive_features, **kwargs)``, such as
        any of ``fairlearn.metrics``. A metric that does not take
        ``sensitive_features`` (e.g. :func:`sklearn.metrics.accuracy_score`)
        is called without them: the scorer then scores the group-aware
        predictions with an ordinary metric.

    greater_is_better : bool, default=True
        Whether high values of ``metric`` are good. If ``False`` the scorer
        returns the negated metric, as scikit-learn's ``neg_*`` scorers do;
        name such scorers with ``neg_``.

    response_method : {"predict", "predict_proba", "decision_function"}, \
            default="predict"
        Method of the estimator whose output is passed to ``metric`` as
        ``y_pred``. For binary problems, the column of ``classes_[1]`` of
        ``predict_proba`` is used.

    **kwargs : dict
        Further keyword arguments of ``metric``, e.g. ``method="to_overall"``.

    Returns
    -------
    scorer : callable
        Object with signature ``scorer(estimator, X, y_true, *,
        sensitive_features, sample_weight=None)``; also available as
        ``scorer.score``. It has ``set_score_request`` and
        ``get_metadata_routing``.

    See Also
    --------
    FAIRNESS_SCORERS : Ready-made scorers.
    make_accuracy_disparity_scorer : Accuracy penalised by a disparity.

    Examples
    --------
    >>> import numpy as np
    >>> from fairlearn.metrics import equalized_odds_difference
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmeta.metrics import make_fairness_scorer
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> groups = np.array(["a", "b", "a", "b"])
    >>> clf = LogisticRegression().fit(X, y)
    >>> scorer = make_fairness_scorer(
    ...     equalized_odds_difference, greater_is_better=False
    ... )
    >>> scorer
    make_fairness_scorer(equalized_odds_difference, greater_is_better=False)
    >>> scorer(clf, X, y, sensitive_features=groups)
    -0.0
    """
    if response_method not in _RESPONSE_METHODS:
        raise ValueError(
            f"response_method must be one of {_RESPONSE_METHODS}, got "
            f"{response_method!r}."
        )
    if not callable(metric):
        raise TypeError(f"metric must be callable, got {metric!r}.")
    return _FairnessScorer(
        metric,
        sign=1 if greater_is_better else -1,
        response_method=response_method,
        kwargs=kwargs,
    )


def make_accuracy_disparity_scorer(
    fairness_weight=1.0, disparity="demographic_parity_difference"
):
    """Make a scorer of accuracy minus ``fairness_weight`` times a disparity.

    One number that trades accuracy for fairness, for ``refit=`` in a
    multi-metric search: ``accuracy_score(y, y_pred) - fairness_weight *
    disparity(y, y_pred, sensitive_features=...)``, with the predictions made
    as in :func:`make_fairness_scorer` (groups passed to ``predict`` when it
    accepts them). Greater is better.

    Parameters
    ----------
    fairness_weight : float, default=1.0
        Non-negative weight λ of the disparity. ``0`` scores accuracy alone
        (of the group-aware predictions).

    disparity : {"demographic_parity_difference", "equalized_odds_difference", \
            "equal_opportunity_difference"} or callable, \
            default="demographic_parity_difference"
        The fairlearn metric to penalise, or any function
        ``disparity(y_true, y_pred, *, sensitive_features)`` where lower is
        better. A callable must be defined at module level for the scorer to
        be picklable.

    Returns
    -------
    scorer : callable
        A scorer as returned by :func:`make_fairness_scorer`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmeta.metrics import make_accuracy_disparity_scorer
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = np.array([0, 1, 1, 1])
    >>> groups = np.array(["a", "a", "b", "b"])
    >>> clf = LogisticRegression().fit(X, y)
    >>> clf.predict(X)
    array([1, 1, 1, 1])
    >>> scorer = make_accuracy_disparity_scorer(fairness_weight=2.0)
    >>> scorer(clf, X, y, sensitive_features=groups)  # 0.75 - 2 * 0
    0.75
    """
    if (
        not isinstance(fairness_weight, numbers.Real)
        or isinstance(fairness_weight, bool)
        or not np.isfinite(fairness_weight)
        or fairness_weight < 0
    ):
        raise ValueError(
            f"fairness_weight must be a finite number >= 0, got {fairness_weight!r}."
        )
    if isinstance(disparity, str):
        if disparity not in _DISPARITIES:
            raise ValueError(
                f"disparity must be one of {sorted(_DISPARITIES)} or a callable, "
                f"got {disparity!r}."
            )
    elif not callable(disparity):
        raise TypeError(f"disparity must be a string or callable, got {disparity!r}.")
    return _AccuracyDisparityScorer(fairness_weight, disparity)


neg_demographic_parity_difference_scorer = make_fairness_scorer(
    demographic_parity_difference, greater_is_better=False
)
r"""Scorer of the demographic parity difference, negated: 0 is parity.

The demographic parity difference is the gap between the largest and the
smallest selection rate of the groups, the share of a group's rows
predicted positive:

.. math::

    \max_g P(\hat y = 1 \mid g) - \min_g P(\hat y = 1 \mid g).

It ignores the true labels. The scorer returns it **negated**, so that
greater is better as in scikit-learn: it lies in ``[-1, 0]``, ``0`` when
every group is predicted positive as often, and ``-0.2`` is fairer than
``-0.3``. Labels must be binary, with ``1`` the positive class.

Defined as ``make_fairness_scorer(demographic_parity_difference,
greater_is_better=False)`` with fairlearn's
:func:`~fairlearn.metrics.demographic_parity_difference`; it is
``FAIRNESS_SCORERS["neg_demographic_parity_difference"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
demographic_parity_ratio_scorer : The same selection rates, as a ratio.
make_accuracy_disparity_scorer : Accuracy minus a weighted disparity.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from skmeta.metrics import neg_demographic_parity_difference_scorer
>>> X = np.array([[0], [1], [2], [9], [1.5], [7], [8], [10]])
>>> y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
>>> groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
>>> clf = LogisticRegression().fit(X, y)
>>> clf.predict(X)  # group "a": 0 0 0 1, group "b": 0 1 1 1
array([0, 0, 0, 1, 0, 1, 1, 1])
>>> # selection rates: 1/4 in group "a", 3/4 in group "b"
>>> neg_demographic_parity_difference_scorer(
...     clf, X, y, sensitive_features=groups
... )
-0.5
"""

demographic_parity_ratio_scorer = make_fairness_scorer(demographic_parity_ratio)
r"""Scorer of the demographic parity ratio: 1 is parity.

The demographic parity ratio is the smallest selection rate of the groups
divided by the largest, the selection rate being the share of a group's rows
predicted positive:

.. math::

    \frac{\min_g P(\hat y = 1 \mid g)}{\max_g P(\hat y = 1 \mid g)}.

It ignores the true labels. Greater is better, so the scorer returns the
ratio as it is: it lies in ``[0, 1]``, ``1`` when every group is predicted
positive as often. The "four-fifths rule" of US employment law flags ratios
below ``0.8``. Labels must be binary, with ``1`` the positive class.

Defined as ``make_fairness_scorer(demographic_parity_ratio)`` with
fairlearn's :func:`~fairlearn.metrics.demographic_parity_ratio`; it is
``FAIRNESS_SCORERS["demographic_parity_ratio"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
neg_demographic_parity_difference_scorer : The same rates, as a difference.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from skmeta.metrics import demographic_parity_ratio_scorer
>>> X = np.array([[0], [1], [2], [9], [1.5], [7], [8], [10]])
>>> y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
>>> groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
>>> clf = LogisticRegression().fit(X, y)
>>> clf.predict(X)  # group "a": 0 0 0 1, group "b": 0 1 1 1
array([0, 0, 0, 1, 0, 1, 1, 1])
>>> # selection rates: 1/4 in group "a", 3/4 in group "b"
>>> demographic_parity_ratio_scorer(
...     clf, X, y, sensitive_features=groups
... )
0.3333333333333333
"""

neg_equalized_odds_difference_scorer = make_fairness_scorer(
    equalized_odds_difference, greater_is_better=False
)
r"""Scorer of the equalized odds difference, negated: 0 is parity.

The equalized odds difference is the larger of two gaps between groups: that
of the true positive rates (the share of a group's positive rows predicted
positive) and that of the false positive rates (the share of its negative
rows predicted positive):

.. math::

    \max_{y \in \{0, 1\}} \left( \max_g P(\hat y = 1 \mid g, y)
    - \min_g P(\hat y = 1 \mid g, y) \right).

The scorer returns it **negated**, so that greater is better as in
scikit-learn: it lies in ``[-1, 0]``, ``0`` when all groups have the same
true and false positive rates. Labels must be binary, with ``1`` the
positive class, and each group needs positive and negative rows.

Defined as ``make_fairness_scorer(equalized_odds_difference,
greater_is_better=False)`` with fairlearn's
:func:`~fairlearn.metrics.equalized_odds_difference`; it is
``FAIRNESS_SCORERS["neg_equalized_odds_difference"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
neg_equal_opportunity_difference_scorer : The true positive rates alone.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from skmeta.metrics import neg_equalized_odds_difference_scorer
>>> X = np.array([[0], [1], [2], [9], [1.5], [7], [8], [10]])
>>> y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
>>> groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
>>> clf = LogisticRegression().fit(X, y)
>>> clf.predict(X)  # group "a": 0 0 0 1, group "b": 0 1 1 1
array([0, 0, 0, 1, 0, 1, 1, 1])
>>> # true positive rates: 1/2 in "a", 1 in "b"; false positive rates: 0, 0
>>> neg_equalized_odds_difference_scorer(
...     clf, X, y, sensitive_features=groups
... )
-0.5
"""

neg_equal_opportunity_difference_scorer = make_fairness_scorer(
    equal_opportunity_difference, greater_is_better=False
)
r"""Scorer of the equal opportunity difference, negated: 0 is parity.

The equal opportunity difference is the gap between the largest and the
smallest true positive rate of the groups, the share of a group's positive
rows predicted positive:

.. math::

    \max_g P(\hat y = 1 \mid g, y = 1) - \min_g P(\hat y = 1 \mid g, y = 1).

The scorer returns it **negated**, so that greater is better as in
scikit-learn: it lies in ``[-1, 0]``, ``0`` when the positive rows of every
group are as likely to be predicted positive. Labels must be binary, with
``1`` the positive class.

Defined as ``make_fairness_scorer(equal_opportunity_difference,
greater_is_better=False)`` with fairlearn's
:func:`~fairlearn.metrics.equal_opportunity_difference`; it is
``FAIRNESS_SCORERS["neg_equal_opportunity_difference"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
neg_equalized_odds_difference_scorer : The false positive rates too.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from skmeta.metrics import neg_equal_opportunity_difference_scorer
>>> X = np.array([[0], [1], [2], [9], [1.5], [7], [8], [10]])
>>> y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
>>> groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
>>> clf = LogisticRegression().fit(X, y)
>>> clf.predict(X)  # group "a": 0 0 0 1, group "b": 0 1 1 1
array([0, 0, 0, 1, 0, 1, 1, 1])
>>> # true positive rates: 1/2 in group "a", 1 in group "b"
>>> neg_equal_opportunity_difference_scorer(
...     clf, X, y, sensitive_features=groups
... )
-0.5
"""

worst_group_accuracy_scorer = make_fairness_scorer(worst_group_accuracy)
r"""Scorer of the accuracy of the worst-served group.

The accuracy of each group's rows, and the smallest of them:

.. math::

    \min_g P(\hat y = y \mid g).

Greater is better, so the scorer returns it as it is, in ``[0, 1]``. It
measures group robustness: a model that is accurate on average but fails a
small group scores low. Any labels work, not only binary ones.

Defined as ``make_fairness_scorer(worst_group_accuracy)``, where
``worst_group_accuracy`` is fairlearn's
:func:`~fairlearn.metrics.accuracy_score_group_min`; it is
``FAIRNESS_SCORERS["worst_group_accuracy"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
group_aware_accuracy_scorer : The accuracy of all rows.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from skmeta.metrics import worst_group_accuracy_scorer
>>> X = np.array([[0], [1], [2], [9], [1.5], [7], [8], [10]])
>>> y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
>>> groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
>>> clf = LogisticRegression().fit(X, y)
>>> clf.predict(X)  # group "a": 0 0 0 1, group "b": 0 1 1 1
array([0, 0, 0, 1, 0, 1, 1, 1])
>>> # accuracies: 3/4 in group "a", 4/4 in group "b"
>>> worst_group_accuracy_scorer(
...     clf, X, y, sensitive_features=groups
... )
0.75
"""

group_aware_accuracy_scorer = make_fairness_scorer(accuracy_score)
r"""Scorer of the accuracy of the predictions made with the groups.

The share of rows predicted correctly, as scikit-learn's ``"accuracy"``
scorer, except that the estimator predicts with the groups:
``accuracy_score(y_true, estimator.predict(X, sensitive_features=groups))``.
Greater is better; it lies in ``[0, 1]``.

Use it instead of ``scoring="accuracy"`` for skmeta's classifiers:
scikit-learn's scorer calls ``predict(X)`` without the groups, so it scores
the pooled model rather than each group's adapted one. For estimators whose
``predict`` takes ``X`` alone, both scorers agree.

Defined as ``make_fairness_scorer(accuracy_score)`` with scikit-learn's
:func:`~sklearn.metrics.accuracy_score`; it is
``FAIRNESS_SCORERS["group_aware_accuracy"]``.

Call it as ``scorer(estimator, X, y_true, sensitive_features=groups)``, or
pass it in ``scoring=`` to a search or to ``cross_validate`` with metadata
routing enabled (see :ref:`metrics`). ``estimator.predict`` gets the groups
when it accepts them, as for every scorer of :func:`make_fairness_scorer`.

See Also
--------
worst_group_accuracy_scorer : The accuracy of the worst-served group.

Examples
--------
>>> from sklearn.metrics import accuracy_score
>>> from skmeta import PrototypicalClassifier
>>> from skmeta.datasets import make_group_classification
>>> from skmeta.metrics import group_aware_accuracy_scorer
>>> X, y, groups = make_group_classification(n_groups=4, random_state=0)
>>> clf = PrototypicalClassifier(max_epochs=2, random_state=0)
>>> clf = clf.fit(X, y, sensitive_features=groups)
>>> y_pred = clf.predict(X, sensitive_features=groups)  # each group's model
>>> score = group_aware_accuracy_scorer(clf, X, y, sensitive_features=groups)
>>> score == accuracy_score(y, y_pred)
True
"""

FAIRNESS_SCORERS = {
    "neg_demographic_parity_difference": neg_demographic_parity_difference_scorer,
    "demographic_parity_ratio": demographic_parity_ratio_scorer,
    "neg_equalized_odds_difference": neg_equalized_odds_difference_scorer,
    "neg_equal_opportunity_difference": neg_equal_opportunity_difference_scorer,
    "worst_group_accuracy": worst_group_accuracy_scorer,
    "group_aware_accuracy": group_aware_accuracy_scorer,
}
"""Ready-made scorers, by name; all follow "greater is better".

Each key is the name of a scorer of this module, without ``_scorer``:

- :data:`neg_demographic_parity_difference_scorer`: the difference of the
  groups' selection rates, negated (0 is parity, lower values are worse);
- :data:`demographic_parity_ratio_scorer`: their ratio (1 is parity);
- :data:`neg_equalized_odds_difference_scorer`: the larger of the
  differences of the true and the false positive rates, negated;
- :data:`neg_equal_opportunity_difference_scorer`: the difference of the
  true positive rates, negated;
- :data:`worst_group_accuracy_scorer`: the lowest accuracy of a group;
- :data:`group_aware_accuracy_scorer`: the accuracy of the predictions made
  with the groups.

Pass the dictionary, or some of it, as ``scoring=`` of a search or of
``cross_validate``, with metadata routing enabled (see :ref:`metrics`). The
objects are shared: use :func:`copy.deepcopy` before changing one's requests
with ``set_score_request``.

Examples
--------
>>> import sklearn
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.model_selection import cross_validate
>>> from skmeta.datasets import make_group_classification
>>> from skmeta.metrics import FAIRNESS_SCORERS
>>> X, y, groups = make_group_classification(n_groups=4, random_state=0)
>>> with sklearn.config_context(enable_metadata_routing=True):
...     results = cross_validate(
...         LogisticRegression(),
...         X,
...         y,
...         scoring=FAIRNESS_SCORERS,
...         params={"sensitive_features": groups},
...     )
>>> sorted(key for key in results if key.startswith("test_"))
['test_demographic_parity_ratio', 'test_group_aware_accuracy',
 'test_neg_demographic_parity_difference', 'test_neg_equal_opportunity_difference',
 'test_neg_equalized_odds_difference', 'test_worst_group_accuracy']
"""
