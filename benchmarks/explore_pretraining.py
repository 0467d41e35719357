"""Exploration: can the pretraining length be chosen from the training data?

Both estimators train their network on the pooled rows for
``pretrain_epochs`` (10 by default) before meta-training. On COMPAS, 200
epochs serve held-out groups better than 10; on heart disease and the
synthetic sets they serve them worse (``explore_training_length.py``, one
training seed). This script retrains with several ``random_state`` values
(the training seed's spread is the noise that matters here) and asks whether
a stopping rule that sees only the training groups finds the right length:

- ``200 epochs``, ``50 epochs``: fixed budgets;
- ``stop on held-out rows``: 10 % of each class's training rows held out,
  at most 200 epochs, stopped when their class-balanced loss has not
  improved for 10 epochs; the network of the best epoch is kept;
- ``stop on held-out tasks``: training tasks of at most a third of the rows
  each, drawn at random until a quarter of the rows is held out (leaving at
  least one task), scored as above; the best epoch's count is then run
  again from the initial weights on all training rows. A new group is a new
  task, so this asks the question a few-shot user asks.

With ``--select`` (instead of the above), each fold chooses between 10 and 200
epochs as a user can: ``GridSearchCV`` over ``pretrain_epochs`` with
``GroupKFold`` (3 splits) on the fold's training groups, scored by
``skmeta.metrics.make_few_shot_scorer(n_shots=5, n_draws=2)``, for each
training seed; the choices and the mean scores are printed.

With ``--weight-decay`` (instead of the above), long pretraining is tried
with weight decay (``torch.optim.AdamW``, ``optimizer__weight_decay`` 0.1 or
1.0, in pretraining and meta-training alike): does it keep the long budget's
gain on COMPAS without its cost on heart disease?

With ``--curves`` (instead of the above), a plain pooled network (the
package's default ``MLP``, Adam at ``lr=1e-3``, class-balanced batches of 256
rows, as the pretraining) is traced over 200 epochs on the first fold: the
class-balanced loss and ROC AUC of 10 % of the training rows held out, and the
loss and mean per-group ROC AUC of the held-out groups' rows.

The rules are written here (a subclass overriding the package's private
pretraining step); the package does not ship them. For each fold, held-out
group, k and support draw (those of ``bench_fewshot.py``), the score is the
balanced accuracy on the group's other rows after ``partial_fit`` on the
support rows.

Run (about 13 minutes on two processes; Adult alone takes 9)::

    OMP_NUM_THREADS=1 python benchmarks/explore_pretraining.py \\
        --datasets compas,heart,adult
    OMP_NUM_THREADS=1 python benchmarks/explore_pretraining.py \\
        --datasets synthetic-strong,synthetic-types,synthetic --max-folds 3
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta.metrics import make_few_shot_scorer  # noqa: E402
from skmeta.modules import MLP  # noqa: E402

MAX_EPOCHS = 200
PATIENCE = 10
HELD_OUT_ROWS = 0.1
HELD_OUT_TASKS = 0.25
VARIANTS = {
    "default (10 epochs)": {},
    "50 epochs": {"pretrain_epochs": 50},
    "200 epochs": {"pretrain_epochs": 200},
    "stop on held-out rows": {"rule": "rows"},
    "stop on held-out tasks": {"rule": "tasks"},
}
WEIGHT_DECAY_VARIANTS = {
    "default (10 epochs)": {},
    "200 epochs": {"pretrain_epochs": 200},
    "200 epochs, decay 0.1": {"pretrain_epochs": 200, "decay": 0.1},
    "200 epochs, decay 1.0": {"pretrain_epochs": 200, "decay": 1.0},
    "50 epochs, decay 1.0": {"pretrain_epochs": 50, "decay": 1.0},
}


class StoppedPretraining:
    """An estimator whose pretraining length is chosen by ``rule``."""

    rule = None

    def _pretrain(self, data, seed):
        if self.rule is None:
            self.pretrain_epochs_ = self.pretrain_epochs
            return super()._pretrain(data, seed)
        y = torch.as_tensor(data.y)
        w = torch.as_tensor(data.weight, dtype=torch.float32)
        task = torch.as_tensor(data.task)
        keep = torch.nonzero(w > 0).flatten()
        w = balanced(w, y, keep, len(self.classes_))
        with torch.no_grad():
            n_out = self.module_(self._rows_tensor(data.X, keep[:1])).shape[-1]
        head = self._pretrain_head(n_out)
        modules = [self.module_] + ([head.to(self.device)] if head is not None else [])
        initial = [copy.deepcopy(m.state_dict()) for m in modules]
        generator = torch.Generator().manual_seed(seed)
        held = (held_out_rows if self.rule == "rows" else held_out_tasks)(
            y[keep], task[keep], generator
        )
        train, valid = keep[~held], keep[held]
        if not len(valid) or len(torch.unique(y[valid])) < len(self.classes_):
            train, valid = keep, None  # no rule possible: 10 epochs
        run = (self, data.X, y, w, modules, generator)
        epochs, best = train_epochs(*run, train, valid)
        if self.rule == "tasks" and valid is not None:
            for m, state in zip(modules, initial, strict=True):
                m.load_state_dict(state)
            train_epochs(*run, keep, None, epochs)
        elif best is not None:
            for m, state in zip(modules, best, strict=True):
                m.load_state_dict(state)
        self.pretrain_epochs_ = epochs


def balanced(w, y, keep, n_classes):
    """Row weights under which each class of the rows ``keep`` weighs the same."""
    totals = torch.zeros(n_classes).index_add_(0, y[keep], w[keep])
    return w * (totals.sum() / (n_classes * totals.clamp_min(1e-12)))[y]


def held_out_rows(y, task, generator):
    """A mask of ``HELD_OUT_ROWS`` of each class's rows."""
    held = torch.zeros(len(y), dtype=torch.bool)
    for c in torch.unique(y):
        rows = torch.nonzero(y == c).flatten()
        n = int(round(HELD_OUT_ROWS * len(rows)))
        held[rows[torch.randperm(len(rows), generator=generator)[:n]]] = True
    return held


