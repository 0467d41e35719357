"""Fairness and accuracy on Adult and COMPAS: skmeta against fairlearn.

Every model is trained on the training split and scored on the test split:
accuracy, demographic-parity difference, equalized-odds difference (both
``fairlearn.metrics``, largest gap between groups) and worst-group accuracy
(``MetricFrame(...).group_min()``), and its fit time.

Data
----
- Adult (``skmeta.datasets.load_adult``): the train/test split as shipped
  (``bunch.split``), sex as the sensitive feature.
- COMPAS (``skmeta.datasets.load_compas``): race as the sensitive feature, with
  the two tiny races (Asian: 31 rows, Native American: 11 rows) merged into
  "Other", so 4 groups. The merged feature is used everywhere: as skmeta's tasks,
  as fairlearn's ``sensitive_features`` and in the metrics. A fixed 70/30 split,
  stratified on group x label, with ``random_state=0``.

Features are standardised with a ``StandardScaler`` fitted on the training split.

Methods
-------
- LR: ``LogisticRegression(max_iter=1000)``.
- MLP: a plain skorch ``NeuralNetClassifier`` with skmeta's default ``MLP``
  (one hidden layer of 64 ReLU units), cross-entropy, Adam, trained
  comparably to the skmeta models: the same ``max_epochs``, and mini-batches
  of 320 rows, as many rows as the query sets of one skmeta meta-batch
  (8 tasks x 2 classes x (5 + 15) rows), so both take the same number of
  optimizer steps over about as many rows. Its ``lr`` is chosen on the
  validation split like the skmeta parameters.
- EG(LR): fairlearn ``ExponentiatedGradient(LogisticRegression)`` with
  ``DemographicParity()`` and with ``EqualizedOdds()`` (default ``eps=0.01``).
- TO(LR): fairlearn ``ThresholdOptimizer(LogisticRegression)`` with
  ``"demographic_parity"`` and ``"equalized_odds"``.
- MAML / ProtoNet: ``skmeta.MAMLClassifier`` and
  ``skmeta.PrototypicalClassifier`` with the groups as tasks
  (``sensitive_features=``), with ``constraints="demographic_parity"`` and
  ``"equalized_odds"`` at each ``fairness_weight`` (``0`` is one unconstrained
  model). ``class_prior="auto"`` (the default) predicts with each group's class
  frequencies at weight 0 and with the pooled frequencies when a penalty is on.
- TO(MAML) / TO(ProtoNet): ``ThresholdOptimizer(prefit=True,
  predict_method="predict_proba")`` on the unconstrained skmeta model. The
  model gets the groups through ``sensitive_columns``: the group code is
  appended to X as a last column, the model is fitted on that, and
  ``ThresholdOptimizer`` is fitted with ``sensitive_features``.

``ThresholdOptimizer.predict`` and ``ExponentiatedGradient.predict`` are
randomised and get ``random_state=0``; every model gets ``random_state=0``
(the skorch MLP a ``torch.manual_seed(0)``).

Hyperparameters
---------------
skmeta models use their defaults plus ``max_epochs``. A few constructor
parameters (MAML: ``prior_strength``, ``lr``; ProtoNet: ``shrinkage``, ``lr``;
MLP: ``lr``) are chosen by validation accuracy of the unconstrained model on a
validation split of the *training* data (25 %, stratified on group x label,
``random_state=0``; models fitted on the other 75 %). The chosen values are
used for every fairness weight. The test split is never used for a choice.
``--quick`` skips this and keeps the defaults. MAML: ``prior_strength`` and
``lr``; ProtoNet: ``shrinkage`` and ``lr`` (``"learn"``, the default, or a
fixed value).

Pareto analysis
---------------
Per data set, the Pareto front of all methods (accuracy up, DP difference
down, ``skmeta.metrics.pareto_front``). The script then says whether every
point of skmeta's own front (the penalised MAML / ProtoNet models) is dominated
by a fairlearn point (EG or TO on LR): at least as accurate and at most as
unfair, strictly better in one. The same is asked with the TO(skmeta) models
counted as skmeta, and again with the equalized-odds difference in place of
the DP difference. Points of near-constant classifiers (positive rate below
1 % or above 99 %) are flagged, and the answer is also given without them.
On Adult, the script lists the skmeta models with DP difference <= 0.02 and
accuracy >= 0.83. One PNG per data set shows accuracy against DP difference
for every method, skmeta points labelled.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_fairness.py [--quick]
        [--datasets adult,compas] [--plot-dir benchmarks] [--seeds 5]

With ``--seeds N`` (default 5; 2 with ``--quick``) the headline methods
(demographic parity) are retrained with ``random_state`` 0 to N - 1 and the
mean and standard deviation of accuracy and DP difference are reported.
"""

