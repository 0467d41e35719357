"""Exploration: other classifiers on a fitted ProtoNet's embedding, held-out groups.

It asks whether a per-group head other than the shrunk prototypes serves
held-out groups better; it led to ``PrototypicalClassifier``'s ``head``
(``group LR 1se`` below, shipped as the default ``head='auto'``). For each
fold of a ``bench_fewshot.py`` data set it fits ``PrototypicalClassifier``
(defaults but ``head="prototypes"``) on the training groups (as
``bench_fewshot.py`` does), then for each held-out group, k and support draw
(the draws of ``bench_fewshot.py``) scores, by
balanced accuracy on the group's other rows:

- ``proto``: the estimator with ``head="prototypes"`` after ``partial_fit``
  on the support rows;
- ``head='auto'``: the same network with the estimator's default head (the
  logistic head that ``group LR 1se`` below writes out), after
  ``partial_fit``;
- ``proto global``: the global prototypes (no adaptation);
- ``proto whitened``: the group's prototypes, distances after whitening the
  embedding by the pooled within-class covariance of the training rows
  (eigenvalues floored at 0.1 of the largest);
- ``LR on k rows`` and ``shrunk LR``: the baselines of ``bench_fewshot.py``
  (C=1; alpha by cross-validation, toward the pooled LR);
- ``emb LR``: logistic regression on the embedding ``z``, penalised toward
  the global prototypes' linear head (``2 s (c1 - c0)``, ``s (|c0|^2 -
  |c1|^2)``), its penalty chosen by cross-validation on the support rows;
- ``emb+x LR``: the same on ``[z, x]``, toward ``[head, 0]``;
- ``emb+x ridge``: ridge regression on ``[z, x, 1]`` with targets +-1, toward
  the scaled head, its penalty chosen by exact leave-one-out;
- ``group LR``: logistic regression on ``[z, x]`` penalised toward the
  group's own prototype head (its shrunk prototypes, as ``proto``), the
  penalty chosen by cross-validation on the support rows among a grid and
  infinity (infinity: exactly ``proto``); in each fold the prior head comes
  from the fold's rows. One row per class: ``proto``. ``group LR 1se``: the
  same with the largest penalty whose CV loss is within one standard error
  (of the paired per-row differences) of the smallest.
- ``select``: per group, ``proto`` or ``emb+x LR``, whichever has the smaller
  cross-validated log-loss on the support rows (``emb+x LR``'s penalty chosen
  inside each fold); ``select M``: ``emb+x LR`` only when its loss is below
  ``M`` times ``proto``'s. One row per class: ``proto``.

``--on-validation`` scores the validation groups instead, on models trained
without them and without the held-out groups, as ``bench_fewshot.py`` tunes:
it asks whether the rule that serves held-out groups best can be chosen per
data set beforehand.

Run (a few minutes per data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_protonet_heads.py \
        --datasets synthetic-strong --seeds 3
"""

import argparse
import copy
import dataclasses
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import PrototypicalClassifier  # noqa: E402

ALPHAS = tuple(10.0 ** np.arange(-2, 4.5, 0.5))
MARGINS = (0.9, 0.8, 0.7)


def _proba_to_logloss(y, proba):
    proba = np.clip(proba, 1e-6, 1 - 1e-6)
    return -np.log(np.where(y == 1, proba, 1 - proba)).sum()


def shrunk_lr_cv(coef, intercept, F, y, F_eval):
    """Logistic regression toward ``(coef, intercept)``, penalty by CV."""

    def fit_predict(value, F_fit, y_fit, F_out):
        model = B.ShrunkLogisticRegression(coef, intercept, value)
        return model.fit(F_fit, y_fit).predict_proba1(F_out)

    alpha = B.choose_by_cv(fit_predict, ALPHAS, F, y, 10.0)
    return fit_predict(alpha, F, y, F_eval)


def ridge_loo(prior, A, y, A_eval):
    """Ridge on ``A`` (targets +-1) toward a scaled ``prior``, exact LOO."""
    t = 2.0 * y - 1.0
    f0 = A @ prior
    prior = max((f0 @ t) / max(f0 @ f0, 1e-12), 0.0) * prior
    r = t - A @ prior
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    best = None
    for alpha in ALPHAS:
        H = (U * (S**2 / (S**2 + alpha))) @ U.T
        e = (r - H @ r) / np.clip(1 - np.diag(H), 1e-6, None)
        if best is None or (e**2).sum() < best[0]:
            best = ((e**2).sum(), alpha)
    delta = Vt.T @ ((S / (S**2 + best[1])) * (U.T @ r))
    return A_eval @ (prior + delta)


