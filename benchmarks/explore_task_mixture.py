"""Exploration: should a new group borrow the training groups' own models?

After ``fit`` every training task keeps its adapted model (MAML's
``task_states_`` with their corrections, ProtoNet's prototypes and heads).
The training tasks are draws from the distribution of groups, so they give an
empirical prior over group models: a new group whose support set ``S`` is
likely under training task ``t`` may be served by ``t``'s model. The
posterior-weighted *mixture* predicts ``sum_t w_t p_t(y | x)`` with
``w_t`` proportional to ``p_t(S) = prod_{i in S} p_t(y_i | x_i)`` (uniform
prior over the training tasks): the Bayes predictive under that empirical
prior. It cannot be better than the training tasks allow, so it is averaged
with the group's own adapted model (the prediction with ``task_mixture=0``)
with a weight ``a`` on the mixture, chosen per support set in one of three
ways (``learned weight`` is what ``task_mixture="auto"`` now does):

- ``evidence``: ``a = sigmoid(log p(S | mixture) - log p(S | pooled state))``,
  the two prior predictives (neither has seen ``S``): the mixture's marginal
  likelihood ``mean_t p_t(S)`` against the likelihood of ``S`` under the
  pooled state that serves unknown groups;
- ``prequential``: the same with the own model's prequential likelihood in
  place of the pooled state's: ``S`` in ``min(k, 5)`` class-balanced blocks,
  each predicted by the model adapted to the blocks before it (the first by
  the pooled state), an approximation of its marginal likelihood;
- ``cross-validated``: ``a = sigmoid(CV log-lik of the mixture - CV log-lik
  of the own model)``, stratified ``min(5, k)``-fold (k >= 2 only);
- ``learned weight``: one weight for every new group of a fitted model, from
  a grid of five, the one that served the training tasks best, each left out
  in turn (5 rows per class as its support, its own model adapted as a new
  group's against the mixture over the other training tasks). The training
  tasks shaped the meta-learned state, so the own model is favoured there;
- ``learned weight per k``: the same with ``k`` rows per class as the left-out
  tasks' supports, one weight per ``k``.

For each fold of a ``bench_fewshot.py`` data set both estimators are fitted
once with the defaults of ``bench_fewshot.py``; each held-out group, k and
support draw (the draws of ``bench_fewshot.py``) is scored by balanced
accuracy on its other rows (threshold 1/2). The output gives each variant
minus the own model (``task_mixture=0``), in points: the mean over held-out
groups and the worst group, per seed, then mean ± SE over seeds.

Run (about 15 minutes for the six data sets, two processes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_task_mixture.py \\
        --datasets synthetic-types,synthetic-strong,synthetic --seeds 5
    OMP_NUM_THREADS=1 python benchmarks/explore_task_mixture.py \\
        --datasets heart,compas,adult --seeds 5
"""

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta.exceptions import UnknownGroupWarning  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
VARIANTS = [
    "own (today)",
    "mixture",
    "evidence",
    "prequential",
    "cross-validated",
    "learned weight",
    "learned weight per k",
]
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
LOO_SHOTS, LOO_DRAWS, LOO_QUERY = 5, 2, 200
UNKNOWN = "__a group never seen__"
EPS = 1e-6


def log_lik(p, y):
    """Each row's log-likelihood of its class under P(class 1) = ``p``."""
    return np.where(y == 1, np.log(p), np.log1p(-p))