import argparse
import datetime
import itertools
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import fairlearn
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
import skorch
import torch
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import (
    DemographicParity,
    EqualizedOdds,
    ExponentiatedGradient,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import load_adult, load_compas
from skmeta.metrics import FairnessTradeoffDisplay, pareto_front
from skmeta.modules import MLP

RANDOM_STATE = 0
CONSTRAINTS = {  # skmeta / ThresholdOptimizer name -> (short name, fairlearn moment)
    "demographic_parity": ("DP", DemographicParity),
    "equalized_odds": ("EO", EqualizedOdds),
}
SKMETA = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
SETTINGS = {
    "full": {"max_epochs": 10, "weights": (0, 0.3, 1, 3, 10), "tune": True},
    "quick": {"max_epochs": 2, "weights": (0, 1, 10), "tune": False},
}
# Candidates chosen on the validation split (unconstrained models).
GRIDS = {
    "MLP": {"lr": [1e-3, 3e-3]},
    "MAML": {"prior_strength": ["learn", 10.0], "lr": [1e-3, 3e-3]},
    "ProtoNet": {"shrinkage": ["learn", 5.0], "lr": [1e-3, 3e-3]},
}
DEFAULTS = {"MLP": {"lr": 1e-3}, "MAML": {}, "ProtoNet": {}}
# Rows of one skmeta meta-batch's query sets: meta_batch_size * n_classes * (n_shots
# + n_queries) with the defaults 8, 2, 5, 15; the MLP's batch size.
MLP_BATCH_SIZE = 8 * 2 * (5 + 15)
FAIRLEARN = ("EG(LR)", "TO(LR)")
TARGET = {"dpd": 0.02, "accuracy": 0.83}  # the Adult question


# --------------------------------------------------------------------------- data
@dataclass
class Data:
    """Standardised train/test split with a 1-D sensitive feature."""

    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    s_train: np.ndarray  # group labels (str)
    s_test: np.ndarray
    description: str

    def with_group_column(self):
        """X with the group code appended as a last column (for sensitive_columns)."""
        groups = np.unique(self.s_train)
        code_train = np.searchsorted(groups, self.s_train).astype(np.float64)
        code_test = np.searchsorted(groups, self.s_test).astype(np.float64)
        return (
            np.column_stack([self.X_train, code_train]),
            np.column_stack([self.X_test, code_test]),
        )


def _standardise(name, X, y, s, train, description):
    scaler = StandardScaler().fit(X[train])
    return Data(
        name=name,
        X_train=scaler.transform(X[train]),
        X_test=scaler.transform(X[~train]),
        y_train=y[train],
        y_test=y[~train],
        s_train=s[train],
        s_test=s[~train],
        description=description,
    )


def load_adult_data():
    bunch = load_adult()
    s = bunch.sensitive_features["sex"].astype(str).to_numpy()
    train = bunch.split == "train"
    return _standardise(
        "adult",
        bunch.data,
        bunch.target,
        s,
        train,
        "Adult: shipped split, sensitive feature sex (2 groups)",
    )


def load_compas_data():
    bunch = load_compas()
    race = bunch.sensitive_features["race"].astype(str)
    s = race.replace({"Asian": "Other", "Native American": "Other"}).to_numpy()
    y = bunch.target
    index = np.arange(len(y))
    strata = np.char.add(s.astype(str), y.astype(str))
    train_index, _ = train_test_split(
        index, test_size=0.3, stratify=strata, random_state=RANDOM_STATE
    )
    train = np.isin(index, train_index)
    return _standardise(
        "compas",
        bunch.data,
        y,
        s,
        train,
        "COMPAS: stratified 70/30 split (random_state=0), sensitive feature race "
        "with Asian and Native American merged into Other (4 groups)",
    )


LOADERS = {"adult": load_adult_data, "compas": load_compas_data}


# ------------------------------------------------------------------------ models
def make_mlp(n_features, max_epochs, lr):
    return NeuralNetClassifier(
        MLP,
        module__n_features_in=n_features,
        module__n_classes=2,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=MLP_BATCH_SIZE,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
    )


def fit_mlp(X, y, max_epochs, lr):
    torch.manual_seed(RANDOM_STATE)
    return make_mlp(X.shape[1], max_epochs, lr).fit(X.astype(np.float32), y)


def predict_mlp(model, X):
    return model.predict(X.astype(np.float32))


def make_skmeta(
    model,
    params,
    max_epochs,
    constraint=None,
    weight=0.0,
    random_state=RANDOM_STATE,
    **kwargs,
):
    return SKMETA[model](
        **params,
        constraints=constraint if weight > 0 else None,
        fairness_weight=weight,
        max_epochs=max_epochs,
        random_state=random_state,
        **kwargs,
    )


# ------------------------------------------------------------------------ metrics
def evaluate(y, pred, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=s
        )
        return {
            "accuracy": accuracy_score(y, pred),
            "dpd": demographic_parity_difference(y, pred, sensitive_features=s),
            "eod": equalized_odds_difference(y, pred, sensitive_features=s),
            "worst_group_acc": frame.group_min(),
            "pos_rate": float(np.mean(pred == 1)),
        }


def _timed(fit):
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


# ------------------------------------------------------------------------ tuning
def _candidates(grid):
    keys = list(grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*grid.values())
    ]


