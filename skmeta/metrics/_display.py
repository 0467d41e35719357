"""Accuracy-against-disparity plot of the candidates of a hyperparameter search."""

import numbers

import numpy as np
from sklearn.exceptions import NotFittedError

from .._compat import check_matplotlib_support

__all__ = ["FairnessTradeoffDisplay", "pareto_front"]


def pareto_front(accuracy, disparity):
    """Mask of the Pareto-optimal points: high accuracy, low disparity.

    A point is on the front when no other point has an accuracy at least as
    high and a disparity at least as low, and is strictly better in one of
    the two. Tied points are all on the front. Points with a NaN value are
    never on the front and dominate no point.

    Parameters
    ----------
    accuracy : array-like of shape (n_points,)
        Score where greater is better.

    disparity : array-like of shape (n_points,)
        Disparity where lower is better (e.g. a demographic parity
        difference, not its negation).

    Returns
    -------
    mask : ndarray of shape (n_points,), dtype=bool
        ``True`` for the points on the Pareto front.

    Examples
    --------
    >>> from skmeta.metrics import pareto_front
    >>> pareto_front([0.9, 0.8, 0.7, 0.85], [0.3, 0.1, 0.2, 0.3])
    array([ True,  True, False, False])
    """
    accuracy = np.asarray(accuracy, dtype=float).ravel()
    disparity = np.asarray(disparity, dtype=float).ravel()
    if accuracy.shape != disparity.shape:
        raise ValueError(
            f"accuracy and disparity must have the same length, got "
            f"{accuracy.shape[0]} and {disparity.shape[0]}."
        )
    valid = np.isfinite(accuracy) & np.isfinite(disparity)
    acc, disp = accuracy[valid], disparity[valid]
    # dominated[i, j]: point j dominates point i (O(n_points ** 2) memory).
    at_least = (acc[None, :] >= acc[:, None]) & (disp[None, :] <= disp[:, None])
    better = (acc[None, :] > acc[:, None]) | (disp[None, :] < disp[:, None])
    mask = np.zeros(accuracy.shape[0], dtype=bool)
    mask[valid] = ~(at_least & better).any(axis=1)
    return mask


def _format_value(value):
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{value:.3g}"
    if isinstance(value, str | numbers.Number | bool | type(None)):
        text = str(value)
    elif callable(value) and hasattr(value, "__name__"):
        text = value.__name__
    else:
        text = type(value).__name__ if hasattr(value, "get_params") else str(value)
    return text if len(text) <= 20 else text[:19] + "…"


def _short_keys(keys):
    """``clf__n_shots`` -> ``n_shots``, unless two keys would then clash."""
    short = {key: key.rsplit("__", 1)[-1] for key in keys}
    if len(set(short.values())) < len(short):
        return {key: key for key in keys}
    return short


def _param_labels(params):
    """Short ``key=value`` labels of the parameters that vary between candidates."""
    params = list(params)
    keys = list(dict.fromkeys(key for p in params for key in p))
    varying = [
        key for key in keys if len({repr(p.get(key, "<unset>")) for p in params}) > 1
    ]
    keys = varying or keys
    short = _short_keys(keys)
    return [
        ", ".join(f"{short[key]}={_format_value(p[key])}" for key in keys if key in p)
        for p in params
    ]


def _resolve_key(cv_results, key):
    if key in cv_results:
        return key
    if f"mean_test_{key}" in cv_results:
        return f"mean_test_{key}"
    available = sorted(k for k in cv_results if str(k).startswith("mean_test_"))
    raise KeyError(
        f"{key!r} is not in cv_results (nor 'mean_test_{key}'); scores "
        f"available: {available}."
    )


