"""A scorer of adaptation to groups held out of training.

skmeta's promise is to serve a group never seen in training from a few of its
rows. Scoring that in a scikit-learn search takes a split by group (for
example :class:`~sklearn.model_selection.GroupKFold`, so that the test fold's
groups are unseen) and a scorer that, for each test group, adapts a copy of
the fitted model to a few of the group's rows with ``partial_fit`` and scores
the group's other rows. :func:`make_few_shot_scorer` makes that scorer.
"""

import copy
import numbers

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.metadata_routing import UNUSED
from sklearn.utils.validation import check_is_fitted

from .._compat import (
    BaseSearchCV,
    _MetadataRequester,
    _routing_enabled,
    _safe_indexing,
)
from ..utils._validation import check_groups, split_sensitive_columns
from ._scorers import _name

__all__ = ["make_few_shot_scorer"]

_AGGREGATES = ("mean", "min")


class _FewShotScorer(_MetadataRequester):
    """Few-shot score on the test fold's unseen groups.

    Made by :func:`make_few_shot_scorer`; see there.
    """

    # Requested by default, as skmeta's fairness scorers: no
    # `set_score_request` is needed under routing.
    __metadata_request__score = {
        "sensitive_features": True,
        "tasks": True,
        "estimator": UNUSED,
        "y_true": UNUSED,
    }

    def __init__(self, n_shots, metric, n_draws, aggregate, random_state):
        self._n_shots = n_shots
        self._metric = metric
        self._n_draws = n_draws
        self._aggregate = aggregate
        self._random_state = random_state

    def __repr__(self):
        args = [f"n_shots={self._n_shots}"]
        if self._metric is not balanced_accuracy_score:
            args.append(f"metric={_name(self._metric)}")
        if self._n_draws != 1:
            args.append(f"n_draws={self._n_draws}")
        if self._aggregate != "mean":
            args.append(f"aggregate={self._aggregate!r}")
        if self._random_state != 0:
            args.append(f"random_state={self._random_state!r}")
        return f"make_few_shot_scorer({', '.join(args)})"

    def _groups(self, estimator, X, sensitive_features, tasks):
        """Each row's task label as ``estimator`` defines tasks, and the
        keyword arguments that carry the groups to its methods (sliced per
        call)."""
        source = estimator.task_source_
        if source == "pooled":
            raise ValueError(
                f"{self!r} scores the adaptation to each group, but the estimator "
                "was fitted without sensitive_features or tasks: it has one "
                "pooled task and nothing to adapt."
            )
        n_samples = X.shape[0]
        kwargs = {}
        if tasks is not None:
            kwargs["tasks"] = tasks
        if getattr(estimator, "sensitive_columns", None) is not None:
            sensitive = split_sensitive_columns(X, estimator.sensitive_columns)[1]
        else:
            sensitive = sensitive_features
            if sensitive is not None:
                kwargs["sensitive_features"] = sensitive
        name = "tasks" if source == "tasks" else "sensitive_features"
        labels = tasks if source == "tasks" else sensitive
        if labels is None:
            help_ = (
                "Enable metadata routing and pass it to the search's fit"
                if not _routing_enabled()
                else "Pass it to the search's fit (or params= to cross_validate)"
            )
            raise ValueError(
                f"{self!r} needs {name}, which define the estimator's tasks, and "
                f"got none. {help_}."
            )
        return check_groups(labels, n_samples, name=name), kwargs

    def score(self, estimator, X, y_true, *, sensitive_features=None, tasks=None):
        """Adapt a copy of ``estimator`` to each unseen group and score it.

        Parameters
        ----------
        estimator : fitted MAMLClassifier or PrototypicalClassifier
            Or a fitted search whose ``best_estimator_`` is one. It is not
            modified: each group is adapted on a copy.

        X : array-like or DataFrame of shape (n_samples, n_features)
            The test rows.

        y_true : array-like of shape (n_samples,)
            Their labels.

        sensitive_features : array-like of shape (n_samples,) or \
                (n_samples, n_sensitive), default=None
            The rows' sensitive groups; they define the tasks when the
            estimator was fitted on them, and are passed on otherwise.

        tasks : array-like of shape (n_samples,), default=None
            The rows' tasks, when the estimator was fitted with ``tasks=``.

        Returns
        -------
        score : float
            The metric on the query rows of each scored group, averaged over
            the groups (``aggregate="mean"``) or its smallest value
            (``"min"``), then averaged over the draws.
        """
        if isinstance(estimator, BaseSearchCV) and hasattr(
            estimator, "best_estimator_"
        ):
            estimator = estimator.best_estimator_
        if hasattr(estimator, "unknown_groups") and hasattr(estimator, "partial_fit"):
            check_is_fitted(estimator, "tasks_")  # an unfitted skmeta classifier
        if not (hasattr(estimator, "partial_fit") and hasattr(estimator, "tasks_")):
            raise TypeError(
                f"{self!r} needs a fitted skmeta classifier (MAMLClassifier or "
                f"PrototypicalClassifier), which adapts to a group with "
                f"partial_fit; got {type(estimator).__name__}."
            )
        y_true = np.asarray(y_true)
        labels, kwargs = self._groups(estimator, X, sensitive_features, tasks)
        unseen = ~np.isin(labels, estimator.tasks_)
        if not unseen.any():
            raise ValueError(
                f"{self!r} scores groups unseen in training, and every group of "
                "the test rows was in the training rows. Split by group, e.g. "
                "cv=GroupKFold() with groups= passed to the search's fit."
            )
        groups = list(dict.fromkeys(labels[unseen].tolist()))
        # The support draws: n_shots rows of every class, and a query row of
        # every class left over (the metric needs them).
        classes = estimator.classes_
        scored = []
        for group in groups:
            rows = np.flatnonzero(labels == group)
            by_class = [rows[y_true[rows] == c] for c in classes]
            if min(len(r) for r in by_class) > self._n_shots:
                scored.append((rows, by_class))
        if not scored:
            raise ValueError(
                f"{self!r}: none of the {len(groups)} unseen group(s) of the test "
                f"rows has more than n_shots={self._n_shots} rows of every class "
                f"({list(classes)!r}), so none has a support and a query set. "
                "Lower n_shots or use fewer, larger folds."
            )
        scores = np.empty((self._n_draws, len(scored)))
        for draw in range(self._n_draws):
            rng = np.random.default_rng([self._random_state, draw])
            for i, (rows, by_class) in enumerate(scored):
                support = np.concatenate(
                    [rng.choice(r, self._n_shots, replace=False) for r in by_class]
                )
                query = np.setdiff1d(rows, support)
                model = copy.deepcopy(estimator)
                model.partial_fit(
                    _safe_indexing(X, support),
                    y_true[support],
                    **{k: _safe_indexing(v, support) for k, v in kwargs.items()},
                )
                y_pred = model.predict(
                    _safe_indexing(X, query),
                    **{k: _safe_indexing(v, query) for k, v in kwargs.items()},
                )
                scores[draw, i] = self._metric(y_true[query], y_pred)
        per_draw = scores.mean(1) if self._aggregate == "mean" else scores.min(1)
        return float(per_draw.mean())

    def __call__(self, estimator, X, y_true, *, sensitive_features=None, tasks=None):
        """Same as :meth:`score`; scikit-learn calls scorers this way."""
        return self.score(
            estimator, X, y_true, sensitive_features=sensitive_features, tasks=tasks
        )


