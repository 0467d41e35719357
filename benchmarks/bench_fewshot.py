"""Few-shot adaptation to held-out groups: skmeta against simple baselines.

Leave-groups-out evaluation. For each data set, models are (meta-)trained on
the training groups only. For each held-out group and each k in {1, 5, 10, 20},
a class-balanced support set of k rows per class is drawn from the group, every
method adapts to it, and the rest of the group is the query set. This repeats
over S paired seeds: within a seed, every method sees the same support set.

A data set is made of one or more *folds*, each with its own training groups,
held-out groups and fitted models: the synthetic sets drawn with several
generator seeds have one fold per seed, and the heart disease data one fold per
hospital (leave one site out). Per paired seed, the metrics are averaged over
all held-out groups of all folds (mean) and their minimum is taken (worst
group); tables give the mean over seeds and its standard error.

Methods
-------
- pooled LR: ``LogisticRegression`` on the pooled training groups (no adaptation);
- pooled MLP: a skorch ``NeuralNetClassifier`` with skmeta's default ``MLP``
  (one hidden layer of 64 units) on the pooled training groups;
- MLP fine-tuned: a copy of the pooled MLP trained further on the k rows
  (skorch ``partial_fit``, full batch, fresh Adam);
- LR on k rows: ``LogisticRegression`` on the support set alone;
- LR shrunk to pooled: logistic regression on the support set with the penalty
  ``alpha / 2 * ||theta - theta_pooled||^2`` on the coefficients and intercept,
  i.e. the MAP estimate under a Gaussian prior centred at the pooled LR, with
  ``alpha`` chosen for each support set by cross-validation on that support
  set (``choose_by_cv``);
- MAML (default), ProtoNet (default): ``skmeta.MAMLClassifier`` and
  ``skmeta.PrototypicalClassifier`` with the package's default parameters
  except ``class_prior="balanced"`` (and a shorter training budget with
  ``--quick``), meta-trained with
  ``tasks=`` and adapted with ``partial_fit`` on a deep copy (``partial_fit``
  accumulates rows);
- MAML (tuned), ProtoNet (tuned): the same, with a few parameters chosen on
  validation groups (only where a data set has validation groups);
- oracle (heart only, not a baseline): LR trained on the held-out site's own
  rows, cross-fitted: each query row is scored by a model fitted on the
  site's rows outside its fold (10 stratified folds), a ceiling that no
  method adapting from k rows can reach.

The metric is balanced accuracy, and support sets are class-balanced, so the
skmeta models use ``class_prior="balanced"`` and the pooled models are trained
with balanced class weights. ROC AUC does not depend on that choice.

Hyperparameters of the tuned rows, the LR on k rows and the fine-tuning
schedule are chosen on the training groups only: the models are trained on the
training groups minus some validation groups, evaluated with the same protocol
on the validation groups, and the setting with the best balanced accuracy
(averaged over k, seeds and validation groups) is refitted on all training
groups. Held-out groups are never used for any choice. Data sets with several
folds are tuned on the validation groups of their first fold(s)
(``--tune-folds``), and the setting is used in every fold. The heart disease
data has no validation groups (three training sites): there the LR on k rows
also chooses ``C`` by cross-validation on the support set, the fine-tuning
schedule keeps its untuned default and the tuned rows are left out.

Held-out groups with fewer than k + 15 rows of a class (k + 3 for heart
disease) are skipped at that k and listed separately.

Every model is trained once per fold for the main tables, so their standard
errors only measure the support draws. Data sets with several folds also give
the paired differences with the standard error over folds (which retrain every
model). For data sets with one fold, and for heart disease (whose folds leave
out each hospital in turn, so the models of a fold are trained once), a last
table retrains the pooled MLP and the skmeta models of every fold with
``--train-seeds`` random states and reports the paired differences over
training seeds.

Usage::

    python benchmarks/bench_fewshot.py [--quick] [--seeds S]
        [--datasets synthetic,synthetic-strong,synthetic-types,heart,compas,adult]
        [--no-tune] [--train-seeds N] [--tune-folds F]
"""

import argparse
import ast
import copy
import datetime
import hashlib
import inspect
import itertools
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNetClassifier

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import (
    load_adult,
    load_compas,
    load_heart_disease,
    make_group_classification,
)
from skmeta.modules import MLP

KS = (1, 5, 10, 20)
MIN_QUERY = 15  # a held-out group needs k + MIN_QUERY rows of each class
# Training tasks with fewer rows are merged into one task for meta-training:
# they cannot fill an episode (5 + 15 rows per class). On the validation groups
# (5 seeds, the tuned settings of an earlier version of this script) this
# raised MAML's balanced accuracy from .767 to .805 (Adult) and from .627 to
# .651 (COMPAS), and ProtoNet's from .616 to .642 on COMPAS (.802 and .800 on
# Adult).
MIN_TASK_ROWS = 60
SMALL_TASKS = "(tasks with < 60 rows)"
RANDOM_STATE = 0
BASELINES = (
    "pooled LR",
    "pooled MLP",
    "MLP fine-tuned",
    "LR on k rows",
    "LR shrunk to pooled",
)
META = ("MAML (default)", "ProtoNet (default)", "MAML (tuned)", "ProtoNet (tuned)")
DEFAULT_META = META[:2]
TUNED_META = META[2:]
META_CLASSES = {
    "MAML (default)": MAMLClassifier,
    "ProtoNet (default)": PrototypicalClassifier,
    "MAML (tuned)": MAMLClassifier,
    "ProtoNet (tuned)": PrototypicalClassifier,
}
ORACLE = "oracle: LR on the site's other rows (not a baseline)"
METHODS = BASELINES + META
METRICS = {
    "bacc_mean": "bal. acc., mean",
    "bacc_worst": "bal. acc., worst group",
    "auc_mean": "ROC AUC, mean",
    "auc_worst": "ROC AUC, worst group",
}

# Cross-validation on the support set (the shrunk LR everywhere; the LR on k
# rows where no validation groups exist): stratified K-fold with K = min(5,
# rows of the smaller class), the candidate with the smallest held-out
# log-loss is refitted on the whole support set. With a single row of a class
# there is nothing to hold out, and the fallback value is used.
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
ALPHA_ONE_ROW = 3.0
CS = (0.01, 0.1, 1.0, 10.0)
C_ONE_ROW = 1.0
CV = "cv"  # the setting value that asks for cross-validation on the support

# Settings used without tuning (--no-tune, --quick, data sets without
# validation groups), and the grids searched on the validation groups
# otherwise. Keys are method names; the default skmeta rows never change.
DEFAULTS = {
    "LR on k rows": {"C": 1.0},
    "LR shrunk to pooled": {"alpha": CV},
    "MLP fine-tuned": {"lr": 1e-2, "max_epochs": 20},
    "MAML (default)": {},
    "ProtoNet (default)": {},
    "MAML (tuned)": {},
    "ProtoNet (tuned)": {},
}
GRIDS = {
    "LR on k rows": {"C": list(CS)},
    "MLP fine-tuned": {"lr": [1e-3, 1e-2], "max_epochs": [5, 20, 50]},
    "MAML (tuned)": {
        "prior_strength": ["learn", 1.0, 10.0],
        "pooled_episodes": [0.0, 1.0],
        "head": ["auto", "none"],
    },
    "ProtoNet (tuned)": {
        "shrinkage": ["learn", 5.0],
        "pooled_episodes": [0.0, 1.0],
        "module__skip": [False, True],
        "head": ["auto", "prototypes"],
    },
}
# Training budgets of the full run and of --quick: (max_epochs, steps_per_epoch).
# The full run keeps the package's defaults (None: not passed), as a new user
# would; --quick shortens them for CI.
META_STEPS = {"full": (None, None), "quick": (2, 20)}
MLP_STEPS = {"full": 2000, "quick": 100}  # optimizer steps of the pooled MLP