def held_out_tasks(y, task, generator):
    """A mask of the rows of tasks drawn at random, each at most a third of
    the rows, until ``HELD_OUT_TASKS`` of the rows (at least one task left)."""
    ids, counts = torch.unique(task, return_counts=True)
    chosen, total = [], 0
    for i in torch.randperm(len(ids), generator=generator).tolist():
        if len(chosen) + 1 >= len(ids):
            break
        count = int(counts[i])
        if count <= len(y) / 3 and total + count <= HELD_OUT_TASKS * len(y):
            chosen.append(int(ids[i]))
            total += count
    return torch.isin(task, torch.tensor(chosen, dtype=task.dtype))


def train_epochs(est, X, y, w, modules, generator, train, valid, epochs=None):
    """Class-balanced training of ``modules`` on the rows ``train``: ``epochs``
    epochs, or with ``valid`` rows until their loss stops improving (then the
    best epoch and its weights), else the package's 10."""
    params = [p for m in modules for p in m.parameters()]
    kwargs = est.get_params_for("optimizer")
    kwargs.pop("param_groups", None)
    optimizer = est.optimizer(params, **{"lr": est.lr, **kwargs})
    if epochs is None:
        epochs = MAX_EPOCHS if valid is not None else 10
    y, w = y.to(est.device), w.to(est.device)

    def logits(rows):
        out = modules[0](est._rows_tensor(X, rows))
        return modules[1](out) if len(modules) > 1 else out

    best, best_loss, best_epoch = None, np.inf, 0
    est._set_training(True)
    for epoch in range(1, epochs + 1):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), est.batch_size):
            rows = order[start : start + est.batch_size]
            loss = (est.criterion_(logits(rows), y[rows]) * w[rows]).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss / w[rows].sum()).backward()
            optimizer.step()
        if valid is None:
            continue
        est._set_training(False)
        with torch.no_grad():
            wv = balanced(w, y, valid, len(est.classes_))[valid]
            value = float(
                (est.criterion_(logits(valid), y[valid]) * wv).sum() / wv.sum()
            )
        est._set_training(True)
        if value < best_loss:
            best_loss, best_epoch = value, epoch
            best = [copy.deepcopy(m.state_dict()) for m in modules]
        elif epoch - best_epoch >= PATIENCE:
            break
    return (best_epoch, best) if valid is not None else (epochs, None)


def curves(data, seed=0):
    """Rows ``(epoch, held-out rows' loss and AUC, held-out groups' loss and
    mean per-group AUC)`` of a pooled MLP trained on the fold's training rows."""
    X, y = data.X[data.train].astype(np.float32), data.y[data.train]
    heldout = np.isin(data.tasks, data.heldout)
    Xh, yh = data.X[heldout].astype(np.float32), data.y[heldout]
    th = data.tasks[heldout]
    generator = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(y)
    valid = held_out_rows(yt, None, generator).numpy()
    torch.manual_seed(seed)
    net = MLP(n_features_in=X.shape[1], n_classes=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    train = torch.as_tensor(np.flatnonzero(~valid))
    w = balanced(torch.ones(len(y)), yt, train, 2)
    Xt = torch.as_tensor(X)

    def scores(Xe, ye, groups=None):
        with torch.no_grad():
            p = net(torch.as_tensor(Xe)).softmax(-1)[:, 1].numpy()
        weight = np.where(ye == 1, 0.5 / ye.mean(), 0.5 / (1 - ye.mean()))
        loss = log_loss(ye, p, sample_weight=weight)
        if groups is None:
            return loss, roc_auc_score(ye, p)
        aucs = [
            roc_auc_score(ye[groups == g], p[groups == g])
            for g in np.unique(groups)
            if len(np.unique(ye[groups == g])) == 2
        ]
        return loss, float(np.mean(aucs))

    rows = []
    for epoch in range(1, MAX_EPOCHS + 1):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), 256):
            r = order[start : start + 256]
            losses = torch.nn.functional.cross_entropy(
                net(Xt[r]), yt[r], reduction="none"
            )
            optimizer.zero_grad(set_to_none=True)
            ((losses * w[r]).sum() / w[r].sum()).backward()
            optimizer.step()
        if epoch in CURVE_EPOCHS:
            rows.append((epoch, *scores(X[valid], y[valid]), *scores(Xh, yh, th)))
    return rows


