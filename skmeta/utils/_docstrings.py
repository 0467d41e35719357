"""Docstring fragments shared by the estimators.

Markers such as ``{episode_parameters}`` in a class docstring are replaced
with :func:`str.replace` (not :meth:`str.format`), so literal braces in
doctest output need no escaping.
"""

_EPISODE_PARAMETERS = """\
n_shots : int, default=5
        Support rows per class in a training episode.

    n_queries : int, default=15
        Query rows per class in a training episode.

    meta_batch_size : int, default=8
        Tasks per outer (meta) step.

    steps_per_epoch : int, default=None
        Outer steps per epoch. ``None`` draws about as many rows as the
        training set holds, and at least two meta-batches per training task
        (up to 100), so that each task of a data set of many small tasks is
        seen in about ``2 * meta_batch_size`` episodes per epoch (with
        ``task_sampling="uniform"``); never fewer than 10 meta-batches.

    task_sampling : {"proportional", "uniform"}, default="proportional"
        How each training episode's task is drawn. ``"proportional"``: with
        probability proportional to the task's training rows (those of
        positive ``sample_weight``), with replacement, so that every training
        row is drawn about equally often, as a pooled model sees them, while
        each episode still comes from one task.
        ``"uniform"``: uniformly among the tasks (without replacement within a
        meta-batch where there are enough), as in most meta-learning papers;
        every task then weighs the same in the meta-objective, and a small
        task's rows are drawn again and again, which the shared network can
        overfit. Tasks of equal size are drawn alike either way. See the user
        guide for what it changed in the few-shot benchmark.

    variable_shots : bool, default=False
        Whether each training episode's support holds a number of rows per
        class drawn uniformly from 1 to ``n_shots`` (the same for every class
        of the episode; the support rows drawn beyond it are left out), so
        that the adaptation is trained for every support size up to
        ``n_shots`` rather than for ``n_shots`` alone. It helps groups adapted
        from one or two rows per class (see the user guide)."""

