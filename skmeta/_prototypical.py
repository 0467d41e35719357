"""Prototypical networks as a scikit-learn classifier."""

from numbers import Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset
from torch import nn
from torch.utils.data import DataLoader

from ._base import _MetaClassifier
from ._compat import Interval, StrOptions
from ._functional import (
    LearnedPrior,
    class_sums,
    prototype_logits,
    shrunk_prototypes,
    stateless_forward,
)
from ._heads import (
    _HEAD_BUDGET,
    _HEAD_ROWS,
    _head_dtype,
    allowed_candidates,
    choose_penalty,
    cv_chunk,
    cv_losses,
    cv_rows,
    one_standard_error_index,
    shrunk_logistic,
    stratified_folds,
)
from ._task_mixture import repeated_states
from .modules import EmbeddingMLP
from .utils._docstrings import fill_docstring

# Rows per chunk at prediction (see _state_logits).
_DISTANCE_CHUNK = 4096

# Starting value of a learned shrinkage (rows).
_SHRINKAGE_START = 2.0


# The tolerance of the heads' penalty choice, in standard errors: half of the
# one-standard-error rule (benchmarks/README.md, "How cautious should the
# penalty choice be?").
_HEAD_TOLERANCE = 0.5

# At most this many tasks, each with all its rows among those that choose its
# penalty, have their heads fitted with the cross-validation's problems (see
# _logistic_heads); more tasks amortise a second solve, whose problems are
# smaller.
_MERGED_TASKS = 8


