"""Few-shot adaptation to held-out groups: skmeta against simple baselines.

Leave-groups-out evaluation. For each data set, models are (meta-)trained on
the training groups only. For each held-out group and each k in {1, 5, 10, 20},
a class-balanced support set of k rows per class is drawn from the group, every
method adapts to it, and the rest of the group is the query set. This repeats
over S paired seeds: within a seed, every method sees the same support set.

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
  i.e. the MAP estimate under a Gaussian prior centred at the pooled LR;
- MAML and ProtoNet: ``skmeta.MAMLClassifier`` and
  ``skmeta.PrototypicalClassifier`` meta-trained with ``tasks=``, then adapted
  with ``partial_fit`` on a deep copy (``partial_fit`` accumulates rows).

The metric is balanced accuracy, and support sets are class-balanced, so the
skmeta models use ``class_prior="balanced"`` and the pooled models are trained
with balanced class weights. ROC AUC does not depend on that choice.

Hyperparameters (the LR penalties, the fine-tuning schedule, the skmeta
constructor parameters) are chosen on the training groups only: the models are
trained on the training groups minus some validation groups, evaluated with
the same protocol on the validation groups, and the setting with the best
balanced accuracy (averaged over k, seeds and validation groups) is refitted
on all training groups. Held-out groups are never used for any choice.

Held-out groups with fewer than k + 15 rows of a class are skipped at that k
and listed separately.

Every model is trained once for the main tables, so their standard errors only
measure the support draws. A last table per data set retrains the pooled MLP,
MAML and ProtoNet with ``--train-seeds`` random states and reports the paired
differences over training seeds.

Usage::

    python benchmarks/bench_fewshot.py [--quick] [--seeds S]
        [--datasets synthetic,compas,adult] [--no-tune] [--train-seeds N]
"""

import argparse
import copy
import itertools
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from fairlearn.metrics import demographic_parity_difference
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNetClassifier

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import load_adult, load_compas, make_group_classification
from skmeta.modules import MLP

KS = (1, 5, 10, 20)
MIN_QUERY = 15  # a held-out group needs k + MIN_QUERY rows of each class
# Training tasks with fewer rows are merged into one task for meta-training:
# they cannot fill an episode (5 + 15 rows per class). On the validation groups
# (5 seeds, the tuned settings) this raised MAML's balanced accuracy from .767 to
# .805 (Adult) and from .627 to .651 (COMPAS), and ProtoNet's from .616 to .642
# on COMPAS (.802 and .800 on Adult).
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
META = ("MAML", "ProtoNet")
METHODS = BASELINES + META
METRICS = {
    "bacc_mean": "bal. acc., mean",
    "bacc_worst": "bal. acc., worst group",
    "auc_mean": "ROC AUC, mean",
    "auc_worst": "ROC AUC, worst group",
}

# Settings used without tuning (--no-tune, --quick), and the grids searched on
# the validation groups otherwise. Keys are method names.
DEFAULTS = {
    "LR on k rows": {"C": 1.0},
    "LR shrunk to pooled": {"alpha": 3.0},
    "MLP fine-tuned": {"lr": 1e-2, "max_epochs": 20},
    "MAML": {"inner_lr": 0.3, "inner_steps": 3},
    "ProtoNet": {"shrinkage": 5.0},
}
GRIDS = {
    "LR on k rows": {"C": [0.01, 0.1, 1.0, 10.0]},
    "LR shrunk to pooled": {"alpha": [0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]},
    "MLP fine-tuned": {"lr": [1e-3, 1e-2], "max_epochs": [5, 20, 50]},
    "MAML": {
        "inner_lr": [0.03, 0.1, 0.3, 1.0],
        "inner_steps": [3, 10],
        "pooled_episodes": [0.0, 0.5, 1.0],
    },
    "ProtoNet": {
        "shrinkage": [1.0, 5.0, 20.0, 100.0, 500.0],
        "pooled_episodes": [0.0, 0.5, 1.0],
    },
}
# Training budgets of the full run and of --quick.
META_STEPS = {"full": (20, 100), "quick": (2, 20)}  # (max_epochs, steps_per_epoch)
MLP_STEPS = {"full": 2000, "quick": 100}  # optimizer steps of the pooled MLP