_COMMON_PARAMETERS = """\
class_prior : {"auto", "task", "pooled", "balanced"}, default="auto"
        Episodes hold as many rows of each class, so the model learns as if
        classes were balanced. ``"task"`` corrects its predictions to the
        class frequencies of each row's task (prior shift: the log frequency
        is added to each logit), shrunk toward the pooled frequencies with a
        weight of ``n_shots`` rows per class; predictions then aim at
        accuracy. ``"pooled"`` corrects every row to the pooled frequencies,
        so that no group-specific base rate enters the predictions.
        ``"balanced"`` keeps the balanced predictions, which aim at balanced
        accuracy. ``"auto"`` is ``"pooled"`` when a fairness penalty is
        active (``constraints`` with ``fairness_weight > 0``), else
        ``"task"``.

    constraints : {"demographic_parity", "equalized_odds", \
            "true_positive_rate_parity"}, default=None
        Fairness penalty added to the meta-objective (fairlearn's names): the
        largest gap between sensitive groups in the mean predicted
        probability (``"demographic_parity"``), conditioned on the true class
        (``"equalized_odds"``: true and false positive rates;
        ``"true_positive_rate_parity"``: true positive rate). It is computed
        on the query predictions after adaptation, across the groups of the
        meta-batch, or within each task across its groups when ``tasks`` are
        given. See :mod:`skmeta.fairness`.

    fairness_weight : float, default=0.0
        Weight ``lambda >= 0`` of the penalty. ``0`` (or ``constraints=None``)
        trains the unconstrained model.

    fairness_temperature : float, default=0.1
        Temperature ``tau > 0`` of the probabilities the penalty is computed
        on: ``softmax(logits / tau)``. Fairness metrics count hard decisions;
        a temperature below 1 makes the penalty follow them (the gap in mean
        probability at ``tau = 1`` can shrink while the gap in decisions
        grows, as the model pushes every probability toward the threshold).

    dro_step_size : float, default=0.0
        Worst-group weighting of the outer objective (group DRO). ``0``
        averages the query losses of the tasks. With ``eta > 0``, weights
        ``q`` over the training tasks start uniform and after each
        meta-batch become ``q_t * exp(eta * L_t)`` for the tasks ``t`` in it
        (``L_t`` their query loss), normalised; the outer loss is the
        ``q``-weighted mean of the task losses. Larger values trade mean
        accuracy for worst-group accuracy.

    pooled_episodes : float, default=0.0
        Share of the training episodes drawn from all rows, whatever their
        task, rather than from one task. A class that is rare in a task is
        drawn again and again in that task's episodes (and, with
        ``task_sampling="uniform"``, small tasks weigh as much as large
        ones); when the tasks differ little, pooled episodes can give a
        better shared network. ``1`` meta-trains on pooled episodes only,
        while tasks still get their own adapted states.

    pretrain_epochs : int, default=10
        Epochs of plain supervised training on the pooled training rows (those
        ``train_split`` keeps for training) before meta-training starts, a
        warm start for the shared network (as in Meta-Baseline): the
        class-balanced cross-entropy of ``criterion``, weighted by
        ``sample_weight``, in shuffled batches of ``batch_size`` rows, with a
        fresh ``optimizer`` at ``lr``. A prototypical network is trained
        through a linear head on its embedding, discarded afterwards. Fairness
        penalties and group weighting apply to meta-training only. Run when
        the network is initialised (by ``fit``, and by the first
        ``partial_fit``), not when ``warm_start`` continues a fit. ``0`` skips
        it. See the user guide for what it changed in the few-shot benchmark.

    online_meta_update : bool, default=False
        When data keeps arriving: ``partial_fit`` on a fitted estimator also
        runs one epoch of meta-training on every row seen so far (follow the
        meta-leader) and adapts every task again. Off, adaptation leaves the
        meta-learned parameters as they are.

    task_mixture : "auto" or float in [0, 1], default="auto"
        How much a group first seen after ``fit`` (by ``partial_fit``)
        borrows the training tasks' own models. Its rows weigh each training
        task's adapted model by how likely they are under the task: how well
        the model predicts their classes, and, where the columns are used,
        times a diagonal Gaussian density of their columns with the means
        and variances of the task's rows at ``fit``, each variance widened
        by the pooled rows' (the posterior under a uniform prior over the
        training tasks, its 16 most likely kept), and the group is predicted
        by ``a * mixture + (1 - a) * own``
        in class probabilities (before the class prior), ``own`` being its
        adapted state. The group's share ``a`` starts from the fitted share
        as prior odds (1 counting as 0.9) and follows the evidence of its
        rows: with two or more rows of every class, stratified
        cross-validation on them compares the mixture's held-out
        log-likelihood with its own model's, ``a = sigmoid(logit(share) +
        cv_mix - cv_own)``; so a group that comes in a training kind
        borrows its kind's model from a row or two, and one whose rows
        clearly disagree with every training task ends near its own model.
        ``"auto"`` chooses the share in {0, 0.25, 0.5, 0.75, 1} at the end of
        ``fit`` by leaving training tasks out in turn, each adapted from 1
        and from 5 rows per class as a new group, against the mixture of the
        others:
        the smallest share within one standard error of the best, with the
        weights from the classes alone and from the classes and columns; the
        columns are used only where their share scores higher by more than
        one standard error (``task_mixture_columns_``; always with a number).
        It is 0 with fewer than 5 training tasks of at least 10 rows per class, and
        under a fairness penalty (the mixture is not trained for it). The
        mixture holds the 256 largest training tasks. ``0`` turns it off.
        The fitted share is ``task_mixture_``, each group's weights
        ``task_mixture_weights_``; the training tasks themselves, the pooled
        state and unknown groups are never mixed.

    sensitive_columns : str, int or list of str or int, default=None
        Columns of ``X`` (names for a DataFrame, or positions) that hold the
        sensitive features. They are taken out of the model input and used
        exactly as ``sensitive_features`` would be, in every method. This is
        how the groups reach the model inside meta-estimators that call
        ``predict(X)`` with ``X`` alone, such as fairlearn's
        ``ThresholdOptimizer``. Passing ``sensitive_features`` as well is an
        error.

    support_size : int, default=500
        Most rows kept per class of each task, and per class of the pooled
        support set, for adaptation (and for ``online_meta_update``). Beyond
        that, the rows kept are a uniform random sample of every row seen
        (reservoir sampling), so the fitted model's memory, its pickle and
        the cost of adapting stay bounded. The class frequencies behind
        ``class_prior`` count every row.

    unknown_groups : {"warn", "pooled", "error"}, default="warn"
        What prediction does with rows whose group (or task) was never seen
        in ``fit`` or ``partial_fit``: use the model adapted to the pooled
        support set and warn (``"warn"``), do the same silently
        (``"pooled"``), or raise (``"error"``). Even with ``"pooled"``, a
        call in which no row's group is known warns, since that usually
        means the labels do not match (integers in ``fit``, strings at
        prediction). Rows predicted without any groups (``predict(X)``) use
        the pooled model, by design.

    inference_dtype : {"float32", "float64"}, default="float32"
        Precision of prediction. ``"float64"`` makes a row's prediction
        independent of the other rows of the call to the last bit (float32
        matrix products round differently with the batch), at some cost in
        speed; it is not available on every device (e.g. ``"mps"``).
        Probabilities and scores are returned as float64 arrays either way.

    n_threads : "auto", int or None, default="auto"
        torch intra-op threads used by ``fit``, ``partial_fit`` and
        prediction (torch's setting is restored afterwards; see
        :func:`skmeta.utils.torch_threads`). ``"auto"`` uses one thread for
        modules of fewer than a million parameters, which run fastest that
        way and do not slow down on a busy machine, and torch's setting for
        larger ones; ``None`` always leaves torch's setting alone.

    random_state : int, RandomState instance or None, default=None
        Seeds the module initialisation, the episodes, dropout and the
        choice of the rows kept (``support_size``). The same seed gives the
        same predictions; the caller's global torch random state is left
        untouched."""