class PrototypicalClassifier(_MetaClassifier):
    """Classifier that summarises each group's classes by prototypes.

    Prototypical networks [1]_ over groups: a network embeds rows; in each
    episode the prototype of a class is the weighted mean of the embedded
    support rows of that class, and query rows are classified by a softmax
    over minus their squared Euclidean distances to the prototypes, times a
    scale ``s``. The loss of a query row of class ``y`` is
    ``-log softmax(-s * d(f(x), c))_y``.

    After fitting, each task (sensitive group, or ``tasks``) has its own
    prototypes, shrunk toward the global prototypes: the prototype of class
    ``k`` in task ``t`` is ``(n_tk * mean_tk + kappa * c_k) / (n_tk +
    kappa)``, so a task with few rows of a class stays near the global
    prototype and one with many rows has its own. The strength ``kappa`` (in
    rows) is meta-learned across the training tasks (empirical Bayes), with
    the training episodes shrinking toward the prototypes of the meta-batch
    exactly as adaptation does; ``adaptation_weight_`` reports each task's
    ``n_tk / (n_tk + kappa)``, averaged over its classes. By default
    (``head``) each task's rows then fit a logistic head on the embedding
    and the input columns, shrunk toward the head of its prototypes by a
    penalty chosen per task by cross-validation: a task whose rows agree
    with its prototypes keeps them, one whose rows clearly disagree moves
    toward its own linear model. The network is trained for the prototype
    head only. Rows of unknown tasks use the global prototypes.
    :meth:`partial_fit` on a new task computes its prototypes (and head)
    from the rows given. Predictions of a row do not depend on the other rows of a
    ``predict`` call (up to float64 rounding).

    Read more in the :ref:`User Guide <prototypical>`.

    Parameters
    ----------
    module : type of torch.nn.Module, default=skmeta.modules.EmbeddingMLP
        Embedding network. When its ``__init__`` accepts ``n_features_in``
        it is set from the data; ``module__*`` sets the rest (e.g.
        ``module__embedding_dim=16``).

    shrinkage : "learn" or float, default="learn"
        Strength ``kappa >= 0`` of the global prototypes in a task's
        prototypes: ``c_tk = (n_tk * mean_tk + kappa * c_k) / (n_tk +
        kappa)`` where ``n_tk`` is the (effective) number of the task's rows
        of class ``k``. In training episodes the global prototypes are those
        of the whole meta-batch. ``"learn"`` meta-learns it (starting at 2,
        on a log scale, with 30 times the outer learning rate); a number
        fixes it; ``0`` gives plain per-task prototypes.

    distance_scale : "learn" or float, default="learn"
        Scale ``s > 0`` of the squared distances in the logits (an inverse
        temperature). ``"learn"`` meta-learns it (starting at 1, as the
        prior strength); a number fixes it.

    head : {"auto", "logistic", "prototypes"}, default="auto"
        How each task's rows are classified once the network is trained.

        - ``"prototypes"``: by the task's prototypes, as in training.
        - ``"logistic"``: by a logistic regression on ``[f(x), x]`` (the
          embedding and the input columns) fitted to the task's rows and
          shrunk toward the task's prototype head (the prototypes' logits
          are linear in the embedding): it minimises the rows' weighted
          cross-entropy plus ``alpha / 2`` times the squared distance of its
          coefficients and intercept to the prototype head's. The penalty
          ``alpha`` is chosen per task by stratified K-fold cross-validation
          on the task's rows (``K = min(5, rows of its rarest class)``)
          among ``10**-2, 10**-1.5, ..., 10**4`` and infinity (the prototypes
          themselves), by a half-standard-error rule: the largest penalty
          whose held-out loss is within half a standard error of the
          smallest.
          A task with fewer than two rows of a class keeps its prototypes,
          and, where ``task_spread_`` is not estimated, one with fewer than
          five (fewer than five folds, of one row of that class each:
          nothing tempers the choice, and the heads it picks lose on the
          group's further rows in log loss, in balanced accuracy on most
          data).
          So a task close to the others keeps its prototypes, and one whose
          rows clearly disagree with them gets its own linear model.
          ``head_penalty_`` reports each task's penalty. The penalty is
          chosen on up to 40 of a task's rows and the head fitted on up to
          256, drawn in a fixed order. The input columns enter the penalty
          as they are: scale them (as the network needs anyway).
        - ``"auto"``: ``"logistic"`` for tasks with enough rows to fit a
          linear model of their own, as the training tasks tell (below);
          ``"prototypes"`` where no task can have enough; and with a
          fairness penalty (``constraints`` and ``fairness_weight > 0``)
          ``"prototypes"``, which keeps the head that the penalty trained: a
          head refitted to each task's rows for accuracy alone would not be
          held to it.

          How many rows are enough comes from how far the training tasks'
          linear models spread around the pooled one (two classes only; an
          empirical-Bayes estimate, ``task_spread_``): a ridge logistic
          regression on standardised columns is fitted to the pooled rows,
          and to each half of each training task's rows (tasks with at least
          10 rows of each class, at most 100 per class) one shrunk toward
          it; the mean product of the two halves' changes from the pooled
          coefficients estimates their variance ``tau2`` around the pooled
          ones, free of the noise of fitting them. A task's coefficients
          fitted on ``n`` rows have a sampling variance of about ``1 / (n
          v)`` each (``v`` the mean ``p (1 - p)`` of the pooled model), so a
          head of its own can only pay once ``n >= 1 / (tau2 v)``
          (``head_min_rows_``):
          tasks with fewer rows keep their prototypes, the others choose by
          cross-validation as above; a group added after ``fit`` with that
          many rows always gets a head of its own, of the penalty of
          smallest held-out loss among those up to ``1 / tau2`` (the
          precision of the spread; at least ``10**-2``) rather than by half
          the one-standard-error rule, since its rows outweigh the prior the
          training tasks give and a larger penalty would hold it closer to
          its prototypes than the training tasks are to each other (the
          training tasks keep the rule: their rows made that prior, and
          their states are what new groups' mixtures borrow). Where the
          training tasks differ no more than their noise (``tau2 <= 0``) no
          task gets a head; where fewer than two tasks can be counted, or
          with more than two classes, every task may.

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
        Labels of the tasks with their own prototypes.

    groups_ : ndarray of shape (n_groups,)
        Sensitive groups seen in ``fit``.

    task_source_ : {"sensitive_features", "tasks", "pooled"}
        Where the tasks came from.

    task_states_ : list of torch.Tensor of shape (n_classes, embedding_dim)
        Prototypes of each task in ``tasks_``.

    head_ : {"logistic", "prototypes"}
        The head in use (``head`` with ``"auto"`` resolved).

    head_penalty_ : ndarray of shape (n_tasks,)
        Penalty ``alpha`` of each task's logistic head, for each task of
        ``tasks_`` (``inf``: the task keeps its prototypes); only with the
        logistic head.

    task_spread_ : float
        With ``head="auto"``: the estimated variance ``tau2`` of the
        training tasks' linear coefficients around the pooled ones, per
        coefficient, beyond their sampling noise (see ``head``); NaN where
        it was not estimated (another head, fewer than two tasks with 10
        rows of each class, more than two classes, or a fairness penalty).

    head_min_rows_ : float
        Fewest rows a task needs for a logistic head of its own: ``1 / (tau2
        v)`` with ``head="auto"`` (``inf`` where ``tau2 <= 0``, 0 where it
        could not be estimated), 0 with ``head="logistic"`` and ``inf`` with
        the prototypes. Where ``tau2`` is not estimated a task also needs
        five rows of its rarest class (see ``head``).

    global_state_ : torch.Tensor of shape (n_classes, embedding_dim)
        Global prototypes (all support rows).

    dro_weights_ : torch.Tensor of shape (n_tasks,)
        Group DRO weights of the training tasks at the end of training; only
        with ``dro_step_size > 0``.

    prior_strength_ : float
        The shrinkage ``kappa`` in force (learned or given).

    distance_scale_ : float
        The distance scale ``s`` in force (learned or given).

    {mixture_attributes}

    adaptation_weight_ : ndarray of shape (n_tasks,)
        ``n_tk / (n_tk + kappa)`` of each task of ``tasks_``, averaged over its
        classes: how much its prototypes owe to its own rows (with the
        logistic head, see also ``head_penalty_``).

    prior_ : LearnedPrior
        The meta-learned ``kappa`` and ``s``, when learned (save it with
        ``save_params(f_prior=...)``).

    module_ : torch.nn.Module
        The embedding network (skorch attribute).

    history_ : skorch.History
        Training history (skorch attribute).

    See Also
    --------
    MAMLClassifier : A meta-learned initialisation adapted by gradient steps.

    References
    ----------
    .. [1] J. Snell, K. Swersky, R. Zemel, "Prototypical Networks for
       Few-shot Learning", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import PrototypicalClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3))
    >>> groups = rng.choice(["a", "b"], size=200)
    >>> y = (X[:, 0] + (groups == "b") > 0).astype(int)
    >>> clf = PrototypicalClassifier(max_epochs=2, random_state=0)
    >>> clf.fit(X, y, sensitive_features=groups).predict_proba(X[:2]).shape
    (2, 2)
    """

    _module_outputs_classes = False
    _task_states_use_global = True  # task prototypes shrink toward the global
    _FAIR_HEAD = "prototypes"
    _HEAD_PENALTY = "penalty"

    _parameter_constraints = {
        **_MetaClassifier._parameter_constraints,
        "shrinkage": [StrOptions({"learn"}), Interval(Real, 0, None, closed="left")],
        "distance_scale": [
            StrOptions({"learn"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "head": [StrOptions({"auto", "prototypes", "logistic"})],
    }

    def __init__(
        self,
        module=EmbeddingMLP,
        *,
        shrinkage="learn",
        distance_scale="learn",
        head="auto",
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
        self.shrinkage = shrinkage
        self.distance_scale = distance_scale
        self.head = head

    def initialize_module(self):
        super().initialize_module()
        start = {}
        if self.shrinkage == "learn":
            start["strength"] = _SHRINKAGE_START
        if self.distance_scale == "learn":
            start["scale"] = 1.0
        if start:
            # A further module: skorch's optimizer, device moves and pickling
            # handle it as they handle the network.
            self.prior_ = LearnedPrior(**start).to(self.device)
        return self

    def _pretrain_head(self, n_outputs):
        # A linear classifier on the embedding, used in pretraining only.
        return nn.Linear(n_outputs, len(self.classes_))

    def _learned(self, name, value):
        if value == "learn":
            return self.prior_()[name]
        return torch.tensor(float(value), device=self.device)

    def _kappa(self):
        return self._learned("strength", self.shrinkage)

    def _scale(self):
        return self._learned("scale", self.distance_scale)

    @property
    def prior_strength_(self):
        check_is_fitted(self)
        return float(self._kappa().detach())

    @property
    def distance_scale_(self):
        check_is_fitted(self)
        return float(self._scale().detach())

    def _embed(self, X):
        return self.module_(X.flatten(0, -2)).unflatten(0, X.shape[:-1])

    def _query_logits(self, episodes):
        """Query logits of every task of a meta-batch.

        Each task's prototypes shrink toward those of the whole meta-batch;
        classes without a prototype get the most negative finite logit.
        """
        n_classes = len(self.classes_)
        support_X = episodes["support_X"]
        n_support = support_X.shape[1]
        # One forward (and backward) pass over support and query rows: half
        # the per-layer calls of two passes, the same embeddings.
        embedded = self._embed(torch.cat([support_X, episodes["query_X"]], 1))
        sums, counts = class_sums(
            embedded[:, :n_support],
            episodes["support_y"],
            episodes["support_w"],
            n_classes,
        )
        pooled_counts = counts.sum(0)
        pooled = sums.sum(0) / pooled_counts.clamp_min(1e-12)[:, None]
        prototypes, present = shrunk_prototypes(
            sums, counts, pooled, pooled_counts > 0, self._kappa()
        )
        return prototype_logits(
            embedded[:, n_support:], prototypes, present, self._scale()
        )

    def _adapt_states(self, X, y, w, prior, new=True):
        """Prototypes of each padded support set, and the share of its own rows.

        The pooled state (``prior=None``) holds the plain class means; a
        task's prototypes shrink toward them. With ``head="logistic"`` the
        states also hold each task's head (see :meth:`_logistic_heads`;
        ``new``, a bool or one per support, marks groups new to the model).
        """
        embedded = self._embed(X)
        sums, counts = class_sums(embedded, y, w, len(self.classes_))
        present = counts > 0
        if prior is None:
            prototypes = sums / counts.clamp_min(1e-12)[..., None]
            weight = torch.ones(len(X), device=X.device)
            states = {"prototypes": prototypes, "present": present}
            if self.head_ == "logistic":
                coef, bias = self._prototype_head(prototypes, X.shape[-1])
                penalty = torch.zeros(len(X), device=X.device)
                states.update(coef=coef, bias=bias, penalty=penalty)
            return states, weight
        kappa = self._kappa()
        prototypes, present_or_prior = shrunk_prototypes(
            sums, counts, prior["prototypes"], prior["present"], kappa
        )
        share = counts / (counts + kappa).clamp_min(1e-12)
        weight = (share * present).sum(-1) / present.sum(-1).clamp_min(1)
        states = {"prototypes": prototypes, "present": present_or_prior}
        if self.head_ == "logistic":
            coef, bias, penalty = self._logistic_heads(
                X, embedded, y, w, prototypes, present_or_prior, prior, new
            )
            states.update(coef=coef, bias=bias, penalty=penalty)
        return states, weight

    def _fold_logits(self, X, y, w, prior):
        """Logits of the padded rows ``X`` under the prototypes of the rows
        of weight ``w``, shrunk toward the prior (no head)."""
        embedded = self._embed(X)
        sums, counts = class_sums(embedded, y, w, len(self.classes_))
        prototypes, present = shrunk_prototypes(
            sums, counts, prior["prototypes"], prior["present"], self._kappa()
        )
        return prototype_logits(embedded, prototypes, present, self._scale())

    def _set_support(self, support):
        super()._set_support(support)
        if self.head_ == "prototypes":
            self.head_min_rows_ = np.inf

    def _auto_head(self, support):
        """``"logistic"``, with the fewest rows a task needs for a head of its
        own (``head_min_rows_``) from the training tasks' spread, or
        ``"prototypes"`` where no task can have enough (see ``head``)."""
        self._estimate_spread(support)
        return "prototypes" if np.isinf(self.head_min_rows_) else "logistic"

    def _prototype_head(self, prototypes, n_features):
        """The linear head on ``[z, x]`` of prototypes: ``2 s c_k . z - s
        |c_k|^2`` (the prototype logits less the common ``-s |z|^2``)."""
        scale = self._scale().to(prototypes.dtype)
        zeros = prototypes.new_zeros(prototypes.shape[:-1] + (n_features,))
        coef = torch.cat([2 * scale * prototypes, zeros], -1)
        return coef, -scale * (prototypes**2).sum(-1)

    def _logistic_heads(self, X, embedded, y, w, prototypes, present, prior, new):
        """Each task's logistic head on ``[z, x, 1]``, shrunk toward its
        prototype head, its penalty chosen by cross-validation.

        For each task whose selected rows hold at least two rows of every
        class, stratified K-fold (``K = min(5, rows of its rarest class)``)
        on up to ``_HEAD_CV_ROWS`` of its rows scores the prototype head and
        the heads of every penalty of ``_HEAD_PENALTIES`` by their summed
        held-out cross-entropy; in each fold the prototypes, and so the prior
        head, come from the fold's rows. The largest penalty (the prototypes
        first) whose loss is within half a standard error of the smallest wins
        (the standard error of the paired per-row differences); the head is
        then fitted on up to ``_HEAD_ROWS`` rows. Returns the heads' ``coef``
        and ``bias`` and the penalties, 0 where the prototype head is kept.
        """
        n_tasks, n_rows, n_features = X.shape
        n_classes = len(self.classes_)
        coef, bias = self._prototype_head(prototypes, n_features)
        penalty = torch.zeros(n_tasks, device=X.device)
        order, selected, cv_y, cv_w, onehot, n_min = cv_rows(y, w, n_classes)
        task_rows = (w > 0).sum(1)
        enough = task_rows >= self._head_min_rows()
        tolerance, max_penalty = self._head_rule(task_rows, _HEAD_TOLERANCE, new)
        enough &= n_min >= self._head_min_class_rows()
        tasks = (present.all(-1) & enough).nonzero().flatten()
        # Tasks whose rows all choose the penalty (at most _HEAD_CV_ROWS).
        whole = task_rows <= selected.shape[1]
        done = torch.zeros(n_tasks, dtype=torch.bool, device=X.device)
        per_chunk = cv_chunk(selected.shape[1])
        for start in range(0, len(tasks), per_chunk):
            chunk = tasks[start : start + per_chunk]
            # A few whole tasks (a new group's partial_fit): their heads are
            # fitted with the cross-validation's problems, in one Newton
            # solve instead of two, whose dispatch dominates at this size.
            merge = len(chunk) <= _MERGED_TASKS and bool(whole[chunk].all())
            theta = (
                torch.cat([coef[chunk], bias[chunk][..., None]], -1) if merge else None
            )
            chosen, delta = self._choose_penalty(
                X[chunk],
                embedded[chunk],
                cv_y[chunk],
                cv_w[chunk],
                selected[chunk],
                onehot[chunk],
                n_min[chunk],
                prior,
                tolerance[chunk],
                max_penalty[chunk],
                head=theta,
            )
            penalty[chunk] = chosen.to(penalty.dtype)
            if merge:
                moved = chunk[chosen > 0]
                theta = (theta.to(delta.dtype) + delta)[chosen > 0].to(coef.dtype)
                coef[moved], bias[moved] = theta[..., :-1], theta[..., -1]
                done[chunk] = True
        tasks = ((penalty > 0) & ~done).nonzero().flatten()
        m = min(n_rows, _HEAD_ROWS)
        per_chunk = max(1, _HEAD_BUDGET // max(m * m, 14 * m))
        for start in range(0, len(tasks), per_chunk):
            chunk = tasks[start : start + per_chunk]
            rows = order[chunk, :m]
            phi = self._head_features(X[chunk], embedded[chunk], rows)
            theta = torch.cat([coef[chunk], bias[chunk][..., None]], -1)
            theta = theta.to(_head_dtype(X.device))
            delta = shrunk_logistic(
                phi,
                phi @ theta.mT,
                y[chunk].gather(1, rows),
                w[chunk].gather(1, rows).to(theta.dtype),
                penalty[chunk].to(theta.dtype),
            )
            theta = (theta + delta).to(coef.dtype)
            coef[chunk], bias[chunk] = theta[..., :-1], theta[..., -1]
        return coef, bias, penalty

    def _head_min_rows(self):
        """``head_min_rows_`` (0 for a model fitted before it existed)."""
        return self.__dict__.get("head_min_rows_", 0.0)

    @staticmethod
    def _head_features(X, embedded, rows):
        """``[z, x, 1]`` of the rows ``rows`` of each task, in the heads'
        dtype."""
        z = embedded.gather(1, rows[..., None].expand(-1, -1, embedded.shape[-1]))
        x = X.gather(1, rows[..., None].expand(-1, -1, X.shape[-1]))
        ones = x.new_ones(x.shape[:-1] + (1,))
        return torch.cat([z, x, ones], -1).to(_head_dtype(X.device))

    def _choose_penalty(
        self,
        X,
        embedded,
        y,
        w,
        rows,
        onehot,
        n_min,
        prior,
        tolerance,
        max_penalty,
        head=None,
    ):
        """The penalty of each task by cross-validation (0: the prototypes),
        and, where the tasks' prototype heads ``head`` are given (every row of
        each task among ``rows``), the change of each head at its penalty
        (else None)."""
        n_classes = len(self.classes_)
        phi = self._head_features(X, embedded, rows)
        w = w.to(phi.dtype)
        fit, held_out, used = stratified_folds(onehot, n_min, w)
        # Each fold's prototypes shrink toward the prior, as the task's do.
        z = phi[..., : embedded.shape[-1]].to(embedded.dtype)
        sums, counts = class_sums(
            z[:, None],
            y[:, None].expand_as(fit),
            w[:, None].to(z.dtype) * fit,
            n_classes,
        )
        fold_prototypes, _ = shrunk_prototypes(
            sums, counts, prior["prototypes"], prior["present"], self._kappa()
        )
        head_coef, head_bias = self._prototype_head(
            fold_prototypes.to(phi.dtype), X.shape[-1]
        )
        theta0 = torch.cat([head_coef, head_bias[..., None]], -1)  # (T, F, K, d)
        f0 = phi[:, None] @ theta0.mT  # (T, F, m, K)
        if head is None:
            chosen = choose_penalty(
                phi, f0, y, w, fit, held_out, used, tolerance, max_penalty
            )
            return chosen, None
        # One more "fold": every row fitted, none held out, the task's head.
        rows_used = used.any(1)
        f0 = torch.cat([f0, (phi @ head.to(phi.dtype).mT)[:, None]], 1)
        fit = torch.cat([fit, rows_used[:, None]], 1)
        held_out = torch.cat([held_out, torch.zeros_like(rows_used)[:, None]], 1)
        candidates, row_loss, delta = cv_losses(
            phi, f0, y, w, fit, held_out, solutions=True
        )
        allowed = allowed_candidates(candidates, max_penalty)
        index = one_standard_error_index(row_loss, rows_used, tolerance, allowed)
        return candidates[index], delta[torch.arange(len(index)), -1, index]

    def _repeated_state_logits(self, X, components, dtype):
        # Every state shares the network: each row is embedded once, not
        # once per component (the mixture scores rows under up to 256).
        n = components.shape[-1]
        embedded = self._inference_embedding(X, dtype)
        if "coef" in self.states_ and components.dim() == 1:
            # Linear heads, the same states for every row: one product.
            coef = self.states_["coef"].index_select(0, components).to(dtype)
            bias = self.states_["bias"].index_select(0, components).to(dtype)
            present = self.states_["present"].index_select(0, components)
            n_classes, n_features = coef.shape[1:]
            features = torch.cat([embedded, X], -1)
            logits = features @ coef.reshape(-1, n_features).T + bias.reshape(-1)
            logits = logits.view(len(X), n, n_classes).masked_fill(
                ~present, torch.finfo(dtype).min
            )
            return logits.reshape(len(X) * n, n_classes)
        return self._state_logits(
            X.repeat_interleave(n, 0),
            repeated_states(components, len(X)),
            self.states_,
            dtype,
            embedded=embedded.repeat_interleave(n, 0),
        )

    def _inference_embedding(self, X, dtype):
        """The network's embedding of the rows ``X``, in ``dtype``, by
        chunks of ``_DISTANCE_CHUNK`` rows."""
        params, buffers = self._inference_params(dtype)
        starts = range(0, max(len(X), 1), _DISTANCE_CHUNK)  # one chunk if empty
        return torch.cat(
            [
                stateless_forward(
                    self.module_, params, buffers, X[start : start + _DISTANCE_CHUNK]
                )
                for start in starts
            ]
        )

    def _inference_params(self, dtype):
        params = {k: v.to(dtype) for k, v in self.module_.named_parameters()}
        buffers = {
            k: v.to(dtype) if v.is_floating_point() else v
            for k, v in self.module_.named_buffers()
        }
        return params, buffers

    def _state_logits(self, X, index, states, dtype, embedded=None):
        """Logits of the rows ``X``, each under the state ``index``;
        ``embedded``, where given, the rows' embeddings (else computed)."""
        if embedded is None:
            params, buffers = self._inference_params(dtype)
        head = "coef" in states  # the logistic heads
        if head:
            coef, bias = states["coef"].to(dtype), states["bias"].to(dtype)
        else:
            prototypes = states["prototypes"].to(dtype)
            scale = self._scale().to(dtype)
        # Chunk by chunk: small chunks keep the embeddings and each row's
        # gathered prototypes in cache (and below the size at which the
        # allocator maps fresh pages), and index_select gathers much faster
        # than advanced indexing on CPU. The distances of 50,000 rows of
        # 10,000 groups took 38 ms at once, 9 ms in chunks of 4,096 rows.
        out = X.new_empty((len(X), len(self.classes_)))
        for start in range(0, len(X), _DISTANCE_CHUNK):
            rows = index[start : start + _DISTANCE_CHUNK]
            chunk = slice(start, start + len(rows))
            if embedded is None:
                embeddings = stateless_forward(self.module_, params, buffers, X[chunk])
            else:
                embeddings = embedded[chunk]
            if head:
                features = torch.cat([embeddings, X[chunk]], -1).unsqueeze(-1)
                logits = (coef.index_select(0, rows) @ features).squeeze(-1)
                logits = logits + bias.index_select(0, rows)
                out[chunk] = logits.masked_fill(
                    ~states["present"].index_select(0, rows), torch.finfo(dtype).min
                )
                continue
            out[chunk] = prototype_logits(
                embeddings.unsqueeze(-2),
                prototypes.index_select(0, rows),
                states["present"].index_select(0, rows),
                scale,
            ).squeeze(-2)
        return out

    def _view(self, i):
        prototypes = self.states_["prototypes"][i]
        present = self.states_["present"][i]
        return prototypes.masked_fill(~present[:, None], float("nan"))

    @property
    def global_state_(self):
        """Global prototypes (NaN rows: classes without any row)."""
        return self._view(0)

    @property
    def task_states_(self):
        """Prototypes of each task of ``tasks_`` (NaN rows: no prototype)."""
        return [self._view(t + 1) for t in range(len(self.tasks_))]


PrototypicalClassifier.__doc__ = fill_docstring(PrototypicalClassifier.__doc__)
