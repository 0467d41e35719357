"""Exploration: a per-group linear correction on top of MAML's adapted model.

``PrototypicalClassifier``'s default head lets a group's rows move its
predictions toward a logistic regression of their own, as far as
cross-validation on the rows says (``head="auto"``). Before
``MAMLClassifier`` had a head, its adaptation strength was one learned prior
strength for every group. This script asks whether the same rule helps MAML
where it falls behind (groups far from the training groups, many rows); it
led to ``MAMLClassifier``'s ``head="auto"`` (the ``1se`` rule below, with
folds drawn in another order). For each fold of a ``bench_fewshot.py`` data
set it fits ``MAMLClassifier`` with the defaults of ``bench_fewshot.py`` but
``head="none"`` on the training groups, then for each held-out group, k
and support draw (the draws of ``bench_fewshot.py``) scores, by balanced
accuracy on the group's other rows:

- ``MAML``: the estimator after ``partial_fit`` on the support rows;
- ``MAML + x head``: the adapted model's logit ``f0(x)`` plus a logistic
  correction ``theta . [x, 1]`` shrunk toward 0 (penalty ``alpha / 2
  |theta|^2``), solved by ``skmeta._heads.shrunk_logistic_dual`` (the solver
  of ProtoNet's heads), ``alpha`` chosen among ``10^-2 .. 10^4`` (half
  decades) and infinity (no correction: ``MAML``) by stratified K-fold on the
  support rows (``K = min(5, rows of the rarer class)``; one row per class:
  ``MAML``). In each fold MAML is adapted to the fold's fitting rows alone,
  so that the held-out rows score the whole rule. ``1se``: the largest
  penalty within one standard error (of the paired per-row differences) of
  the smallest loss, as ProtoNet's head; ``min``: the smallest loss;
- ``MAML + x+f head``: the same with the adapted logit ``f0(x)`` a column of
  the correction too (``theta . [x, 1, f0(x)]``, the logit still an offset),
  so that the correction can rescale the network's logit or drop it;
- ``MAML + f head``: the correction on ``[1, f0(x)]`` alone (a per-group
  Platt scaling of the adapted logit);
- ``LR on k rows``: the ``bench_fewshot.py`` baseline (C = 1).

Run (a few minutes per data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_maml_heads.py \\
        --datasets synthetic-strong --seeds 3
"""

import argparse
import copy
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier  # noqa: E402
from skmeta._heads import shrunk_logistic_dual  # noqa: E402

ALPHAS = tuple(10.0 ** np.arange(-2, 4.5, 0.5))


def _logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _design(X, f0, features):
    """The correction's columns: ``x`` and 1 (``"x"``), plus the adapted
    model's logit (``"x+f"``), or only 1 and the logit (``"f"``)."""
    ones = np.ones(len(X))
    if features == "x":
        return np.c_[X, ones]
    if features == "x+f":
        return np.c_[X, ones, f0]
    return np.c_[ones, f0]


def _corrected(f0_fit, X_fit, y_fit, f0_out, X_out, alphas, features="x"):
    """Logits on the out rows of the corrections of every penalty, (P, n_out).

    The adapted model's logit stays an offset; with ``features`` holding it,
    its coefficient (shrunk toward 0) rescales it: a group whose rows
    disagree with the model can drop it."""
    A_fit = torch.as_tensor(_design(X_fit, f0_fit, features), dtype=torch.float64)
    A_out = torch.as_tensor(_design(X_out, f0_out, features), dtype=torch.float64)
    n_pen = len(alphas)
    G = (A_fit @ A_fit.T).expand(n_pen, -1, -1)
    f0 = torch.as_tensor(np.c_[np.zeros(len(f0_fit)), f0_fit])
    beta = shrunk_logistic_dual(
        G,
        f0.expand(n_pen, -1, -1),
        torch.as_tensor(y_fit).expand(n_pen, -1),
        torch.ones(n_pen, len(y_fit), dtype=torch.float64),
        torch.as_tensor(alphas, dtype=torch.float64),
    )  # (P, n_fit, 2): logits f0 + K beta
    cross = A_out @ A_fit.T  # (n_out, n_fit)
    delta = cross @ (beta[..., 1] - beta[..., 0]).T  # (n_out, P)
    return f0_out[None, :] + delta.T.numpy()


def _nll(y, logits):
    return np.logaddexp(0, -np.where(y == 1, 1, -1) * logits)


FEATURES = ("x", "x+f", "f")