def tune(data, max_epochs):
    """Pick the GRIDS parameters by validation accuracy (unconstrained models)."""
    index = np.arange(len(data.y_train))
    strata = np.char.add(data.s_train.astype(str), data.y_train.astype(str))
    fit_idx, val_idx = train_test_split(
        index, test_size=0.25, stratify=strata, random_state=RANDOM_STATE
    )
    X, y, s = data.X_train, data.y_train, data.s_train
    chosen, rows = {}, []
    for model, grid in GRIDS.items():
        scores = []
        for params in _candidates(grid):
            if model == "MLP":
                net = fit_mlp(X[fit_idx], y[fit_idx], max_epochs, params["lr"])
                pred = predict_mlp(net, X[val_idx])
            else:
                clf = make_skmeta(model, params, max_epochs).fit(
                    X[fit_idx], y[fit_idx], sensitive_features=s[fit_idx]
                )
                pred = clf.predict(X[val_idx], sensitive_features=s[val_idx])
            score = accuracy_score(y[val_idx], pred)
            scores.append(score)
            rows.append((model, _fmt_params(params), score))
        chosen[model] = _candidates(grid)[int(np.argmax(scores))]
    print(
        f"\nValidation accuracy ({len(fit_idx)} fit rows, {len(val_idx)} validation "
        "rows of the training split):\n"
    )
    print(markdown_table(["model", "parameters", "validation accuracy"], rows))
    print(
        "\nChosen: "
        + "; ".join(f"{m}: {_fmt_params(p)}" for m, p in chosen.items())
        + "\n"
    )
    return chosen


def _fmt_params(params):
    return (
        ", ".join(
            f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v!r}"
            for k, v in params.items()
        )
        or "defaults"
    )


