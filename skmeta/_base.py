"""Plumbing shared by the meta-learning classifiers.

Design note: the estimators *subclass* ``skorch.NeuralNet`` rather than own a
net. A skorch user then finds everything where they expect it: ``module`` and
``module__*``, ``optimizer`` and ``optimizer__*``, ``callbacks`` (with
``callbacks__*``), ``history``, ``initialize``, ``save_params`` and
``load_params``, device-agnostic pickling, and ``set_params`` that
re-initialises what changed. Owning a net would mean forwarding each of these
by hand. The price is skorch's ``__init__``, which sets ``history_``,
``initialized_`` and ``virtual_params_``: sklearn's
``check_no_attributes_set_in_init`` is the one common check declared as an
expected failure for that reason.

What skmeta changes in skorch: episodes replace mini-batches in training
(``fit_loop``, ``train_step_single``), ``sensitive_features`` and ``tasks``
are explicit arguments, labels are encoded so that ``predict`` returns
``classes_``, and prediction uses a per-task adapted state.
"""

import contextlib
import inspect
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils._metadata_requests import RequestMethod
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    check_X_y,
    validate_data,
)
from skorch import NeuralNet
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import to_tensor
from torch.utils.data import Dataset, Subset

from ._episodes import EpisodeLoader, EpisodeSampler, default_steps_per_epoch
from .fairness import PENALTIES
from .utils._validation import check_groups, encode_groups, split_sensitive_columns

_FITTED_ATTRIBUTES = (
    "classes_",
    "n_features_in_",
    "feature_names_in_",
    "n_features_model_",
    "tasks_",
    "groups_",
    "task_source_",
    "support_X_",
    "support_y_",
    "support_w_",
    "support_task_",
    "support_group_",
    "support_pooled_",
    "class_counts_",
    "dro_weights_",
    "global_state_",
    "task_states_",
)


