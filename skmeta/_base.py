"""The wiring shared by the meta-learning classifiers.

Design note: the estimators *subclass* ``skorch.NeuralNet`` rather than own a
net. A skorch user then finds everything where they expect it: ``module`` and
``module__*``, ``optimizer`` and ``optimizer__*``, ``callbacks`` (with
``callbacks__*``), ``history``, ``initialize``, ``save_params`` and
``load_params``, device-agnostic pickling, ``trim_for_prediction``, and
``set_params`` that re-initialises what changed. Owning a net would mean
forwarding each of these by hand. The price is skorch's ``__init__``, which
sets ``history_``, ``initialized_`` and ``virtual_params_``: sklearn's
``check_no_attributes_set_in_init`` is declared as an expected failure for
that reason.

This module only wires; the layers below it are (see the contributors'
architecture page of the documentation):

- ``_functional`` and ``_objectives``: the maths, in pure torch;
- ``_episodes``: episode sampling;
- ``_input``: validation and encoding of the arguments;
- ``_support``: the rows each task adapts to;
- ``_heads``: the per-task logistic heads and their cross-validation;
- ``_task_mixture`` (a mixin of the base class, over ``_mixture``'s algebra):
  the training tasks' mixture that new groups borrow.

What skmeta changes in skorch: ``get_iterator(dataset, training=True)``
returns the episode loader, so skorch's own ``fit_loop`` runs meta-training
(episodes replace mini-batches), ``train_step_single`` computes the
meta-objective, ``sensitive_features`` and ``tasks`` are explicit arguments,
labels are encoded so that ``predict`` returns ``classes_``, and prediction
evaluates each row with its task's adapted state, many tasks at once,
without going through skorch's per-row ``Dataset``.
"""

import contextlib
import fnmatch
import functools
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import (
    EpochScoring,
    EpochTimer,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
)
from skorch.exceptions import SkorchTrainingImpossibleError
from skorch.utils import data_from_dataset, to_tensor
from torch.utils.data import DataLoader, Dataset

from . import _mixture
from ._compat import (
    Interval,
    Options,
    RequestMethod,
    StrOptions,
    validate_parameter_constraints,
)
from ._episodes import (
    BatchLoader,
    EpisodeLoader,
    EpisodeSampler,
    default_steps_per_epoch,
)
from ._heads import _HEAD_FOLDS, task_spread
from ._input import (
    ConstantPredictorWarning,
    MetaInput,
    dense,
    validate_fit_input,
    validate_predict_input,
)
from ._objectives import (
    PENALTIES,
    GroupDRO,
    class_counts,
    fairness_penalty,
    prior_offset,
    shrunk_log_priors,
    weighted_mean,
)
from ._support import _WEIGHT, SupportSet, chunk_rows
from ._task_mixture import TaskMixtureMixin
from .utils._docstrings import fill_doc
from .utils._threads import torch_threads
from .utils._validation import accepts

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
    "states_",
    "log_priors_",
    "head_",
    "head_min_rows_",
    "task_spread_",
    "task_mixture_",
    "_mixture_components_",
    "_mixture_covariates_",
    "_n_training_tasks_",
    "_mixture_scores_",
    "_tasks_index_",
    "_groups_index_",
    "_group_columns_",
)


@functools.lru_cache(maxsize=256)
def _seed_of_int(random_state):
    """The seed an integer ``random_state`` gives (the same at every call;
    building a ``RandomState`` costs about 0.1 ms per ``partial_fit``)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


# Learned prior strengths (log scale) take steps this many times the outer lr.
_PRIOR_LR_FACTOR = 30.0

# History keys of the learned values of ``LearnedPrior``, recorded each epoch.
_HISTORY_KEYS = {"strength": "prior_strength", "scale": "distance_scale"}

# Modules with fewer parameters run on one torch thread with n_threads="auto".
_SMALL_MODULE = 1_000_000


def _encoded_accuracy(net, X, y):
    """Accuracy on encoded targets, for the default ``valid_acc`` callback."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