# ------------------------------------------------------------------------ run
def run_dataset(data, settings, params):
    """Fit and score every method on one data set; returns a DataFrame."""
    max_epochs, weights = settings["max_epochs"], settings["weights"]
    X, Xt, y, yt = data.X_train, data.X_test, data.y_train, data.y_test
    s, st = data.s_train, data.s_test
    records = []

    def record(method, family, pred, fit_s, constraint="", weight=np.nan, label=""):
        row = {
            "method": method,
            "family": family,
            "constraint": constraint,
            "weight": weight,
            **evaluate(yt, pred, st),
            "fit_s": fit_s,
            "label": label,
        }
        records.append(row)
        print(
            f"  {method:<9} {constraint:<3} {'' if np.isnan(weight) else weight:>5} "
            f"acc={row['accuracy']:.4f} dpd={row['dpd']:.4f} eod={row['eod']:.4f} "
            f"worst={row['worst_group_acc']:.4f} fit={fit_s:.1f}s",
            flush=True,
        )

    lr, fit_s = _timed(
        lambda: LogisticRegression(max_iter=1000, random_state=RANDOM_STATE).fit(X, y)
    )
    record("LR", "baseline", lr.predict(Xt), fit_s)

    mlp, fit_s = _timed(lambda: fit_mlp(X, y, max_epochs, params["MLP"]["lr"]))
    record("MLP", "baseline", predict_mlp(mlp, Xt), fit_s)

    for short, moment in CONSTRAINTS.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eg, fit_s = _timed(
                lambda moment=moment: ExponentiatedGradient(
                    LogisticRegression(max_iter=1000, random_state=RANDOM_STATE),
                    moment(),
                ).fit(X, y, sensitive_features=s)
            )
            pred = eg.predict(Xt, random_state=RANDOM_STATE)
        record("EG(LR)", "fairlearn", pred, fit_s, short)

    for constraint, (short, _) in CONSTRAINTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            to, fit_s = _timed(
                lambda constraint=constraint: ThresholdOptimizer(
                    estimator=LogisticRegression(
                        max_iter=1000, random_state=RANDOM_STATE
                    ),
                    constraints=constraint,
                    predict_method="predict_proba",
                ).fit(X, y, sensitive_features=s)
            )
            pred = to.predict(Xt, sensitive_features=st, random_state=RANDOM_STATE)
        record("TO(LR)", "fairlearn", pred, fit_s, short)

    unconstrained = {}
    for model in SKMETA:
        configs = [(None, 0.0)] + [
            (c, w) for c in CONSTRAINTS for w in weights if w > 0
        ]
        for constraint, weight in configs:
            clf, fit_s = _timed(
                lambda model=model, constraint=constraint, weight=weight: make_skmeta(
                    model, params[model], max_epochs, constraint, weight
                ).fit(X, y, sensitive_features=s)
            )
            pred = clf.predict(Xt, sensitive_features=st)
            short = CONSTRAINTS[constraint][0] if constraint else ""
            if weight == 0:
                unconstrained[model] = pred
            label = f"{model[0]} {short}{weight:g}" if weight > 0 else f"{model[0]} 0"
            record(model, "skmeta", pred, fit_s, short or "-", weight, label)

    # ThresholdOptimizer on a prefit skmeta model that reads the groups from X.
    Xa, Xat = data.with_group_column()
    for model in SKMETA:
        clf, model_s = _timed(
            lambda model=model: make_skmeta(
                model,
                params[model],
                max_epochs,
                sensitive_columns=[Xa.shape[1] - 1],
            ).fit(Xa, y)
        )
        same = np.array_equal(clf.predict(Xat), unconstrained[model])
        print(
            f"  {model} fitted with sensitive_columns predicts as the "
            f"sensitive_features= model: {same}"
        )
        for constraint, (short, _) in CONSTRAINTS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                to, to_s = _timed(
                    lambda clf=clf, constraint=constraint: ThresholdOptimizer(
                        estimator=clf,
                        prefit=True,
                        predict_method="predict_proba",
                        constraints=constraint,
                    ).fit(Xa, y, sensitive_features=s)
                )
                pred = to.predict(Xat, sensitive_features=st, random_state=RANDOM_STATE)
            record(
                f"TO({model})",
                "skmeta+TO",
                pred,
                model_s + to_s,
                short,
                label=f"TO({model[0]}) {short}",
            )
    return pd.DataFrame(records)