# --------------------------------------------------------------------------- data
@dataclass
class GroupData:
    """One fold of a data set: training and held-out groups (tasks)."""

    name: str
    X: np.ndarray  # float32, preprocessed with statistics of the training groups
    y: np.ndarray
    tasks: np.ndarray  # task label of each row (str), unique across folds
    heldout: list  # held-out task labels
    validation: list  # training tasks that serve as validation groups for tuning
    sensitive: np.ndarray | None  # for the DP difference within held-out groups
    description: str
    min_query: int = MIN_QUERY
    # Generator draws of a synthetic fold (raw X, groups, true parameters).
    source: dict = field(default_factory=dict)

    @property
    def train(self):
        return ~np.isin(self.tasks, self.heldout)


@dataclass
class DataSet:
    """A data set: its folds and what the report says about it."""

    name: str
    folds: list
    description: str
    oracle: bool = False  # report the per-site oracle (heart)
    # Retrain every fold per training seed for the training-seed table (the
    # folds are not generator draws whose models are retrained anyway: heart).
    retrain_folds: bool = False
    ks: tuple = KS


def _fold(name, X, y, tasks, heldout, validation, sensitive, description, **extra):
    """A fold whose features are standardised on its training groups."""
    tasks = np.asarray(tasks, dtype=str)
    train = ~np.isin(tasks, heldout)
    prep = extra.pop("prep", None) or StandardScaler()
    X = prep.fit(X[train]).transform(X).astype(np.float32)
    return GroupData(
        name,
        X,
        np.asarray(y, dtype=np.int64),
        tasks,
        list(heldout),
        list(validation),
        sensitive,
        description,
        **extra,
    )


def _alternate(tasks, y, low, high):
    """Split the tasks with low..high rows into held-out and validation groups.

    Sorted by the row count of their rarer class (then by size), even ranks
    are held out and odd ranks stay in training as validation groups, so that
    both halves have about as many groups large enough for each k.
    """
    counts = pd.crosstab(tasks, y)
    size = counts.sum(axis=1)
    middle = counts[(size >= low) & (size <= high)]
    ranked = pd.DataFrame(
        {"rarer": middle.min(axis=1), "size": middle.sum(axis=1)}
    ).sort_values(["rarer", "size"], kind="stable")
    return list(ranked.index[0::2]), list(ranked.index[1::2])


@dataclass(frozen=True)
class SyntheticSpec:
    """``make_group_classification`` settings of a synthetic data set."""

    n_groups: int
    n_rows: int
    n_heldout: int
    n_validation: int
    group_shift: float
    generator_seeds: tuple
    shift: str = "isotropic"
    n_types: int = 3
    within_type_shift: float | None = None
    n_features: int = 6

    def generator_kwargs(self, seed):
        kwargs = dict(
            n_groups=self.n_groups,
            n_samples_per_group=self.n_rows,
            n_features=self.n_features,
            group_shift=self.group_shift,
            random_state=seed,
        )
        if self.shift != "isotropic":
            kwargs.update(
                shift=self.shift,
                n_types=self.n_types,
                within_type_shift=self.within_type_shift,
            )
        return kwargs

    def describe(self):
        call = ", ".join(
            f"{k}={v!r}"
            for k, v in self.generator_kwargs("SEED").items()
            if k != "random_state"
        )
        seeds = self.generator_seeds
        seed_text = (
            f"random_state={seeds[0]}"
            if len(seeds) == 1
            else f"random_state in {list(seeds)} (one fold each)"
        )
        g = self.n_groups
        return (
            f"make_group_classification({call}), {seed_text}; tasks = groups; "
            f"groups {g - self.n_heldout}-{g - 1} held out, groups "
            f"{g - self.n_heldout - self.n_validation}-{g - self.n_heldout - 1} "
            "are the validation groups"
        )


SYNTHETIC = {
    # The setting of the earlier versions of this benchmark (one generator seed).
    "synthetic": SyntheticSpec(20, 200, 5, 5, 1.5, (0,)),
    # A shift clearly above the scale of the shared weights (1), few rows per
    # group, several generator seeds.
    "synthetic-strong": SyntheticSpec(12, 80, 3, 3, 2.0, (0, 1, 2, 3, 4)),
    # Groups that are small perturbations of 3 latent types (within-type shift
    # group_shift / 10, the generator's default); the type of group g is g % 3,
    # so every type has 4 groups to fit on while tuning, 6 to train on, and 2
    # held out per seed.
    "synthetic-types": SyntheticSpec(
        24, 100, 6, 6, 2.0, (0, 1, 2, 3, 4), "types", within_type_shift=0.2
    ),
}


def synthetic_folds(name):
    """One fold per generator seed of the synthetic data set ``name``."""
    spec = SYNTHETIC[name]
    folds = []
    several = len(spec.generator_seeds) > 1
    for seed in spec.generator_seeds:
        X, y, groups, truth = make_group_classification(
            **spec.generator_kwargs(seed), return_tasks=True
        )
        prefix = f"s{seed}/" if several else ""
        names = np.array([f"{prefix}g{g:02d}" for g in range(spec.n_groups)])
        n_out, n_val = spec.n_heldout, spec.n_validation
        folds.append(
            _fold(
                name,
                X,
                y,
                names[groups],
                list(names[-n_out:]),
                list(names[-n_out - n_val : -n_out]),
                None,
                spec.describe(),
                source={"X": X, "groups": groups, "truth": truth, "seed": seed},
            )
        )
    return DataSet(name, folds, spec.describe())


def load_heart_folds():
    """Leave one hospital out: four folds, sex as the sensitive feature."""
    bunch = load_heart_disease()
    site = bunch.sensitive_features["site"].astype(str).to_numpy()
    sex = bunch.sensitive_features["sex"].astype(str).to_numpy()
    description = (
        "UCI heart disease, 920 rows from four hospitals; tasks = site; leave one "
        "site out (train on the other three); missing values imputed with "
        "SimpleImputer(add_indicator=True), then StandardScaler, both fitted on "
        "the training sites; sensitive feature sex; no validation groups"
    )
    folds = [
        _fold(
            "heart",
            bunch.data,
            bunch.target,
            site,
            [held],
            [],
            sex,
            description,
            min_query=3,
            prep=make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()),
        )
        for held in sorted(np.unique(site))
    ]
    return DataSet("heart", folds, description, oracle=True, retrain_folds=True)


def load_compas_tasks():
    bunch = load_compas()
    frame = bunch.frame
    # " / " rather than " | ", which would split the cells of markdown tables.
    tasks = (
        frame["race"].astype(str)
        + " / "
        + frame["sex"].astype(str)
        + " / "
        + frame["age_cat"].astype(str)
    ).to_numpy()
    heldout, validation = _alternate(tasks, bunch.target, 60, 400)
    description = (
        "COMPAS; tasks = race x sex x age_cat; of the tasks with 60-400 rows, "
        "sorted by the rows of their rarer class, every other one is held out and "
        "the others are the validation groups"
    )
    fold = _fold(
        "compas",
        bunch.data,
        bunch.target,
        tasks,
        heldout,
        validation,
        None,
        description,
    )
    return DataSet("compas", [fold], description)