def head_scores(model, task, Xs, ys, Xq):
    """Query logits of ``MAML + <features> head`` (min, 1se) for each of
    ``FEATURES``, and the chosen penalties: ``{(features, rule): (logits,
    alpha)}``."""
    f0_q = _logit(model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1])
    f0_s = _logit(model.predict_proba(Xs, tasks=np.full(len(Xs), task))[:, 1])
    n_min = int(np.bincount(ys, minlength=2).min())
    if n_min < 2:
        return {
            (features, rule): (f0_q, np.inf)
            for features in FEATURES
            for rule in ("min", "1se")
        }
    splits = list(StratifiedKFold(min(5, n_min)).split(Xs, ys))
    # Every fold adapted in one call, each fold's fitting rows a task of
    # their own (a copy of the fitted model, whose network does not change).
    cv = copy.deepcopy(model)
    fit_rows = np.concatenate([fit for fit, _ in splits])
    fit_tasks = np.concatenate(
        [np.full(len(fit), f"__cv{i}") for i, (fit, _) in enumerate(splits)]
    )
    cv.partial_fit(Xs[fit_rows], ys[fit_rows], tasks=fit_tasks)
    candidates = np.r_[np.inf, np.array(ALPHAS)[::-1]]  # largest first
    f0_folds = [
        _logit(cv.predict_proba(Xs, tasks=np.full(len(ys), f"__cv{i}"))[:, 1])
        for i in range(len(splits))
    ]
    out = {}
    for features in FEATURES:
        losses = np.zeros((len(candidates), len(ys)))
        for (fit, held), f0 in zip(splits, f0_folds, strict=True):
            logits = _corrected(
                f0[fit],
                Xs[fit],
                ys[fit],
                f0[held],
                Xs[held],
                candidates[1:],
                features,
            )
            losses[0, held] = _nll(ys[held], f0[held])
            losses[1:, held] = _nll(ys[held], logits)
        total = losses.sum(1)
        best = int(np.argmin(total))
        diff = losses - losses[best]
        se = diff.std(1, ddof=1) * np.sqrt(len(ys))
        one_se = int(np.flatnonzero(total - total[best] <= se).min())
        for rule, choice in (("min", best), ("1se", one_se)):
            alpha = candidates[choice]
            if choice == 0:
                out[features, rule] = (f0_q, alpha)
            else:
                logits = _corrected(f0_s, Xs, ys, f0_q, Xq, [alpha], features)[0]
                out[features, rule] = (logits, alpha)
    return out


def run_fold(data, f_index, seeds, ks, budget):
    train = data.train
    tasks = B.merge_small_tasks(data.tasks[train])
    maml = MAMLClassifier(head="none", **B._meta_kwargs(budget, B.RANDOM_STATE))
    maml.fit(data.X[train], data.y[train], tasks=tasks)
    records = []
    for task, k, seed, support, query in B.heldout_draws(data, f_index, ks, seeds):
        Xs, ys = data.X[support], data.y[support]
        Xq, yq = data.X[query], data.y[query]
        model = copy.deepcopy(maml)
        model.partial_fit(Xs, ys, tasks=np.full(len(ys), task))
        heads = head_scores(model, task, Xs, ys, Xq)
        f0_q = _logit(model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1])
        lr = B.lr_on_rows(1.0, Xs, ys).predict_proba(Xq)[:, 1] - 0.5
        scores = {"MAML": (f0_q, np.inf), "LR on k rows": (lr, np.inf)}
        for (features, rule), value in heads.items():
            scores[f"MAML + {features} head ({rule})"] = value
        for method, (score, alpha) in scores.items():
            records.append(
                dict(
                    fold=f_index,
                    task=task,
                    k=k,
                    seed=seed,
                    method=method,
                    bacc=B.balanced_accuracy(yq, (score >= 0).astype(np.int64)),
                    alpha=alpha,
                )
            )
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="first fold, k = 5, one draw, short training",
    )
    args = parser.parse_args(argv)
    budget = "quick" if args.quick else "full"
    if args.quick:
        args.seeds = 1
    print(
        f"# explore_maml_heads {datetime.datetime.now():%Y-%m-%d %H:%M}\n"
        f"Command: `python benchmarks/explore_maml_heads.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`; skmeta "
        f"({B.provenance()}); OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    for name in args.datasets.split(","):
        start = time.perf_counter()
        dataset = B.LOADERS[name]()
        folds = dataset.folds[:1] if args.quick else dataset.folds
        ks = (5,) if args.quick else dataset.ks
        records = []
        for f_index, data in enumerate(folds):
            records += run_fold(data, f_index, range(args.seeds), ks, budget)
        df = pd.DataFrame(records)
        print(f"\n## {name} ({len(folds)} fold(s), {args.seeds} draws)\n")
        print("Mean balanced accuracy over held-out groups and draws:\n")
        print(df.groupby(["method", "k"]).bacc.mean().unstack().round(4).to_string())
        print("\nWorst group (per draw, averaged over draws and folds):\n")
        worst = df.groupby(["method", "k", "fold", "seed"]).bacc.min()
        print(worst.groupby(["method", "k"]).mean().unstack().round(4).to_string())
        # Paired differences against MAML, mean ± SE over (fold, draw).
        per = df.groupby(["method", "k", "fold", "seed"]).bacc.mean().unstack(0)
        print("\nHead minus MAML, points (mean ± SE over folds x draws):\n")
        for method in per.columns:
            if method == "MAML":
                continue
            line = B.points_by_k(100 * (per[method] - per["MAML"]))
            print(f"- {method}: {line}")
        print("\nShare of draws given a correction:\n")
        heads = df[df.method.str.contains("head")]
        share = heads.groupby(["method", "k"]).alpha.apply(
            lambda a: np.isfinite(a).mean()
        )
        print(share.unstack().round(2).to_string())
        print(f"\n({name}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
