"""The wiring shared by the meta-learning classifiers.

Design note: the estimators *subclass* ``skorch.NeuralNet`` rather than own a
net. A skorch user then finds everything where they expect it: ``module`` and
``module__*``, ``optimizer`` and ``optimizer__*``, ``callbacks`` (with
``callbacks__*``), ``history``, ``initialize``, ``save_params`` and
``load_params``, device-agnostic pickling, and ``set_params`` that
re-initialises what changed. Owning a net would mean forwarding each of these
by hand. The price is skorch's ``__init__``, which sets ``history_``,
``initialized_`` and ``virtual_params_``: sklearn's
``check_no_attributes_set_in_init`` is declared as an expected failure for
that reason.

This module only wires; the layers below it are (see the contributors'
architecture page of the documentation):

- ``_functional`` and ``_objectives``: the maths, in pure torch;
- ``_episodes``: episode sampling;
- ``_input``: validation and encoding of the arguments;
- ``_support``: the rows each task adapts to.

What skmeta changes in skorch: ``get_iterator(dataset, training=True)``
returns the episode loader, so skorch's own ``fit_loop`` runs meta-training
(episodes replace mini-batches), ``train_step_single`` computes the
meta-objective, ``sensitive_features`` and ``tasks`` are explicit arguments,
labels are encoded so that ``predict`` returns ``classes_``, and prediction
uses a per-task adapted state.
"""

import contextlib
import inspect
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import data_from_dataset, to_tensor
from torch.utils.data import Dataset

from ._compat import (
    Interval,
    RequestMethod,
    StrOptions,
    validate_parameter_constraints,
)
from ._episodes import EpisodeLoader, EpisodeSampler, default_steps_per_epoch
from ._input import MetaInput, validate_fit_input, validate_predict_input
from ._objectives import (
    PENALTIES,
    GroupDRO,
    class_counts,
    fairness_penalty,
    prior_offset,
    shrunk_log_priors,
    weighted_mean,
)
from ._support import SupportSet

_FITTED_ATTRIBUTES = (
    "classes_",
    "n_features_in_",
    "feature_names_in_",
    "n_features_model_",
    "tasks_",
    "groups_",
    "task_source_",
    "support_",
    "class_counts_",
    "dro_weights_",
    "global_state_",
    "task_states_",
)


def _encoded_accuracy(net, X, y):
    """Accuracy on encoded targets, for the default ``valid_acc`` callback."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


def _accepts(cls, name):
    """Whether ``cls(name=...)`` is accepted."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