def proba(model, X, task):
    """P(class 1) of ``model`` for rows of ``task``, clipped away from 0 and 1
    (for ``UNKNOWN``, the pooled state's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownGroupWarning)
        p = model.predict_proba(X, tasks=np.full(len(X), task))[:, 1]
    return np.clip(p, EPS, 1 - EPS)


def adapted(model, X, y, task):
    """A copy of ``model`` adapted to the rows ``X, y`` of ``task``."""
    copied = copy.deepcopy(model)
    copied.partial_fit(X, y, tasks=np.full(len(X), task))
    return copied


def mixture(P, fit, rows):
    """The mixture's P(class 1) on ``rows`` (columns of ``P``) after seeing
    the support columns ``fit`` with classes ``y_fit``, and the log of its
    marginal likelihood of them."""
    cols, y_fit = fit
    L = log_lik(P[:, cols], y_fit).sum(1)
    w = np.exp(L - logsumexp(L))
    return w @ P[:, rows], logsumexp(L) - np.log(len(L))


def class_rank(y):
    """Each row's rank among the rows of its class (in the given order)."""
    rank = np.zeros(len(y), dtype=int)
    for c in np.unique(y):
        index = np.flatnonzero(y == c)
        rank[index] = np.arange(len(index))
    return rank


def learned_weight(model, data, tasks, P, shots=LOO_SHOTS):
    """The weight on the mixture that serves the training tasks best, each
    left out in turn: ``LOO_DRAWS`` supports of ``shots`` rows per class
    from its rows, its own model adapted to them as a new group's, the
    mixture over the other training tasks; the grid value of highest mean
    balanced accuracy on its other rows (at most ``LOO_QUERY``)."""
    X, y = data.X[data.train], data.y[data.train]
    names = np.unique(tasks)
    rng = np.random.default_rng(0)
    scores = []
    for i, name in enumerate(names):
        rows = np.flatnonzero(tasks == name)
        by_class = [rows[y[rows] == c] for c in (0, 1)]
        if min(len(r) for r in by_class) < shots + 5:
            continue
        others = np.delete(np.arange(len(names)), i)
        for _ in range(LOO_DRAWS):
            support = np.concatenate(
                [rng.choice(r, shots, replace=False) for r in by_class]
            )
            query = np.setdiff1d(rows, support)
            query = rng.choice(query, min(len(query), LOO_QUERY), replace=False)
            own = proba(
                adapted(model, X[support], y[support], UNKNOWN), X[query], UNKNOWN
            )
            p_mix, _ = mixture(P[others], (support, y[support]), query)
            scores.append(
                [
                    B.balanced_accuracy(y[query], (a * p_mix + (1 - a) * own >= 0.5))
                    for a in GRID
                ]
            )
    if not scores:
        return 0.0
    return GRID[int(np.argmax(np.mean(scores, 0)))]