def select(cls, data, budget, seed):
    """The ``pretrain_epochs`` a search on the fold's training groups chooses
    (10 or 200), and the mean few-shot score of each."""
    X, y = data.X[data.train], data.y[data.train]
    tasks = B.merge_small_tasks(data.tasks[data.train])
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            cls(**B._meta_kwargs(budget, seed)),
            {"pretrain_epochs": [10, 200]},
            scoring=make_few_shot_scorer(n_shots=5, n_draws=2),
            cv=GroupKFold(n_splits=3),
            refit=False,
        ).fit(X, y, tasks=tasks, groups=tasks)
    scores = search.cv_results_["mean_test_score"]
    return search.best_params_["pretrain_epochs"], scores[0], scores[1]


class MAML(StoppedPretraining, MAMLClassifier):
    pass


class ProtoNet(StoppedPretraining, PrototypicalClassifier):
    pass


ESTIMATORS = {"MAML": MAML, "ProtoNet": ProtoNet}
CURVE_EPOCHS = (1, 5, 10, 20, 30, 40, 50, 75, 100, 150, 200)
CURVE_COLUMNS = [
    "epoch",
    "held-out rows: loss",
    "AUC",
    "held-out groups: loss",
    "mean AUC",
]
SELECT_COLUMNS = ["fold", "seed", "estimator", "chosen", "score 10", "score 200"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="compas,heart")
    parser.add_argument("--train-seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--max-folds", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="first fold, k = 5")
    parser.add_argument(
        "--curves", action="store_true", help="only: trace a pooled MLP's losses"
    )
    parser.add_argument(
        "--select", action="store_true", help="only: choose 10 or 200 epochs by search"
    )
    parser.add_argument(
        "--weight-decay",
        action="store_true",
        help="instead of the stopping rules: long pretraining with weight decay",
    )
    args = parser.parse_args(argv)
    variants = WEIGHT_DECAY_VARIANTS if args.weight_decay else VARIANTS
    budget = "quick" if args.quick else "full"
    if args.quick:
        args.train_seeds, args.draws = 1, 1
    B.exploration_header("explore_pretraining", argv)
    for name in args.datasets.split(","):
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)[: args.max_folds]
        if args.select or args.curves:
            if args.select:
                title, columns = "chosen on the training groups", SELECT_COLUMNS
                rows = [
                    (f_index, rs, estimator, *select(cls, data, budget, rs))
                    for f_index, data in enumerate(folds)
                    for rs in range(args.train_seeds)
                    for estimator, cls in ESTIMATORS.items()
                ]
            else:
                title, columns = "a pooled MLP, first fold", CURVE_COLUMNS
                rows = curves(folds[0])
            print(f"\n## {name}: {title}\n")
            print(pd.DataFrame(rows, columns=columns).round(4).to_string(index=False))
            print(f"\n{name}: {time.perf_counter() - start:.0f} s")
            continue
        ks = (5,) if args.quick else B.LOADERS[name]().ks
        records, fitted = [], []
        for f_index, data in enumerate(folds):
            X, y = data.X[data.train], data.y[data.train]
            tasks = B.merge_small_tasks(data.tasks[data.train])
            for rs in range(args.train_seeds):
                for estimator, cls in ESTIMATORS.items():
                    for variant, params in variants.items():
                        params = dict(params)
                        rule = params.pop("rule", None)
                        if "decay" in params:
                            params["optimizer"] = torch.optim.AdamW
                            params["optimizer__weight_decay"] = params.pop("decay")
                        model = cls(**B._meta_kwargs(budget, rs), **params)
                        model.rule = rule
                        tic = time.perf_counter()
                        model.fit(X, y, tasks=tasks)
                        fitted.append(
                            (
                                estimator,
                                variant,
                                time.perf_counter() - tic,
                                model.pretrain_epochs_,
                            )
                        )
                        records += B.heldout_records(
                            model,
                            data,
                            f_index,
                            ks,
                            range(args.draws),
                            estimator=estimator,
                            variant=variant,
                            rs=rs,
                        )
        df = pd.DataFrame(records)
        print(
            f"\n## {name} ({len(folds)} fold(s), {args.train_seeds} training "
            f"seed(s), {args.draws} support draws)\n"
        )
        B.print_variant_tables(
            df,
            ESTIMATORS,
            list(variants),
            "rs",
            "draws, seeds, folds",
            "training seeds",
        )
        fit = pd.DataFrame(
            fitted, columns=["estimator", "variant", "seconds", "epochs"]
        )
        print("\nPretraining epochs (mean, min-max) and fit seconds (mean):\n")
        summary = fit.groupby(["estimator", "variant"]).agg(
            epochs=("epochs", "mean"),
            min=("epochs", "min"),
            max=("epochs", "max"),
            seconds=("seconds", "mean"),
        )
        print(summary.round(1).to_string())
        print(f"\n{name}: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