def load_adult_countries():
    bunch = load_adult()
    tasks = bunch.frame["native-country"].astype(object).fillna("?").to_numpy()
    heldout, validation = _alternate(tasks, bunch.target, 60, 600)
    description = (
        "Adult; tasks = native-country (missing = '?'); of the countries with "
        "60-600 rows, sorted by the rows of their rarer class, every other one is "
        "held out and the others are the validation groups; larger and smaller "
        "countries are trained on; sensitive feature sex"
    )
    fold = _fold(
        "adult",
        bunch.data,
        bunch.target,
        tasks,
        heldout,
        validation,
        bunch.sensitive_features["sex"].astype(str).to_numpy(),
        description,
    )
    return DataSet("adult", [fold], description)


LOADERS = {
    "synthetic": lambda: synthetic_folds("synthetic"),
    "synthetic-strong": lambda: synthetic_folds("synthetic-strong"),
    "synthetic-types": lambda: synthetic_folds("synthetic-types"),
    "heart": load_heart_folds,
    "compas": load_compas_tasks,
    "adult": load_adult_countries,
}


# ----------------------------------------------------------------------- methods
class ShrunkLogisticRegression:
    """Logistic regression penalised by ``alpha / 2 * ||theta - theta_prior||^2``.

    ``theta`` holds the coefficients and the intercept, ``theta_prior`` those of
    the pooled model: the MAP estimate under an isotropic Gaussian prior centred
    at the pooled LR. ``alpha -> 0`` gives the LR on the rows alone, ``alpha ->
    inf`` the pooled LR. Minimises the summed log-loss plus the penalty with
    L-BFGS, starting from the prior.
    """

    def __init__(self, coef_prior, intercept_prior, alpha):
        self.prior = np.r_[np.ravel(coef_prior), intercept_prior].astype(np.float64)
        self.alpha = alpha

    def fit(self, X, y):
        X1 = np.hstack([X, np.ones((len(X), 1))]).astype(np.float64)
        sign = 2.0 * y - 1.0

        def loss_and_grad(theta):
            margin = sign * (X1 @ theta)
            diff = theta - self.prior
            loss = np.logaddexp(0.0, -margin).sum() + 0.5 * self.alpha * diff @ diff
            grad = X1.T @ (-sign * expit(-margin)) + self.alpha * diff
            return loss, grad

        theta = minimize(loss_and_grad, self.prior, jac=True, method="L-BFGS-B").x
        self.coef_, self.intercept_ = theta[:-1], theta[-1]
        return self

    def predict_proba1(self, X):
        return expit(X @ self.coef_ + self.intercept_)


def choose_by_cv(fit_predict, candidates, X, y, fallback):
    """The candidate with the smallest cross-validated log-loss on ``(X, y)``.

    Stratified K-fold with ``K = min(5, rows of the smaller class)``, in the
    order of the rows (the support draws are already random); the held-out
    log-losses are summed over folds; ties go to the first candidate.
    ``fit_predict(value, X_fit, y_fit, X_eval)`` returns ``P(y = 1)`` on
    ``X_eval``. With a single row of a class, returns ``fallback``.
    """
    n_min = int(np.bincount(y, minlength=2).min())
    if n_min < 2:
        return fallback
    losses = np.zeros(len(candidates))
    for fit_rows, eval_rows in StratifiedKFold(min(5, n_min)).split(X, y):
        sign = 2.0 * y[eval_rows] - 1.0
        for i, value in enumerate(candidates):
            proba = fit_predict(value, X[fit_rows], y[fit_rows], X[eval_rows])
            proba = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1 - 1e-12)
            losses[i] -= np.log(np.where(sign > 0, proba, 1.0 - proba)).sum()
    return candidates[int(np.argmin(losses))]


def shrunk_lr(pooled, alpha, X, y):
    """The LR shrunk to ``pooled``, fitted on ``(X, y)``; ``alpha="cv"`` chooses
    it by cross-validation on ``(X, y)``. Returns the model and its ``alpha``."""
    coef, intercept = pooled.coef_[0], pooled.intercept_[0]
    if alpha == CV:

        def fit_predict(value, X_fit, y_fit, X_eval):
            model = ShrunkLogisticRegression(coef, intercept, value)
            return model.fit(X_fit, y_fit).predict_proba1(X_eval)

        alpha = choose_by_cv(fit_predict, ALPHAS, X, y, ALPHA_ONE_ROW)
    return ShrunkLogisticRegression(coef, intercept, alpha).fit(X, y), alpha


def lr_on_rows(C, X, y):
    """``LogisticRegression(C=C)`` on ``(X, y)``; ``C="cv"`` chooses it by
    cross-validation on ``(X, y)``."""

    def make(value):
        return LogisticRegression(C=value, max_iter=1000, random_state=RANDOM_STATE)

    if C == CV:

        def fit_predict(value, X_fit, y_fit, X_eval):
            return make(value).fit(X_fit, y_fit).predict_proba(X_eval)[:, 1]

        C = choose_by_cv(fit_predict, CS, X, y, C_ONE_ROW)
    return make(C).fit(X, y)


# skmeta parameters set with --set, for every skmeta row (default and tuned).
META_OVERRIDES = {}


def _meta_kwargs(budget, random_state):
    max_epochs, steps_per_epoch = META_STEPS[budget]
    kwargs = dict(class_prior="balanced", random_state=random_state)
    if max_epochs is not None:
        kwargs.update(max_epochs=max_epochs, steps_per_epoch=steps_per_epoch)
    return {**kwargs, **META_OVERRIDES}