# ------------------------------------------------------------------------ seeds
def seed_table(data, settings, params, seeds):
    """The headline methods retrained with ``random_state`` in ``seeds``.

    Demographic parity only: the unconstrained models, the penalised skmeta
    models at the two smallest positive weights, ThresholdOptimizer on a
    prefit skmeta model, and fairlearn's EG and TO on LR (randomised at
    prediction: their ``random_state`` varies with the seed). Mean and
    standard deviation over the seeds of accuracy and DP difference.
    """
    max_epochs = settings["max_epochs"]
    X, Xt, y, yt = data.X_train, data.X_test, data.y_train, data.y_test
    s, st = data.s_train, data.s_test
    Xa, Xat = data.with_group_column()
    weights = sorted(w for w in settings["weights"] if w > 0)[:2]
    rows = []
    for seed in seeds:

        def add(method, pred, seed=seed):
            rows.append({"method": method, "seed": seed, **evaluate(yt, pred, st)})

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eg = ExponentiatedGradient(
                LogisticRegression(max_iter=1000), DemographicParity()
            ).fit(X, y, sensitive_features=s)
            add("EG(LR) DP", eg.predict(Xt, random_state=seed))
            to = ThresholdOptimizer(
                estimator=LogisticRegression(max_iter=1000),
                constraints="demographic_parity",
                predict_method="predict_proba",
            ).fit(X, y, sensitive_features=s)
            add("TO(LR) DP", to.predict(Xt, sensitive_features=st, random_state=seed))
        for model in SKMETA:
            clf = make_skmeta(
                model,
                params[model],
                max_epochs,
                random_state=seed,
                sensitive_columns=[Xa.shape[1] - 1],
            ).fit(Xa, y)
            add(f"{model}", clf.predict(Xat))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                to = ThresholdOptimizer(
                    estimator=clf,
                    prefit=True,
                    predict_method="predict_proba",
                    constraints="demographic_parity",
                ).fit(Xa, y, sensitive_features=s)
            add(
                f"TO({model}) DP",
                to.predict(Xat, sensitive_features=st, random_state=seed),
            )
            for weight in weights:
                clf = make_skmeta(
                    model,
                    params[model],
                    max_epochs,
                    "demographic_parity",
                    weight,
                    random_state=seed,
                ).fit(X, y, sensitive_features=s)
                add(f"{model} DP {weight:g}", clf.predict(Xt, sensitive_features=st))
        print(f"  seed {seed} done", flush=True)
    df = pd.DataFrame(rows)
    summary = df.groupby("method", sort=False).agg(
        accuracy_mean=("accuracy", "mean"),
        accuracy_sd=("accuracy", "std"),
        dpd_mean=("dpd", "mean"),
        dpd_sd=("dpd", "std"),
        dpd_max=("dpd", "max"),
    )
    print(
        f"\n### Retrained with random_state {seeds[0]}-{seeds[-1]} "
        f"({len(seeds)} seeds): mean ± SD\n"
    )
    table = [
        (
            method,
            f"{r.accuracy_mean:.4f} ± {r.accuracy_sd:.4f}",
            f"{r.dpd_mean:.4f} ± {r.dpd_sd:.4f}",
            f"{r.dpd_max:.4f}",
        )
        for method, r in summary.iterrows()
    ]
    print(
        markdown_table(
            ["method", "accuracy", "DP difference", "largest DP difference"], table
        )
    )
    return summary


# ------------------------------------------------------------------------ analysis
def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{c:.4f}" if isinstance(c, float) else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_table(df):
    front = pareto_front(df["accuracy"], df["dpd"])
    rows = []
    for on_front, (_, r) in zip(front, df.iterrows(), strict=True):
        rows.append(
            (
                r["method"],
                r["constraint"] or "-",
                "-" if np.isnan(r["weight"]) else f"{r['weight']:g}",
                f"{r['accuracy']:.4f}",
                f"{r['dpd']:.4f}",
                f"{r['eod']:.4f}",
                f"{r['worst_group_acc']:.4f}",
                f"{r['pos_rate']:.3f}",
                f"{r['fit_s']:.1f}",
                "*" if on_front else "",
            )
        )
    header = [
        "method",
        "constraint",
        "fairness_weight",
        "accuracy",
        "DP diff",
        "EO diff",
        "worst-group acc",
        "positive rate",
        "fit s",
        "front",
    ]
    return markdown_table(header, rows)


def _dominators(df, i, candidates, disparity="dpd"):
    a, d = df.loc[i, "accuracy"], df.loc[i, disparity]
    hits = df.loc[candidates]
    mask = (
        (hits["accuracy"] >= a)
        & (hits[disparity] <= d)
        & ((hits["accuracy"] > a) | (hits[disparity] < d))
    )
    return hits[mask]


def _name(r):
    if r["family"] == "skmeta":
        weight = f"{r['weight']:g}"
        return f"{r['method']} {r['constraint']} {weight}".replace(" - ", " ")
    return f"{r['method']} {r['constraint']}".strip()


def _near_constant(r):
    """One class for (almost) every row: positive rate below 1 % or above 99 %."""
    return not 0.01 <= r["pos_rate"] <= 0.99