def _proto_head(Z, y, P, kappa, s, n_features):
    """Linear head (coef on ``[z, x]``, intercept) of shrunk prototypes."""
    Pt = np.stack(
        [(Z[y == c].sum(0) + kappa * P[c]) / ((y == c).sum() + kappa) for c in (0, 1)]
    )
    coef = np.r_[2 * s * (Pt[1] - Pt[0]), np.zeros(n_features)]
    return coef, s * (Pt[0] @ Pt[0] - Pt[1] @ Pt[1])


def group_lr(Zs, ys, Xs, ZX_eval, P, kappa, s, n_features):
    """P(y = 1) of the LR shrunk toward the group's prototype head.

    Returns the predictions with the penalty of smallest CV loss, and with the
    largest penalty whose CV loss is within one standard error of the paired
    per-row differences from the smallest (the one-standard-error rule).
    """
    ZXs = np.hstack([Zs, Xs])
    candidates = ALPHAS + (np.inf,)

    def fit_predict(alpha, rows, F_out):
        coef, intercept = _proto_head(Zs[rows], ys[rows], P, kappa, s, n_features)
        if np.isinf(alpha):
            return 1 / (1 + np.exp(-np.clip(F_out @ coef + intercept, -30, 30)))
        model = B.ShrunkLogisticRegression(coef, intercept, alpha)
        return model.fit(ZXs[rows], ys[rows]).predict_proba1(F_out)

    n_min = int(np.bincount(ys, minlength=2).min())
    alpha = alpha_1se = np.inf
    if n_min >= 2:
        losses = np.zeros((len(candidates), len(ys)))
        for fit, out in StratifiedKFold(min(5, n_min)).split(Zs, ys):
            for i, value in enumerate(candidates):
                p = np.clip(fit_predict(value, fit, ZXs[out]), 1e-6, 1 - 1e-6)
                losses[i, out] = -np.log(np.where(ys[out] == 1, p, 1 - p))
        best = int(np.argmin(losses.sum(1)))
        alpha = candidates[best]
        diff = losses - losses[best]
        se = diff.std(1, ddof=1) * np.sqrt(len(ys))
        ok = np.flatnonzero(diff.sum(1) <= se)
        alpha_1se = candidates[ok.max()]
    full = np.arange(len(ys))
    return fit_predict(alpha, full, ZX_eval), fit_predict(alpha_1se, full, ZX_eval)