def parse_setting(text):
    """``NAME=VALUE`` (the value a Python literal, or else a string)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        value = value.strip()
    return name.strip(), value


def _is_default(method, setting):
    """Whether ``setting`` leaves the skmeta class at its default parameters."""
    clf = META_CLASSES[method]()
    defaults = {
        f"module__{name}": parameter.default
        for name, parameter in inspect.signature(clf.module).parameters.items()
    }
    defaults.update(clf.get_params())
    return all(defaults[k] == v for k, v in setting.items())


def merge_small_tasks(tasks):
    """Task labels for meta-training: tasks under MIN_TASK_ROWS rows become one."""
    labels, counts = np.unique(tasks, return_counts=True)
    small = labels[counts < MIN_TASK_ROWS]
    return np.where(np.isin(tasks, small), SMALL_TASKS, tasks)


def fit_models(
    X, y, tasks, settings, budget, methods=METHODS, random_state=RANDOM_STATE
):
    """Fit every (meta-)model that is trained once, on the training groups.

    A tuned skmeta row whose setting is the default is the default model
    (the same fit, shared).
    """
    models = {}
    tasks = merge_small_tasks(tasks)
    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    if {"pooled LR", "LR shrunk to pooled"} & set(methods):
        models["pooled LR"] = LogisticRegression(
            class_weight="balanced", max_iter=1000, random_state=RANDOM_STATE
        ).fit(X, y)
    if {"pooled MLP", "MLP fine-tuned"} & set(methods):
        batch_size = 128
        n_batches = int(np.ceil(len(y) / batch_size))
        net = NeuralNetClassifier(
            MLP,
            module__n_features_in=X.shape[1],
            module__n_classes=2,
            criterion=torch.nn.CrossEntropyLoss,
            criterion__weight=torch.as_tensor(weights, dtype=torch.float32),
            optimizer=torch.optim.Adam,
            lr=1e-3,
            max_epochs=max(1, round(MLP_STEPS[budget] / n_batches)),
            batch_size=batch_size,
            train_split=None,
            iterator_train__shuffle=True,
            verbose=0,
        )
        torch.manual_seed(random_state)
        models["pooled MLP"] = net.fit(X, y)
    for method in (m for m in META if m in methods):
        default = method.replace("(tuned)", "(default)")
        if method in TUNED_META and _is_default(method, settings[method]):
            if default not in models:
                models[default] = META_CLASSES[default](
                    **_meta_kwargs(budget, random_state)
                ).fit(X, y, tasks=tasks)
            models[method] = models[default]
            continue
        models[method] = META_CLASSES[method](
            **settings[method], **_meta_kwargs(budget, random_state)
        ).fit(X, y, tasks=tasks)
    return models


def fit_fold_models(data, settings, budget, methods, random_state=RANDOM_STATE):
    """:func:`fit_models` on the training groups of the fold ``data``."""
    train = data.train
    return fit_models(
        data.X[train],
        data.y[train],
        data.tasks[train],
        settings,
        budget,
        methods=methods,
        random_state=random_state,
    )


def adapt_and_predict(method, models, settings, Xs, ys, Xq, task, seed):
    """``P(y = 1)`` on the query rows after adapting to the support, and what
    the adaptation chose (a dict)."""
    if method == "pooled LR":
        return models["pooled LR"].predict_proba(Xq)[:, 1], {}
    if method == "pooled MLP":
        return models["pooled MLP"].predict_proba(Xq)[:, 1], {}
    if method == "MLP fine-tuned":
        net = copy.deepcopy(models["pooled MLP"])
        # The support set is balanced: drop the class weights. set_params also
        # builds a fresh optimizer with the fine-tuning learning rate.
        net.set_params(criterion__weight=None, **settings[method])
        torch.manual_seed(seed)
        return net.partial_fit(Xs, ys).predict_proba(Xq)[:, 1], {}
    if method == "LR on k rows":
        model = lr_on_rows(settings[method]["C"], Xs, ys)
        return model.predict_proba(Xq)[:, 1], {"C": model.C}
    if method == "LR shrunk to pooled":
        model, alpha = shrunk_lr(models["pooled LR"], settings[method]["alpha"], Xs, ys)
        return model.predict_proba1(Xq), {"alpha": alpha}
    # skmeta: partial_fit adds the rows to the task's support set, so adapt a copy.
    model = copy.deepcopy(models[method])
    model.partial_fit(Xs, ys, tasks=np.full(len(ys), task))
    proba = model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1]
    chosen = {
        "adaptation_weight": float(model.adaptation_weight_[model.tasks_ == task][0]),
        "prior_strength": model.prior_strength_,
    }
    if isinstance(model, PrototypicalClassifier):
        chosen["distance_scale"] = model.distance_scale_
    chosen["head_penalty"] = (
        float(model.head_penalty_[model.tasks_ == task][0])
        if model.head_ == "logistic"
        else np.nan
    )
    chosen["task_mixture"] = model.task_mixture_
    chosen["mixture_columns"] = float(model.task_mixture_columns_)
    chosen["mixture_share"] = float(
        model.task_mixture_weights_[model.tasks_ == task][0].sum()
    )
    return proba, chosen


def oracle_probabilities(data, n_splits=10):
    """Cross-fitted ``P(y = 1)`` of each row of the held-out tasks (NaN elsewhere).

    Each held-out task's rows are split into ``n_splits`` stratified folds
    (fewer when a class has fewer rows); each row is scored by an LR fitted on
    the task's rows outside its fold.
    """
    proba = np.full(len(data.y), np.nan)
    for task in data.heldout:
        rows = np.flatnonzero(data.tasks == task)
        y = data.y[rows]
        splits = min(n_splits, int(np.bincount(y, minlength=2).min()))
        folds = StratifiedKFold(splits, shuffle=True, random_state=RANDOM_STATE)
        for fit_rows, score_rows in folds.split(rows, y):
            model = LogisticRegression(
                class_weight="balanced", max_iter=1000, random_state=RANDOM_STATE
            ).fit(data.X[rows[fit_rows]], y[fit_rows])
            proba[rows[score_rows]] = model.predict_proba(data.X[rows[score_rows]])[
                :, 1
            ]
    return proba


# -------------------------------------------------------------------- evaluation
def support_draw(data, rows, k, base_seed, t_index, seed):
    """The class-balanced support rows (k per class) of one (task, k, seed)."""
    rng = np.random.default_rng([base_seed, t_index, k, seed])
    by_class = [rows[data.y[rows] == c] for c in (0, 1)]
    return np.concatenate([rng.choice(r, k, replace=False) for r in by_class])


def heldout_draws(data, f_index, ks, seeds):
    """The support draws of the explorations: for each held-out group of
    fold ``f_index``, each ``k`` its rows allow and each seed, yields
    ``(task, k, seed, support, query)`` (row indices; the query is the
    group's other rows), drawn as :func:`support_draw` draws them here."""
    for t_index, task in enumerate(data.heldout):
        rows = np.flatnonzero(data.tasks == task)
        counts = [int((data.y[rows] == c).sum()) for c in (0, 1)]
        for k in ks:
            if min(counts) < k + data.min_query:
                continue
            for seed in seeds:
                support = support_draw(data, rows, k, 0, t_index + 100 * f_index, seed)
                yield task, k, seed, support, np.setdiff1d(rows, support)


def adapted_score(model, data, task, support, query):
    """A copy of ``model`` adapted with ``partial_fit`` to the ``support``
    rows of ``task``, and its balanced accuracy on the ``query`` rows
    (threshold 1/2)."""
    adapted = copy.deepcopy(model)
    adapted.partial_fit(
        data.X[support], data.y[support], tasks=np.full(len(support), task)
    )
    proba = adapted.predict_proba(data.X[query], tasks=np.full(len(query), task))
    pred = (proba[:, 1] >= 0.5).astype(np.int64)
    return adapted, balanced_accuracy(data.y[query], pred)


def balanced_accuracy(y, pred):
    """Mean recall of the two classes (``balanced_accuracy_score``, faster)."""
    return 0.5 * ((pred[y == 1] == 1).mean() + (pred[y == 0] == 0).mean())


def roc_auc(y, score):
    """Area under the ROC curve (``roc_auc_score``, faster): the Mann-Whitney
    statistic with ties counted one half."""
    ranks = rankdata(score)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n0 * n1)


def dp_difference(pred, sensitive, min_rows=10):
    """Demographic-parity difference (largest minus smallest share of positive
    predictions between groups, as fairlearn's ``demographic_parity_difference``)
    when every group has at least ``min_rows`` rows, else NaN."""
    groups, index, n_per = np.unique(sensitive, return_inverse=True, return_counts=True)
    if len(groups) < 2 or n_per.min() < min_rows:
        return np.nan
    rates = np.bincount(index, weights=pred) / n_per
    return float(rates.max() - rates.min())