def dominance(df, families, disparity="dpd"):
    """Is every point of the front of ``families`` dominated by a fairlearn point?

    Returns the answer over all front points, the answer over the front points
    that are not near-constant classifiers (``_near_constant``), and one line
    per front point.
    """
    own = df.index[df["family"].isin(families)]
    fl = df.index[df["method"].isin(FAIRLEARN)]
    own_front = own[pareto_front(df.loc[own, "accuracy"], df.loc[own, disparity])]
    lines, dominated = [], {}
    for i in sorted(own_front, key=lambda i: df.loc[i, disparity]):
        r = df.loc[i]
        dom = _dominators(df, i, fl, disparity)
        dominated[i] = len(dom) > 0
        by = ", ".join(
            f"{_name(d)} ({d['accuracy']:.4f}, {d[disparity]:.4f})"
            for _, d in dom.iterrows()
        )
        constant = _near_constant(r)
        lines.append(
            f"    {_name(r):<22} acc {r['accuracy']:.4f} {disparity} "
            f"{r[disparity]:.4f}: "
            + (f"dominated by {by}" if by else "not dominated")
            + (
                f" [near-constant: positive rate {r['pos_rate']:.4f}]"
                if constant
                else ""
            )
        )
    nontrivial = [dominated[i] for i in dominated if not _near_constant(df.loc[i])]
    return all(dominated.values()), all(nontrivial), lines


def report(data, df):
    print(f"\n### {data.description}\n")
    print(
        f"{len(data.y_train)} training rows, {len(data.y_test)} test rows; "
        "groups in the test split: "
        + ", ".join(
            f"{g} {n}"
            for g, n in zip(*np.unique(data.s_test, return_counts=True), strict=True)
        )
        + "\n"
    )
    print(results_table(df))
    print("\n(front: on the Pareto front of all methods, accuracy up, DP diff down)\n")
    answers = {}
    for disparity, what_disp in (("dpd", "DP diff"), ("eod", "EO diff")):
        for key, families in (
            ("penalty", ["skmeta"]),
            ("penalty+TO", ["skmeta", "skmeta+TO"]),
        ):
            dominated, dominated_nontrivial, lines = dominance(df, families, disparity)
            answers[disparity, key] = (dominated, dominated_nontrivial)
            what = (
                "skmeta with the in-training penalty"
                if key == "penalty"
                else "skmeta including TO(prefit skmeta)"
            )
            print(
                f"\n[accuracy up, {what_disp} down] Pareto front of {what}: is every "
                "point dominated by a fairlearn point (EG/TO on LR)? "
                f"{'YES' if dominated else 'NO'}; leaving out near-constant "
                f"classifiers: {'YES' if dominated_nontrivial else 'NO'}"
            )
            print("\n".join(lines))
    print()
    if data.name == "adult":
        for families in (["skmeta"], ["skmeta+TO"]):
            rows = df[df["family"].isin(families)]
            hit = rows[
                (rows["dpd"] <= TARGET["dpd"])
                & (rows["accuracy"] >= TARGET["accuracy"])
            ]
            print(
                f"{families[0]} configurations with DP diff <= {TARGET['dpd']} and "
                f"accuracy >= {TARGET['accuracy']}: "
                + (
                    "; ".join(
                        f"{_name(r)} ({r['accuracy']:.4f}, {r['dpd']:.4f})"
                        for _, r in hit.iterrows()
                    )
                    or "none"
                )
            )
            if families == ["skmeta"]:
                near = rows[rows["dpd"] <= TARGET["dpd"]]
                if len(near):
                    best = near.loc[near["accuracy"].idxmax()]
                    print(
                        f"  best skmeta (penalty) accuracy at DP diff <= "
                        f"{TARGET['dpd']}: {_name(best)} {best['accuracy']:.4f} "
                        f"(dpd {best['dpd']:.4f})"
                    )
                else:
                    print(
                        "  no skmeta (penalty) model reaches DP diff <= "
                        f"{TARGET['dpd']}"
                    )
    return answers


STYLE = {  # method -> scatter keywords
    "LR": {"color": "0.35", "marker": "o"},
    "MLP": {"color": "0.35", "marker": "s"},
    "EG(LR)": {"color": "C0", "marker": "^"},
    "TO(LR)": {"color": "C0", "marker": "v"},
    "MAML": {"color": "C1", "marker": "D"},
    "ProtoNet": {"color": "C2", "marker": "P"},
    "TO(MAML)": {"color": "C4", "marker": "D"},
    "TO(ProtoNet)": {"color": "C4", "marker": "P"},
}