class _MetaClassifier(ClassifierMixin, NeuralNet):
    """Base class of the skmeta classifiers; not for direct use.

    Subclasses implement ``_query_logits`` (query predictions of a padded
    meta-batch, after adaptation), ``_global_state`` and ``_task_state``
    (what a support set turns into) and ``_logits`` (predictions from the
    states).
    """

    _parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "n_shots": [Interval(Integral, 1, None, closed="left")],
        "n_queries": [Interval(Integral, 1, None, closed="left")],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
        "steps_per_epoch": [Interval(Integral, 1, None, closed="left"), None],
        "class_prior": [StrOptions({"auto", "task", "pooled", "balanced"})],
        "constraints": [StrOptions(set(PENALTIES)), None],
        "fairness_weight": [Interval(Real, 0, None, closed="left")],
        "fairness_temperature": [Interval(Real, 0, None, closed="neither")],
        "dro_step_size": [Interval(Real, 0, None, closed="left")],
        "pooled_episodes": [Interval(Real, 0, 1, closed="both")],
        "online_meta_update": ["boolean"],
        "sensitive_columns": [str, Integral, list, tuple, np.ndarray, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        module,
        *,
        n_shots,
        n_queries,
        meta_batch_size,
        steps_per_epoch,
        class_prior,
        constraints,
        fairness_weight,
        fairness_temperature,
        dro_step_size,
        pooled_episodes,
        online_meta_update,
        sensitive_columns,
        random_state,
        **kwargs,
    ):
        super().__init__(module, **kwargs)
        self.n_shots = n_shots
        self.n_queries = n_queries
        self.meta_batch_size = meta_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.class_prior = class_prior
        self.constraints = constraints
        self.fairness_weight = fairness_weight
        self.fairness_temperature = fairness_temperature
        self.dro_step_size = dro_step_size
        self.pooled_episodes = pooled_episodes
        self.online_meta_update = online_meta_update
        self.sensitive_columns = sensitive_columns
        self.random_state = random_state

    # Whether a task's state is computed from the global state (then every
    # task is refreshed when the global state changes).
    _task_states_use_global = False

    # skorch accepts any name in set_fit_request (its fit takes **fit_params);
    # skmeta's methods name their metadata, so typos are caught as in sklearn.
    set_fit_request = RequestMethod(
        "fit", ["sample_weight", "sensitive_features", "tasks"]
    )
    set_partial_fit_request = RequestMethod(
        "partial_fit", ["sample_weight", "sensitive_features", "tasks"]
    )

    # ------------------------------------------------------------------ skorch
    def get_default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            (
                "valid_acc",
                EpochScoring(
                    _encoded_accuracy, name="valid_acc", lower_is_better=False
                ),
            ),
            ("print_log", PrintLog()),
        ]

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_"; its bookkeeping set
        # `_params_to_validate` is not a hyperparameter.
        return [k for k in super()._get_param_names() if not k.startswith("_")]

    def set_params(self, **params):
        # skorch builds the callbacks as soon as `callbacks` is set; like any
        # other parameter, it is only checked when fitting starts.
        if "callbacks" in params and not self.initialized_:
            self.callbacks = params.pop("callbacks")
        return super().set_params(**params)

    def load_params(self, *args, **kwargs):
        """Load saved parameters (see skorch), then adapt every task again."""
        super().load_params(*args, **kwargs)
        if self.__sklearn_is_fitted__():
            self._refresh_states(range(len(self.tasks_)), recompute_global=True)

    def get_metadata_routing(self):
        # A plain consumer: skmeta does not route fit arguments to a splitter.
        return self._get_metadata_request()

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type):
            if _accepts(self.module, "n_features_in"):
                kwargs.setdefault("n_features_in", self.n_features_model_)
            if self._module_outputs_classes and _accepts(self.module, "n_classes"):
                kwargs.setdefault("n_classes", len(self.classes_))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def initialize_criterion(self):
        # Per-row losses: skmeta weighs rows (sample_weight, padding masks).
        kwargs = {"reduction": "none", **self.get_params_for("criterion")}
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "global_state_")

    def _check_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )

    # --------------------------------------------------------------- training
    def fit(self, X, y, *, sensitive_features=None, tasks=None, sample_weight=None):
        """Meta-train on the groups, then adapt to every group seen.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,)
            Class labels.

        sensitive_features : array-like or DataFrame of shape (n_samples,) \
                or (n_samples, n_sensitive), default=None
            Sensitive group of each row; several columns make intersectional
            groups. Unless ``tasks`` is given, each group is a task.

        tasks : array-like of shape (n_samples,), default=None
            Meta-learning task of each row (a site, a state, a school) when
            tasks are not the sensitive groups. With neither ``tasks`` nor
            ``sensitive_features``, episodes are drawn from the pooled data.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in every loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        # warm_start keeps the meta-learned network (and its classes) and
        # continues training it; tasks and support sets come from this call.
        warm = self.warm_start and self.__sklearn_is_fitted__()
        classes, n_features = (
            (self.classes_, self.n_features_model_) if warm else (None, None)
        )
        self._clear_fitted()
        data = validate_fit_input(
            self,
            X,
            y,
            sensitive_features,
            tasks,
            sample_weight,
            classes=classes,
            reset=True,
        )
        if warm and self.n_features_model_ != n_features:
            raise ValueError(
                f"With warm_start=True, X must keep its {n_features} model "
                f"features; got {self.n_features_model_}."
            )
        self._meta_train(data, epochs=self.max_epochs, initialize=not warm)
        self._set_support(SupportSet(data))
        return self

    def partial_fit(
        self,
        X,
        y,
        *,
        classes=None,
        sensitive_features=None,
        tasks=None,
        sample_weight=None,
    ):
        """Meta-train for one epoch (first call) or adapt to the given rows.

        On an unfitted estimator, this follows scikit-learn: ``classes`` is
        required, and the call runs one epoch of meta-training on the batch.
        On a fitted estimator it adapts: the rows join the support set of
        their task, and the state of each task in the batch is recomputed
        from the meta-learned model. A task never seen before becomes known.
        The meta-learned parameters do not change, unless
        ``online_meta_update=True``: then the call also runs one epoch of
        meta-training on every row seen so far (follow the meta-leader) and
        adapts every task again.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            New rows.

        y : array-like of shape (n_samples,)
            Their class labels, all in ``classes_``.

        classes : array-like of shape (n_classes,), default=None
            All classes; required on the first call.

        sensitive_features : array-like of shape (n_samples,) or \
                (n_samples, n_sensitive), default=None
            Sensitive group of each row.

        tasks : array-like of shape (n_samples,), default=None
            Task of each row, when tasks are not the sensitive groups.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row.

        Returns
        -------
        self : object
            The estimator.
        """
        first_call = not self.__sklearn_is_fitted__()
        if first_call:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit."
                )
            self._check_params()
            self._clear_fitted()
        data = validate_fit_input(
            self,
            X,
            y,
            sensitive_features,
            tasks,
            sample_weight,
            classes=classes,
            reset=first_call,
        )
        if first_call:
            self._meta_train(data, epochs=1, initialize=True)
            self._set_support(SupportSet(data))
            return self
        self._add_support(data)
        if self.online_meta_update:
            # Follow the meta-leader: one more epoch of meta-training on every
            # row seen so far, then every task is adapted again.
            support = self.support_
            self._meta_train(
                MetaInput(**support.as_dict(), y=support.y), epochs=1, initialize=False
            )
            self._refresh_states(range(len(self.tasks_)), recompute_global=True)
        return self

    def _clear_fitted(self):
        for attr in _FITTED_ATTRIBUTES:
            self.__dict__.pop(attr, None)

    def _seed(self):
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    def _fork_rng(self):
        """Keep the caller's random state (CPU, and the CUDA device used)."""
        device = torch.device("cpu" if self.device is None else self.device)
        devices = [device] if device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _meta_train(self, data, *, epochs, initialize):
        """Run skorch's ``fit_loop`` on ``data``, seeded by ``random_state``."""
        seed = self._seed()
        X, y = data.as_dict(), data.y
        with self._fork_rng():
            torch.manual_seed(seed)
            if initialize:
                self.initialize()
            self._episode_seed_ = seed
            try:
                self.notify("on_train_begin", X=X, y=y)
                # KeyboardInterrupt is how skorch's EarlyStopping ends training.
                with contextlib.suppress(KeyboardInterrupt):
                    self.fit_loop(X, y, epochs=epochs)
                self.notify("on_train_end", X=X, y=y)
            finally:
                for attr in ("_episode_seed_", "_train_rows_", "_group_dro_"):
                    self.__dict__.pop(attr, None)

    def get_iterator(self, dataset, training=False):
        """skorch's iterator for prediction; the episode loader for training.

        ``fit_loop`` asks for the training iterator once per call: the
        episodes are drawn from the training rows of ``dataset`` (those with
        a positive weight), seeded by ``random_state``.
        """
        if not training:
            return super().get_iterator(dataset, training=False)
        data, y = data_from_dataset(dataset)
        y = np.asarray(y)
        # Kept until the end of fit_loop: validation adapts to these rows.
        self._train_rows_ = (data, y)
        rng = np.random.default_rng(
            getattr(self, "_episode_seed_", None) or self._seed()
        )
        # Rows of weight 0 take no part in episodes, as if they were dropped.
        keep = data["weight"] > 0
        episode_data = {key: value[keep] for key, value in data.items()}
        sampler, pooled = self._episode_sampler(episode_data, y[keep], rng)
        log_prior = shrunk_log_priors(
            class_counts(
                data["task"], y, data["weight"], len(self.tasks_), len(self.classes_)
            ),
            self._prior_strength(),
        )
        pooled_log_prior = log_prior[0]
        log_prior = log_prior[:1] if pooled else log_prior[1:]
        if self.dro_step_size > 0:
            self._group_dro_ = GroupDRO(len(log_prior), self.dro_step_size)
            self.dro_weights_ = self._group_dro_.weights()
        n_steps = self.steps_per_epoch or default_steps_per_epoch(
            len(y),
            len(self.classes_),
            self.n_shots,
            self.n_queries,
            self.meta_batch_size,
        )
        return EpisodeLoader(
            episode_data,
            y[keep],
            sampler,
            n_steps=n_steps,
            device=self.device,
            log_prior=log_prior,
            pooled_log_prior=pooled_log_prior,
        )

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if not training and iterator is not None:
            # Validation rows are predicted as predict would: every task
            # adapted to its training rows.
            data, y = self._train_rows_
            self._set_support(SupportSet(MetaInput(**data, y=y)))
        return super().run_single_epoch(
            iterator, training, prefix, step_fn, **fit_params
        )

    def _episode_sampler(self, data, y, rng):
        """The sampler, and whether it draws from the pooled data."""
        tasks = data["task"]
        if self.task_source_ == "pooled":
            return self._pooled_sampler(data, y, rng), True
        sampler = EpisodeSampler(
            tasks,
            y,
            len(self.classes_),
            n_shots=self.n_shots,
            n_queries=self.n_queries,
            meta_batch_size=self.meta_batch_size,
            rng=rng,
            pooled_episodes=self.pooled_episodes,
        )
        if sampler.excluded.size:
            names = [str(t) for t in self.tasks_[sampler.excluded][:20]]
            more = sampler.excluded.size - len(names)
            warnings.warn(
                f"{sampler.excluded.size} task(s) have no class with 2 rows, so they "
                f"give no query set and are left out of meta-training: "
                f"{', '.join(names)}{f' and {more} more' if more > 0 else ''}. They "
                "are still adapted to after fitting.",
                UserWarning,
                stacklevel=2,
            )
        if sampler.eligible.size == 0:
            warnings.warn(
                "No task has a class with 2 rows; meta-training draws episodes "
                "from the pooled data instead.",
                UserWarning,
                stacklevel=2,
            )
            return self._pooled_sampler(data, y, rng), True
        return sampler, False

    def _pooled_sampler(self, data, y, rng):
        sampler = EpisodeSampler(
            np.zeros_like(data["task"]),
            y,
            len(self.classes_),
            n_shots=self.n_shots,
            n_queries=self.n_queries,
            meta_batch_size=self.meta_batch_size,
            rng=rng,
        )
        if sampler.eligible.size == 0:
            raise ValueError(
                "Meta-training needs at least 2 rows of one class (with a "
                "positive sample_weight) to form a support and a query set."
            )
        return sampler

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        episodes, _ = batch
        loss, y_pred = self._episode_loss(episodes)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def _episode_loss(self, episodes):
        """Outer (meta) objective on a padded meta-batch.

        The query loss of each task (a weighted mean over its query rows),
        averaged over tasks or weighted by ``dro_step_size``, plus
        ``fairness_weight`` times the penalty named by ``constraints``.
        """
        logits = self._query_logits(episodes)
        weights = episodes["query_w"]
        losses = self.criterion_(
            logits.flatten(0, 1), episodes["query_y"].flatten()
        ).view_as(weights)
        task_losses = weighted_mean(losses, weights)
        dro = getattr(self, "_group_dro_", None)
        if self.dro_step_size > 0 and dro is not None and "task" in episodes:
            loss = dro.loss(task_losses, episodes["task"])
            self.dro_weights_ = dro.weights()
        else:
            loss = task_losses.mean()
        if self.constraints is not None and self.fairness_weight > 0:
            task_log_prior = episodes["log_prior"].to(logits.dtype)
            loss = loss + self.fairness_weight * fairness_penalty(
                logits,
                episodes["query_y"],
                weights,
                episodes["query_g"],
                constraint=self.constraints,
                task_log_prior=task_log_prior,
                offset=prior_offset(
                    self._class_prior(),
                    task_log_prior,
                    episodes["pooled_log_prior"].to(logits.dtype),
                ),
                temperature=self.fairness_temperature,
                within_tasks=self.task_source_ == "tasks",
            )
        return loss, logits

    def _class_prior(self):
        """The ``class_prior`` in force: ``"auto"`` resolved."""
        if self.class_prior != "auto":
            return self.class_prior
        constrained = self.constraints is not None and self.fairness_weight > 0
        return "pooled" if constrained else "task"

    def _prior_strength(self):
        """Weight of the pooled class frequencies in a task's: ``n_shots`` rows
        per class."""
        return len(self.classes_) * self.n_shots

    def get_loss(self, y_pred, y_true, X=None, training=False):
        losses = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        if X is None or "weight" not in X:
            return losses.mean()
        weight = to_tensor(X["weight"], device=self.device)
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)

    # --------------------------------------------------------- task states
    def _set_support(self, support):
        """Store the support set and compute every task's state from it."""
        self.support_ = support
        self._refresh_states(range(len(self.tasks_)), recompute_global=True)

    def _add_support(self, data):
        self.support_.add(data)
        touched = np.unique(data.task)
        recompute_global = bool((touched < 0).any())
        tasks = touched[touched >= 0]
        if recompute_global and self._task_states_use_global:
            tasks = range(len(self.tasks_))
        self._refresh_states(tasks, recompute_global=recompute_global)

    def _support_tensors(self, mask):
        return self.support_.tensors(mask, self.device)

    def _refresh_states(self, tasks, *, recompute_global):
        self._set_training(False)
        support = self.support_
        with self._fork_rng():
            torch.manual_seed(self._seed())
            if recompute_global:
                # The pooled support set: the rows of fit, whatever their task,
                # and the rows given to partial_fit without a task.
                self.global_state_ = self._global_state(
                    *self._support_tensors(support.pooled)
                )
            states = list(getattr(self, "task_states_", []))
            states += [None] * (len(self.tasks_) - len(states))
            for t in tasks:
                states[t] = self._task_state(*self._support_tensors(support.task == t))
            self.task_states_ = states
        self.class_counts_ = support.class_counts(len(self.tasks_), len(self.classes_))

    # ------------------------------------------------------------ prediction
    def infer(self, x, **fit_params):
        # Inference runs in float64, so that a row's prediction does not
        # depend on which rows share its batch (float32 matrix products do).
        x = to_tensor(x, device=self.device)
        logits = self._logits(x["X"].to(torch.float64), x["task"])
        class_prior = self._class_prior()
        if class_prior != "balanced":
            log_priors = shrunk_log_priors(
                self.class_counts_, self._prior_strength()
            ).to(self.device)
            rows = x["task"] + 1 if class_prior == "task" else 0
            logits = logits + log_priors[rows]
        return logits

    def _module_float64(self, params=None):
        """Parameters and buffers of ``module_`` (or ``params``) in float64."""
        params = dict(self.module_.named_parameters()) if params is None else params
        state = {**params, **dict(self.module_.named_buffers())}
        return {
            k: v.to(device=self.device, dtype=torch.float64)
            if v.is_floating_point()
            else v.to(self.device)
            for k, v in state.items()
        }

    def _forward_logits(self, X, sensitive_features, tasks):
        check_is_fitted(self)
        if isinstance(X, Dataset):  # from skorch callbacks during training
            dataset = X
        else:
            data = validate_predict_input(self, X, sensitive_features, tasks)
            dataset = self.get_dataset({"X": data.X, "task": data.task})
        # DataLoader draws a seed from the global generator even when it does
        # not shuffle; keep the caller's random state as it was.
        with torch.random.fork_rng(devices=[]):
            logits = [yp.to(torch.float64) for yp in self.forward_iter(dataset)]
        return torch.cat(logits) if logits else torch.empty(0, len(self.classes_))

    def predict_proba(self, X, *, sensitive_features=None, tasks=None):
        """Class probabilities, from each row's task state.

        Rows of a task seen in ``fit`` or ``partial_fit`` use its adapted
        state; other rows use the model adapted to the pooled support set.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input rows.

        sensitive_features : array-like of shape (n_samples,) or \
                (n_samples, n_sensitive), default=None
            Sensitive group of each row, when groups are the tasks.

        tasks : array-like of shape (n_samples,), default=None
            Task of each row, when the model was fitted with ``tasks``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype=float64
            Rows sum to 1; columns follow ``classes_``.
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        return torch.softmax(logits, dim=1).numpy()

    def predict_log_proba(self, X, *, sensitive_features=None, tasks=None):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input rows.

        sensitive_features : array-like, default=None
            As in :meth:`predict_proba`.

        tasks : array-like of shape (n_samples,), default=None
            As in :meth:`predict_proba`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), dtype=float64
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        return torch.log_softmax(logits, dim=1).numpy()

    def decision_function(self, X, *, sensitive_features=None, tasks=None):
        """Scores: the logit difference for binary problems, logits otherwise.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input rows.

        sensitive_features : array-like, default=None
            As in :meth:`predict_proba`.

        tasks : array-like of shape (n_samples,), default=None
            As in :meth:`predict_proba`.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            float64; positive values favour ``classes_[1]`` in binary problems.
        """
        logits = self._forward_logits(X, sensitive_features, tasks).numpy()
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict(self, X, *, sensitive_features=None, tasks=None):
        """Class labels, from each row's task state.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Input rows.

        sensitive_features : array-like, default=None
            As in :meth:`predict_proba`.

        tasks : array-like of shape (n_samples,), default=None
            As in :meth:`predict_proba`.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        return self.classes_[logits.argmax(dim=1).numpy()]