def evaluate(
    data,
    models,
    settings,
    eval_tasks,
    seeds,
    methods,
    *,
    base_seed,
    first_index=0,
    ks=KS,
    oracle=None,
    fold=0,
):
    """Scores of every method on every (task, k, seed); and the skipped tasks.

    Task ``i`` of ``eval_tasks`` draws its supports with index ``first_index
    + i``, so that tasks of different folds get different draws. ``oracle``:
    the cross-fitted probabilities of ``oracle_probabilities``, scored on the
    same query rows.
    """
    records, skipped = [], []
    for t_index, task in enumerate(eval_tasks, start=first_index):
        rows = np.flatnonzero(data.tasks == task)
        counts = [int((data.y[rows] == c).sum()) for c in (0, 1)]
        for k in ks:
            if min(counts) < k + data.min_query:
                skipped.append({"k": k, "task": task, "n0": counts[0], "n1": counts[1]})
                continue
            for seed in seeds:
                support = support_draw(data, rows, k, base_seed, t_index, seed)
                query = np.setdiff1d(rows, support)
                Xs, ys = data.X[support], data.y[support]
                Xq, yq = data.X[query], data.y[query]
                outputs = {}
                for method in methods:
                    outputs[method] = adapt_and_predict(
                        method, models, settings, Xs, ys, Xq, task, seed
                    )
                if oracle is not None:
                    outputs[ORACLE] = (oracle[query], {})
                for method, (proba, chosen) in outputs.items():
                    pred = (proba >= 0.5).astype(np.int64)
                    dp = np.nan
                    if data.sensitive is not None:
                        dp = dp_difference(pred, data.sensitive[query])
                    records.append(
                        {
                            "fold": fold,
                            "task": task,
                            "k": k,
                            "seed": seed,
                            "method": method,
                            "bacc": balanced_accuracy(yq, pred),
                            "auc": roc_auc(yq, proba),
                            "dp": dp,
                            **chosen,
                        }
                    )
    return pd.DataFrame(records), pd.DataFrame(skipped)


def per_seed_scores(records):
    """Mean and worst group of each metric, per k, method and seed."""
    grouped = records.groupby(["k", "method", "seed"])
    return grouped.agg(
        bacc_mean=("bacc", "mean"),
        bacc_worst=("bacc", "min"),
        auc_mean=("auc", "mean"),
        auc_worst=("auc", "min"),
        dp=("dp", "mean"),
        n_groups=("task", "nunique"),
    ).reset_index()


def _sem(values):
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return np.nan
    return values.std(ddof=1) / np.sqrt(len(values))


def best_baselines(scores):
    """The best baseline by mean balanced accuracy at each k."""
    baselines = scores[scores["method"].isin(BASELINES)]
    means = baselines.groupby(["k", "method"])["bacc_mean"].mean()
    return {k: means.loc[k].idxmax() for k in means.index.unique("k")}


def paired_differences(scores, methods):
    """Each skmeta row minus the best baseline (by mean balanced accuracy at that
    k), in the mean and the worst group, paired by seed, in points."""
    rows = []
    best = best_baselines(scores)
    for k, at_k in scores.groupby("k"):
        row = {"k": k, "best baseline": best[k]}
        for metric in ("bacc_mean", "bacc_worst"):
            table = at_k.pivot(index="seed", columns="method", values=metric)
            row[f"{metric} best"] = (table[best[k]].mean(), _sem(table[best[k]]))
            for meta in (m for m in META if m in methods and m in table):
                diff = 100 * (table[meta] - table[best[k]])
                row[(meta, metric)] = (diff.mean(), _sem(diff))
        rows.append(row)
    return rows


def fold_differences(records, scores, methods):
    """Paired differences by fold: per fold, each skmeta row minus the best
    baseline (chosen as in ``paired_differences``), in the mean over the fold's
    groups and seeds and in its worst group (per seed, then averaged over
    seeds); then mean ± SE over folds, in points."""
    best = best_baselines(scores)
    rows = []
    for k, at_k in records.groupby("k"):
        per_fold = (
            at_k.groupby(["fold", "method", "seed"])["bacc"]
            .agg(["mean", "min"])
            .groupby(["fold", "method"])
            .mean()
        )
        row = {"k": k, "best baseline": best[k], "folds": at_k["fold"].nunique()}
        for stat, metric in (("mean", "bacc_mean"), ("min", "bacc_worst")):
            wide = per_fold[stat].unstack("method")
            for meta in (m for m in META if m in methods and m in wide):
                diff = 100 * (wide[meta] - wide[best[k]])
                row[(meta, metric)] = (diff.mean(), _sem(diff))
        rows.append(row)
    return rows


def training_seed_scores(
    folds,
    settings,
    budget,
    heldouts,
    train_seeds,
    seeds,
    methods,
    *,
    ks=KS,
    fitted=None,
):
    """Every model retrained per training seed; per-seed scores on the held-out groups.

    The main tables train every model once per fold (``random_state=0``), so
    their standard errors only measure the support draws. Here the pooled MLP
    and the skmeta models of every fold are retrained with ``random_state`` in
    ``train_seeds`` (the LR fits are deterministic) and scored on the same
    support sets as the main tables' first ``seeds``, to measure how far
    retraining alone moves each method; the worst group is taken over the
    held-out groups of all folds, as in the main tables. ``fitted``: each
    fold's models already trained with ``random_state=RANDOM_STATE``, reused
    for that seed.
    """
    tables = []
    for seed in train_seeds:
        records, first_index = [], 0
        for f_index, (data, heldout) in enumerate(zip(folds, heldouts, strict=True)):
            if fitted is not None and seed == RANDOM_STATE:
                models = fitted[f_index]
            else:
                models = fit_fold_models(data, settings, budget, methods, seed)
            fold_records, _ = evaluate(
                data,
                models,
                settings,
                heldout,
                seeds,
                methods,
                base_seed=0,
                first_index=first_index,
                ks=ks,
                fold=f_index,
            )
            first_index += len(heldout)
            records.append(fold_records)
        scores = per_seed_scores(pd.concat(records, ignore_index=True))
        means = scores.groupby(["k", "method"])[["bacc_mean", "bacc_worst"]].mean()
        tables.append(means.reset_index().assign(train_seed=seed))
    return pd.concat(tables, ignore_index=True)


def report_training_seeds(table, methods):
    """Best baseline's spread over training seeds, and the paired differences."""
    rows = []
    for k in sorted(table["k"].unique()):
        at_k = table[table["k"] == k]
        means = at_k.pivot(index="train_seed", columns="method", values="bacc_mean")
        best = means[[b for b in BASELINES if b in means]].mean().idxmax()
        for metric in ("bacc_mean", "bacc_worst"):
            wide = at_k.pivot(index="train_seed", columns="method", values=metric)
            row = [
                int(k),
                METRICS[metric],
                best,
                f"{wide[best].mean():.3f} ± {wide[best].std(ddof=1):.3f}",
            ]
            for meta in (m for m in META if m in methods):
                diff = 100 * (wide[meta] - wide[best])
                row.append(_pm(diff.mean(), _sem(diff), digits=1, signed=True))
            rows.append(row)
    header = [
        "k",
        "metric",
        "best baseline (by mean)",
        "its mean ± SD over training seeds",
        *(m for m in META if m in methods),
    ]
    print(markdown_table(header, rows))


# ----------------------------------------------------------------------- tuning
def _grid(method):
    names = list(GRIDS[method])
    for values in itertools.product(*(GRIDS[method][n] for n in names)):
        yield dict(zip(names, values, strict=True))