def run_fold(data, f_index, seeds, ks):
    train = data.train
    tasks = B.merge_small_tasks(data.tasks[train])
    proto = PrototypicalClassifier(
        class_prior="balanced", head="prototypes", random_state=0
    )
    proto.fit(data.X[train], data.y[train], tasks=tasks)
    # The same network (the head does not change training), with the head
    # that PrototypicalClassifier uses by default.
    shipped = PrototypicalClassifier(class_prior="balanced", random_state=0)
    shipped.fit(data.X[train], data.y[train], tasks=tasks)
    pooled = LogisticRegression(
        class_weight="balanced", max_iter=1000, random_state=0
    ).fit(data.X[train], data.y[train])
    s, kappa = proto.distance_scale_, proto.prior_strength_
    with torch.no_grad():
        Z = proto.module_(torch.as_tensor(data.X)).double().numpy()
    P = proto.global_state_.double().numpy()
    head, head_b = 2 * s * (P[1] - P[0]), s * (P[0] @ P[0] - P[1] @ P[1])
    ztr, ytr = Z[train], data.y[train]
    cov = sum(np.cov(ztr[ytr == c].T) * ((ytr == c).sum() - 1) for c in (0, 1)) / (
        len(ytr) - 2
    )
    ev, V = np.linalg.eigh(cov)
    whiten = V / np.sqrt(ev + 0.1 * ev.max())
    n_features = data.X.shape[1]
    head_x = np.r_[head, np.zeros(n_features)]
    records = []
    for task, k, seed, support, query in B.heldout_draws(data, f_index, ks, seeds):
        Xs, ys, Xq, yq = (
            data.X[support],
            data.y[support],
            data.X[query],
            data.y[query],
        )
        Zs, Zq = Z[support], Z[query]
        ZXs, ZXq = np.hstack([Zs, Xs]), np.hstack([Zq, Xq])
        scores = {}  # method -> score, positive = class 1
        model = copy.deepcopy(proto)
        model.partial_fit(Xs, ys, tasks=np.full(len(ys), task))
        p = model.predict_proba(Xq, tasks=np.full(len(query), task))[:, 1]
        scores["proto"] = p - 0.5
        model = copy.deepcopy(shipped)
        model.partial_fit(Xs, ys, tasks=np.full(len(ys), task))
        p = model.predict_proba(Xq, tasks=np.full(len(query), task))[:, 1]
        scores["head='auto'"] = p - 0.5
        scores["proto global"] = Zq @ head + head_b
        Pt = model.task_states_[list(model.tasks_).index(task)].double().numpy()
        d = [(((Zq - Pt[c]) @ whiten) ** 2).sum(1) for c in (0, 1)]
        scores["proto whitened"] = d[0] - d[1]
        scores["LR on k rows"] = B.lr_on_rows(1.0, Xs, ys).predict_proba(Xq)[:, 1] - 0.5
        scores["shrunk LR"] = (
            B.shrunk_lr(pooled, B.CV, Xs, ys)[0].predict_proba1(Xq) - 0.5
        )
        scores["emb LR"] = shrunk_lr_cv(head, head_b, Zs, ys, Zq) - 0.5
        lr_x = shrunk_lr_cv(head_x, head_b, ZXs, ys, ZXq)
        scores["emb+x LR"] = lr_x - 0.5
        ones = np.ones((len(ys), 1)), np.ones((len(query), 1))
        scores["emb+x ridge"] = ridge_loo(
            np.r_[head_x, head_b],
            np.hstack([ZXs, ones[0]]),
            ys,
            np.hstack([ZXq, ones[1]]),
        )
        p_min, p_1se = group_lr(Zs, ys, Xs, ZXq, P, kappa, s, n_features)
        scores["group LR"], scores["group LR 1se"] = p_min - 0.5, p_1se - 0.5
        losses = np.zeros(2)
        n_min = int(np.bincount(ys, minlength=2).min())
        if n_min >= 2:
            for fit, out in StratifiedKFold(min(5, n_min)).split(Zs, ys):
                Pf = np.stack(
                    [
                        (Zs[fit][ys[fit] == c].sum(0) + kappa * P[c])
                        / ((ys[fit] == c).sum() + kappa)
                        for c in (0, 1)
                    ]
                )
                d = [((Zs[out] - Pf[c]) ** 2).sum(1) for c in (0, 1)]
                p_proto = 1 / (1 + np.exp(-np.clip(s * (d[0] - d[1]), -30, 30)))
                p_lr = shrunk_lr_cv(head_x, head_b, ZXs[fit], ys[fit], ZXs[out])
                losses += [
                    _proba_to_logloss(ys[out], p_proto),
                    _proba_to_logloss(ys[out], p_lr),
                ]
        for name, margin in [("select", 1.0)] + [(f"select {m}", m) for m in MARGINS]:
            use_lr = n_min >= 2 and losses[1] < margin * losses[0]
            scores[name] = scores["emb+x LR"] if use_lr else scores["proto"]
        for method, score in scores.items():
            pred = (score >= 0).astype(np.int64)
            records.append(
                dict(
                    fold=f_index,
                    task=task,
                    k=k,
                    seed=seed,
                    method=method,
                    bacc=B.balanced_accuracy(yq, pred),
                )
            )
    return records


def validation_fold(data):
    """``data`` without its held-out groups, its validation groups held out."""
    keep = ~np.isin(data.tasks, data.heldout)
    return dataclasses.replace(
        data,
        X=data.X[keep],
        y=data.y[keep],
        tasks=data.tasks[keep],
        heldout=list(data.validation),
        validation=[],
        sensitive=None if data.sensitive is None else data.sensitive[keep],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="first fold, k = 5, one draw (a smoke test)",
    )
    parser.add_argument(
        "--on-validation",
        action="store_true",
        help="score the validation groups instead, on models trained without "
        "them and without the held-out groups (as bench_fewshot.py tunes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    print(
        f"# explore_protonet_heads {datetime.datetime.now():%Y-%m-%d %H:%M}\n"
        f"Command: `python benchmarks/explore_protonet_heads.py "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`; skmeta "
        f"({B.provenance()}); OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    for name in args.datasets.split(","):
        start = time.perf_counter()
        dataset = B.LOADERS[name]()
        records = []
        folds = dataset.folds[:1] if args.quick else dataset.folds
        if args.on_validation:
            folds = [validation_fold(f) for f in folds if f.validation]
            if not folds:
                print(f"\n## {name}: no validation groups")
                continue
        ks = (5,) if args.quick else dataset.ks
        for f_index, data in enumerate(folds):
            records += run_fold(data, f_index, range(args.seeds), ks)
        df = pd.DataFrame(records)
        scored = "validation" if args.on_validation else "held-out"
        print(f"\n## {name} ({len(folds)} fold(s), {args.seeds} draws)\n")
        print(f"Mean balanced accuracy over {scored} groups and draws:\n")
        table = df.groupby(["method", "k"]).bacc.mean().unstack()
        print(table.round(4).to_string())
        print("\nMean over k:\n")
        print(table.mean(axis=1).round(4).to_string())
        worst = (
            df.groupby(["method", "k", "task"])
            .bacc.mean()
            .groupby(["method", "k"])
            .min()
        )
        print(f"\nWorst {scored} group:\n")
        print(worst.unstack().round(4).to_string())
        print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
