"""Model-agnostic meta-learning (MAML) as a scikit-learn classifier."""

from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset
from torch import nn
from torch.func import functional_call, vmap
from torch.utils.data import DataLoader

from . import _mixture
from ._base import _MetaClassifier
from ._compat import Interval, StrOptions
from ._functional import (
    InnerLearningRates,
    LearnedPrior,
    balance_classes,
    blocked_forward,
    inner_loop,
    materialize,
    mlp_forward,
    mlp_inner_loop,
    mlp_layers,
)
from ._heads import (
    _HEAD_BUDGET,
    _HEAD_FOLDS,
    _HEAD_ROWS,
    CVFolds,
    _head_dtype,
    choose_penalty,
    scatter_folds,
    shrunk_logistic,
)
from .modules import MLP
from .utils._docstrings import fill_docstring

# A learned prior strength starts at 10 rows: a default two-class support set,
# so that the data and the prior start level in training episodes.
_PRIOR_START = 10.0

# Rows per chunk when adding the tasks' logistic corrections at prediction.
_CORRECTION_CHUNK = 4096
# The tolerance of the corrections' penalty choice, in standard errors, for
# tasks of fewer than head_min_rows_ rows (the one-standard-error rule).
_HEAD_TOLERANCE = 1.0


class MAMLClassifier(_MetaClassifier):
    r"""Classifier that learns an initialisation which adapts to any group.

    Model-agnostic meta-learning [1]_ over groups: each sensitive group (or
    each task given with ``tasks=``) is a task. The outer loop learns
    parameters :math:`\theta_0` from which ``inner_steps`` gradient steps on
    a task's support rows give a good model for that task's query rows.
    After fitting, every task seen has its own adapted parameters;
    :meth:`partial_fit` adapts to a task never seen before from a handful of
    its rows.

    How far a task moves from :math:`\theta_0` is found from its rows: the
    inner loop descends a MAP objective, the task's loss plus a prior that
    pulls toward :math:`\theta_0` with a strength :math:`\lambda` worth
    :math:`\lambda` rows, meta-learned across the training tasks (empirical
    Bayes, as in implicit MAML [3]_):

    .. math::

        \frac{\sum_i w_i \ell_i(\theta)
            + \frac{\lambda}{2} \lVert \theta - \theta_0 \rVert^2}{n + \lambda}

    A task with few rows stays near :math:`\theta_0`; one with many rows,
    or whose rows clearly disagree with :math:`\theta_0`, moves toward its
    own fit. ``adaptation_weight_`` reports :math:`n / (n + \lambda)` for
    each task. Training and adaptation use the same inner objective, with
    the classes of the support rows weighted equally.

    Read more in the :ref:`User Guide <maml>`.

    Parameters
    ----------
    module : type of torch.nn.Module, default=skmeta.modules.MLP
        Network returning class logits. When its ``__init__`` accepts
        ``n_features_in`` and ``n_classes`` they are set from the data at
        fit time; ``module__*`` sets the others (e.g.
        ``module__hidden_units=(32, 32)``). Modules with batch
        normalisation are not supported.

    inner_lr : float, default=0.5
        Step size of the inner (adaptation) loop.

    inner_steps : int, default=16
        Gradient steps of the inner loop, in training and in adaptation.

    prior_strength : "learn" or float, default="learn"
        Strength :math:`\lambda \geq 0` of the prior toward
        :math:`\theta_0`, in rows: with :math:`n` (effective) support rows,
        the data weigh :math:`n / (n + \lambda)` and the prior
        :math:`\lambda / (n + \lambda)` in each step. ``"learn"``
        meta-learns it (starting at 10, on a log scale, with 30 times the
        outer learning rate; it keeps growing while training when the tasks
        hardly differ, and levels off where they do); a number fixes it;
        ``0`` gives plain MAML on the weighted mean support loss. With
        ``first_order=True`` it is learned through the weights of the two
        terms only.

    adapt_layers : {"all", "last"}, default="all"
        Which parameters adaptation changes: all of the network's, or only
        those of its last layer (ANIL: the rest is a representation shared by
        every task). ``"last"`` stores a few hundred numbers per task instead
        of the whole network (for the default MLP, 130 instead of about 1,500
        with 20 features), and its inner loop runs on the shared
        representation computed once, so training and adaptation are faster
        (for the default MLP, fit 1.8 to 2.4 times and a new-group
        ``partial_fit`` 1.3 to 2.2 times as fast in three recorded runs of
        ``benchmarks/bench_anil.py``); tasks can then differ only in that last
        layer.

    first_order : bool, default=False
        Use first-order MAML, which ignores second derivatives. The default
        is second-order MAML.

    learn_inner_lr : bool, default=False
        Meta-learn one inner step size per network weight (Meta-SGD [2]_),
        starting from ``inner_lr``. The meta-learner then decides how far
        each weight moves on a support set, for example keeping the shared
        representation and adapting the output layer.

    head : {"auto", "logistic", "none"}, default="auto"
        What each task's rows add to its adapted network.

        - ``"none"``: nothing; the task's adapted network classifies its rows.
        - ``"logistic"``: a logistic correction on the input columns: the
          task's logits are the adapted network's plus ``theta [x, 1]``,
          ``theta`` fitted to the task's rows (their weighted cross-entropy)
          and shrunk toward 0 by ``alpha / 2 |theta|^2``. The penalty
          ``alpha`` is chosen per task by stratified K-fold cross-validation
          on the task's rows (``K = min(5, rows of its rarest class)``; in
          each fold the network is adapted to the fold's rows alone) among
          ``10**-2, 10**-1.5, ..., 10**4`` and infinity (no correction), by
          the one-standard-error rule: the largest penalty whose held-out
          loss is within one standard error of the smallest. A task with
          fewer than two rows of a class gets no correction, nor, where
          ``task_spread_`` is not estimated, one with fewer than five (fewer
          than five folds, of one row of that class each: nothing tempers
          the choice, and the corrections it picks lose on the group's
          further rows, in log loss always). So a task that
          the adapted network serves keeps it, and one whose rows clearly
          disagree with it moves toward a logistic regression of its own.
          ``head_penalty_`` reports each task's penalty. The penalty is
          chosen on up to 40 of a task's rows and the correction fitted on
          up to 256, drawn in a fixed order. The input columns enter the
          penalty as they are: scale them (as the network needs anyway).
        - ``"auto"``: ``"logistic"``, except with a fairness penalty
          (``constraints`` and ``fairness_weight > 0``), where ``"none"``
          keeps the model that the penalty trained: a correction fitted to
          each task's rows for accuracy alone would not be held to it.
          With two classes, ``fit`` also estimates how far the training
          tasks' linear models spread around the pooled one
          (``task_spread_``, as :class:`PrototypicalClassifier` does), and
          from it ``head_min_rows_``, the rows from which a task's own
          coefficients are less noisy than that spread. A group added after
          ``fit`` with at least that many rows always gets a correction, of
          the penalty of smallest held-out loss among those up to ``1 /
          tau2`` (the precision of the spread; at least ``10**-2``), not the
          one-standard-error rule: its rows outweigh the prior the training
          tasks give, and a larger penalty would hold it closer to the
          network than the training tasks are to each other. The training
          tasks keep the rule (their rows made that prior, and their states
          are what new groups' mixtures borrow), but only those with at
          least ``head_min_rows_`` rows get a correction, as only those get
          a head in :class:`PrototypicalClassifier`: the network was
          meta-trained on their rows, and a training task with fewer rows
          keeps its adapted network (which also spares ``fit`` the
          cross-validation of many small groups). Groups added after
          ``fit`` with fewer rows keep the cross-validation.

    {episode_parameters}

    {common_parameters}

    Other Parameters
    ----------------
    {skorch_parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    n_features_in_ : int
        Number of columns of ``X`` seen in ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X``, when it is a DataFrame with string names.

    tasks_ : ndarray of shape (n_tasks,)
        Labels of the tasks that have an adapted state (sensitive groups, or
        ``tasks``), in order of their first appearance after sorting.

    groups_ : ndarray of shape (n_groups,)
        Sensitive groups seen in ``fit``.

    task_source_ : {"sensitive_features", "tasks", "pooled"}
        Where the tasks came from.

    task_states_ : list of dict
        Adapted parameters of each task in ``tasks_``.

    global_state_ : dict
        Parameters adapted to every support row, used for unknown tasks.

    head_ : {"logistic", "none"}
        The head in use (``head`` with ``"auto"`` resolved).

    head_penalty_ : ndarray of shape (n_tasks,)
        Penalty ``alpha`` of each task's logistic correction, for each task
        of ``tasks_`` (``inf``: no correction); only with the logistic head.

    task_spread_ : float
        With ``head="auto"``: the estimated variance ``tau2`` of the
        training tasks' linear coefficients around the pooled ones, per
        coefficient, beyond their sampling noise (see ``head``); NaN where
        it was not estimated (another head, fewer than two tasks with 10
        rows of each class, more than two classes, or a fairness penalty).

    head_min_rows_ : float
        Rows from which a group added after ``fit`` always gets a
        correction, its penalty the one of smallest held-out loss up to ``1
        / tau2``, and below which a training task gets none (see ``head``):
        ``1 / (tau2 v)`` (``v`` the pooled model's mean ``p (1 - p)``);
        ``inf`` where ``task_spread_`` is NaN (the one-standard-error rule
        for every task with five rows of its rarest class) or not positive
        (no training task gets a correction).

    dro_weights_ : torch.Tensor of shape (n_tasks,)
        Group DRO weights of the training tasks at the end of training; only
        with ``dro_step_size > 0``.

    module_ : torch.nn.Module
        The meta-learned network (skorch attribute).

    meta_sgd_ : InnerLearningRates
        The learned inner step sizes; only with ``learn_inner_lr=True``.

    prior_ : LearnedPrior
        The meta-learned prior strength; only with ``prior_strength="learn"``
        (save it with ``save_params(f_prior=...)``).

    prior_strength_ : float
        The prior strength :math:`\lambda` in force (learned or given).

    {mixture_attributes}

    adaptation_weight_ : ndarray of shape (n_tasks,)
        :math:`n / (n + \lambda)` of each task of ``tasks_``: how much its
        state owes to its own rows (0: the meta-learned parameters; near 1:
        its own fit).

    history_ : skorch.History
        Training history (skorch attribute), one row per epoch.

    See Also
    --------
    PrototypicalClassifier : Class prototypes per group in a learned embedding.

    Notes
    -----
    The meta-batch is processed in one call: the inner loop runs under
    :func:`torch.func.vmap` over tasks, on padded support and query sets
    whose padding weighs zero. Unknown tasks are predicted with the
    meta-learned parameters adapted to the whole pooled support set (every
    row seen in ``fit`` and ``partial_fit``), since a MAML initialisation is
    trained to be adapted before use.

    References
    ----------
    .. [1] C. Finn, P. Abbeel, S. Levine, "Model-Agnostic Meta-Learning for
       Fast Adaptation of Deep Networks", ICML 2017.
    .. [2] Z. Li, F. Zhou, F. Chen, H. Li, "Meta-SGD: Learning to Learn
       Quickly for Few-Shot Learning", arXiv:1707.09835, 2017.
    .. [3] A. Rajeswaran, C. Finn, S. Kakade, S. Levine, "Meta-Learning with
       Implicit Gradients", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import MAMLClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> groups = rng.choice(["a", "b"], size=200)
    >>> y = (X[:, 0] + (groups == "b") > 0).astype(int)
    >>> clf = MAMLClassifier(max_epochs=2, random_state=0)
    >>> clf = clf.fit(X, y, sensitive_features=groups)
    >>> clf.predict(X[:3], sensitive_features=groups[:3]).shape
    (3,)
    """

    _module_outputs_classes = True
    _FAIR_HEAD = "none"
    _UNESTIMATED_MIN_ROWS = np.inf
    _HEAD_PENALTY = "head_penalty"

    _parameter_constraints = {
        **_MetaClassifier._parameter_constraints,
        "inner_lr": [Interval(Real, 0, None, closed="neither")],
        "inner_steps": [Interval(Integral, 1, None, closed="left")],
        "first_order": ["boolean"],
        "learn_inner_lr": ["boolean"],
        "prior_strength": [
            StrOptions({"learn"}),
            Interval(Real, 0, None, closed="left"),
        ],
        "adapt_layers": [StrOptions({"all", "last"})],
        "head": [StrOptions({"auto", "logistic", "none"})],
    }

    def __init__(
        self,
        module=MLP,
        *,
        inner_lr=0.5,
        inner_steps=16,
        prior_strength="learn",
        adapt_layers="all",
        head="auto",
        first_order=False,
        learn_inner_lr=False,
        n_shots=5,
        n_queries=15,
        meta_batch_size=8,
        steps_per_epoch=None,
        variable_shots=False,
        task_sampling="proportional",
        class_prior="auto",
        constraints=None,
        fairness_weight=0.0,
        fairness_temperature=0.1,
        dro_step_size=0.0,
        pooled_episodes=0.0,
        pretrain_epochs=10,
        online_meta_update=False,
        task_mixture="auto",
        support_size=500,
        unknown_groups="warn",
        inference_dtype="float32",
        n_threads="auto",
        sensitive_columns=None,
        random_state=None,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=256,
        train_split=None,
        callbacks=None,
        device="cpu",
        verbose=0,
        warm_start=False,
        iterator_train=DataLoader,
        iterator_valid=DataLoader,
        dataset=Dataset,
        predict_nonlinearity="auto",
        compile=False,
        use_caching="auto",
        torch_load_kwargs=None,
        **kwargs,
    ):
        super().__init__(
            module,
            n_shots=n_shots,
            n_queries=n_queries,
            meta_batch_size=meta_batch_size,
            steps_per_epoch=steps_per_epoch,
            variable_shots=variable_shots,
            task_sampling=task_sampling,
            class_prior=class_prior,
            constraints=constraints,
            fairness_weight=fairness_weight,
            fairness_temperature=fairness_temperature,
            dro_step_size=dro_step_size,
            pooled_episodes=pooled_episodes,
            pretrain_epochs=pretrain_epochs,
            online_meta_update=online_meta_update,
            task_mixture=task_mixture,
            support_size=support_size,
            unknown_groups=unknown_groups,
            inference_dtype=inference_dtype,
            n_threads=n_threads,
            sensitive_columns=sensitive_columns,
            random_state=random_state,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=verbose,
            warm_start=warm_start,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            dataset=dataset,
            predict_nonlinearity=predict_nonlinearity,
            compile=compile,
            use_caching=use_caching,
            torch_load_kwargs=torch_load_kwargs,
            **kwargs,
        )
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.first_order = first_order
        self.learn_inner_lr = learn_inner_lr
        self.prior_strength = prior_strength
        self.adapt_layers = adapt_layers
        self.head = head

    def initialize_module(self):
        super().initialize_module()
        # Further modules, so that skorch's optimizer, device moves and
        # pickling handle them as they handle the network.
        if self.learn_inner_lr:
            self.meta_sgd_ = InnerLearningRates(self.module_, self.inner_lr).to(
                self.device
            )
        if self.prior_strength == "learn":
            self.prior_ = LearnedPrior(strength=_PRIOR_START).to(self.device)
        return self

    def _step_sizes(self):
        return self.meta_sgd_() if self.learn_inner_lr else self.inner_lr

    def _prior_strength_value(self):
        """The prior strength, a tensor (differentiable when learned)."""
        if self.prior_strength == "learn":
            return self.prior_()["strength"]
        return torch.tensor(float(self.prior_strength), device=self.device)

    @property
    def prior_strength_(self):
        check_is_fitted(self)
        return float(self._prior_strength_value().detach())

    def _adapted_names(self):
        """Names of the parameters adaptation changes (``adapt_layers``)."""
        names = [name for name, _ in self.module_.named_parameters()]
        if self.adapt_layers == "all":
            return names
        last = [
            (prefix, module)
            for prefix, module in self.module_.named_modules()
            if any(True for _ in module.parameters(recurse=False))
        ][-1][0]
        return [
            name
            for name in names
            if name.rpartition(".")[0] == last or (not last and "." not in name)
        ]

    def _adapt(self, params, frozen, X, y, w, n, *, first_order):
        """One task's general-path adaptation (under vmap)."""
        return inner_loop(
            self.module_,
            params,
            dict(self.module_.named_buffers()),
            self.criterion_,
            X,
            y,
            w,
            inner_lr=self._step_sizes(),
            n_steps=self.inner_steps,
            first_order=first_order,
            prior_strength=self._prior_strength_value(),
            n_rows=n,
            frozen=frozen,
        )

    def _check_module(self):
        for layer in self.module_.modules():
            if isinstance(layer, nn.modules.batchnorm._NormBase) and (
                layer.track_running_stats
            ):
                raise ValueError(
                    f"module contains {type(layer).__name__}, whose running "
                    "statistics are updated in place during the forward pass; "
                    "MAMLClassifier adapts every task's parameters at once (under "
                    "torch.func.vmap), which such layers do not allow. Use "
                    "torch.nn.LayerNorm, or a normalisation layer with "
                    "track_running_stats=False."
                )

    def _divergence_hints(self):
        return [f"lower inner_lr (now {self.inner_lr})"]

    def _fast_layers(self, *, training):
        """The layers of the default MLP when the closed-form path applies.

        The inner loop then runs :func:`~skmeta._functional.mlp_inner_loop`
        (hand-written gradients, batched over tasks) instead of
        :func:`torch.func.grad` under :func:`torch.func.vmap`; both give the
        same result (the tests compare them). Any other module or criterion
        takes the general path.
        """
        criterion = self.criterion_
        if not (
            type(criterion) is nn.CrossEntropyLoss
            and criterion.weight is None
            and criterion.label_smoothing == 0
        ):
            return None
        return mlp_layers(self.module_, dropout_ok=not training)

    def _adapt_batch(self, params, X, y, w, *, first_order):
        """Adapted parameters of a batch of padded support sets.

        The support loss weighs the classes equally and the MAP objective
        counts the support's effective rows (its summed weight), in training
        and in adaptation alike. Returns ``(adapted, factors)``: the
        closed-form path may keep wide weight matrices factored (see
        :func:`~skmeta._functional.mlp_inner_loop`); the general path has no
        factors.
        """
        n = w.sum(-1)
        balanced = balance_classes(y, w, len(self.classes_))
        layers = self._fast_layers(training=True)
        if layers is not None:
            return mlp_inner_loop(
                layers,
                params,
                X,
                y,
                balanced,
                inner_lr=self._step_sizes(),
                n_steps=self.inner_steps,
                first_order=first_order,
                prior_strength=self._prior_strength_value(),
                n_rows=n,
                adapt_from=len(layers) - 1 if self.adapt_layers == "last" else 0,
            )
        names = set(self._adapted_names())
        head = {k: v for k, v in params.items() if k in names}
        frozen = {k: v for k, v in params.items() if k not in names}

        def adapt(Xs, ys, ws, ns):
            return self._adapt(head, frozen, Xs, ys, ws, ns, first_order=first_order)

        adapted = vmap(adapt, randomness="different")(X, y, balanced, n)
        return {**frozen, **adapted}, {}

    def _query_logits(self, episodes):
        """Query logits of every task of a meta-batch, after adaptation."""
        params = dict(self.module_.named_parameters())
        adapted, factors = self._adapt_batch(
            params,
            episodes["support_X"],
            episodes["support_y"],
            episodes["support_w"],
            first_order=self.first_order,
        )
        layers = self._fast_layers(training=True)
        if layers is not None:
            return mlp_forward(layers, adapted, episodes["query_X"], factors)
        buffers = dict(self.module_.named_buffers())
        names = set(self._adapted_names())
        frozen = {k: v for k, v in adapted.items() if k not in names}
        per_task = {k: v for k, v in adapted.items() if k in names}

        def query_logits(p, Xq):
            return functional_call(self.module_, ({**frozen, **p}, buffers), (Xq,))

        return vmap(query_logits, randomness="different")(per_task, episodes["query_X"])

    def _max_tasks_per_batch(self):
        # Each task of a batch holds its own copy of the parameters (and the
        # inner loop's intermediate values): about 2**23 floats per batch.
        n_params = sum(p.numel() for p in self.module_.parameters())
        return max(1, 2**23 // max(n_params, 1))

    def _adapt_states(self, X, y, w, prior, new=True):
        """Parameters adapted to each padded support set (first order), and
        the share ``n / (n + prior strength)`` of each support's own rows.
        ``new`` (a bool or one per support) marks supports of groups new to
        the model (see ``_head_rule``)."""
        params = {k: v.detach() for k, v in self.module_.named_parameters()}
        n = w.sum(-1)
        weight = n / (n + self._prior_strength_value()).clamp_min(1e-12)
        if self.head_ != "logistic" or prior is None:
            states = self._adapted_states(params, X, y, w)
            if self.head_ == "logistic":  # the pooled state: no correction
                shape = (len(X), len(self.classes_))
                states.update(
                    head_coef=X.new_zeros(shape + (X.shape[-1],)),
                    head_bias=X.new_zeros(shape),
                    head_penalty=X.new_zeros(len(X)),
                )
            return states, weight
        folds = CVFolds(y, w, len(self.classes_))
        # Rows of the rarest class a task needs (_head_min_class_rows), and a
        # training task (not ``new``) head_min_rows_ rows where the spread was
        # estimated (see ``head``).
        gate = folds.n_min >= self._head_min_class_rows()
        if not np.isnan(self.__dict__.get("task_spread_", np.nan)):
            trusted = (w > 0).sum(1) >= self.head_min_rows_
            gate &= trusted | torch.as_tensor(new, device=gate.device)
        folds.tasks = folds.tasks[gate[folds.tasks]]
        chunks = folds.chunks(self._max_tasks_per_batch())
        live = folds.live(chunks[0]) if chunks else None
        fits = len(X) + int(live.sum()) if chunks else None
        if (
            fits is not None
            and fits <= self._max_tasks_per_batch()
            and (X.shape[1] == folds.rows.shape[1])
        ):
            # The tasks and the (live) folds of the heads' first chunk adapted
            # in one batch: small tasks (all their rows cross-validated), so
            # the folds have the tasks' width.
            xf, yf, wf = folds.inputs(X, chunks[0])
            both = self._adapted_states(
                params,
                torch.cat([X, xf[live]]),
                torch.cat([y, yf[live]]),
                torch.cat([w, wf[live]]),
            )
            states = {k: v[: len(X)] for k, v in both.items()}
            first = (xf, yf, wf, {k: v[len(X) :] for k, v in both.items()})
        else:
            states = self._adapted_states(params, X, y, w)
            first = None
        coef, bias, penalty, own = self._logistic_heads(
            X, y, w, params, states, folds, new, first
        )
        # None for the tasks not cross-validated (the mixture's evidence
        # adapts their folds' networks itself).
        validated = torch.zeros(len(X), dtype=torch.bool)
        validated[folds.tasks.cpu()] = True
        states[_mixture.OWN] = [
            o if v else None for o, v in zip(own, validated.tolist(), strict=True)
        ]
        states.update(head_coef=coef, head_bias=bias, head_penalty=penalty)
        return states, weight

    def _adapted_states(self, params, X, y, w):
        """The adapted parameters (those adaptation changes) of each padded
        support set, first order."""
        adapted, factors = self._adapt_batch(params, X, y, w, first_order=True)
        names = set(self._adapted_names())
        return {k: v for k, v in materialize(adapted, factors).items() if k in names}

    def _fold_logits(self, X, y, w, prior):
        """Logits of the padded rows ``X`` under the network adapted to the
        rows of weight ``w`` (no correction), in the heads' dtype."""
        params = {k: v.detach() for k, v in self.module_.named_parameters()}
        return self._task_logits(self._adapted_states(params, X, y, w), X)

    def _task_logits(self, states, X):
        """Logits of the rows ``X`` (T, m, d) under the networks ``states``
        (T tasks, no correction), in the heads' dtype."""
        T, m, d = X.shape
        index = torch.arange(T, device=X.device).repeat_interleave(m)
        logits = self._state_logits(X.reshape(-1, d), index, states, X.dtype)
        return logits.reshape(T, m, -1).to(_head_dtype(X.device))

    def _logistic_heads(self, X, y, w, params, states, folds, new, first=None):
        """Each task's logistic correction on ``[x, 1]``, shrunk toward 0,
        its penalty chosen by cross-validation (see ``head``).

        For each task whose selected rows hold at least two rows of every
        class, stratified K-fold on up to ``_HEAD_CV_ROWS`` of its rows
        scores no correction and the corrections of every penalty of
        ``_HEAD_PENALTIES``; in each fold the network is adapted to the
        fold's rows alone, so the held-out rows score the whole rule. The
        correction is then fitted on up to ``_HEAD_ROWS`` rows to the
        adapted network's logits. ``folds`` (:class:`~skmeta._heads.CVFolds`)
        are the tasks' folds; ``first``, where given, the inputs of the folds
        of their first chunk and their networks, adapted already. Returns the
        corrections' ``coef`` and ``bias`` and the penalties, 0 where there
        is no correction, and each cross-validated row's log-probability of
        its class under each fold's network (``_mixture.OWN``; NaN for tasks
        not cross-validated), which the mixture's evidence reuses.
        """
        n_tasks, n_rows, n_features = X.shape
        n_classes = len(self.classes_)
        dtype = _head_dtype(X.device)
        coef = X.new_zeros((n_tasks, n_classes, n_features))
        bias = X.new_zeros((n_tasks, n_classes))
        penalty = X.new_zeros(n_tasks)
        m = folds.rows.shape[1]
        own = torch.full((n_tasks, _HEAD_FOLDS, m), torch.nan, dtype=dtype)
        own = own.to(X.device)
        tolerance, max_penalty = self._head_rule((w > 0).sum(1), _HEAD_TOLERANCE, new)
        for i, chunk in enumerate(folds.chunks(self._max_tasks_per_batch())):
            # Each fold's network: adapted to the fold's rows alone.
            T = len(chunk)
            # Only the folds that fit on some row (``live``) are adapted.
            live = folds.live(chunk)
            if i == 0 and first is not None:
                xf, yf, wf, fold_states = first
            else:
                xf, yf, wf = folds.inputs(X, chunk)
                fold_states = self._adapted_states(params, xf[live], yf[live], wf[live])
            f0 = scatter_folds(live, self._task_logits(fold_states, xf[live]))
            f0 = f0.reshape(T, _HEAD_FOLDS, m, -1)
            yc, wc = folds.y[chunk], folds.w[chunk]
            own[chunk] = _mixture.own_log_likelihood(f0, yc)
            x = xf.view(T, _HEAD_FOLDS, m, n_features)[:, 0]
            phi = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], -1).to(dtype)
            fit, held_out, used = folds.masks(chunk)
            penalty[chunk] = choose_penalty(
                phi,
                f0,
                yc,
                wc.to(dtype),
                fit,
                held_out,
                used,
                tolerance[chunk],
                max_penalty[chunk],
            ).to(penalty.dtype)
        order = folds.order
        tasks = (penalty > 0).nonzero().flatten()
        m = min(n_rows, _HEAD_ROWS)
        per_chunk = max(1, _HEAD_BUDGET // max(m * m, 14 * m))
        for start in range(0, len(tasks), per_chunk):
            chunk = tasks[start : start + per_chunk]
            rows = order[chunk, :m]
            x = X[chunk].gather(1, rows[..., None].expand(-1, -1, n_features))
            task_states = {k: v[chunk] for k, v in states.items()}
            f0 = self._task_logits(task_states, x)
            phi = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], -1).to(dtype)
            theta = shrunk_logistic(
                phi,
                f0,
                y[chunk].gather(1, rows),
                w[chunk].gather(1, rows).to(dtype),
                penalty[chunk].to(dtype),
            ).to(coef.dtype)  # (T, K, d + 1)
            coef[chunk], bias[chunk] = theta[..., :-1], theta[..., -1]
        return coef, bias, penalty, own

    def _state_logits(self, X, index, states, dtype):
        buffers = {
            k: v.to(dtype) if v.is_floating_point() else v
            for k, v in self.module_.named_buffers()
        }
        layers = self._fast_layers(training=False)
        forward = None if layers is None else partial(mlp_forward, layers)
        names = self._param_names()
        params = {k: v for k, v in states.items() if k in names}
        shared = {
            k: v.to(dtype)
            for k, v in self.module_.named_parameters()
            if k not in params
        }
        out = blocked_forward(
            self.module_,
            params,
            buffers,
            X,
            index,
            forward=forward,
            shared=shared,
        )
        if "head_coef" in states:  # each task's logistic correction
            coef, bias = states["head_coef"].to(dtype), states["head_bias"].to(dtype)
            for start in range(0, len(X), _CORRECTION_CHUNK):
                rows = index[start : start + _CORRECTION_CHUNK]
                chunk = slice(start, start + len(rows))
                x = X[chunk].unsqueeze(-1)
                correction = (coef.index_select(0, rows) @ x).squeeze(-1)
                out[chunk] += correction + bias.index_select(0, rows)
        return out

    def _auto_head(self, support):
        """``"logistic"``, with the rows from which a task's correction is
        chosen by its smallest held-out loss (``head_min_rows_``) from the
        training tasks' spread (see ``head``)."""
        self._estimate_spread(support)
        return "logistic"

    def _param_names(self):
        return {name for name, _ in self.module_.named_parameters()}

    @property
    def global_state_(self):
        """Parameters adapted to the pooled support set (unknown tasks); with
        ``adapt_layers="last"``, those of the last layer."""
        names = self._param_names()
        return {name: v[0] for name, v in self.states_.items() if name in names}

    @property
    def task_states_(self):
        """Adapted parameters of each task of ``tasks_``."""
        names = self._param_names()
        return [
            {name: v[t + 1] for name, v in self.states_.items() if name in names}
            for t in range(len(self.tasks_))
        ]


MAMLClassifier.__doc__ = fill_docstring(MAMLClassifier.__doc__)