def tune(folds, seeds, budget, methods):
    """Choose each method's setting on validation groups carved out of training.

    Every candidate is trained on each fold's training groups minus its
    validation groups and scored on those validation groups; the score is the
    mean balanced accuracy over the folds' validation groups, k and seeds.
    """
    settings = copy.deepcopy(DEFAULTS)
    parts = []
    for data in folds:
        fit_rows = data.train & ~np.isin(data.tasks, data.validation)
        X, y, tasks = data.X[fit_rows], data.y[fit_rows], data.tasks[fit_rows]
        pooled = fit_models(X, y, tasks, settings, budget, methods=BASELINES)
        parts.append((data, X, y, tasks, pooled))
    lines = []
    for method in (m for m in GRIDS if m in methods):
        results = []
        for setting in _grid(method):
            trial = {**settings, method: setting}
            scores = []
            for data, X, y, tasks, pooled in parts:
                models = pooled
                if method in META:
                    models = fit_models(X, y, tasks, trial, budget, methods=(method,))
                records, _ = evaluate(
                    data,
                    models,
                    trial,
                    data.validation,
                    seeds,
                    (method,),
                    base_seed=1000,
                )
                scores.append(records["bacc"].to_numpy())
            results.append((np.concatenate(scores).mean(), setting))
        best_score, best = max(results, key=lambda r: r[0])
        settings[method] = best
        tried = ", ".join(f"{_fmt_setting(s)}: {v:.3f}" for v, s in results)
        lines.append(f"- {method}: chose {_fmt_setting(best)} (tried {tried})")
    return settings, lines


def _fmt_setting(setting):
    if not setting:
        return "package defaults"
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()
    )


# ------------------------------------------------------------------------ report
def _pm(mean, sem, scale=1.0, digits=3, signed=False):
    if np.isnan(mean):
        return "–"
    sign = "+" if signed else ""
    text = f"{scale * mean:{sign}.{digits}f}"
    if not np.isnan(sem):
        text += f" ± {scale * sem:.{digits}f}"
    return text


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(mean, sem):
    """'yes' when the paired difference is at least minus one SE, else by how
    many points it misses that."""
    if np.isnan(mean):
        return "–"
    sem = 0.0 if np.isnan(sem) else sem
    gap = mean + sem
    return "yes" if gap >= 0 else f"no ({gap:+.1f})"


def report(dataset, records, skipped, methods):
    min_query = dataset.folds[0].min_query
    scores = per_seed_scores(records)
    has_dp = records["dp"].notna().any()
    header = ["k", "groups", "method", *METRICS.values()]
    if has_dp:
        header.append("DP difference (sex), mean")
    rows = []
    order = {m: i for i, m in enumerate((*METHODS, ORACLE))}
    for (k, method), cell in scores.groupby(["k", "method"], sort=False):
        row = [k, int(cell["n_groups"].iloc[0]), method]
        row += [_pm(cell[m].mean(), _sem(cell[m])) for m in METRICS]
        if has_dp:
            row.append(_pm(cell["dp"].mean(), _sem(cell["dp"])))
        rows.append(row)
    rows.sort(key=lambda r: (r[0], order[r[2]]))
    print(markdown_table(header, rows))
    if has_dp:
        dp_groups = records[records["dp"].notna()]["task"].unique()
        print(
            "\nDP difference: within each held-out group whose query set has at "
            "least 10 rows of each sex, averaged over those groups ("
            + ", ".join(map(str, dp_groups))
            + ")."
        )

    metas = [m for m in META if m in methods]
    print(
        "\nPaired differences, skmeta minus the best baseline by mean balanced "
        "accuracy at that k (points, mean ± SE over the paired seeds). 'target': "
        "the default row's difference is at least minus its SE in both the mean "
        "and the worst group (else by how many points that is missed):\n"
    )
    diffs = paired_differences(scores, methods)
    header = ["k", "best baseline", "its mean", "its worst group"]
    for meta in metas:
        header += [f"{meta}, mean", f"{meta}, worst"]
    header += [f"target, {m}" for m in DEFAULT_META if m in metas]
    rows = []
    for r in diffs:
        row = [r["k"], r["best baseline"], _pm(*r["bacc_mean best"])]
        row.append(_pm(*r["bacc_worst best"]))
        for meta in metas:
            row += [
                _pm(*r[(meta, metric)], digits=1, signed=True)
                for metric in ("bacc_mean", "bacc_worst")
            ]
        for meta in (m for m in DEFAULT_META if m in metas):
            mean, worst = r[(meta, "bacc_mean")], r[(meta, "bacc_worst")]
            verdicts = (_verdict(*mean), _verdict(*worst))
            row.append("yes" if verdicts == ("yes", "yes") else " / ".join(verdicts))
        rows.append(row)
    print(markdown_table(header, rows))

    n_folds = records["fold"].nunique()
    if n_folds > 1:
        # With one held-out group per fold (heart), its worst group is its mean.
        metrics = ("bacc_mean", "bacc_worst")
        if records.groupby("fold")["task"].nunique().max() == 1:
            metrics = ("bacc_mean",)
        print(
            f"\nThe same paired differences by fold ({n_folds} folds, each with its "
            "own trained models): per fold, the difference in the mean over its "
            "groups and seeds"
            + (
                ", and in its worst group (per seed, averaged over seeds)"
                if len(metrics) == 2
                else ""
            )
            + "; mean ± SE over folds, points:\n"
        )
        header = ["k", "folds", "best baseline"]
        for meta in metas:
            header.append(f"{meta}, mean")
            if len(metrics) == 2:
                header.append(f"{meta}, worst in fold")
        rows = []
        for r in fold_differences(records, scores, methods):
            row = [r["k"], r["folds"], r["best baseline"]]
            for meta in metas:
                row += [
                    _pm(*r[(meta, metric)], digits=1, signed=True) for metric in metrics
                ]
            rows.append(row)
        print(markdown_table(header, rows))

    chosen_cols = [
        c
        for c in ("adaptation_weight", "prior_strength", "distance_scale", "alpha")
        if c in records
    ]
    if chosen_cols:
        print(
            "\nWhat the adaptation chose, mean over groups and seeds "
            "(adaptation_weight_ of the new task, n / (n + prior strength); "
            "prior_strength_, i.e. MAML's lambda or ProtoNet's kappa, in rows; "
            "ProtoNet's distance_scale_; the shrunk LR's alpha; the logistic "
            "head: the share of groups given a finite head_penalty_ (the "
            "others keep their prototypes, or MAML's adapted network "
            "uncorrected) and its median there; task_mixture_, the fitted "
            "share of the training tasks' mixture, and the new group's own "
            "share after its rows' evidence (its row of task_mixture_weights_ "
            "summed); the share of folds whose mixture weighs the rows' "
            "columns too (task_mixture_columns_); [min, max] over folds for "
            "the fitted values):\n"
        )
        header = ["k", "method", "adaptation_weight_", "prior_strength_"]
        header += ["distance_scale_", "alpha (mean; median)", "logistic head"]
        header += ["task_mixture_", "group's share", "columns"]
        rows = []
        for (k, method), cell in records.groupby(["k", "method"]):
            if method not in META and method != "LR shrunk to pooled":
                continue
            row = [k, method]
            if method in META:
                row.append(f"{cell['adaptation_weight'].mean():.3f}")
                by_fold = cell.groupby("fold")["prior_strength"].mean()
                row.append(_range(by_fold))
                by_fold = cell.groupby("fold")["distance_scale"].mean()
                row.append(_range(by_fold) if by_fold.notna().all() else "–")
                row.append("–")
                penalty = cell.get("head_penalty", pd.Series(dtype=float)).dropna()
                finite = penalty[np.isfinite(penalty)]
                row.append(
                    f"{len(finite) / len(penalty):.0%}; "
                    + (f"{finite.median():.3g}" if len(finite) else "–")
                    if len(penalty)
                    else "–"
                )
                by_fold = cell.groupby("fold")["task_mixture"].mean()
                row.append(_range(by_fold))
                row.append(f"{cell['mixture_share'].mean():.2f}")
                columns = cell.groupby("fold")["mixture_columns"].mean()
                row.append(f"{columns.mean():.0%}")
            else:
                row += ["–", "–", "–"]
                alpha = cell["alpha"]
                row.append(f"{alpha.mean():.1f}; {alpha.median():g}")
                row += ["–", "–", "–", "–"]
            rows.append(row)
        rows.sort(key=lambda r: (r[0], order[r[1]]))
        print(markdown_table(header, rows))

    if len(skipped):
        print(f"\nSkipped (fewer than k + {min_query} rows of a class):\n")
        rows = [
            [k, ", ".join(f"{r.task} ({r.n0}/{r.n1})" for r in cell.itertuples())]
            for k, cell in skipped.groupby("k")
        ]
        print(markdown_table(["k", "task (rows of class 0/1)"], rows))
    else:
        print("\nNo held-out group was skipped.")
    return scores, diffs