# --------------------------------------------------------------------------- data
@dataclass
class GroupData:
    """A data set split into training and held-out groups (tasks)."""

    name: str
    X: np.ndarray  # float32, standardised on the training groups
    y: np.ndarray
    tasks: np.ndarray  # task label of each row (str)
    heldout: list  # held-out task labels
    validation: list  # training tasks that serve as validation groups for tuning
    sensitive: np.ndarray | None  # for the DP difference within held-out groups
    description: str

    @property
    def train(self):
        return ~np.isin(self.tasks, self.heldout)


def _finish(name, X, y, tasks, heldout, validation, sensitive, description):
    tasks = np.asarray(tasks, dtype=str)
    train = ~np.isin(tasks, heldout)
    X = StandardScaler().fit(X[train]).transform(X).astype(np.float32)
    return GroupData(
        name,
        X,
        np.asarray(y, dtype=np.int64),
        tasks,
        list(heldout),
        list(validation),
        sensitive,
        description,
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


def load_synthetic():
    n_groups, n_heldout, n_validation = 20, 5, 5
    X, y, groups = make_group_classification(
        n_groups=n_groups,
        n_samples_per_group=200,
        n_features=6,
        group_shift=1.5,
        random_state=RANDOM_STATE,
    )
    tasks = np.char.add("g", np.char.zfill(groups.astype(str), 2))
    names = [f"g{g:02d}" for g in range(n_groups)]
    heldout = names[-n_heldout:]
    validation = names[-n_heldout - n_validation : -n_heldout]
    return _finish(
        "synthetic",
        X,
        y,
        tasks,
        heldout,
        validation,
        None,
        "make_group_classification(n_groups=20, n_samples_per_group=200, "
        "n_features=6, group_shift=1.5); tasks = groups; groups 15-19 held out, "
        "groups 10-14 are the validation groups",
    )


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
    return _finish(
        "compas",
        bunch.data,
        bunch.target,
        tasks,
        heldout,
        validation,
        None,
        "COMPAS; tasks = race x sex x age_cat; of the tasks with 60-400 rows, "
        "sorted by the rows of their rarer class, every other one is held out and "
        "the others are the validation groups",
    )


def load_adult_countries():
    bunch = load_adult()
    tasks = bunch.frame["native-country"].astype(object).fillna("?").to_numpy()
    heldout, validation = _alternate(tasks, bunch.target, 60, 600)
    return _finish(
        "adult",
        bunch.data,
        bunch.target,
        tasks,
        heldout,
        validation,
        bunch.sensitive_features["sex"].astype(str).to_numpy(),
        "Adult; tasks = native-country (missing = '?'); of the countries with "
        "60-600 rows, sorted by the rows of their rarer class, every other one is "
        "held out and the others are the validation groups; larger and smaller "
        "countries are trained on; sensitive feature sex",
    )


LOADERS = {
    "synthetic": load_synthetic,
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


def _meta_kwargs(budget, random_state):
    max_epochs, steps_per_epoch = META_STEPS[budget]
    return dict(
        max_epochs=max_epochs,
        steps_per_epoch=steps_per_epoch,
        class_prior="balanced",
        random_state=random_state,
    )


def merge_small_tasks(tasks):
    """Task labels for meta-training: tasks under MIN_TASK_ROWS rows become one."""
    labels, counts = np.unique(tasks, return_counts=True)
    small = labels[counts < MIN_TASK_ROWS]
    return np.where(np.isin(tasks, small), SMALL_TASKS, tasks)


def fit_models(
    X, y, tasks, settings, budget, methods=METHODS, random_state=RANDOM_STATE
):
    """Fit every (meta-)model that is trained once, on the training groups."""
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
    if "MAML" in methods:
        models["MAML"] = MAMLClassifier(
            **settings["MAML"], **_meta_kwargs(budget, random_state)
        ).fit(X, y, tasks=tasks)
    if "ProtoNet" in methods:
        models["ProtoNet"] = PrototypicalClassifier(
            **settings["ProtoNet"], **_meta_kwargs(budget, random_state)
        ).fit(X, y, tasks=tasks)
    return models


def adapt_and_predict(method, models, settings, Xs, ys, Xq, task, seed):
    """Probability of class 1 on the query rows after adapting to the support."""
    if method == "pooled LR":
        return models["pooled LR"].predict_proba(Xq)[:, 1]
    if method == "pooled MLP":
        return models["pooled MLP"].predict_proba(Xq)[:, 1]
    if method == "MLP fine-tuned":
        net = copy.deepcopy(models["pooled MLP"])
        # The support set is balanced: drop the class weights. set_params also
        # builds a fresh optimizer with the fine-tuning learning rate.
        net.set_params(criterion__weight=None, **settings[method])
        torch.manual_seed(seed)
        return net.partial_fit(Xs, ys).predict_proba(Xq)[:, 1]
    if method == "LR on k rows":
        model = LogisticRegression(**settings[method], random_state=RANDOM_STATE)
        return model.fit(Xs, ys).predict_proba(Xq)[:, 1]
    if method == "LR shrunk to pooled":
        pooled = models["pooled LR"]
        model = ShrunkLogisticRegression(
            pooled.coef_[0], pooled.intercept_[0], **settings[method]
        )
        return model.fit(Xs, ys).predict_proba1(Xq)
    # skmeta: partial_fit adds the rows to the task's support set, so adapt a copy.
    model = copy.deepcopy(models[method])
    model.partial_fit(Xs, ys, tasks=np.full(len(ys), task))
    return model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1]


# -------------------------------------------------------------------- evaluation
def evaluate(data, models, settings, eval_tasks, seeds, methods, *, base_seed):
    """Scores of every method on every (task, k, seed); and the skipped tasks."""
    records, skipped = [], []
    for t_index, task in enumerate(eval_tasks):
        rows = np.flatnonzero(data.tasks == task)
        by_class = [rows[data.y[rows] == c] for c in (0, 1)]
        counts = [len(r) for r in by_class]
        for k in KS:
            if min(counts) < k + MIN_QUERY:
                skipped.append({"k": k, "task": task, "n0": counts[0], "n1": counts[1]})
                continue
            for seed in seeds:
                rng = np.random.default_rng([base_seed, t_index, k, seed])
                support = np.concatenate(
                    [rng.choice(r, k, replace=False) for r in by_class]
                )
                query = np.setdiff1d(rows, support)
                Xs, ys = data.X[support], data.y[support]
                Xq, yq = data.X[query], data.y[query]
                for method in methods:
                    proba = adapt_and_predict(
                        method, models, settings, Xs, ys, Xq, task, seed
                    )
                    pred = (proba >= 0.5).astype(np.int64)
                    dp = np.nan
                    if data.sensitive is not None:
                        sens = data.sensitive[query]
                        _, n_per = np.unique(sens, return_counts=True)
                        if len(n_per) > 1 and n_per.min() >= 10:
                            dp = demographic_parity_difference(
                                yq, pred, sensitive_features=sens
                            )
                    records.append(
                        {
                            "task": task,
                            "k": k,
                            "seed": seed,
                            "method": method,
                            "bacc": balanced_accuracy_score(yq, pred),
                            "auc": roc_auc_score(yq, proba),
                            "dp": dp,
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


def paired_differences(scores, methods):
    """Each skmeta model minus the best baseline, per k and metric, paired by seed."""
    rows = []
    for k, at_k in scores.groupby("k"):
        wide = {
            m: at_k.pivot(index="seed", columns="method", values=m) for m in METRICS
        }
        for metric, table in wide.items():
            baselines = [b for b in BASELINES if b in table]
            best = table[baselines].mean().idxmax()
            row = {"k": k, "metric": METRICS[metric], "best baseline": best}
            for meta in (m for m in META if m in methods):
                diff = 100 * (table[meta] - table[best])
                row[meta] = (diff.mean(), _sem(diff))
            rows.append(row)
    return pd.DataFrame(rows)


def training_seed_scores(
    data, settings, budget, heldout, train_seeds, seeds, fitted=None
):
    """Every model retrained per training seed; per-seed scores on the held-out groups.

    The main tables train every model once (``random_state=0``), so their
    standard errors only measure the support draws. Here the pooled MLP, MAML
    and ProtoNet are retrained with ``random_state`` in ``train_seeds`` (the LR
    fits are deterministic) and scored on the same support sets, to measure
    how far retraining alone moves each method. ``fitted``: the models already
    trained with ``random_state=RANDOM_STATE``, reused for that seed.
    """
    train = data.train
    tables = []
    for seed in train_seeds:
        if fitted is not None and seed == RANDOM_STATE:
            models = fitted
        else:
            models = fit_models(
                data.X[train],
                data.y[train],
                data.tasks[train],
                settings,
                budget,
                random_state=seed,
            )
        records, _ = evaluate(
            data, models, settings, heldout, seeds, METHODS, base_seed=0
        )
        scores = per_seed_scores(records)
        means = scores.groupby(["k", "method"])[["bacc_mean", "bacc_worst"]].mean()
        tables.append(means.reset_index().assign(train_seed=seed))
    return pd.concat(tables, ignore_index=True)


def report_training_seeds(table, methods):
    """Best baseline's spread over training seeds, and the paired differences."""
    rows = []
    for k, metric in itertools.product(
        sorted(table["k"].unique()), ("bacc_mean", "bacc_worst")
    ):
        at_k = table[table["k"] == k]
        wide = at_k.pivot(index="train_seed", columns="method", values=metric)
        best = wide[[b for b in BASELINES if b in wide]].mean().idxmax()
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
        "best baseline",
        "its mean ± SD over training seeds",
        *(m for m in META if m in methods),
    ]
    print(markdown_table(header, rows))


# ----------------------------------------------------------------------- tuning
def _grid(method):
    names = list(GRIDS[method])
    for values in itertools.product(*(GRIDS[method][n] for n in names)):
        yield dict(zip(names, values, strict=True))


def tune(data, seeds, budget):
    """Choose each method's setting on validation groups carved out of training."""
    fit_rows = data.train & ~np.isin(data.tasks, data.validation)
    X, y, tasks = data.X[fit_rows], data.y[fit_rows], data.tasks[fit_rows]
    settings = copy.deepcopy(DEFAULTS)
    pooled = fit_models(X, y, tasks, settings, budget, methods=BASELINES)
    lines = []
    for method in GRIDS:
        results = []
        for setting in _grid(method):
            trial = {**settings, method: setting}
            models = pooled
            if method in META:
                models = fit_models(X, y, tasks, trial, budget, methods=(method,))
            records, _ = evaluate(
                data, models, trial, data.validation, seeds, (method,), base_seed=1000
            )
            results.append((records["bacc"].mean(), setting))
        best_score, best = max(results, key=lambda r: r[0])
        settings[method] = best
        tried = ", ".join(f"{_fmt_setting(s)}: {v:.3f}" for v, s in results)
        lines.append(f"- {method}: chose {_fmt_setting(best)} (tried {tried})")
    return settings, lines


def _fmt_setting(setting):
    return ", ".join(f"{k}={v:g}" for k, v in setting.items())


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


def report(data, records, skipped, methods):
    scores = per_seed_scores(records)
    has_dp = data.sensitive is not None
    header = ["k", "groups", "method", *METRICS.values()]
    if has_dp:
        header.append("DP difference (sex), mean")
    rows = []
    for (k, method), cell in scores.groupby(["k", "method"], sort=False):
        row = [k, int(cell["n_groups"].iloc[0]), method]
        row += [_pm(cell[m].mean(), _sem(cell[m])) for m in METRICS]
        if has_dp:
            row.append(_pm(cell["dp"].mean(), _sem(cell["dp"])))
        rows.append(row)
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (r[0], order[r[2]]))
    print(markdown_table(header, rows))

    print(
        "\nPaired differences, skmeta minus the best baseline at that k and metric "
        "(points, mean ± SE over seeds):\n"
    )
    diffs = paired_differences(scores, methods)
    header = ["k", "metric", "best baseline", *(m for m in META if m in methods)]
    rows = [
        [r["k"], r["metric"], r["best baseline"]]
        + [_pm(*r[m], digits=1, signed=True) for m in META if m in methods]
        for _, r in diffs.iterrows()
    ]
    print(markdown_table(header, rows))

    if len(skipped):
        print(f"\nSkipped (fewer than k + {MIN_QUERY} rows of a class):\n")
        rows = [
            [k, ", ".join(f"{r.task} ({r.n0}/{r.n1})" for r in cell.itertuples())]
            for k, cell in skipped.groupby("k")
        ]
        print(markdown_table(["k", "task (rows of class 0/1)"], rows))
    else:
        print("\nNo held-out group was skipped.")
    return scores, diffs


# -------------------------------------------------------------------------- main
def run(name, args):
    start = time.perf_counter()
    data = LOADERS[name]()
    budget = "quick" if args.quick else "full"
    train = data.train
    heldout = data.heldout[-3:] if args.quick else data.heldout
    sizes = pd.Series(data.tasks).value_counts()
    print(f"\n## {name}\n\n{data.description}.\n")
    n_small = len(np.setdiff1d(data.tasks[train], merge_small_tasks(data.tasks[train])))
    print(
        f"Training: {int(train.sum())} rows, {len(np.unique(data.tasks[train]))} "
        f"tasks ({n_small} with < {MIN_TASK_ROWS} rows, merged into one task for "
        f"meta-training). Held out: {len(heldout)} tasks: "
        + ", ".join(f"{t} ({sizes[t]})" for t in heldout)
        + "."
    )
    settings = copy.deepcopy(DEFAULTS)
    if not (args.quick or args.no_tune):
        tune_seeds = range(args.tune_seeds)
        settings, lines = tune(data, tune_seeds, budget)
        print(
            f"\nSettings chosen on the validation groups ({', '.join(data.validation)}"
            f"; {args.tune_seeds} seeds, models trained on the other training "
            "groups; criterion: mean balanced accuracy over k, seeds and groups):"
        )
        print("\n".join(lines))
    else:
        print(
            "\nSettings (not tuned): "
            + "; ".join(f"{m}: {_fmt_setting(s)}" for m, s in settings.items())
        )
    models = fit_models(
        data.X[train], data.y[train], data.tasks[train], settings, budget
    )
    records, skipped = evaluate(
        data, models, settings, heldout, range(args.seeds), METHODS, base_seed=0
    )
    print(f"\nHeld-out groups, {args.seeds} paired seeds (mean ± SE over seeds):\n")
    report(data, records, skipped, METHODS)
    if args.train_seeds > 1:
        seeds = range(args.train_seed_supports)
        table = training_seed_scores(
            data,
            settings,
            budget,
            heldout,
            range(args.train_seeds),
            seeds,
            fitted=models,
        )
        print(
            f"\nRetrained with random_state 0-{args.train_seeds - 1} (every "
            f"model; the same {len(seeds)} support sets per group): skmeta minus "
            "the best baseline, points, mean ± SE over training seeds, each "
            f"averaged over the {len(seeds)} support sets:\n"
        )
        report_training_seeds(table, METHODS)
    print(f"\n{name}: {time.perf_counter() - start:.0f} s")
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run (< 2 min)")
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds")
    parser.add_argument(
        "--datasets", default="synthetic,compas,adult", help="comma-separated"
    )
    parser.add_argument(
        "--no-tune", action="store_true", help="use DEFAULTS, skip the validation"
    )
    parser.add_argument("--tune-seeds", type=int, default=5)
    parser.add_argument(
        "--train-seeds",
        type=int,
        default=None,
        help="retrain every model with this many random states (5; 2 with --quick)",
    )
    parser.add_argument(
        "--train-seed-supports",
        type=int,
        default=5,
        help="support sets per group when retraining",
    )
    args = parser.parse_args(argv)
    if args.train_seeds is None:
        args.train_seeds = 2 if args.quick else 5
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
    # 64-unit MLP about 100 times slower on the 2-core machine.
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    max_epochs, steps = META_STEPS[budget]
    print("# Few-shot adaptation to held-out groups\n")
    print(
        f"skmeta {skmeta.__version__}, torch {torch.__version__}; "
        f"k in {list(KS)}; {args.seeds} paired seeds; "
        f"meta-training {max_epochs} epochs x {steps} meta-batches; "
        "other skmeta parameters at their defaults (n_shots=5, n_queries=15, "
        "meta_batch_size=8, lr=1e-3, 64 hidden units); "
        f"pooled MLP ~{MLP_STEPS[budget]} Adam steps (lr=1e-3, batch 128); "
        f"tuning: {'off' if args.quick or args.no_tune else f'{args.tune_seeds} seeds'}"
        f"; random_state={RANDOM_STATE}."
    )
    start, cpu = time.perf_counter(), time.process_time()
    for name in names:
        run(name, args)
    print(
        f"\nWall time: {time.perf_counter() - start:.0f} s "
        f"(CPU time of this process: {time.process_time() - cpu:.0f} s)"
    )


if __name__ == "__main__":
    main()
