"""Exploration: should a trusted new group's correction keep MAML's logits?

``MAMLClassifier``'s correction (``head="auto"``) adds to the adapted
network's logits a logistic regression on ``[x, 1]``, shrunk toward no
correction. A group added after ``fit`` with at least ``head_min_rows_``
rows is *trusted*: it takes a correction whose penalty, at most ``1 /
task_spread_``, has the smallest cross-validated loss (``bd414d1``). Under a
strong linear shift the best baseline is a logistic regression on the group's
rows alone: is the network's offset what keeps MAML below it, and does the
noisy choice of one penalty cost? Variants, for trusted groups only (the
training tasks and the other groups keep the package's rule):

- ``package``: the package's rule (the reference);
- ``offset 1 or 0``: the same cross-validation also scores the corrections
  fitted without the network's logits (the logit is ``theta . [x, 1]``
  alone, a logistic regression on the group's rows shrunk toward 0), and
  the smallest loss of either kind wins;
- ``offset 1, 1/2 or 0``: the same with the network's logits halved too;
- ``offset 0``: never the network's logits (the group's own shrunk LR);
- ``average, T``: the corrections of every allowed penalty averaged with
  weights ``exp(-loss / T)`` (their summed held-out losses; a pseudo-Bayesian
  model average instead of one choice), ``T`` = 0.5, 1, 2.

For each fold of a ``bench_fewshot.py`` data set MAML is fitted once with the
defaults of ``bench_fewshot.py``; each held-out group, k and support draw is
adapted under each variant and scored by balanced accuracy on its other
rows. The output gives each variant minus the package's rule, in points
(mean ± SE over draws), and the share of held-out groups that were trusted
(only they can differ).

Run (about 30 seconds per synthetic data set)::

    OMP_NUM_THREADS=1 python benchmarks/explore_maml_offset.py \\
        --datasets synthetic-strong,synthetic,synthetic-types --seeds 5
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

import skmeta._maml as maml_module  # noqa: E402
from skmeta import MAMLClassifier  # noqa: E402
from skmeta._heads import (  # noqa: E402
    _HEAD_FOLDS,
    _HEAD_ROWS,
    _head_dtype,
    allowed_candidates,
    cv_losses,
    one_standard_error_choice,
    scatter_folds,
    shrunk_logistic,
)

# name: ("offset", scales tried) or ("average", temperature); None: package.
VARIANTS = {
    "package": None,
    "offset 1 or 0": ("offset", (1.0, 0.0)),
    "offset 1, 1/2 or 0": ("offset", (1.0, 0.5, 0.0)),
    "offset 0": ("offset", (0.0,)),
    "average, T = 0.5": ("average", 0.5),
    "average, T = 1": ("average", 1.0),
    "average, T = 2": ("average", 2.0),
}
SCALE = "offset_scale"  # a state: the factor of the network's logits
STATE = {"variant": None, "scale": None}
PACKAGE = {
    name: getattr(MAMLClassifier, name)
    for name in ("_logistic_heads", "_adapt_states", "_state_logits")
}


def adapt_states(self, X, y, w, prior, new=True):
    STATE["scale"] = None
    states, weight = PACKAGE["_adapt_states"](self, X, y, w, prior, new)
    scale = STATE["scale"]
    states[SCALE] = X.new_ones(len(X)) if scale is None else scale.to(X.dtype)
    return states, weight


def state_logits(self, X, index, states, dtype):
    if SCALE not in states:
        return PACKAGE["_state_logits"](self, X, index, states, dtype)
    correction = ("head_coef", "head_bias", SCALE)
    network = {k: v for k, v in states.items() if k not in correction}
    out = PACKAGE["_state_logits"](self, X, index, network, dtype)
    out = out * states[SCALE].to(dtype).index_select(0, index)[:, None]
    if "head_coef" in states:
        coef = states["head_coef"].to(dtype).index_select(0, index)
        bias = states["head_bias"].to(dtype).index_select(0, index)
        out = out + (coef @ X[..., None]).squeeze(-1) + bias
    return out


def logistic_heads(self, X, y, w, params, states, folds, new, first=None):
    """The package's ``_logistic_heads`` with the variant's rule for the
    trusted tasks (one task at a time for their final fit: a new group's
    ``partial_fit`` adapts one)."""
    variant = STATE["variant"]
    if variant is None:
        return PACKAGE["_logistic_heads"](
            self, X, y, w, params, states, folds, new, first
        )
    kind, setting = variant
    n_tasks, n_rows, n_features = X.shape
    dtype = _head_dtype(X.device)
    coef = X.new_zeros((n_tasks, len(self.classes_), n_features))
    bias = X.new_zeros((n_tasks, len(self.classes_)))
    penalty = X.new_zeros(n_tasks)
    scale = X.new_ones(n_tasks)
    m = folds.rows.shape[1]
    own = torch.full((n_tasks, _HEAD_FOLDS, m), torch.nan, dtype=dtype)
    weights = {}  # task: (candidates, weights) of an average
    tolerance, max_penalty = self._head_rule(
        (w > 0).sum(1), maml_module._HEAD_TOLERANCE, new
    )
    for i, chunk in enumerate(folds.chunks(self._max_tasks_per_batch())):
        T = len(chunk)
        live = folds.live(chunk)
        if i == 0 and first is not None:
            xf, yf, wf, fold_states = first
        else:
            xf, yf, wf = folds.inputs(X, chunk)
            fold_states = self._adapted_states(params, xf[live], yf[live], wf[live])
        f0 = scatter_folds(live, self._task_logits(fold_states, xf[live]))
        f0 = f0.reshape(T, _HEAD_FOLDS, m, -1)
        yc, wc = folds.y[chunk], folds.w[chunk].to(dtype)
        own[chunk] = maml_module._mixture.own_log_likelihood(f0, yc)
        x = xf.view(T, _HEAD_FOLDS, m, n_features)[:, 0]
        phi = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], -1).to(dtype)
        fit, held_out, used = folds.masks(chunk)
        candidates, row_loss = cv_losses(phi, f0, yc, wc, fit, held_out)
        allowed = allowed_candidates(candidates, max_penalty[chunk])
        choice = one_standard_error_choice(
            candidates, row_loss, used.any(1), tolerance[chunk], allowed
        )
        trusted = tolerance[chunk] == 0
        scales = setting if kind == "offset" else (1.0,)
        best_loss, best_penalty = [], []
        for s in scales:
            loss = (
                row_loss
                if s == 1.0
                else cv_losses(phi, s * f0, yc, wc, fit, held_out)[1]
            )
            loss = loss.sum(-1)
            if allowed is not None:
                loss = loss.masked_fill(~allowed, torch.inf)
            best = loss.argmin(1)
            best_loss.append(loss.gather(1, best[:, None]).squeeze(1))
            best_penalty.append(candidates[best])
            if kind == "average":
                spread = (loss - loss.min(1, keepdim=True).values) / setting
                for j, task in enumerate(chunk.tolist()):
                    if trusted[j]:
                        weights[task] = (candidates, torch.softmax(-spread[j], 0))
        pick = torch.stack(best_loss, 1).argmin(1)
        chosen = torch.stack(best_penalty, 1).gather(1, pick[:, None]).squeeze(1)
        penalty[chunk] = torch.where(trusted, chosen, choice).to(penalty.dtype)
        picked = torch.tensor(scales, dtype=X.dtype)[pick]
        scale[chunk] = torch.where(trusted, picked, torch.ones_like(picked))
    rows_used = min(n_rows, _HEAD_ROWS)
    for task in (penalty > 0).nonzero().flatten().tolist():
        one = torch.tensor([task])
        rows = folds.order[one, :rows_used]
        x = X[one].gather(1, rows[..., None].expand(-1, -1, n_features))
        f0 = self._task_logits({k: v[one] for k, v in states.items()}, x)
        f0 = f0 * scale[task].to(dtype)
        phi = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], -1).to(dtype)
        yt, wt = y[one].gather(1, rows), w[one].gather(1, rows).to(dtype)
        if task in weights:
            candidates, weight = weights[task]
            keep = weight > 1e-6
            n = int(keep.sum())
            theta = shrunk_logistic(
                phi.expand(n, -1, -1),
                f0.expand(n, -1, -1),
                yt.expand(n, -1),
                wt.expand(n, -1),
                candidates[keep].to(dtype),
            )
            share = (weight[keep] / weight[keep].sum()).to(dtype)
            theta = (share[:, None, None] * theta).sum(0, keepdim=True)
        else:
            theta = shrunk_logistic(phi, f0, yt, wt, penalty[one].to(dtype))
        theta = theta.to(coef.dtype)
        coef[one], bias[one] = theta[..., :-1], theta[..., -1]
    STATE["scale"] = scale
    return coef, bias, penalty, own


MAMLClassifier._logistic_heads = logistic_heads
MAMLClassifier._adapt_states = adapt_states
MAMLClassifier._state_logits = state_logits


def run_fold(data, f_index, seeds, ks, budget):
    tasks = B.merge_small_tasks(data.tasks[data.train])
    STATE["variant"] = None
    model = MAMLClassifier(**B._meta_kwargs(budget, B.RANDOM_STATE)).fit(
        data.X[data.train], data.y[data.train], tasks=tasks
    )
    records = []
    for variant, rule in VARIANTS.items():
        STATE["variant"] = rule

        records += B.heldout_records(
            model,
            data,
            f_index,
            ks,
            seeds,
            extra=_trusted,
            estimator="MAML",
            variant=variant,
        )
    STATE["variant"] = None
    return records


def _trusted(adapted):
    """Whether the group adapted last (the held-out group) was trusted (see
    ``_head_rule``): the spread estimated, and at least ``head_min_rows_``
    rows (its weights are 1: the summed weight of its classes)."""
    rows = adapted.class_counts_[len(adapted.tasks_)].sum()
    return {"trusted": adapted.task_spread_ > 0 and rows >= adapted.head_min_rows_}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="synthetic-strong,synthetic")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budget = "quick" if args.quick else "full"
    seeds = range(1 if args.quick else args.seeds)
    ks = (5,) if args.quick else (5, 10, 20)
    B.exploration_header("explore_maml_offset", argv)
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        start = time.perf_counter()
        folds = B.exploration_folds(name, args.quick)
        records = []
        for f_index, data in enumerate(folds):
            records += run_fold(data, f_index, seeds, ks, budget)
        table = B.variant_differences(
            pd.DataFrame(records),
            "package",
            "minus package (points)",
            share=("share trusted", "trusted"),
        )
        print(f"## {name} ({len(folds)} fold(s), {len(seeds)} draws)\n")
        print(table.to_markdown(index=False, floatfmt=".4f"))
        print(f"\n{name}: {time.perf_counter() - start:.0f} s\n")


if __name__ == "__main__":
    main()