def _range(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{values.mean():.3g} [{values.min():.3g}, {values.max():.3g}]"


# -------------------------------------------------------------------------- main
def run(name, args):
    start = time.perf_counter()
    dataset = LOADERS[name]()
    budget = "quick" if args.quick else "full"
    folds = dataset.folds
    if args.quick and name != "heart":
        folds = folds[:1]
    has_validation = all(f.validation for f in folds)
    tuned = not (args.quick or args.no_tune) and has_validation
    methods = BASELINES + (META if tuned else DEFAULT_META)
    print(f"\n## {name}\n\n{dataset.description}.\n")
    first = folds[0]
    first_tasks = first.tasks[first.train]
    n_small = len(np.setdiff1d(first_tasks, merge_small_tasks(first_tasks)))
    sizes = {t: int((f.tasks == t).sum()) for f in folds for t in f.heldout}
    heldouts = [f.heldout[-3:] if args.quick else f.heldout for f in folds]
    print(
        f"{len(folds)} fold(s). First fold: training {int(first.train.sum())} rows, "
        f"{len(np.unique(first.tasks[first.train]))} tasks ({n_small} with < "
        f"{MIN_TASK_ROWS} rows, merged into one task for meta-training). Held out "
        f"(all folds): {sum(map(len, heldouts))} tasks: "
        + ", ".join(f"{t} ({sizes[t]})" for h in heldouts for t in h)
        + f". A held-out group needs k + {first.min_query} rows of each class."
    )

    settings = copy.deepcopy(DEFAULTS)
    if name == "heart":
        settings["LR on k rows"] = {"C": CV}
    if tuned:
        tune_folds = folds[: args.tune_folds]
        settings, lines = tune(tune_folds, range(args.tune_seeds), budget, methods)
        validation = ", ".join(t for f in tune_folds for t in f.validation)
        print(
            f"\nSettings chosen on the validation groups ({validation}; "
            f"{args.tune_seeds} seeds, models trained on the other training "
            "groups; criterion: mean balanced accuracy over k, seeds and groups; "
            "used in every fold):"
        )
        print("\n".join(lines))
    else:
        why = "no validation groups" if not has_validation else "--quick/--no-tune"
        print(f"\nSettings (not tuned: {why}; tuned skmeta rows left out):")
    print(
        "\n".join(
            f"- {m}: {_fmt_setting(settings[m])}"
            for m in methods
            if m in settings and CV not in settings[m].values()
        )
    )
    print(
        f"- LR shrunk to pooled: alpha chosen per support set among {list(ALPHAS)} "
        f"(alpha={ALPHA_ONE_ROW:g} with one row per class)"
    )
    if settings["LR on k rows"]["C"] == CV:
        print(
            f"- LR on k rows: C chosen per support set among {list(CS)} "
            f"(C={C_ONE_ROW:g} with one row per class)"
        )

    all_records, all_skipped = [], []
    trajectories = {}  # default skmeta row -> prior strength per epoch, per fold
    first_index = 0
    fitted = []  # each fold's models, reused by the training-seed table
    for f_index, (data, heldout) in enumerate(zip(folds, heldouts, strict=True)):
        models = fit_fold_models(data, settings, budget, methods)
        oracle = oracle_probabilities(data) if dataset.oracle else None
        records, skipped = evaluate(
            data,
            models,
            settings,
            heldout,
            range(args.seeds),
            methods,
            base_seed=0,
            first_index=first_index,
            ks=dataset.ks,
            oracle=oracle,
            fold=f_index,
        )
        first_index += len(heldout)
        fitted.append(models)
        for method in (m for m in DEFAULT_META if m in models):
            history = models[method].history
            if "prior_strength" in history[-1]:
                trajectories.setdefault(method, []).append(history[:, "prior_strength"])
        all_records.append(records)
        all_skipped.append(skipped)
        print(
            f"\n(fold {f_index + 1}/{len(folds)} done at "
            f"{time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
        )
    records = pd.concat(all_records, ignore_index=True)
    skipped = pd.concat(all_skipped, ignore_index=True)
    print(f"\nHeld-out groups, {args.seeds} paired seeds (mean ± SE over seeds):\n")
    report(dataset, records, skipped, methods)
    if trajectories:
        print(
            "\nLearned prior strength (MAML's lambda, ProtoNet's kappa; rows) at "
            "the end of each training epoch of the default models, one line per "
            "fold: has it settled?\n"
        )
        for method, lines in trajectories.items():
            for f_index, values in enumerate(lines):
                print(
                    f"- {method}, fold {f_index + 1}: "
                    + " ".join(f"{v:.3g}" for v in values)
                )
    if args.train_seeds > 1 and (len(dataset.folds) == 1 or dataset.retrain_folds):
        seeds = range(args.train_seed_supports)
        retrained = tuple(m for m in methods if m == "pooled MLP" or m in META)
        table = training_seed_scores(
            folds,
            settings,
            budget,
            heldouts,
            range(args.train_seeds),
            seeds,
            methods,
            ks=dataset.ks,
            fitted=fitted,
        )
        print(
            f"\nRetrained with random_state 0-{args.train_seeds - 1} ("
            + ", ".join(retrained)
            + f"; the same {len(seeds)} support sets per group): skmeta minus the "
            "best baseline by mean, points, mean ± SE over training seeds, each "
            f"averaged over the {len(seeds)} support sets:\n"
        )
        report_training_seeds(table, methods)
    print(f"\n{name}: {time.perf_counter() - start:.0f} s")
    return records


def provenance():
    """Which skmeta ran: the checkout's commit, with a hash of any uncommitted
    changes to skmeta/, or the folder skmeta was imported from when that is
    not this checkout (for example an export of one commit with ``git
    archive``, on ``PYTHONPATH``)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "skmeta")
    except (OSError, subprocess.CalledProcessError):
        commit, diff = "unknown", ""
    source = Path(skmeta.__file__).resolve().parents[1]
    if source != root:
        return (
            f"skmeta imported from `{source.name}/`, not from this checkout "
            f"(checkout at commit `{commit}`)"
        )
    if not diff:
        return f"commit `{commit}`"
    digest = hashlib.sha1(diff.encode()).hexdigest()[:10]
    return f"commit `{commit}` plus uncommitted changes to skmeta/ (diff sha1 {digest})"


def exploration_header(script, argv):
    """Print an exploration script's title and command (with the skmeta it
    ran, :func:`provenance`, and ``OMP_NUM_THREADS``)."""
    print(f"# {script} {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(
        f"Command: `python benchmarks/{script}.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`; "
        f"skmeta ({provenance()}); "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
    )


def exploration_folds(name, quick):
    """The folds of data set ``name`` (the first one only with ``quick``)."""
    folds = LOADERS[name]()
    folds = folds.folds if hasattr(folds, "folds") else folds
    return folds[:1] if quick else folds


def points_by_k(diff):
    """``"k=1: +0.3 ± 0.2, k=5: ..."``: the mean ± SE of the differences
    ``diff`` (a Series indexed by ``k`` among other levels) at each k."""
    by = diff.groupby("k")
    return ", ".join(
        f"k={k}: {m:+.1f} ± {s:.1f}"
        for k, m, s in zip(by.mean().index, by.mean(), by.sem().fillna(0), strict=True)
    )


def print_variant_tables(df, estimators, variants, unit, over, se_over):
    """Print the mean balanced accuracy of each estimator, variant and k of
    the held-out records ``df`` (averaged ``over``: a phrase), then each
    variant but the first minus the first, in points, mean ± SE over folds x
    the column ``unit`` (called ``se_over``)."""
    print(f"Mean balanced accuracy over held-out groups, {over}:\n")
    table = df.groupby(["estimator", "variant", "k"]).bacc.mean().unstack()
    print(table.round(4).to_string())
    per = df.groupby(["estimator", "variant", "k", "fold", unit]).bacc.mean()
    default = variants[0]
    print(f"\nMinus {default}, points (mean ± SE over folds x {se_over}):\n")
    for estimator in estimators:
        base = per[estimator, default]
        for variant in variants[1:]:
            line = points_by_k(100 * (per[estimator, variant] - base))
            print(f"- {estimator}, {variant}: {line}")


def variant_differences(df, reference, label, share=None):
    """Each variant of an exploration minus ``reference``, per estimator and
    k: a DataFrame of the mean balanced accuracy and the paired difference
    in points (mean ± SE over the draws' seeds), plus the mean of the
    boolean column ``share`` (e.g. "share with a head": the records' "head")
    where given. ``df`` holds the records of :func:`heldout_records` with
    ``estimator`` and ``variant`` labels."""
    key = ["estimator", "fold", "task", "k", "seed"]
    base = df[df.variant == reference].set_index(key).bacc
    rows = []
    for (estimator, variant), part in df.groupby(["estimator", "variant"], sort=False):
        diff = (part.set_index(key).bacc - base).dropna()
        for k, dk in diff.groupby(level="k"):
            per_seed = dk.groupby(level="seed").mean()
            se = per_seed.std(ddof=1) / np.sqrt(len(per_seed))
            row = {
                "estimator": estimator,
                "variant": variant,
                "k": k,
                "bal. acc.": part[part.k == k].bacc.mean(),
                label: f"{100 * dk.mean():+.2f} ± {100 * se:.2f}",
            }
            if share is not None:
                name, column = share
                row[name] = round(float(part[part.k == k][column].mean()), 2)
            rows.append(row)
    return pd.DataFrame(rows)


def heldout_records(model, data, f_index, ks, seeds, extra=None, **labels):
    """One record per held-out draw of :func:`heldout_draws`: ``labels``, the
    draw and the balanced accuracy of ``model`` adapted to its support, plus
    ``extra(adapted_model)`` (a dict) where given."""
    records = []
    for task, k, seed, support, query in heldout_draws(data, f_index, ks, seeds):
        adapted, bacc = adapted_score(model, data, task, support, query)
        record = dict(labels, fold=f_index, task=task, k=k, seed=seed, bacc=bacc)
        if extra is not None:
            record.update(extra(adapted))
        records.append(record)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds")
    parser.add_argument("--datasets", default=",".join(LOADERS), help="comma-separated")
    parser.add_argument(
        "--no-tune", action="store_true", help="use DEFAULTS, skip the validation"
    )
    parser.add_argument("--tune-seeds", type=int, default=5)
    parser.add_argument(
        "--tune-folds",
        type=int,
        default=1,
        help="folds whose validation groups choose the settings (several folds)",
    )
    parser.add_argument(
        "--train-seeds",
        type=int,
        default=None,
        help="retrain with this many random states, one-fold data sets and heart "
        "only (5; 2 with --quick)",
    )
    parser.add_argument(
        "--train-seed-supports",
        type=int,
        default=None,
        help="support sets per group when retraining (5; 1 with --quick)",
    )
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an skmeta parameter for every skmeta row, default and tuned "
        "(e.g. pretrain_epochs=10); repeatable",
    )
    args = parser.parse_args(argv)
    for name, value in args.set:
        for klass in set(META_CLASSES.values()):
            try:
                klass().set_params(**{name: value})
            except ValueError:
                parser.error(f"--set {name}: not a parameter of {klass.__name__}")
        META_OVERRIDES[name] = value
    if args.train_seeds is None:
        args.train_seeds = 2 if args.quick else 5
    if args.train_seed_supports is None:
        args.train_seed_supports = 1 if args.quick else 5
    if args.seeds is None:
        args.seeds = 2 if args.quick else 20
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = set(names) - set(LOADERS)
    if unknown:
        parser.error(f"unknown data sets: {sorted(unknown)}")

    # skmeta warns about tiny training tasks (Adult has a one-row country) at
    # every fit; once is enough.
    warnings.filterwarnings("once", message=".*give no query set.*")
    # One thread: the networks are tiny, and two threads made each step of a
    # 64-unit MLP about 100 times slower on a 2-core machine.
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    max_epochs, steps = META_STEPS[budget]
    print("# Few-shot adaptation to held-out groups\n")
    command = " ".join(["python benchmarks/bench_fewshot.py", *sys.argv[1:]])
    print(
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} "
        f"{command}`; {provenance()}; started "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
    )
    print(
        f"skmeta {skmeta.__version__}, torch {torch.__version__}; "
        f"k in {list(KS)}; {args.seeds} paired seeds; "
        + (
            "meta-training budget at the package defaults (max_epochs=10, "
            "steps_per_epoch=None); "
            if max_epochs is None
            else f"meta-training {max_epochs} epochs x {steps} meta-batches; "
        )
        + "skmeta parameters otherwise at their defaults (inner_lr=0.5, "
        "inner_steps=16, prior_strength='learn', head='auto'; shrinkage='learn', "
        "distance_scale='learn', head='auto'; n_shots=5, n_queries=15, "
        "meta_batch_size=8, lr=1e-3, pretrain_epochs=10, 64 hidden units) "
        "except class_prior='balanced'"
        + "".join(f", {k}={v!r}" for k, v in META_OVERRIDES.items())
        + " and the tuned "
        f"rows; pooled MLP ~{MLP_STEPS[budget]} Adam steps (lr=1e-3, batch 128); "
        f"tuning: {'off' if args.quick or args.no_tune else f'{args.tune_seeds} seeds'}"
        f"; random_state={RANDOM_STATE}."
    )
    start, cpu = time.perf_counter(), time.process_time()
    for name in names:
        run(name, args)
    print(
        f"\nWall time: {time.perf_counter() - start:.0f} s "
        f"(CPU time of this process: {time.process_time() - cpu:.0f} s); "
        f"finished at {provenance()}."
    )


if __name__ == "__main__":
    main()