def plot(data, df, path, settings):
    fig, ax = plt.subplots(figsize=(9, 6))
    # skmeta points are labelled; points at the same place share one label.
    labels, seen = [], {}
    for (_, r), i in zip(df.iterrows(), range(len(df)), strict=True):
        labels.append("")
        if r["family"].startswith("skmeta"):
            key = (round(r["dpd"], 4), round(r["accuracy"], 4))
            if key in seen:
                labels[seen[key]] += ", " + r["label"]
            else:
                seen[key] = i
                labels[i] = r["label"]
    display = FairnessTradeoffDisplay(
        df["accuracy"],
        df["dpd"],
        labels=labels,
        accuracy_name="test accuracy",
        disparity_name="demographic parity difference",
    ).plot(
        ax,
        alpha=0,
        label="_hidden",
        line_kw={"color": "0.6", "label": "Pareto front (all methods)", "zorder": 1},
    )
    for annotation in display.annotations_:
        annotation.set_fontsize(7)
    majority = max(np.mean(data.y_test), 1 - np.mean(data.y_test))
    ax.axhline(
        majority, color="0.5", linestyle=":", label="constant (majority) classifier"
    )
    for method, style in STYLE.items():
        rows = df[df["method"] == method]
        for constraint, part in rows.groupby("constraint", sort=False):
            filled = constraint in ("", "-", "DP")
            marker = "*" if constraint == "-" else style["marker"]
            ax.scatter(
                part["dpd"],
                part["accuracy"],
                s=110 if marker == "*" else 45,
                zorder=3,
                label={"": method, "-": f"{method} no penalty"}.get(
                    constraint, f"{method} {constraint}"
                ),
                edgecolors=style["color"],
                facecolors=style["color"] if filled else "none",
                marker=marker,
            )
    ax.set_title(
        f"{data.name}, test split (max_epochs={settings['max_epochs']}). Labels: "
        "M=MAML, P=ProtoNet, DP/EO penalty + fairness_weight",
        fontsize="small",
    )
    ax.legend(fontsize="x-small", loc="lower right", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"\nPlot: {path} ({os.path.getsize(path) / 1024:.0f} KB)")


# ------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, weights")
    parser.add_argument("--datasets", default="adult,compas")
    parser.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="retrain the headline methods with this many random states (1: skip)",
    )
    parser.add_argument(
        "--plot-dir",
        default=str(Path(__file__).resolve().parent),
        help="where the PNGs go (default: benchmarks/)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = set(names) - set(LOADERS)
    if unknown:
        parser.error(
            f"unknown data sets {sorted(unknown)}; choose from {list(LOADERS)}"
        )
    budget = "quick" if args.quick else "full"
    settings = SETTINGS[budget]

    tuning = "tuned on a validation split" if settings["tune"] else "defaults"
    start = time.perf_counter()
    print(
        f"# bench_fairness ({budget}) {datetime.datetime.now():%Y-%m-%d %H:%M}\n"
        f"skmeta {skmeta.__version__}, fairlearn {fairlearn.__version__}, "
        f"skorch {skorch.__version__}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}; "
        f"torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
        f"data sets: {', '.join(names)}; skmeta/MLP max_epochs="
        f"{settings['max_epochs']}; fairness_weight in {settings['weights']}; "
        f"constraints {list(CONSTRAINTS)}; MLP batch_size={MLP_BATCH_SIZE}; "
        f"hyperparameters {tuning}; "
        f"random_state={RANDOM_STATE}"
    )
    answers = {}
    for name in names:
        data = LOADERS[name]()
        print(f"\n## {name}")
        t0 = time.perf_counter()
        if settings["tune"]:
            params = tune(data, settings["max_epochs"])
        else:
            params = {m: dict(p) for m, p in DEFAULTS.items()}
        df = run_dataset(data, settings, params)
        answers[name] = report(data, df)
        if args.seeds > 1:
            seeds = list(range(2 if args.quick else args.seeds))
            seed_table(data, settings, params, seeds)
        suffix = "_quick" if args.quick else ""
        plot(
            data,
            df,
            Path(args.plot_dir) / f"fairness_tradeoff_{name}{suffix}.png",
            settings,
        )
        print(f"{name}: {time.perf_counter() - t0:.0f} s")
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")
    return answers


if __name__ == "__main__":
    main()
