"""Adapting a fitted pipeline to new rows (scikit-learn's Pipeline has no
``partial_fit``)."""

from sklearn.pipeline import Pipeline

__all__ = ["adapt"]


def adapt(estimator, X, y, *, sensitive_features=None, tasks=None, sample_weight=None):
    """Adapt a fitted skmeta estimator, or a pipeline ending in one, to new rows.

    For a :class:`~sklearn.pipeline.Pipeline`, the rows go through the fitted
    transformers (which are not refitted) and the final step's
    ``partial_fit`` adapts to them; for an estimator, this is its
    ``partial_fit``. A group never seen before becomes known.

    Parameters
    ----------
    estimator : skmeta estimator or Pipeline
        Fitted.

    X : array-like or DataFrame of shape (n_samples, n_features)
        The new rows, as the pipeline takes them.

    y : array-like of shape (n_samples,)
        Their labels.

    sensitive_features, tasks, sample_weight : array-like, default=None
        As in ``partial_fit``.

    Returns
    -------
    estimator : object
        The same object, adapted.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmeta import PrototypicalClassifier
    >>> from skmeta.utils import adapt
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(200, 3)), np.arange(200) % 2
    >>> groups = np.where(np.arange(200) < 100, "a", "b")
    >>> pipe = make_pipeline(
    ...     StandardScaler(), PrototypicalClassifier(max_epochs=1, random_state=0)
    ... )
    >>> pipe = pipe.fit(X, y, prototypicalclassifier__sensitive_features=groups)
    >>> pipe = adapt(pipe, X[:10], y[:10], sensitive_features=["new"] * 10)
    >>> pipe[-1].tasks_
    array(['a', 'b', 'new'], dtype=object)
    """
    kwargs = {
        key: value
        for key, value in (
            ("sensitive_features", sensitive_features),
            ("tasks", tasks),
            ("sample_weight", sample_weight),
        )
        if value is not None
    }
    if isinstance(estimator, Pipeline):
        final = estimator.steps[-1][1]
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        final.partial_fit(X, y, **kwargs)
        return estimator
    estimator.partial_fit(X, y, **kwargs)
    return estimator