class _MetaClassifier(TaskMixtureMixin, ClassifierMixin, NeuralNet):
    """Base class of the skmeta classifiers; not for direct use.

    Subclasses implement:

    - ``_query_logits(episodes)``: query logits of a padded meta-batch, after
      adaptation (training);
    - ``_adapt_states(X, y, w, prior, new=True)``: the states of a batch of
      padded support sets (``X`` of shape ``(n_tasks, n_rows, n_features)``),
      as a dict of tensors with a leading task dimension; ``prior`` is the
      pooled state for task states, None for the pooled state itself;
      ``new`` marks supports of groups new to the model (not training
      tasks; see ``_head_rule``). The dict may
      hold ``_mixture.OWN`` (the own model's fold log-likelihoods, for the
      mixture's evidence; one entry per support, None where it has none),
      which the callers take out before storing;
    - ``_state_logits(X, index, states, dtype)``: logits of rows ``X``, each
      evaluated with the state ``index`` (0: pooled, ``t + 1``: task ``t``).

    and name, for their ``head`` parameter, the head ``"auto"`` stands for
    under a fairness penalty (``_FAIR_HEAD``; ``"logistic"`` otherwise) and
    the key of the logistic heads' penalties in ``states_``
    (``_HEAD_PENALTY``).
    """

    _FAIR_HEAD = None
    _HEAD_PENALTY = None

    _parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "n_shots": [Interval(Integral, 1, None, closed="left")],
        "n_queries": [Interval(Integral, 1, None, closed="left")],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left")],
        "steps_per_epoch": [Interval(Integral, 1, None, closed="left"), None],
        "variable_shots": ["boolean"],
        "task_sampling": [StrOptions({"proportional", "uniform"})],
        "class_prior": [StrOptions({"auto", "task", "pooled", "balanced"})],
        "constraints": [StrOptions(set(PENALTIES)), None],
        "fairness_weight": [Interval(Real, 0, None, closed="left")],
        "fairness_temperature": [Interval(Real, 0, None, closed="neither")],
        "dro_step_size": [Interval(Real, 0, None, closed="left")],
        "pooled_episodes": [Interval(Real, 0, 1, closed="both")],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "online_meta_update": ["boolean"],
        "task_mixture": [
            StrOptions({"auto"}),
            Interval(Real, 0, 1, closed="both"),
        ],
        "support_size": [Interval(Integral, 1, None, closed="left")],
        "unknown_groups": [StrOptions({"warn", "pooled", "error"})],
        "inference_dtype": [StrOptions({"float32", "float64"})],
        "warm_start": ["boolean"],
        "predict_nonlinearity": [StrOptions({"auto"})],
        "compile": [Options(bool, {False})],
        "use_caching": [StrOptions({"auto"}), "boolean"],
        "torch_load_kwargs": [dict, None],
        "n_threads": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
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
        variable_shots,
        task_sampling,
        class_prior,
        constraints,
        fairness_weight,
        fairness_temperature,
        dro_step_size,
        pooled_episodes,
        pretrain_epochs,
        online_meta_update,
        task_mixture,
        support_size,
        unknown_groups,
        inference_dtype,
        n_threads,
        sensitive_columns,
        random_state,
        **kwargs,
    ):
        super().__init__(module, **kwargs)
        self.n_shots = n_shots
        self.n_queries = n_queries
        self.meta_batch_size = meta_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.variable_shots = variable_shots
        self.task_sampling = task_sampling
        self.class_prior = class_prior
        self.constraints = constraints
        self.fairness_weight = fairness_weight
        self.fairness_temperature = fairness_temperature
        self.dro_step_size = dro_step_size
        self.pooled_episodes = pooled_episodes
        self.pretrain_epochs = pretrain_epochs
        self.online_meta_update = online_meta_update
        self.task_mixture = task_mixture
        self.support_size = support_size
        self.unknown_groups = unknown_groups
        self.inference_dtype = inference_dtype
        self.n_threads = n_threads
        self.sensitive_columns = sensitive_columns
        self.random_state = random_state

    # Whether a task's state is computed from the pooled state (then every
    # task is refreshed when the pooled state changes).
    _task_states_use_global = False

    # The groups and tasks are requested by default in every method that takes
    # them: under metadata routing, a Pipeline or a search passes them on
    # without set_*_request calls (sample_weight keeps sklearn's default).
    __metadata_request__fit = {"sensitive_features": True, "tasks": True}
    __metadata_request__partial_fit = {"sensitive_features": True, "tasks": True}
    __metadata_request__predict = {"sensitive_features": True, "tasks": True}
    __metadata_request__predict_proba = {"sensitive_features": True, "tasks": True}
    __metadata_request__predict_log_proba = {
        "sensitive_features": True,
        "tasks": True,
    }
    __metadata_request__decision_function = {
        "sensitive_features": True,
        "tasks": True,
    }
    __metadata_request__score = {"sensitive_features": True, "tasks": True}

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified a batch of rows at a time
        return tags

    def __repr__(self):
        # scikit-learn's repr (the parameters that differ from the defaults),
        # also inside pipelines and in notebooks' HTML repr; the network is
        # shown by printing ``module_``.
        return BaseEstimator.__repr__(self)

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_"; private attributes
        # (its `_params_to_validate`) are not hyperparameters.
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
        if self.__sklearn_is_fitted__() and hasattr(self, "support_"):
            self._refresh_states(range(len(self.tasks_)), recompute_global=True)
        return self

    def trim_for_prediction(self):
        """Drop what only training and adaptation need (see skorch).

        On top of skorch's trimming (optimizer, criterion, callbacks,
        history), the support store goes: the model keeps the meta-learned
        network, the adapted state of every task and the class frequencies,
        and no training row. ``fit`` and ``partial_fit`` then raise.
        """
        super().trim_for_prediction()
        self.__dict__.pop("support_", None)
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        # Learned prior strengths live on a log scale and must be able to move
        # by orders of magnitude within a fit: they take steps _PRIOR_LR_FACTOR
        # times the outer learning rate, unless a pattern of
        # optimizer__param_groups matches one of their names (skorch names
        # them "log.strength" and "log.scale").
        named_parameters = list(named_parameters)
        args, kwargs = super().get_params_for_optimizer(prefix, iter(named_parameters))
        prior = getattr(self, "prior_", None)
        if prefix != "optimizer" or prior is None or not args:
            return args, kwargs
        mine = {id(p) for p in prior.parameters()}
        names = [name for name, p in named_parameters if id(p) in mine]
        user_groups = self.get_params_for("optimizer").get("param_groups") or []
        if any(
            fnmatch.fnmatch(n, pattern) for pattern, _ in user_groups for n in names
        ):
            return args, kwargs
        groups = []
        for group in args[0]:
            params = [p for p in group["params"] if id(p) not in mine]
            if params:
                groups.append({**group, "params": params})
        lr = kwargs.get("lr", self.lr) * _PRIOR_LR_FACTOR
        groups.append({"params": list(prior.parameters()), "lr": lr})
        return (groups, *args[1:]), kwargs

    def get_metadata_routing(self):
        # A plain consumer: skmeta does not route fit arguments to a splitter.
        return self._get_metadata_request()

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type):
            # Sized from the data once fitted; a user restoring saved weights
            # into a new object (skorch's pattern) sets module__* instead.
            if "n_features_in" not in kwargs and accepts(self.module, "n_features_in"):
                kwargs["n_features_in"] = self.n_features_model_
            if (
                self._module_outputs_classes
                and "n_classes" not in kwargs
                and accepts(self.module, "n_classes")
            ):
                kwargs["n_classes"] = len(self.classes_)
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def initialize_criterion(self):
        # Per-row losses: skmeta weighs rows (sample_weight, padding masks).
        kwargs = {"reduction": "none", **self.get_params_for("criterion")}
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "states_")

    def _check_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )

    def _check_settings(self):
        """Combinations of settings that would fail late or do nothing."""
        name = type(self).__name__
        device = self._torch_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
            raise ValueError(
                f"device={self.device!r}, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, {build}). Use device='cpu', or "
                "install a CUDA build of torch on a machine with a GPU."
            )
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={self.device!r}, but torch sees only "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(
                f"device={self.device!r}, but torch.backends.mps.is_available() "
                "is False. Use device='cpu'."
            )
        callbacks = self.callbacks if isinstance(self.callbacks, list) else []
        for callback in callbacks:
            callback = callback[1] if isinstance(callback, tuple) else callback
            monitor = getattr(callback, "monitor", None)
            if (
                self.train_split is None
                and isinstance(monitor, str)
                and monitor.startswith("valid")
            ):
                raise ValueError(
                    f"The callback {type(callback).__name__} monitors "
                    f"{monitor!r}, which needs validation rows, but "
                    "train_split=None. Set train_split=skorch.dataset.ValidSplit"
                    "(5) (for example), or monitor 'train_loss'."
                )
        if self.constraints is None and self.fairness_weight > 0:
            warnings.warn(
                f"fairness_weight={self.fairness_weight} has no effect with "
                "constraints=None; set constraints (e.g. 'demographic_parity') "
                f"to train {name} with a fairness penalty.",
                UserWarning,
                stacklevel=3,
            )
        if self.iterator_train is not DataLoader:
            warnings.warn(
                f"iterator_train={self.iterator_train!r} is not used: {name} "
                "draws its training episodes itself.",
                UserWarning,
                stacklevel=3,
            )

    # --------------------------------------------------------------- training
    def fit(self, X, y, *, sensitive_features=None, tasks=None, sample_weight=None):
        """Meta-train on the groups, then adapt to every group seen.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
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
            Non-negative weight of each row in every loss. Weights are
            relative: they are rescaled to sum to the number of rows with a
            positive weight, so multiplying them all by a constant does not
            change the model, and the rules that count rows (step sizes,
            shrinkage, class priors) see effective row counts.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_params()
        self._check_settings()
        with torch_threads(self._threads()):
            return self._fit(X, y, sensitive_features, tasks, sample_weight)

    def _fit(self, X, y, sensitive_features, tasks, sample_weight):
        self.check_training_readiness()
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
        start = time.perf_counter()
        self._set_support(self._new_support(data))
        self._fit_task_mixture()
        if self.verbose:
            print(
                f"Adapted {len(self.tasks_)} task(s) and the pooled state in "
                f"{time.perf_counter() - start:.1f} s."
            )
        self._warn_if_near_constant(data)
        return self

    def _warn_if_near_constant(self, data, n_max=10000):
        """Warn when the fitted model predicts one class for almost every row.

        A fairness penalty can be minimised by predicting the same class for
        everyone: parity holds, and the model is useless. Checked on up to
        ``n_max`` training rows, each with its task's state.
        """
        rows = np.arange(len(data.y))
        if len(rows) > n_max:
            rows = np.random.default_rng(0).choice(rows, n_max, replace=False)
        with torch.inference_mode():
            logits = self._predict_logits(
                torch.as_tensor(dense(data.X[rows])), torch.as_tensor(data.task[rows])
            )
        predicted = np.bincount(
            logits.argmax(1).cpu().numpy(), minlength=len(self.classes_)
        ) / len(rows)
        top = int(predicted.argmax())
        truth = np.bincount(data.y, data.weight, len(self.classes_))
        truth = truth[top] / truth.sum()
        if predicted[top] >= 0.99 and truth <= 0.95:
            penalty = (
                f" The fairness penalty (constraints={self.constraints!r}, "
                f"fairness_weight={self.fairness_weight}) may have bought parity "
                "with a constant prediction: lower fairness_weight, or check the "
                "trade-off with skmeta.metrics.FairnessTradeoffDisplay."
                if self.constraints is not None and self.fairness_weight > 0
                else " Train longer (max_epochs) or check the features and lr."
            )
            label = self.classes_[top].tolist()
            warnings.warn(
                f"{type(self).__name__} predicts class {label!r} for "
                f"{predicted[top]:.1%} of the training rows, which hold "
                f"{truth:.1%} of that class: it is close to a constant "
                f"classifier.{penalty}",
                ConstantPredictorWarning,
                stacklevel=2,
            )

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
        meta-training on the rows kept in the support store (follow the
        meta-leader) and adapts every task again.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
            New rows.

        y : array-like of shape (n_samples,)
            Their class labels, all in ``classes_``.

        classes : array-like of shape (n_classes,), default=None
            All classes; required on the first call.

        sensitive_features : array-like of shape (n_samples,) or \
                (n_samples, n_sensitive), default=None
            Sensitive group of each row, with the columns given to
            :meth:`fit` (see :meth:`predict`). Rows without a group (None)
            join the pooled support set, which serves unknown groups.

        tasks : array-like of shape (n_samples,), default=None
            Task of each row, when tasks are not the sensitive groups.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, relative within this call (see
            :meth:`fit`).

        Returns
        -------
        self : object
            The estimator.
        """
        self._check_params()
        if not self.__sklearn_is_fitted__():
            self._check_settings()
        with torch_threads(self._threads()):
            return self._partial_fit(
                X, y, classes, sensitive_features, tasks, sample_weight
            )

    def _partial_fit(self, X, y, classes, sensitive_features, tasks, sample_weight):
        self.check_training_readiness()
        first_call = not self.__sklearn_is_fitted__()
        if first_call:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit."
                )
            self._clear_fitted()
        elif not hasattr(self, "support_"):
            raise SkorchTrainingImpossibleError(
                "This model was trimmed for prediction: it kept no support rows, "
                "so it cannot adapt any more."
            )
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
            self._set_support(self._new_support(data))
            self._fit_task_mixture()
            return self
        self._add_support(data)
        if self.online_meta_update:
            # Follow the meta-leader: one more epoch of meta-training on the
            # rows kept, then every task is adapted again.
            self._meta_train(self._kept_rows(), epochs=1, initialize=False)
            self._refresh_states(range(len(self.tasks_)), recompute_global=True)
        return self

    def _kept_rows(self):
        """The support store's rows as training data (``online_meta_update``)."""
        store = (
            self.support_.pooled
            if self.task_source_ == "pooled"
            else self.support_.tasks
        )
        data = store.as_dict()
        if self.task_source_ == "pooled":
            data["task"] = np.full(len(data["task"]), -1, dtype=np.int64)
        return MetaInput(**data, y=store.y[: store.n].copy())

    def _clear_fitted(self):
        for attr in _FITTED_ATTRIBUTES:
            self.__dict__.pop(attr, None)

    def _seed(self):
        if isinstance(self.random_state, Integral):
            return _seed_of_int(int(self.random_state))
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    def _torch_device(self):
        """``device`` as a :class:`torch.device` (``None`` is the CPU)."""
        return torch.device("cpu" if self.device is None else self.device)

    def _manual_seed(self, seed):
        """Seed torch's generators for this estimator's device.

        On the CPU only the CPU generator is seeded: ``torch.manual_seed``
        would also queue a lazy seeding call for each accelerator backend,
        each recording a stack trace, about 0.6 ms per call in all (a quarter
        of a new-group ``partial_fit`` of ProtoNet). Other devices keep
        ``torch.manual_seed``. Either way the CPU generator gets the same state.
        """
        device = self._torch_device()
        if device.type == "cpu":
            torch.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)

    def _fork_rng(self):
        """Keep the caller's random state (CPU, and the CUDA device used)."""
        device = self._torch_device()
        devices = [device] if device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _meta_train(self, data, *, epochs, initialize):
        """Run skorch's ``fit_loop`` on ``data``, seeded by ``random_state``."""
        seed = self._seed()
        X, y = data.as_dict(), data.y
        with self._fork_rng():
            self._manual_seed(seed)
            if initialize:
                self.initialize()
            self._check_module()
            if initialize and self.pretrain_epochs:
                # Run by get_iterator on the training rows (after train_split).
                self._pretrain_seed_ = seed
            self._episode_seed_ = seed
            self._input_scale_ = float(abs(data.X).max()) if data.X.shape[0] else 0.0
            try:
                self.notify("on_train_begin", X=X, y=y)
                # KeyboardInterrupt is how skorch's EarlyStopping ends training.
                with contextlib.suppress(KeyboardInterrupt):
                    self.fit_loop(X, y, epochs=epochs)
                self.notify("on_train_end", X=X, y=y)
            finally:
                for attr in (
                    "_pretrain_seed_",
                    "_episode_steps_",
                    "_episode_seed_",
                    "_input_scale_",
                    "_train_rows_",
                    "_group_dro_",
                ):
                    self.__dict__.pop(attr, None)
                self._set_training(False)

    def _check_module(self):
        """Reject modules the estimator cannot train (see subclasses)."""

    def _pretrain_head(self, n_outputs):
        """What maps the module's output to class logits in pretraining
        (None: the module's output is the logits)."""
        return None

    def _pretrain(self, data, seed):
        """``pretrain_epochs`` of class-balanced supervised training of the
        module on the pooled rows (see ``pretrain_epochs``)."""
        n_classes = len(self.classes_)
        y = torch.as_tensor(data.y)
        w = torch.as_tensor(data.weight, dtype=torch.float32)
        totals = torch.zeros(n_classes).index_add_(0, y, w)
        # Each class weighs the same in total, as in the balanced episodes.
        w = w * (totals.sum() / (n_classes * totals.clamp_min(1e-12)))[y]
        keep = torch.nonzero(w > 0).flatten()
        if keep.numel() == 0:
            return
        first = self._rows_tensor(data.X, keep[:1])
        with torch.no_grad():
            n_outputs = self.module_(first).shape[-1]
        head = self._pretrain_head(n_outputs)
        if head is None and n_outputs != n_classes:
            raise ValueError(
                f"pretrain_epochs needs the module to output one logit per "
                f"class ({n_classes}); it outputs {n_outputs}."
            )
        params = list(self.module_.parameters())
        if head is not None:
            head = head.to(self.device)
            params += list(head.parameters())
        kwargs = self.get_params_for("optimizer")
        kwargs.pop("param_groups", None)
        optimizer = self.optimizer(params, **{"lr": self.lr, **kwargs})
        batch = self.batch_size if self.batch_size > 0 else len(keep)
        generator = torch.Generator().manual_seed(seed)
        # Moved once, indexed per batch (the row order is drawn on the CPU).
        y_device, w_device = y.to(self.device), w.to(self.device)
        self._set_training(True)
        for _ in range(self.pretrain_epochs):
            order = keep[torch.randperm(len(keep), generator=generator)]
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                logits = self.module_(self._rows_tensor(data.X, rows))
                if head is not None:
                    logits = head(logits)
                rw = w_device[rows]
                losses = self.criterion_(logits, y_device[rows])
                loss = (losses * rw).sum() / rw.sum()
                if not torch.isfinite(loss):
                    self._raise_non_finite(f"the pretraining loss is {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def _rows_tensor(self, X, rows):
        """Rows ``rows`` of ``X`` (dense or sparse) as a float32 tensor."""
        return torch.as_tensor(
            dense(X[rows.numpy()]), dtype=torch.float32, device=self.device
        )

    def on_epoch_end(self, net, **kwargs):
        # Learned prior strengths (and distance scales) go to the history, so
        # that a user can see whether they had settled when training ended.
        super().on_epoch_end(net, **kwargs)
        prior = getattr(self, "prior_", None)
        if prior is not None:
            with torch.no_grad():
                for name, value in prior().items():
                    self.history.record(_HISTORY_KEYS[name], float(value))

    def notify(self, method_name, **cb_kwargs):
        # skorch's ProgressBar sizes an epoch from the training rows and the
        # batch size; an epoch here is a number of meta-batches: it is told so.
        steps = getattr(self, "_episode_steps_", None)
        if method_name != "on_epoch_begin" or steps is None:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        for _, callback in self.callbacks_:
            kwargs = cb_kwargs
            if isinstance(callback, ProgressBar):
                batch = self.get_params().get(
                    "iterator_train__batch_size", self.batch_size
                )
                kwargs = {**cb_kwargs, "dataset_train": range(steps * batch)}
            getattr(callback, method_name)(self, **kwargs)
        return None

    def get_iterator(self, dataset, training=False):
        """skorch's iterator for prediction; the episode loader for training.

        ``fit_loop`` asks for the training iterator once per call: the
        episodes are drawn from the training rows of ``dataset`` (those with
        a positive weight), seeded by ``random_state``.
        """
        if not training:
            data, y = data_from_dataset(dataset)
            return BatchLoader(data, y, batch_size=self.batch_size, device=self.device)
        data, y = data_from_dataset(dataset)
        y = np.asarray(y)
        pretrain_seed = self.__dict__.pop("_pretrain_seed_", None)
        if pretrain_seed is not None:
            # Pretraining sees the training rows only, as meta-training does.
            self._pretrain(MetaInput(**data, y=y), pretrain_seed)
        # Kept until the end of fit_loop: validation adapts to these rows.
        self._train_rows_ = (data, y)
        seed = getattr(self, "_episode_seed_", None)
        rng = np.random.default_rng(self._seed() if seed is None else seed)
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
            n_tasks=1 if pooled else len(sampler.eligible),
        )
        self._episode_steps_ = n_steps
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
            self._set_support(self._new_support(MetaInput(**data, y=y)))
        if not (training and isinstance(iterator, EpisodeLoader)):
            return super().run_single_epoch(
                iterator, training, prefix, step_fn, **fit_params
            )
        # skorch's loop, but a meta-batch's size (its number of tasks) is read
        # from its task ids: skorch's get_len walks every tensor of the
        # episode, a tenth of a millisecond per step.
        batch_count = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            self.history.record_batch(prefix + "_loss", step["loss"].item())
            self.history.record_batch(prefix + "_batch_size", len(batch[0]["task"]))
            self.notify("on_batch_end", batch=batch, training=training, **step)
            batch_count += 1
        self.history.record(prefix + "_batch_count", batch_count)
        return None

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
            variable_shots=self.variable_shots,
            task_sampling=self.task_sampling,
        )
        if sampler.excluded.size:
            names = [str(t) for t in self.tasks_[sampler.excluded][:20]]
            more = sampler.excluded.size - len(names)
            warnings.warn(
                f"{sampler.excluded.size} task(s) have rows of a single class, or no "
                "class with 2 rows, so their episodes cannot teach adaptation; they "
                "are left out of meta-training: "
                f"{', '.join(names)}{f' and {more} more' if more > 0 else ''}. They "
                "are still adapted to after fitting.",
                UserWarning,
                stacklevel=2,
            )
        if sampler.eligible.size == 0:
            warnings.warn(
                "No task has rows of two classes with a class of 2 rows; "
                "meta-training draws episodes from the pooled data instead.",
                UserWarning,
                stacklevel=2,
            )
            return self._pooled_sampler(data, y, rng), True
        return sampler, False

    def _pooled_sampler(self, data, y, rng):
        # The pooled data is the only task: any class mix trains.
        sampler = EpisodeSampler(
            np.zeros_like(data["task"]),
            y,
            len(self.classes_),
            n_shots=self.n_shots,
            n_queries=self.n_queries,
            meta_batch_size=self.meta_batch_size,
            rng=rng,
            min_classes=1,
            variable_shots=self.variable_shots,
        )
        if sampler.eligible.size == 0:
            raise ValueError(
                "Meta-training needs at least 2 rows of one class (with a "
                "positive sample_weight) to form a support and a query set."
            )
        return sampler

    def _raise_non_finite(self, what):
        scale = getattr(self, "_input_scale_", None)
        hints = [
            "standardise the features (e.g. with sklearn.preprocessing."
            "StandardScaler)"
            + (f"; the largest absolute value in X is {scale:.3g}" if scale else ""),
            f"lower lr (now {self.lr})",
        ]
        hints += self._divergence_hints()
        if self.dro_step_size > 0:
            hints.append(f"lower dro_step_size (now {self.dro_step_size})")
        raise FloatingPointError(
            f"{type(self).__name__} diverged: {what}. Training stopped; no "
            "fitted model was kept. To fix it, " + ", or ".join(hints) + "."
        )

    def _divergence_hints(self):
        return []

    def _episode_loss(self, episodes):
        """Outer (meta) objective and query logits of a padded meta-batch."""
        logits = self.infer(episodes)
        return self.get_loss(logits, None, X=episodes, training=True), logits

    def _meta_loss(self, logits, episodes):
        """Outer (meta) objective on the query logits of a meta-batch.

        The query loss of each task (a weighted mean over its query rows),
        averaged over tasks or weighted by ``dro_step_size``, plus
        ``fairness_weight`` times the penalty named by ``constraints``.
        """
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
        if not torch.isfinite(loss):
            self._raise_non_finite(f"the meta-training loss is {loss.item()}")
        return loss

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
        """The meta-objective for a meta-batch of episodes (training); the
        weighted loss of the rows for skorch's validation batches."""
        if isinstance(X, dict) and "query_y" in X:
            return self._meta_loss(y_pred, X)
        losses = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        if X is None or "weight" not in X:
            return losses.mean()
        weight = to_tensor(X["weight"], device=self.device)
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)

    # ------------------------------------------------------------ task states
    def _new_support(self, data):
        support = SupportSet(
            self.n_features_model_,
            len(self.classes_),
            self.support_size,
            random_state=self._seed(),
        )
        support.add(data, pooled=np.ones(len(data.y), dtype=bool))
        return support

    def _set_support(self, support):
        """Store the support set and compute every task's state from it."""
        # What head="auto" leaves unset (see _auto_head).
        self.task_spread_, self.head_min_rows_ = np.nan, self._UNESTIMATED_MIN_ROWS
        # The head is settled when the first states are computed.
        if self.head == "auto":
            fair = self.constraints is not None and self.fairness_weight > 0
            self.head_ = self._FAIR_HEAD if fair else self._auto_head(support)
        else:
            self.head_ = self.head
        # Tensors skorch maps to an available device when unpickling.
        extra = [
            name
            for name in ("states_", "log_priors_")
            if name not in self.cuda_dependent_attributes_
        ]
        self.cuda_dependent_attributes_ = self.cuda_dependent_attributes_[:] + extra
        self.support_ = support
        self.__dict__.pop("states_", None)
        self._refresh_states(range(len(self.tasks_)), recompute_global=True)

    def _auto_head(self, support):
        """The head ``"auto"`` stands for without a fairness penalty."""
        return "logistic"

    # head_min_rows_ where the training tasks' spread is not estimated.
    _UNESTIMATED_MIN_ROWS = 0.0
    # Rows of its rarest class a task needs to cross-validate a head where
    # the spread is not estimated (see _head_min_class_rows): the full folds.
    _UNESTIMATED_CLASS_ROWS = _HEAD_FOLDS

    def _head_min_class_rows(self):
        """Rows of its rarest class from which a task cross-validates a head
        (ProtoNet) or correction (MAML): 2 (two folds) where the training
        tasks' spread was estimated, ``_UNESTIMATED_CLASS_ROWS`` (5, the full
        five folds) where not. Without the spread nothing tempers the choice,
        and with two to four rows of a class (as many folds, of one row of
        it each) the cross-validation picks heads that lose on the group's
        further rows, in log loss always and in balanced accuracy mostly
        (``explore_small_groups.py`` in the benchmarks)."""
        if np.isnan(self.__dict__.get("task_spread_", np.nan)):
            return self._UNESTIMATED_CLASS_ROWS
        return 2

    def _estimate_spread(self, support):
        """Set ``task_spread_`` and ``head_min_rows_`` from how far the
        training tasks' linear models spread around the pooled one
        (:func:`~skmeta._heads.task_spread`): ``head_min_rows_ = 1 / (tau2
        v)``, ``inf`` where ``tau2 <= 0``, ``_UNESTIMATED_MIN_ROWS`` where it
        cannot be estimated."""
        store = support.tasks
        tau2 = np.nan
        if len(self.classes_) == 2 and store.n:
            n = store.n
            tau2, curvature, _ = task_spread(
                store.X[:n], store.y[:n], store.weight[:n], store.key[:n], self._seed()
            )
        self.task_spread_ = tau2
        if np.isnan(tau2):
            self.head_min_rows_ = self._UNESTIMATED_MIN_ROWS
        elif tau2 <= 0:
            self.head_min_rows_ = np.inf
        else:
            self.head_min_rows_ = 1.0 / (tau2 * curvature)

    def _head_rule(self, task_rows, default, new):
        """How each task's head chooses its penalty: ``(tolerance,
        max_penalty)``, two tensors like ``task_rows``.

        A group new to the model (``new``, a bool or one per task: not among
        the training tasks) of at least ``head_min_rows_`` rows, where the
        training tasks' spread ``tau2`` was estimated (``0 < task_spread_``),
        is *trusted*: its own rows pin its coefficients down better than the
        spread does, so it takes a head of its own (not the prior head), of
        the penalty of smallest held-out loss among those up to ``1 /
        tau2``, the precision of the spread (a larger penalty would hold it
        closer to the prior than the training groups are to each other):
        tolerance 0, ``max_penalty = 1 / tau2``. The others take the
        ``default`` tolerance (in standard errors) among every candidate
        (``max_penalty`` infinite). The training tasks are never trusted:
        their rows are in the spread's estimate and in the network's
        training, and their states are the components that new groups'
        mixtures borrow."""
        spread = self.__dict__.get("task_spread_", np.nan)
        device = task_rows.device
        untrusted = torch.full(task_rows.shape, float(default), device=device)
        no_cap = torch.full(task_rows.shape, torch.inf, device=device)
        if not spread > 0:  # NaN: unestimated
            return untrusted, no_cap
        trusted = task_rows >= self.head_min_rows_
        trusted &= torch.as_tensor(new, device=device)
        return (
            torch.where(trusted, 0.0, untrusted),
            torch.where(trusted, 1.0 / spread, no_cap),
        )

    def _add_support(self, data):
        self.support_.add(data)
        touched = np.unique(data.task)
        recompute_global = bool((touched < 0).any())
        tasks = touched[touched >= 0]
        if recompute_global and self._task_states_use_global:
            tasks = range(len(self.tasks_))
        self._refresh_states(tasks, recompute_global=recompute_global)

    def _refresh_states(self, tasks, *, recompute_global):
        """Recompute the pooled state and the states of ``tasks``.

        Task states are computed many tasks at once: tasks are sorted by
        their number of rows and adapted in padded batches of similar sizes.
        A task without rows (all its rows weighed 0) gets the pooled state,
        as unknown tasks do.
        """
        self._set_training(False)
        support = self.support_
        tasks = np.asarray(list(tasks), dtype=np.int64)
        n_states = len(self.tasks_) + 1
        with self._fork_rng(), torch.no_grad():
            self._manual_seed(self._seed())
            if recompute_global or not hasattr(self, "states_"):
                n = support.pooled.n
                pooled, weight = self._adapt_states(
                    *self._padded(
                        support.pooled, np.arange(n), np.array([0]), np.array([n])
                    ),
                    prior=None,
                )
                pooled = {**pooled, _WEIGHT: weight}
                self._check_finite(pooled, "the state adapted to the pooled data")
                old = self.__dict__.get("states_")
                self.states_ = self._grow_states(pooled, n_states, reset=True)
                if old is not None:
                    # Tasks not refreshed keep their states (and mixtures).
                    for name, v in old.items():
                        n_old = min(len(v), n_states)
                        if name in self.states_:
                            self.states_[name][1:n_old] = v[1:n_old]
                        else:
                            self.states_[name] = self._grow_states({name: v}, n_states)[
                                name
                            ]
            else:
                self.states_ = self._grow_states(self.states_, n_states)
            prior = {
                name: v[0].clone()
                for name, v in self.states_.items()
                if name != _WEIGHT
            }
            # Tasks default to the pooled state, then those with rows adapt.
            for name, v in self.states_.items():
                v[tasks + 1] = prior[name] if name != _WEIGHT else 0.0
            order, keys, starts, ends = support.tasks.by_key(tasks)
            sizes = ends - starts
            by_size = np.argsort(sizes, kind="stable")
            # The new tasks' own fold log-likelihoods, if the heads computed
            # them, for the mixture's evidence.
            mixing = _mixture.SHARE in self.states_
            own_by_task = {}
            # Tasks from here on were added after fit (during fit: none).
            n_training = self.__dict__.get("_n_training_tasks_", len(self.tasks_))
            budget = chunk_rows(support.tasks.X.shape[1])
            i = 0
            while i < len(by_size):
                # Tasks of similar sizes, as many as fit the row budget padded.
                j = i + 1
                limit = i + self._max_tasks_per_batch()
                while (
                    j < min(len(by_size), limit)
                    and (j - i + 1) * int(sizes[by_size[j]]) <= budget
                ):
                    j += 1
                chosen = by_size[i:j]
                states, weight = self._adapt_states(
                    *self._padded(support.tasks, order, starts[chosen], ends[chosen]),
                    prior=prior,
                    new=torch.as_tensor(keys[chosen] >= n_training),
                )
                own = states.pop(_mixture.OWN, None)
                if own is not None and mixing:
                    for key, value in zip(keys[chosen], own, strict=True):
                        if key >= self._n_training_tasks_:
                            own_by_task[key] = value
                states = {**states, _WEIGHT: weight}
                self._check_finite(states, "the state adapted to a task's rows")
                for name, v in states.items():
                    self.states_[name][keys[chosen] + 1] = v
                i = j
            if mixing:
                self._set_mixtures(tasks, prior, own_by_task)
        counts = support.class_counts(len(self.tasks_))
        self.class_counts_ = counts
        self.log_priors_ = self._log_priors(counts, tasks, recompute_global)

    def _log_priors(self, counts, tasks, recompute_global):
        """Class log priors of the pooled rows and of every task.

        Only the pooled rows change the pooled frequencies that every task's
        prior shrinks toward, so after adding rows to some tasks only their
        rows (and those of new tasks) are computed: a new-group
        ``partial_fit`` does not recompute the priors of every task known.
        """
        strength = self._prior_strength()
        old = self.__dict__.get("log_priors_")
        if recompute_global or old is None or len(old) > len(counts):
            return shrunk_log_priors(counts, strength).to(self.device)
        rows = np.union1d(
            np.asarray(tasks, dtype=np.int64) + 1, np.arange(len(old), len(counts))
        )
        new = shrunk_log_priors(counts[np.r_[0, rows]], strength)[1:]
        out = torch.cat([old, old.new_zeros((len(counts) - len(old), old.shape[1]))])
        out[torch.as_tensor(rows, device=out.device)] = new.to(out.device)
        return out

    @property
    def adaptation_weight_(self):
        """Share of each task's state owed to its own rows, from 0 (the
        meta-learned state) to 1 (its own rows alone), for each task of
        ``tasks_``."""
        check_is_fitted(self)
        weights = self.states_[_WEIGHT][1 : len(self.tasks_) + 1]
        return weights.detach().cpu().numpy().astype(np.float64)

    @property
    def head_penalty_(self):
        """Penalty of each task's logistic head (``head="logistic"``), for
        each task of ``tasks_``; ``inf`` where the task has none."""
        check_is_fitted(self)
        if self._HEAD_PENALTY not in self.states_:
            raise AttributeError(
                "head_penalty_ is only available with the logistic head; this "
                f"model uses head_={self.head_!r} (head={self.head!r})."
            )
        penalty = self.states_[self._HEAD_PENALTY][1 : len(self.tasks_) + 1]
        penalty = penalty.detach().cpu().numpy().astype(np.float64)
        return np.where(penalty > 0, penalty, np.inf)

    def _max_tasks_per_batch(self):
        """Most tasks adapted in one batch (subclasses bound their memory)."""
        return 2**62

    def _padded(self, store, order, starts, ends):
        """Padded ``(X, y, w)`` of shape ``(n_tasks, n_rows, ...)``: task ``i``
        holds the rows ``order[starts[i]:ends[i]]`` of ``store``, padding
        weighs 0."""
        lengths = ends - starts
        n_tasks, n_max, total = (
            len(lengths),
            max(1, int(lengths.max())),
            int(lengths.sum()),
        )
        offsets = np.cumsum(lengths) - lengths
        task = np.repeat(np.arange(n_tasks), lengths)
        slot = np.arange(total) - np.repeat(offsets, lengths)
        rows = order[np.repeat(starts, lengths) + slot]
        X = np.zeros((n_tasks, n_max, store.X.shape[1]), dtype=np.float32)
        y = np.zeros((n_tasks, n_max), dtype=np.int64)
        w = np.zeros((n_tasks, n_max), dtype=np.float32)
        X[task, slot], y[task, slot], w[task, slot] = (
            store.X[rows],
            store.y[rows],
            store.weight[rows],
        )
        device = self.device
        return (
            torch.as_tensor(X, device=device),
            torch.as_tensor(y, device=device),
            torch.as_tensor(w, device=device),
        )

    def _grow_states(self, states, n_states, *, reset=False):
        """States with room for at least ``n_states`` rows (the first kept).

        Growing doubles the room, so that adding groups one at a time costs
        amortised constant time; rows past ``len(tasks_) + 1`` are spare.
        """
        grown = {}
        for name, v in states.items():
            if reset:
                v = v[:1].expand(n_states, *v.shape[1:]).clone()
            elif len(v) < n_states:
                room = max(n_states, 2 * len(v))
                extra = v[:1].expand(room - len(v), *v.shape[1:])
                v = torch.cat([v, extra])
            grown[name] = v
        return grown

    def _check_finite(self, states, what):
        for name, v in states.items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                self._raise_non_finite(f"{what} holds non-finite values ({name})")

    # ------------------------------------------------------------- prediction
    def infer(self, x, **fit_params):
        """Query logits of a meta-batch of episodes (skorch's training step
        calls this, then :meth:`get_loss`); logits of the rows of skorch's
        validation batches (a dict with ``"X"`` and ``"task"``)."""
        if "support_X" in x:
            return self._query_logits(x)
        x = to_tensor(x, device=self.device)
        return self._predict_logits(x["X"], x["task"]).to(torch.float32)

    def _inference_dtype(self):
        return torch.float64 if self.inference_dtype == "float64" else torch.float32

    def _predict_logits(self, X, task):
        """Logits of rows ``X`` (tensor) of tasks ``task``, class prior added."""
        dtype = self._inference_dtype()
        X = X.to(device=self.device, dtype=dtype)
        task = task.to(self.device)
        logits = self._state_logits(X, task + 1, self.states_, dtype)
        if _mixture.SHARE in self.states_:
            logits = self._mixed_logits(X, task + 1, logits, dtype)
        class_prior = self._class_prior()
        if class_prior != "balanced":
            rows = task + 1 if class_prior == "task" else torch.zeros_like(task)
            logits = logits + self.log_priors_.to(dtype).index_select(0, rows)
        return logits

    def _forward_logits(self, X, sensitive_features, tasks):
        """Float64 logits for the prediction methods, chunk by chunk."""
        check_is_fitted(self)
        if isinstance(X, Dataset):  # from skorch callbacks during training
            data, _ = data_from_dataset(X)
            X, task = data["X"], np.asarray(data["task"])
        else:
            data = validate_predict_input(self, X, sensitive_features, tasks)
            X, task = data.X, data.task
        with torch_threads(self._threads()):
            logits = self._logits_array(X, task)
        # A row whose largest score is not finite (NaN, +inf, or -inf for
        # every class) has no probabilities: raise rather than return NaN.
        bad = ~np.isfinite(logits.max(axis=1))
        if bad.any():
            rows = np.flatnonzero(bad)
            scale = float(np.abs(dense(X[rows[:1000]])).max())
            raise ValueError(
                f"{type(self).__name__} cannot score {len(rows)} of {len(bad)} "
                f"row(s) of X (the first: row {rows[0]}): their scores overflow "
                f"in {self.inference_dtype} (the largest absolute feature value "
                f"among them is {scale:.3g}). Scale X as the rows given to fit "
                "were scaled (e.g. with the same fitted StandardScaler)"
                + (
                    ", or pass inference_dtype='float64'."
                    if self.inference_dtype != "float64"
                    else "."
                )
            )
        return logits

    def _threads(self):
        """The torch threads to use: ``n_threads`` with ``"auto"`` resolved."""
        if self.n_threads != "auto":
            return self.n_threads
        module = getattr(self, "module_", None)
        n_params = 0 if module is None else sum(p.numel() for p in module.parameters())
        return 1 if n_params < _SMALL_MODULE else None

    def _logits_array(self, X, task):
        out = np.empty((X.shape[0], len(self.classes_)), dtype=np.float64)
        with torch.inference_mode():
            step = chunk_rows(X.shape[1])
            for start in range(0, X.shape[0], step):
                stop = start + step
                chunk = dense(X[start:stop])  # sparse: densify a chunk
                logits = self._predict_logits(
                    torch.as_tensor(chunk), torch.as_tensor(task[start:stop])
                )
                out[start:stop] = logits.to(torch.float64).cpu().numpy()
        return out

    @fill_doc
    def predict_proba(self, X, *, sensitive_features=None, tasks=None):
        """Class probabilities, from each row's task state.

        Rows of a task seen in ``fit`` or ``partial_fit`` use its adapted
        state; other rows use the model adapted to the pooled support set.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype=float64
            Rows sum to 1; columns follow ``classes_``.
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    @fill_doc
    def predict_log_proba(self, X, *, sensitive_features=None, tasks=None):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), dtype=float64
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    @fill_doc
    def decision_function(self, X, *, sensitive_features=None, tasks=None):
        """Scores: the logit difference for binary problems, logits otherwise.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            float64; positive values favour ``classes_[1]`` in binary problems.
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    @fill_doc
    def score(self, X, y, sample_weight=None, *, sensitive_features=None, tasks=None):
        """Accuracy of :meth:`predict`, each row predicted with its group's state.

        Parameters
        ----------
        {predict_parameters}

        y : array-like of shape (n_samples,)
            True labels.

        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
        """
        y_pred = self.predict(X, sensitive_features=sensitive_features, tasks=tasks)
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    @fill_doc
    def predict(self, X, *, sensitive_features=None, tasks=None):
        """Class labels, from each row's task state.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._forward_logits(X, sensitive_features, tasks)
        return self.classes_[logits.argmax(axis=1)]