def _encoded_accuracy(net, X, y):
    """Accuracy on encoded targets, for the default ``valid_acc`` callback."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


def _dataset_arrays(dataset):
    """Arrays behind a skorch ``Dataset`` or a ``Subset`` of one."""
    indices = None
    if isinstance(dataset, Subset):
        indices = np.asarray(dataset.indices)
        dataset = dataset.dataset
    data, y = dataset.X, np.asarray(dataset.y)
    if indices is not None:
        data = {key: value[indices] for key, value in data.items()}
        y = y[indices]
    return data, y


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
        return [k for k in super()._get_param_names() if k != "_params_to_validate"]

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

    # ------------------------------------------------------------- validation
    def _check_params(self):
        constraints = {}
        for klass in reversed(type(self).__mro__):
            constraints.update(getattr(klass, "_parameter_constraints", {}))
        validate_parameter_constraints(
            constraints,
            {name: getattr(self, name) for name in constraints},
            caller_name=type(self).__name__,
        )

    def _validate_X(self, X, sensitive_features, *, y=None, reset, fitting):
        """Validated float32 model input, targets and sensitive groups."""
        if self.sensitive_columns is None:
            if fitting:
                X, y = validate_data(
                    self, X, y, dtype=np.float32, copy=True, reset=reset
                )
            else:
                X = validate_data(self, X, dtype=np.float32, copy=True, reset=reset)
            return X, y, sensitive_features
        if sensitive_features is not None:
            raise ValueError(
                "Pass either sensitive_features or sensitive_columns, not both: "
                "sensitive_columns already names the columns of X that hold the "
                "sensitive features."
            )
        if not hasattr(X, "shape") and not hasattr(X, "iloc"):
            X = np.asarray(X, dtype=object)
        validate_data(self, X, reset=reset, skip_check_array=True)
        X_model, sensitive = split_sensitive_columns(X, self.sensitive_columns)
        if fitting:
            X_model, y = check_X_y(X_model, y, dtype=np.float32, copy=True)
        else:
            X_model = check_array(X_model, dtype=np.float32, copy=True, input_name="X")
        return X_model, y, sensitive

    def _task_labels(self, sensitive, tasks):
        if self.task_source_ == "tasks":
            return tasks
        if self.task_source_ == "sensitive_features":
            return sensitive
        return tasks if tasks is not None else sensitive

    def _validate_fit_data(
        self, X, y, sensitive_features, tasks, sample_weight, *, classes, reset
    ):
        X, y, sensitive = self._validate_X(
            X, sensitive_features, y=y, reset=reset, fitting=True
        )
        n_samples = X.shape[0]
        check_classification_targets(y)
        sensitive = check_groups(
            sensitive,
            n_samples,
            name="sensitive_features"
            if self.sensitive_columns is None
            else "sensitive_columns",
        )
        tasks = check_groups(tasks, n_samples, name="tasks")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True, copy=True
            )
        else:
            sample_weight = np.ones(n_samples, dtype=np.float32)

        if reset:
            if (
                self.constraints is not None
                and self.fairness_weight > 0
                and sensitive is None
            ):
                raise ValueError(
                    f"constraints={self.constraints!r} with fairness_weight > 0 "
                    "needs the groups: pass sensitive_features to fit, or set "
                    "sensitive_columns."
                )
            if n_samples < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 samples to form a "
                    f"support and a query set; got n_samples = {n_samples}."
                )
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes; "
                    f"got only class {self.classes_[0]!r}."
                )
            self.n_features_model_ = X.shape[1]
            if tasks is not None:
                self.task_source_ = "tasks"
            elif sensitive is not None:
                self.task_source_ = "sensitive_features"
            else:
                self.task_source_ = "pooled"
            labels = self._task_labels(sensitive, tasks)
            self.tasks_ = (
                np.unique(labels) if labels is not None else np.array([], dtype=object)
            )
            self.groups_ = (
                np.unique(sensitive)
                if sensitive is not None
                else np.array([], dtype=object)
            )
        elif classes is not None and not np.array_equal(
            np.unique(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={np.asarray(classes)!r} differs from the classes seen "
                f"before (classes_={self.classes_!r})."
            )
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains classes {unseen!r} that are not in classes_="
                f"{self.classes_!r}; pass all classes with `classes` on the first "
                "call to partial_fit."
            )
        y_enc = np.searchsorted(self.classes_, y).astype(np.int64)

        labels = self._task_labels(sensitive, tasks)
        if labels is None:
            task_codes = np.full(n_samples, -1, dtype=np.int64)
        else:
            new = np.setdiff1d(np.unique(labels), self.tasks_)
            if new.size:  # unseen tasks become known (partial_fit)
                self.tasks_ = np.concatenate([self.tasks_, new])
            task_codes = encode_groups(labels, self.tasks_)
        group_codes = (
            encode_groups(sensitive, self.groups_)
            if sensitive is not None
            else np.full(n_samples, -1, dtype=np.int64)
        )
        data = {
            "X": X,
            "task": task_codes,
            "group": group_codes,
            "weight": sample_weight,
        }
        return data, y_enc

    def _validate_predict_data(self, X, sensitive_features, tasks):
        X, _, sensitive = self._validate_X(
            X, sensitive_features, reset=False, fitting=False
        )
        n_samples = X.shape[0]
        sensitive = check_groups(
            sensitive,
            n_samples,
            name="sensitive_features"
            if self.sensitive_columns is None
            else "sensitive_columns",
        )
        tasks = check_groups(tasks, n_samples, name="tasks")
        labels = self._task_labels(sensitive, tasks)
        codes = (
            np.full(n_samples, -1, dtype=np.int64)
            if labels is None
            else encode_groups(labels, self.tasks_)
        )
        return {"X": X, "task": codes}

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
        for attr in _FITTED_ATTRIBUTES:
            self.__dict__.pop(attr, None)
        data, y_enc = self._validate_fit_data(
            X, y, sensitive_features, tasks, sample_weight, classes=classes, reset=True
        )
        if warm and self.n_features_model_ != n_features:
            raise ValueError(
                f"With warm_start=True, X must keep its {n_features} model "
                f"features; got {self.n_features_model_}."
            )
        self._meta_train(data, y_enc, epochs=self.max_epochs, initialize=not warm)
        self._set_support(data, y_enc)
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
        if not self.__sklearn_is_fitted__():
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit."
                )
            self._check_params()
            for attr in _FITTED_ATTRIBUTES:
                self.__dict__.pop(attr, None)
            data, y_enc = self._validate_fit_data(
                X,
                y,
                sensitive_features,
                tasks,
                sample_weight,
                classes=classes,
                reset=True,
            )
            self._meta_train(data, y_enc, epochs=1, initialize=True)
            self._set_support(data, y_enc)
            return self
        data, y_enc = self._validate_fit_data(
            X,
            y,
            sensitive_features,
            tasks,
            sample_weight,
            classes=classes,
            reset=False,
        )
        self._add_support(data, y_enc)
        if self.online_meta_update:
            # Follow the meta-leader: one more epoch of meta-training on every
            # row seen so far, then every task is adapted again.
            support = {
                "X": self.support_X_,
                "task": self.support_task_,
                "group": self.support_group_,
                "weight": self.support_w_,
            }
            self._meta_train(support, self.support_y_, epochs=1, initialize=False)
            self._refresh_states(range(len(self.tasks_)), recompute_global=True)
        return self

    def _seed(self):
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    def _fork_rng(self):
        """Keep the caller's random state (CPU, and the CUDA device used)."""
        device = torch.device("cpu" if self.device is None else self.device)
        devices = [device] if device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _meta_train(self, data, y_enc, *, epochs, initialize):
        seed = self._seed()
        with self._fork_rng():
            torch.manual_seed(seed)
            if initialize:
                self.initialize()
            self.notify("on_train_begin", X=data, y=y_enc)
            # KeyboardInterrupt is how skorch's EarlyStopping ends training.
            with contextlib.suppress(KeyboardInterrupt):
                self.fit_loop(
                    data, y_enc, epochs=epochs, rng=np.random.default_rng(seed)
                )
            self.notify("on_train_end", X=data, y=y_enc)

    def _episode_sampler(self, data, y, rng):
        """The sampler, and whether it draws from the pooled data."""
        tasks = data["task"]
        if self.task_source_ == "pooled":
            return self._pooled_sampler(data, y, rng), True
        kwargs = dict(
            n_shots=self.n_shots,
            n_queries=self.n_queries,
            meta_batch_size=self.meta_batch_size,
            rng=rng,
            pooled_episodes=self.pooled_episodes,
        )
        sampler = EpisodeSampler(tasks, y, len(self.classes_), **kwargs)
        if sampler.excluded.size and self.task_source_ != "pooled":
            names = [str(t) for t in self.tasks_[sampler.excluded][:20]]
            more = sampler.excluded.size - len(names)
            warnings.warn(
                f"{sampler.excluded.size} task(s) have no class with 2 rows, so they "
                f"give no query set and are left out of meta-training: "
                f"{', '.join(names)}{f' and {more} more' if more > 0 else ''}. They "
                "are still adapted to after fitting.",
                UserWarning,
                stacklevel=4,
            )
        if sampler.eligible.size == 0:
            warnings.warn(
                "No task has a class with 2 rows; meta-training draws episodes "
                "from the pooled data instead.",
                UserWarning,
                stacklevel=4,
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

    def fit_loop(self, X, y=None, epochs=None, *, rng=None):
        """Run the meta-training epochs on the validated ``X`` dict.

        Mirrors ``skorch.NeuralNet.fit_loop``: the same callbacks fire in the
        same order; a training epoch is ``steps_per_epoch`` meta-batches of
        episodes instead of one pass over mini-batches. With a ``train_split``
        the validation rows are predicted as ``predict`` would, with each
        task adapted to its training rows.
        """
        epochs = self.max_epochs if epochs is None else epochs
        rng = np.random.default_rng(self._seed()) if rng is None else rng
        dataset_train, dataset_valid = self.get_split_datasets(X, y)
        train_data, train_y = _dataset_arrays(dataset_train)
        # Rows of weight 0 take no part in episodes, as if they were dropped.
        keep = train_data["weight"] > 0
        episode_data = {key: value[keep] for key, value in train_data.items()}
        sampler, pooled = self._episode_sampler(episode_data, train_y[keep], rng)
        log_prior = self._shrunk_log_priors(
            self._class_counts(train_data["task"], train_y, train_data["weight"])
        )
        pooled_log_prior = log_prior[0]
        log_prior = log_prior[:1] if pooled else log_prior[1:]
        if self.dro_step_size > 0:
            self.dro_weights_ = torch.full((len(log_prior),), 1 / len(log_prior))
        n_steps = self.steps_per_epoch or default_steps_per_epoch(
            len(train_y),
            len(self.classes_),
            self.n_shots,
            self.n_queries,
            self.meta_batch_size,
        )
        iterator_train = EpisodeLoader(
            episode_data,
            train_y[keep],
            sampler,
            n_steps=n_steps,
            device=self.device,
            log_prior=log_prior,
            pooled_log_prior=pooled_log_prior,
        )
        iterator_valid = (
            None
            if dataset_valid is None
            else self.get_iterator(dataset_valid, training=False)
        )
        on_epoch_kwargs = {
            "dataset_train": dataset_train,
            "dataset_valid": dataset_valid,
        }
        for _ in range(epochs):
            self.notify("on_epoch_begin", **on_epoch_kwargs)
            self.run_single_epoch(
                iterator_train, training=True, prefix="train", step_fn=self.train_step
            )
            if iterator_valid is not None:
                self._set_support(train_data, train_y)
                self.run_single_epoch(
                    iterator_valid,
                    training=False,
                    prefix="valid",
                    step_fn=self.validation_step,
                )
            self.notify("on_epoch_end", **on_epoch_kwargs)
        return self

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
        task_losses = self._weighted_mean(losses, weights)
        if self.dro_step_size > 0 and "task" in episodes:
            loss = self._dro_loss(task_losses, episodes["task"])
        else:
            loss = task_losses.mean()
        if self.constraints is not None and self.fairness_weight > 0:
            loss = loss + self.fairness_weight * self._fairness_penalty(
                logits, episodes
            )
        return loss, logits

    def _dro_loss(self, task_losses, tasks):
        """Group DRO: tasks with a higher query loss weigh exponentially more.

        Weights ``q`` over the training tasks start uniform; after each
        meta-batch, ``q_t <- q_t * exp(dro_step_size * L_t)`` for every task
        ``t`` in it (``L_t`` its mean query loss there), then ``q`` is
        normalised. The outer loss is the ``q``-weighted mean of the task
        losses of the meta-batch; episodes drawn from all rows
        (``pooled_episodes``) weigh ``1 / n_tasks`` and do not update ``q``.
        """
        known = tasks >= 0
        with torch.no_grad():
            n = len(self.dro_weights_)
            # Kept on the CPU, so that a model trained on a GPU unpickles anywhere.
            q = self.dro_weights_.to(device=tasks.device, dtype=task_losses.dtype)
            total = torch.zeros(n, dtype=task_losses.dtype, device=tasks.device)
            count = torch.zeros_like(total)
            total.index_add_(0, tasks[known], task_losses.detach()[known])
            count.index_add_(0, tasks[known], torch.ones_like(task_losses[known]))
            mean = total / count.clamp_min(1)
            q = q * torch.exp(self.dro_step_size * mean * (count > 0))
            q = q / q.sum()
            self.dro_weights_ = q.cpu()
        weights = torch.where(known, q[tasks.clamp_min(0)], 1 / n)
        return (weights * task_losses).sum() / weights.sum()

    def _class_prior(self):
        """The ``class_prior`` in force: ``"auto"`` resolved."""
        if self.class_prior != "auto":
            return self.class_prior
        constrained = self.constraints is not None and self.fairness_weight > 0
        return "pooled" if constrained else "task"

    def _fairness_penalty(self, logits, episodes):
        """The ``constraints`` penalty on the query predictions.

        Probabilities are those :meth:`predict_proba` would give (with the
        class prior in force) at temperature ``fairness_temperature``, and
        query rows are reweighted to their task's
        class frequencies, so that the penalty estimates the gap on the
        task's rows rather than on a class-balanced sample. Groups are
        compared across the whole meta-batch when tasks are the groups, and
        within each task when ``tasks`` were given.
        """
        n_classes = logits.shape[-1]
        y, weights, groups = (
            episodes["query_y"],
            episodes["query_w"],
            episodes["query_g"],
        )
        task_log_prior = episodes["log_prior"].to(logits.dtype)
        offset = {
            "task": task_log_prior,
            "pooled": episodes["pooled_log_prior"].to(logits.dtype),
            "balanced": torch.zeros_like(task_log_prior),
        }[self._class_prior()]
        # A temperature below 1 sharpens the probabilities toward the hard
        # decisions that fairness metrics count.
        proba = torch.softmax(
            (logits + offset[:, None, :]) / self.fairness_temperature, dim=-1
        )
        onehot = torch.nn.functional.one_hot(y, n_classes).to(weights.dtype)
        mix = (onehot * weights[..., None]).sum(1)
        mix = mix / mix.sum(-1, keepdim=True).clamp_min(1e-12)
        ratio = task_log_prior.exp() / mix.clamp_min(1e-12)
        weights = weights * ratio.gather(1, y)
        penalty = PENALTIES[self.constraints]
        if self.task_source_ == "tasks":
            return penalty(proba, y, groups, weights).mean()
        return penalty(
            proba.flatten(0, 1), y.flatten(), groups.flatten(), weights.flatten()
        )

    def get_loss(self, y_pred, y_true, X=None, training=False):
        losses = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        if X is None or "weight" not in X:
            return losses.mean()
        weight = to_tensor(X["weight"], device=self.device)
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)

    @staticmethod
    def _weighted_mean(losses, weights):
        """Mean of ``losses`` weighted along the last axis (0 if no weight)."""
        return (losses * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)

    # --------------------------------------------------------- task states
    def _set_support(self, data, y_enc):
        """Store the support set and compute every task's state from it."""
        self.support_X_ = np.asarray(data["X"], dtype=np.float32)
        self.support_y_ = np.asarray(y_enc, dtype=np.int64)
        self.support_w_ = np.asarray(data["weight"], dtype=np.float32)
        self.support_task_ = np.asarray(data["task"], dtype=np.int64)
        self.support_group_ = np.asarray(data["group"], dtype=np.int64)
        self.support_pooled_ = np.ones(len(y_enc), dtype=bool)
        self._refresh_states(range(len(self.tasks_)), recompute_global=True)

    def _add_support(self, data, y_enc):
        self.support_X_ = np.concatenate([self.support_X_, data["X"]])
        self.support_y_ = np.concatenate([self.support_y_, y_enc])
        self.support_w_ = np.concatenate([self.support_w_, data["weight"]])
        self.support_task_ = np.concatenate([self.support_task_, data["task"]])
        self.support_group_ = np.concatenate([self.support_group_, data["group"]])
        # Rows given for a task adapt that task only; rows without one join
        # the pooled support set, which serves unknown tasks.
        self.support_pooled_ = np.concatenate([self.support_pooled_, data["task"] < 0])
        touched = np.unique(data["task"])
        recompute_global = bool((touched < 0).any())
        tasks = touched[touched >= 0]
        if recompute_global and self._task_states_use_global:
            tasks = range(len(self.tasks_))
        self._refresh_states(tasks, recompute_global=recompute_global)

    def _support_tensors(self, mask):
        device = self.device
        return (
            torch.as_tensor(self.support_X_[mask], device=device),
            torch.as_tensor(self.support_y_[mask], device=device),
            torch.as_tensor(self.support_w_[mask], device=device),
        )

    def _refresh_states(self, tasks, *, recompute_global):
        self._set_training(False)
        with self._fork_rng():
            torch.manual_seed(self._seed())
            if recompute_global:
                # The pooled support set: the rows of fit, whatever their task,
                # and the rows given to partial_fit without a task.
                self.global_state_ = self._global_state(
                    *self._support_tensors(self.support_pooled_)
                )
            states = list(getattr(self, "task_states_", []))
            states += [None] * (len(self.tasks_) - len(states))
            for t in tasks:
                states[t] = self._task_state(
                    *self._support_tensors(self.support_task_ == t)
                )
            self.task_states_ = states
        self.class_counts_ = self._class_counts(
            self.support_task_, self.support_y_, self.support_w_, self.support_pooled_
        )

    def _class_counts(self, tasks, y, weights, pooled=None):
        """Summed weight of each class: row 0 the pooled rows, row t + 1 task t."""
        counts = np.zeros((len(self.tasks_) + 1, len(self.classes_)))
        known = tasks >= 0
        np.add.at(counts, (tasks[known] + 1, y[known]), weights[known])
        pooled = slice(None) if pooled is None else pooled
        counts[0] = np.bincount(y[pooled], weights[pooled], len(self.classes_))
        return counts

    def _shrunk_log_priors(self, counts):
        """Log class frequencies per row of ``counts``, shrunk to row 0's.

        Each task's frequencies are ``(n_tk + a * pi_k) / (n_t + a)`` where
        ``pi`` are the pooled frequencies and ``a = n_classes * n_shots``.
        """
        counts = torch.as_tensor(counts, dtype=torch.float64)
        pooled = counts[0] / counts[0].sum().clamp_min(1e-12)
        strength = len(self.classes_) * self.n_shots
        priors = (counts + strength * pooled) / (counts.sum(1, keepdim=True) + strength)
        priors[0] = pooled
        return priors.clamp_min(1e-12).log()

    # ------------------------------------------------------------ prediction
    def infer(self, x, **fit_params):
        # Inference runs in float64, so that a row's prediction does not
        # depend on which rows share its batch (float32 matrix products do).
        x = to_tensor(x, device=self.device)
        logits = self._logits(x["X"].to(torch.float64), x["task"])
        class_prior = self._class_prior()
        if class_prior != "balanced":
            log_priors = self._shrunk_log_priors(self.class_counts_).to(self.device)
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
            dataset = self.get_dataset(
                self._validate_predict_data(X, sensitive_features, tasks)
            )
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