class FairnessTradeoffDisplay:
    """Accuracy against disparity for candidate models, with the Pareto front.

    Each candidate of a hyperparameter search (or any set of models) is a
    point: disparity on the x axis (lower is fairer), accuracy on the y axis.
    The Pareto-optimal candidates, for which no other candidate is both at
    least as accurate and at least as fair, are joined by a line.

    Create it with :meth:`from_cv_results` or :meth:`from_estimator`, or from
    the values themselves and then call :meth:`plot`. All attributes of the
    plot are stored, in scikit-learn's Display style.

    Parameters
    ----------
    accuracy : array-like of shape (n_points,)
        Accuracy (or any score where greater is better) of each candidate.

    disparity : array-like of shape (n_points,)
        Disparity of each candidate, where lower is better: a difference such
        as the demographic parity difference, not its negation (see
        ``negate_disparity`` in :meth:`from_cv_results`).

    labels : list of str, default=None
        Text next to each point; ``None`` for none.

    pareto_mask : array-like of shape (n_points,), dtype=bool, default=None
        Which points are on the Pareto front; computed with
        :func:`pareto_front` if ``None``.

    accuracy_name : str, default="accuracy"
        Label of the y axis.

    disparity_name : str, default="disparity"
        Label of the x axis.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the plot.

    figure_ : matplotlib Figure
        Figure containing the plot.

    scatter_ : matplotlib PathCollection
        One point per candidate.

    line_ : matplotlib Line2D
        The Pareto front, in order of increasing disparity.

    annotations_ : list of matplotlib Annotation
        The labels of the points; empty if not annotated.

    See Also
    --------
    pareto_front : The mask of Pareto-optimal points.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmeta.metrics import FairnessTradeoffDisplay
    >>> display = FairnessTradeoffDisplay(
    ...     accuracy=[0.9, 0.8, 0.7],
    ...     disparity=[0.3, 0.1, 0.2],
    ...     labels=["C=10", "C=1", "C=0.1"],
    ... ).plot()
    >>> display.pareto_mask
    array([ True,  True, False])
    >>> display.line_.get_xdata()
    array([0.1, 0.3])
    """

    def __init__(
        self,
        accuracy,
        disparity,
        labels=None,
        pareto_mask=None,
        accuracy_name="accuracy",
        disparity_name="disparity",
    ):
        self.accuracy = np.asarray(accuracy, dtype=float)
        self.disparity = np.asarray(disparity, dtype=float)
        if self.accuracy.shape != self.disparity.shape or self.accuracy.ndim != 1:
            raise ValueError(
                "accuracy and disparity must be 1-D and of the same length, got "
                f"shapes {self.accuracy.shape} and {self.disparity.shape}."
            )
        if labels is not None and len(labels) != len(self.accuracy):
            raise ValueError(
                f"labels has {len(labels)} entries for {len(self.accuracy)} points."
            )
        self.labels = None if labels is None else list(labels)
        self.pareto_mask = (
            pareto_front(self.accuracy, self.disparity)
            if pareto_mask is None
            else np.asarray(pareto_mask, dtype=bool)
        )
        if self.pareto_mask.shape != self.accuracy.shape:
            raise ValueError(
                f"pareto_mask has shape {self.pareto_mask.shape}, expected "
                f"{self.accuracy.shape}."
            )
        self.accuracy_name = accuracy_name
        self.disparity_name = disparity_name

    def plot(self, ax=None, *, annotate=True, line_kw=None, **kwargs):
        """Plot the candidates and their Pareto front.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure and axes if ``None``.

        annotate : bool, default=True
            Whether to write each point's label next to it.

        line_kw : dict, default=None
            Keyword arguments of ``ax.plot`` for the Pareto front.

        **kwargs : dict
            Keyword arguments of ``ax.scatter`` for the points.

        Returns
        -------
        display : FairnessTradeoffDisplay
            The display, with ``ax_``, ``figure_``, ``scatter_``, ``line_``
            and ``annotations_`` set.
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        scatter_kw = {"color": "C0", "alpha": 0.8, "label": "candidates", **kwargs}
        self.scatter_ = ax.scatter(self.disparity, self.accuracy, **scatter_kw)

        order = np.argsort(self.disparity[self.pareto_mask], kind="stable")
        front_x = self.disparity[self.pareto_mask][order]
        front_y = self.accuracy[self.pareto_mask][order]
        line_kw = {
            "color": "C3",
            "marker": "o",
            "markerfacecolor": "none",
            "markersize": 10,
            "label": "Pareto front",
            **(line_kw or {}),
        }
        (self.line_,) = ax.plot(front_x, front_y, **line_kw)

        self.annotations_ = []
        if annotate and self.labels is not None:
            finite = self.disparity[np.isfinite(self.disparity)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for x, y, text in zip(
                self.disparity, self.accuracy, self.labels, strict=True
            ):
                if text and np.isfinite(x) and np.isfinite(y):
                    # labels point inwards so that they stay inside the axes
                    right = x > middle
                    self.annotations_.append(
                        ax.annotate(
                            text,
                            (x, y),
                            xytext=(-4 if right else 4, 4),
                            textcoords="offset points",
                            ha="right" if right else "left",
                            fontsize="small",
                        )
                    )
        ax.set_xlabel(f"{self.disparity_name} (lower is fairer)")
        ax.set_ylabel(self.accuracy_name)
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_cv_results(
        cls,
        cv_results,
        *,
        accuracy="mean_test_accuracy",
        disparity="mean_test_dpd",
        negate_disparity="auto",
        labels=None,
        accuracy_name=None,
        disparity_name=None,
        ax=None,
        annotate=True,
        line_kw=None,
        **kwargs,
    ):
        """Plot the candidates of a search from its ``cv_results_``.

        Parameters
        ----------
        cv_results : dict or DataFrame
            ``cv_results_`` of a multi-metric
            :class:`~sklearn.model_selection.GridSearchCV` or
            :class:`~sklearn.model_selection.RandomizedSearchCV`.

        accuracy : str, default="mean_test_accuracy"
            Key of the accuracy; a scorer name such as ``"accuracy"`` is
            read from ``"mean_test_accuracy"``.

        disparity : str, default="mean_test_dpd"
            Key of the disparity, as for ``accuracy``.

        negate_disparity : "auto" or bool, default="auto"
            Whether to flip the sign of the disparity. Scorers that follow
            scikit-learn's "greater is better" convention store differences
            negated (``neg_demographic_parity_difference``). ``"auto"`` flips
            when no value is positive, which recovers the difference from
            such a scorer and leaves a plain difference as it is. The plot
            and the Pareto front use the disparity with lower is better; for
            a ratio (1 is parity), store ``1 - ratio`` or a difference.

        labels : list of str, default=None
            Point labels; by default short ``key=value`` texts of the
            parameters that vary between candidates, with pipeline prefixes
            such as ``clf__`` removed.

        accuracy_name, disparity_name : str, default=None
            Axis labels; by default the keys without ``mean_test_`` (and
            without ``neg_`` when the disparity is negated).

        ax : matplotlib Axes, default=None
            Axes to plot on.

        annotate : bool, default=True
            Whether to label the points.

        line_kw : dict, default=None
            Keyword arguments for the Pareto front line.

        **kwargs : dict
            Keyword arguments of ``ax.scatter``.

        Returns
        -------
        display : FairnessTradeoffDisplay
            The plotted display.
        """
        check_matplotlib_support(f"{cls.__name__}.from_cv_results")
        accuracy_key = _resolve_key(cv_results, accuracy)
        disparity_key = _resolve_key(cv_results, disparity)
        acc = np.asarray(cv_results[accuracy_key], dtype=float)
        disp = np.asarray(cv_results[disparity_key], dtype=float)
        if negate_disparity == "auto":
            finite = disp[np.isfinite(disp)]
            negate_disparity = bool(finite.size) and bool((finite <= 0).all())
        elif not isinstance(negate_disparity, bool | np.bool_):
            raise ValueError(
                f"negate_disparity must be 'auto', True or False, got "
                f"{negate_disparity!r}."
            )
        if negate_disparity:
            disp = -disp
        if accuracy_name is None:
            accuracy_name = accuracy_key.removeprefix("mean_test_")
        if disparity_name is None:
            disparity_name = disparity_key.removeprefix("mean_test_")
            if negate_disparity:
                disparity_name = disparity_name.removeprefix("neg_")
        if labels is None and "params" in cv_results:
            labels = _param_labels(cv_results["params"])
        display = cls(
            acc,
            disp,
            labels=labels,
            accuracy_name=accuracy_name,
            disparity_name=disparity_name,
        )
        return display.plot(ax=ax, annotate=annotate, line_kw=line_kw, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        search,
        *,
        accuracy="mean_test_accuracy",
        disparity="mean_test_dpd",
        negate_disparity="auto",
        labels=None,
        accuracy_name=None,
        disparity_name=None,
        ax=None,
        annotate=True,
        line_kw=None,
        **kwargs,
    ):
        """Plot the candidates of a fitted hyperparameter search.

        Parameters
        ----------
        search : fitted GridSearchCV or RandomizedSearchCV
            A search with multi-metric scoring; its ``cv_results_`` are read.

        accuracy : str, default="mean_test_accuracy"
            Key of ``cv_results_`` (or scorer name) of the accuracy.

        disparity : str, default="mean_test_dpd"
            Key of ``cv_results_`` (or scorer name) of the disparity.

        negate_disparity : "auto" or bool, default="auto"
            Whether to flip the sign of the disparity; see
            :meth:`from_cv_results`.

        labels : list of str, default=None
            Point labels; by default the varying parameters.

        accuracy_name : str, default=None
            Label of the y axis.

        disparity_name : str, default=None
            Label of the x axis.

        ax : matplotlib Axes, default=None
            Axes to plot on.

        annotate : bool, default=True
            Whether to label the points.

        line_kw : dict, default=None
            Keyword arguments for the Pareto front line.

        **kwargs : dict
            Keyword arguments of ``ax.scatter``.

        Returns
        -------
        display : FairnessTradeoffDisplay
            The plotted display.
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        if not hasattr(search, "cv_results_"):
            raise NotFittedError(
                f"{type(search).__name__} has no cv_results_: pass a fitted "
                "GridSearchCV or RandomizedSearchCV."
            )
        return cls.from_cv_results(
            search.cv_results_,
            accuracy=accuracy,
            disparity=disparity,
            negate_disparity=negate_disparity,
            labels=labels,
            accuracy_name=accuracy_name,
            disparity_name=disparity_name,
            ax=ax,
            annotate=annotate,
            line_kw=line_kw,
            **kwargs,
        )