def make_few_shot_scorer(
    n_shots=5,
    *,
    metric=balanced_accuracy_score,
    n_draws=1,
    aggregate="mean",
    random_state=0,
):
    """Make a scorer of how well a model adapts to groups unseen in training.

    For each group of the test rows that the fitted estimator has not seen
    (a task not in its ``tasks_``; groups it has seen are left out), the
    scorer draws ``n_shots`` rows of every class as a support set, adapts a
    copy of the estimator to them with ``partial_fit`` (the group becomes a
    new task), predicts the group's other rows and applies ``metric`` to
    them: the protocol of the repository's few-shot benchmark. Groups with at
    most ``n_shots`` rows of a class are left out; the score is an error when
    no group is left. Use it with a split by group, e.g.
    :class:`~sklearn.model_selection.GroupKFold` with ``groups=`` given to
    the search's ``fit``, to choose settings for new groups (the training
    budget, ``prior_strength``, ``head``) rather than for the groups
    trained on.

    The groups come from ``sensitive_features`` (or ``tasks=``, for an
    estimator fitted with tasks) through scikit-learn's metadata routing,
    which must be enabled; the scorer requests both by default.

    Parameters
    ----------
    n_shots : int, default=5
        Support rows per class of each group.

    metric : callable, default=sklearn.metrics.balanced_accuracy_score
        ``metric(y_true, y_pred)``, greater is better, applied to each
        group's query rows.

    n_draws : int, default=1
        Support sets drawn per group; the score is averaged over them.

    aggregate : {"mean", "min"}, default="mean"
        The score of one draw: the mean of the groups' scores, or the
        smallest (the worst group).

    random_state : int >= 0, default=0
        Seeds the support draws (``numpy.random.default_rng([random_state,
        draw])``, the groups in the order they first appear, then the
        classes in the order of ``classes_``), so that every candidate of a
        search is scored on the same support sets.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y_true, *, sensitive_features=None,
        tasks=None)``, for ``scoring=`` in scikit-learn's searches and
        :func:`~sklearn.model_selection.cross_validate`.

    Examples
    --------
    >>> import sklearn
    >>> from sklearn.model_selection import GridSearchCV, GroupKFold
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.datasets import make_group_classification
    >>> from skmeta.metrics import make_few_shot_scorer
    >>> X, y, groups = make_group_classification(n_groups=6, random_state=0)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     search = GridSearchCV(
    ...         PrototypicalClassifier(max_epochs=1, random_state=0),
    ...         {"pretrain_epochs": [0, 10]},
    ...         scoring=make_few_shot_scorer(n_shots=5),
    ...         cv=GroupKFold(n_splits=3),
    ...     ).fit(X, y, sensitive_features=groups, groups=groups)
    >>> search.best_params_["pretrain_epochs"] in (0, 10)
    True
    """
    if not isinstance(n_shots, numbers.Integral) or isinstance(n_shots, bool):
        raise ValueError(f"n_shots must be a positive int; got {n_shots!r}.")
    if n_shots < 1:
        raise ValueError(f"n_shots must be a positive int; got {n_shots!r}.")
    if not isinstance(n_draws, numbers.Integral) or isinstance(n_draws, bool):
        raise ValueError(f"n_draws must be a positive int; got {n_draws!r}.")
    if n_draws < 1:
        raise ValueError(f"n_draws must be a positive int; got {n_draws!r}.")
    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be 'mean' or 'min'; got {aggregate!r}.")
    if not callable(metric):
        raise ValueError(
            f"metric must be a callable metric(y_true, y_pred); got {metric!r}."
        )
    if (
        not isinstance(random_state, numbers.Integral)
        or isinstance(random_state, bool)
        or random_state < 0
    ):
        raise ValueError(
            f"random_state must be a non-negative int; got {random_state!r}."
        )
    return _FewShotScorer(int(n_shots), metric, int(n_draws), aggregate, random_state)
