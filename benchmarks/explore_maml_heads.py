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


def _corrected(f0_fit, X_fit, y_fit, f0_out, X_out, alphas):
    """Logits on the out rows of the corrections of every penalty, (P, n_out)."""
    A_fit = torch.as_tensor(np.c_[X_fit, np.ones(len(X_fit))], dtype=torch.float64)
    A_out = torch.as_tensor(np.c_[X_out, np.ones(len(X_out))], dtype=torch.float64)
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


def head_scores(model, task, Xs, ys, Xq):
    """Query logits of ``MAML + x head`` (min, 1se) and the chosen penalties."""
    f0_q = _logit(model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1])
    f0_s = _logit(model.predict_proba(Xs, tasks=np.full(len(Xs), task))[:, 1])
    n_min = int(np.bincount(ys, minlength=2).min())
    if n_min < 2:
        return f0_q, f0_q, np.inf, np.inf
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
    losses = np.zeros((len(candidates), len(ys)))
    for i, (fit, out) in enumerate(splits):
        name = np.full(len(ys), f"__cv{i}")
        f0 = _logit(cv.predict_proba(Xs, tasks=name)[:, 1])
        logits = _corrected(f0[fit], Xs[fit], ys[fit], f0[out], Xs[out], candidates[1:])
        losses[0, out] = _nll(ys[out], f0[out])
        losses[1:, out] = _nll(ys[out], logits)
    total = losses.sum(1)
    best = int(np.argmin(total))
    diff = losses - losses[best]
    se = diff.std(1, ddof=1) * np.sqrt(len(ys))
    one_se = int(np.flatnonzero(total - total[best] <= se).min())
    out = []
    for choice in (best, one_se):
        if choice == 0:
            out.append(f0_q)
        else:
            alpha = candidates[choice]
            out.append(_corrected(f0_s, Xs, ys, f0_q, Xq, [alpha])[0])
    return out[0], out[1], candidates[best], candidates[one_se]


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
        s_min, s_1se, a_min, a_1se = head_scores(model, task, Xs, ys, Xq)
        f0_q = _logit(model.predict_proba(Xq, tasks=np.full(len(Xq), task))[:, 1])
        scores = {
            "MAML": f0_q,
            "MAML + x head (min)": s_min,
            "MAML + x head (1se)": s_1se,
            "LR on k rows": B.lr_on_rows(1.0, Xs, ys).predict_proba(Xq)[:, 1] - 0.5,
        }
        for method, score in scores.items():
            records.append(
                dict(
                    fold=f_index,
                    task=task,
                    k=k,
                    seed=seed,
                    method=method,
                    bacc=B.balanced_accuracy(yq, (score >= 0).astype(np.int64)),
                    alpha=a_1se if "1se" in method else a_min,
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
        for method in ("MAML + x head (min)", "MAML + x head (1se)", "LR on k rows"):
            line = B.points_by_k(100 * (per[method] - per["MAML"]))
            print(f"- {method}: {line}")
        own = df[df.method == "MAML + x head (1se)"]
        share = own.groupby("k").alpha.apply(lambda a: np.isfinite(a).mean())
        print(
            "\nShare of draws given a correction (1se): "
            + ", ".join(f"k={k}: {v:.0%}" for k, v in share.items())
        )
        print(f"\n({name}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