_MIXTURE_ATTRIBUTES = """\
task_mixture_ : float
        The fitted share of the training tasks' mixture (``task_mixture``;
        chosen by leaving training tasks out when ``"auto"``): the prior
        share of every group first seen after ``fit``.

    task_mixture_weights_ : ndarray of shape (n_tasks, n_mixture_tasks)
        Weight of each training task's model (columns:
        ``task_mixture_tasks_``) in the prediction of each task of
        ``tasks_``; a new group's row sums to its share (``task_mixture_``
        updated by the evidence of its rows), a training task's row is 0.

    task_mixture_columns_ : bool
        Whether the mixture's weights use the density of the rows' columns
        as well as their classes (``task_mixture``).

    task_mixture_tasks_ : ndarray of shape (n_mixture_tasks,)
        The training tasks whose adapted models make the mixture (at most
        256, the largest)."""

_PREDICT_PARAMETERS = """\
X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Input rows.

        sensitive_features : array-like or DataFrame of shape (n_samples,) \
                or (n_samples, n_sensitive), default=None
            Sensitive group of each row, when groups are the tasks, with the
            columns given to ``fit`` (as many; the same names in the same
            order where both have names, else a ``ValueError``). Rows of a
            group never seen follow ``unknown_groups``; with no groups at
            all, every row uses the model adapted to the pooled data.

        tasks : array-like of shape (n_samples,), default=None
            Task of each row, when the model was fitted with ``tasks``."""

_SKORCH_PARAMETERS = """\
criterion : type of torch.nn.Module, default=torch.nn.CrossEntropyLoss
        Loss on logits; it is built with ``reduction="none"`` so that rows
        can be weighted.

    optimizer : type of torch.optim.Optimizer, default=torch.optim.Adam
        Optimizer of the outer (meta) loop; ``optimizer__*`` sets its
        arguments.

    lr : float, default=1e-3
        Learning rate of the outer loop.

    max_epochs : int, default=10
        Training epochs in ``fit``.

    batch_size : int, default=256
        Rows per batch at prediction and validation time.

    train_split : callable, default=None
        A skorch split such as ``skorch.dataset.ValidSplit(5)``. Validation
        rows are predicted as :meth:`predict` would, with each task adapted
        to its training rows. ``None`` trains on every row.

    callbacks : list of skorch callbacks, default=None
        Added to the defaults (``epoch_timer``, ``train_loss``,
        ``valid_loss``, ``valid_acc``, ``print_log``); see
        :class:`skorch.net.NeuralNet`. Scorers of ``EpochScoring`` see the
        targets encoded as positions in ``classes_``.

    device : str or torch.device, default="cpu"
        Where the module and the episodes live, e.g. ``"cuda"``.

    verbose : int, default=0
        ``1`` prints skorch's table of epochs.

    warm_start : bool, default=False
        Whether ``fit`` continues training the meta-learned network (and
        keeps its classes) instead of starting afresh; tasks and support sets
        come from the new call.

    iterator_train : type, default=torch.utils.data.DataLoader
        skorch's training iterator. Unused: training draws episodes.

    iterator_valid : type, default=torch.utils.data.DataLoader
        skorch's iterator over the validation rows of ``train_split``.

    dataset : type, default=skorch.dataset.Dataset
        skorch's dataset class, which holds the validation rows.

    predict_nonlinearity : "auto", default="auto"
        Kept for skorch's API; skmeta's probabilities are always the softmax
        of the logits, so any other value is rejected.

    compile : False, default=False
        skorch's ``torch.compile`` switch. skmeta evaluates the module
        functionally (per-task parameters), which a compiled module does not
        allow, so ``True`` is rejected.

    use_caching : "auto" or bool, default="auto"
        skorch's caching of predictions for its scoring callbacks.

    torch_load_kwargs : dict, default=None
        Arguments skorch passes to ``torch.load`` (``load_params``,
        unpickling).

    **kwargs : dict
        Any other :class:`skorch.net.NeuralNet` argument, and the prefixed
        ``module__*``, ``optimizer__*``, ``criterion__*``, ``callbacks__*``
        arguments."""


def fill_docstring(doc):
    """Replace the shared markers in ``doc`` (None under ``python -OO``)."""
    if doc is None:
        return None
    return (
        doc.replace("{episode_parameters}", _EPISODE_PARAMETERS)
        .replace("{common_parameters}", _COMMON_PARAMETERS)
        .replace("{skorch_parameters}", _SKORCH_PARAMETERS)
        .replace("{predict_parameters}", _PREDICT_PARAMETERS)
        .replace("{mixture_attributes}", _MIXTURE_ATTRIBUTES)
    )


def fill_doc(obj):
    """Decorator: :func:`fill_docstring` on ``obj.__doc__``."""
    obj.__doc__ = fill_docstring(obj.__doc__)
    return obj