def run_fold(data, f_index, seeds, ks, budget):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    held = np.flatnonzero(np.isin(data.tasks, data.heldout))
    column = {row: i for i, row in enumerate(held)}
    records = []
    for estimator, cls in ESTIMATORS.items():
        # task_mixture=0: the own model is the group's adapted state alone
        # (as before the estimators had task_mixture; the mixtures are here).
        model = cls(**B._meta_kwargs(budget, B.RANDOM_STATE), task_mixture=0).fit(
            data.X[data.train], data.y[data.train], tasks=tasks
        )
        # Every training task's model and the pooled state on every held-out row.
        P = np.stack([proba(model, data.X[held], t) for t in np.unique(tasks)])
        pooled = proba(model, data.X[held], UNKNOWN)
        # Every training task's model on every training row.
        X_train = data.X[data.train]
        P_train = np.stack([proba(model, X_train, t) for t in np.unique(tasks)])
        chosen_at = {
            shots: learned_weight(model, data, tasks, P_train, shots)
            for shots in sorted({*ks, LOO_SHOTS})
        }
        chosen = chosen_at[LOO_SHOTS]
        for task, k, seed, support, query in B.heldout_draws(data, f_index, ks, seeds):
            s_col = np.array([column[r] for r in support])
            q_col = np.array([column[r] for r in query])
            ys, yq = data.y[support], data.y[query]
            own = proba(adapted(model, data.X[support], ys, task), data.X[query], task)
            p_mix, evidence_mix = mixture(P, (s_col, ys), q_col)
            weights = {
                "own (today)": 0.0,
                "mixture": 1.0,
                "learned weight": chosen,
                "learned weight per k": chosen_at[k],
            }
            weights["evidence"] = expit(evidence_mix - log_lik(pooled[s_col], ys).sum())
            # Prequential: class-balanced blocks, each predicted by the own
            # model adapted to the blocks before it.
            n_blocks = min(k, 5)
            block = class_rank(ys) * n_blocks // k
            preq = log_lik(pooled[s_col[block == 0]], ys[block == 0]).sum()
            for b in range(1, n_blocks):
                before, now = block < b, block == b
                fitted = adapted(model, data.X[support[before]], ys[before], task)
                p = proba(fitted, data.X[support[now]], task)
                preq += log_lik(p, ys[now]).sum()
            weights["prequential"] = expit(evidence_mix - preq)
            if k >= 2:
                n_folds = min(5, k)
                fold = class_rank(ys) % n_folds
                cv_own = cv_mix = 0.0
                for j in range(n_folds):
                    fit, out = fold != j, fold == j
                    fitted = adapted(model, data.X[support[fit]], ys[fit], task)
                    cv_own += log_lik(
                        proba(fitted, data.X[support[out]], task), ys[out]
                    ).sum()
                    p, _ = mixture(P, (s_col[fit], ys[fit]), s_col[out])
                    cv_mix += log_lik(p, ys[out]).sum()
                weights["cross-validated"] = expit(cv_mix - cv_own)
            for variant, a in weights.items():
                p = a * p_mix + (1 - a) * own
                records.append(
                    dict(
                        estimator=estimator,
                        variant=variant,
                        fold=f_index,
                        task=task,
                        k=k,
                        seed=seed,
                        bacc=B.balanced_accuracy(yq, (p >= 0.5).astype(np.int64)),
                        weight=a,
                    )
                )
    return records


def summarise(df):
    """Each variant minus the own model, points: mean over groups and worst
    group per seed (over folds: groups of every fold), mean ± SE over seeds."""
    per = df.groupby(["estimator", "variant", "k", "seed", "fold", "task"]).bacc.mean()
    rows = []
    for (estimator, k), part in per.groupby(level=["estimator", "k"]):
        base = part.xs(VARIANTS[0], level="variant")
        mean0 = base.groupby(level="seed").mean()
        worst0 = base.groupby(level="seed").min()
        for variant in VARIANTS:
            try:
                this = part.xs(variant, level="variant")
            except KeyError:
                continue
            mean = this.groupby(level="seed").mean() - mean0
            worst = this.groupby(level="seed").min() - worst0
            n = len(mean)
            weight = df[
                (df.estimator == estimator) & (df.variant == variant) & (df.k == k)
            ].weight.mean()
            rows.append(
                {
                    "estimator": estimator,
                    "k": k,
                    "variant": variant,
                    "bal. acc.": this.groupby(level="seed").mean().mean(),
                    "mean minus own (points)": _pm(mean, n),
                    "worst group minus own": _pm(worst, n),
                    "mean weight on the mixture": round(float(weight), 2),
                }
            )
    return pd.DataFrame(rows)


def _pm(values, n):
    se = values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return f"{100 * values.mean():+.2f} ± {100 * se:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-types,synthetic-strong")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    seeds = range(1 if args.quick else args.seeds)
    ks = (1, 5) if args.quick else (1, 5, 10, 20)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    B.exploration_header("explore_task_mixture", argv)
    for name in names:
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)
        records = []
        for f_index, data in enumerate(folds):
            records += run_fold(data, f_index, seeds, ks, budget)
        print(f"## {name} ({len(folds)} fold(s), {len(seeds)} draws)\n")
        table = summarise(pd.DataFrame(records))
        print(table.to_markdown(index=False, floatfmt=".4f"))
        print(f"\n{name}: {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
