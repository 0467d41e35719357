r"""
==============================================
How strongly to adapt: near and far new groups
==============================================

A new group that follows the same rule as the training groups is best served by
the pooled model; one that differs a lot, by a model of its own rows; most groups
lie in between. This example makes new groups at increasing distances from the
training groups, adapts to ``k`` rows per class of each (``k`` = 1, 5, 10, 20),
and compares the skmeta classifiers with three logistic regressions:

- pooled: fitted on the training groups, never adapted;
- on the ``k`` rows: fitted on the new group's rows alone;
- shrunk to pooled: fitted on the ``k`` rows with a penalty
  :math:`\frac{\alpha}{2} \lVert \theta - \theta_{\text{pooled}} \rVert^2`
  that pulls its coefficients toward the pooled ones, with :math:`\alpha`
  chosen for each group by cross-validation on its ``k`` rows.

It also shows how strongly each method adapted: the skmeta classifiers'
``adaptation_weight_``, how often the prototypical network gave a group a
logistic head of its own and MAML a logistic correction (``head_penalty_``)
and the penalty the shrunk regression chose. Every number
is the mean ± standard deviation over three seeds; each seed trains the skmeta
models anew and draws new rows from each new group.
"""

# %%
# Groups near and far
# -------------------
# :func:`~skmeta.datasets.make_group_classification` gives group ``g`` the
# weights ``w0 + group_shift * e_g``, where the shared weights ``w0`` and the
# directions ``e_g`` are drawn first from ``random_state``. Calls with the same
# ``random_state`` and different ``group_shift`` therefore give the same ``w0``
# and the same directions, scaled. The training groups are groups 0 to 19 at
# ``group_shift=0.5``; the new groups are groups 20 to 23 at ``group_shift``
# 0 (the shared rule), 0.5 (as far as a typical training group), 1 and 2.
import numpy as np
import pandas as pd

from skmeta.datasets import make_group_classification

base_shift = 0.5
params = dict(n_groups=24, n_samples_per_group=150, n_features=6, random_state=0)
X, y, groups, truth = make_group_classification(
    group_shift=base_shift, return_tasks=True, **params
)
train = groups < 20
X, y, groups = X[train], y[train], groups[train]

levels = {"shared rule": 0.0, "typical": 1.0, "far": 2.0, "very far": 4.0}
new = {"X": [], "y": [], "group": [], "level": []}
distances = {}
for level, scale in levels.items():
    Xl, yl, gl, tl = make_group_classification(
        group_shift=scale * base_shift, return_tasks=True, **params
    )
    keep = gl >= 20
    new["X"].append(Xl[keep])
    new["y"].append(yl[keep])
    new["group"].append(np.char.add(f"{level} ", gl[keep].astype(str)))
    new["level"].append(np.full(keep.sum(), level))
    distances[level] = np.linalg.norm(tl.weights[20:] - truth.shared_weights, axis=1)
X_new, y_new, group_new, level_new = (np.concatenate(v) for v in new.values())

train_distance = np.linalg.norm(truth.weights[:20] - truth.shared_weights, axis=1)
print(
    pd.DataFrame(
        {
            "groups": [20] + [4] * len(levels),
            "mean distance of w_g from w0": [train_distance.mean()]
            + [d.mean() for d in distances.values()],
        },
        index=pd.Index(["training groups", *levels], name="groups of"),
    )
    .round(2)
    .to_string()
)

# %%
# The shrunk logistic regression
# ------------------------------
# The maximum a posteriori fit under a Gaussian prior centred on the pooled
# regression: ``alpha`` is the prior's precision, in units of the summed
# log-loss of the rows. It is chosen among a grid by stratified
# cross-validation on the ``k`` rows (log-loss); with one row per class there is
# nothing to cross-validate, and ``alpha = 3`` is used.
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.model_selection import StratifiedKFold

ALPHAS = [0.3, 1.0, 3.0, 10.0, 30.0, 100.0]


def fit_shrunk(X, y, prior, alpha):
    """Coefficients and intercept (last) of the LR shrunk toward ``prior``."""
    X1 = np.hstack([X, np.ones((len(X), 1))])
    sign = 2.0 * y - 1.0

    def loss_and_grad(theta):
        margin = sign * (X1 @ theta)
        diff = theta - prior
        loss = np.logaddexp(0.0, -margin).sum() + 0.5 * alpha * diff @ diff
        grad = X1.T @ (-sign * expit(-margin)) + alpha * diff
        return loss, grad

    return minimize(loss_and_grad, prior, jac=True, method="L-BFGS-B").x


def choose_alpha(X, y, prior):
    n_min = np.bincount(y, minlength=2).min()
    if n_min < 2:
        return 3.0
    losses = np.zeros(len(ALPHAS))
    for fit, held in StratifiedKFold(min(5, n_min)).split(X, y):
        for i, alpha in enumerate(ALPHAS):
            theta = fit_shrunk(X[fit], y[fit], prior, alpha)
            p = np.clip(expit(X[held] @ theta[:-1] + theta[-1]), 1e-12, 1 - 1e-12)
            losses[i] -= np.sum(np.where(y[held] == 1, np.log(p), np.log(1 - p)))
    return ALPHAS[int(np.argmin(losses))]


# %%
# Adapting to the new groups
# --------------------------
# For each seed and ``k``, one copy of each fitted skmeta model adapts to all
# sixteen new groups in one :meth:`~skmeta.MAMLClassifier.partial_fit` call:
# each group is its own task, adapted from its own rows only. The support rows
# hold ``k`` of each class, so the score is balanced accuracy and the skmeta
# models use ``class_prior="balanced"``. fairlearn's
# :class:`~fairlearn.metrics.MetricFrame` gives it for each level of shift,
# over the query rows of its four groups.
import copy

from fairlearn.metrics import MetricFrame
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from skmeta import MAMLClassifier, PrototypicalClassifier

ks = [1, 5, 10, 20]
scores, strengths, head_rows = [], [], []
for seed in range(3):
    models = {
        cls.__name__: cls(max_epochs=20, class_prior="balanced", random_state=seed).fit(
            X, y, sensitive_features=groups
        )
        for cls in (MAMLClassifier, PrototypicalClassifier)
    }
    head_rows.append(models["PrototypicalClassifier"].head_min_rows_)
    pooled = LogisticRegression().fit(X, y)
    prior = np.r_[pooled.coef_[0], pooled.intercept_[0]]
    rng = np.random.default_rng(seed)
    for k in ks:
        support = np.concatenate(
            [
                rng.choice(np.flatnonzero((group_new == g) & (y_new == c)), k, False)
                for g in np.unique(group_new)
                for c in (0, 1)
            ]
        )
        query = np.setdiff1d(np.arange(len(y_new)), support)
        adapted = {
            name: copy.deepcopy(model).partial_fit(
                X_new[support], y_new[support], sensitive_features=group_new[support]
            )
            for name, model in models.items()
        }
        predictions = {
            f"{name}, adapted": model.predict(
                X_new[query], sensitive_features=group_new[query]
            )
            for name, model in adapted.items()
        }
        predictions["LR, pooled"] = pooled.predict(X_new[query])
        local = np.empty(len(query), dtype=int)
        shrunk = np.empty(len(query), dtype=int)
        for g in np.unique(group_new):
            rows = support[group_new[support] == g]
            mask = group_new[query] == g
            Xs, ys, Xq = X_new[rows], y_new[rows], X_new[query[mask]]
            local[mask] = LogisticRegression().fit(Xs, ys).predict(Xq)
            alpha = choose_alpha(Xs, ys, prior)
            theta = fit_shrunk(Xs, ys, prior, alpha)
            shrunk[mask] = Xq @ theta[:-1] + theta[-1] > 0
            maml = adapted["MAMLClassifier"]
            t = list(maml.tasks_).index(g)
            meta = {n: p.detach() for n, p in maml.module_.named_parameters()}
            moved = sum(
                float(((maml.task_states_[t][n] - meta[n]) ** 2).sum()) for n in meta
            )
            strengths.append(
                {
                    "seed": seed,
                    "k": k,
                    "level": level_new[rows[0]],
                    "MAML weight": maml.adaptation_weight_[t],
                    "MAML distance moved": np.sqrt(moved),
                    "MAML correction": np.isfinite(maml.head_penalty_[t]),
                    "ProtoNet weight": adapted[
                        "PrototypicalClassifier"
                    ].adaptation_weight_[t],
                    "ProtoNet own head": np.isfinite(
                        adapted["PrototypicalClassifier"].head_penalty_[t]
                    ),
                    "shrunk LR alpha": alpha,
                }
            )
        predictions["LR, on the k rows"] = local
        predictions["LR, shrunk to pooled"] = shrunk
        for name, y_pred in predictions.items():
            frame = MetricFrame(
                metrics=balanced_accuracy_score,
                y_true=y_new[query],
                y_pred=y_pred,
                sensitive_features=pd.Series(level_new[query], name="level"),
            )
            for level, value in frame.by_group.items():
                scores.append(
                    {
                        "seed": seed,
                        "k": k,
                        "level": level,
                        "method": name,
                        "balanced accuracy": value,
                    }
                )
order = pd.CategoricalDtype(list(levels), ordered=True)
scores = pd.DataFrame(scores).astype({"level": order})
scores["method"] = pd.Categorical(scores["method"], scores["method"].unique())
strengths = pd.DataFrame(strengths).astype({"level": order})


def mean_sd(frame, by, digits=3):
    """The mean ± standard deviation over seeds of each column, as text."""
    grouped = frame.groupby(by, observed=True)
    fmt = f"{{:.{digits}f}}"
    return grouped.mean().apply(lambda col: col.map(fmt.format)) + grouped.std().apply(
        lambda col: col.map((" ± " + fmt).format)
    )


# %%
# Balanced accuracy
# -----------------
# On the query rows of the new groups, by level of shift and ``k``:
table = mean_sd(scores.drop(columns="seed"), ["level", "method", "k"]).unstack("k")[
    "balanced accuracy"
]
table.columns = [f"k={k}" for k in ks]
print(table.to_string())

# %%
# How strongly each method adapted
# --------------------------------
# The skmeta classifiers' ``adaptation_weight_`` (``n / (n + prior strength)``)
# depends on the number of rows only, the same for a near and a far group; how
# far MAML's parameters moved from the meta-learned ones does depend on the
# group. So do the heads: "ProtoNet own head" is the share of groups whose
# cross-validation on their ``k`` rows chose a finite ``head_penalty_`` (a
# logistic head of their own, shrunk toward their prototypes) over the
# prototypes themselves, and "MAML correction" the share given a logistic
# correction on top of their adapted network. The shrunk regression's
# cross-validated ``alpha`` can depend on both (a smaller ``alpha`` trusts the
# rows more). Mean ± standard deviation over the seeds of the mean over each
# level's four groups; for ``alpha``, the median over the groups and seeds, and
# its range.
per_seed = (
    strengths.drop(columns="shrunk LR alpha")
    .groupby(["level", "k", "seed"], observed=True)
    .mean()
    .reset_index("seed", drop=True)
)
alpha = strengths.groupby(["level", "k"], observed=True)["shrunk LR alpha"]
alpha = (
    alpha.median().map("{:g}".format)
    + " ["
    + alpha.min().map("{:g}".format)
    + ", "
    + alpha.max().map("{:g}".format)
    + "]"
)
print(mean_sd(per_seed, ["level", "k"], 2).join(alpha).to_string())

# %%
# How many rows a prototypical head needs here: the training groups' spread
# around the pooled rule gives ``head_min_rows_`` (one value per seed); a new
# group with fewer rows keeps its prototypes, however far it is.
print("head_min_rows_:", ", ".join(f"{n:.1f}" for n in head_rows))

# %%
# What the tables say
# -------------------
# Near the shared rule, the pooled regression is hard to beat, and the adapted
# models stay within about a point and a half of it: their adaptation weight is
# the same as for a far group, but the rows of a near group agree with the
# meta-learned model, so MAML moves less. Further out, MAML moves further and
# keeps up with the regression shrunk toward the pooled one on the far groups;
# on the very far ones it falls two to four points behind it from ``k = 5``.
# The prototypical network gives no group a logistic head of its own below
# ``head_min_rows_`` rows (about 16 here: the training groups differ by
# little, ``group_shift=0.5``); from ``k = 10`` it gives one to more of the
# far groups (all of the very far groups, against about half near the shared
# rule, where the head and the prototypes predict about alike). On the very far
# groups it is behind MAML up to ``k = 5``, ahead of it from ``k = 10``, and
# one to two points behind the regression on the group's own rows there.
# MAML's correction follows the cross-validation alone: most of the very far
# groups get one from ``k = 5``, few of the near ones. For those groups the
# regression on the group's own rows wins from ``k = 10``, and the shrunk
# regression, which picks its smallest ``alpha`` there, comes close: the right
# amount of adaptation is nearly all of it. Read every difference against the
# spread between seeds.
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(levels), figsize=(12, 3.8), sharey=True)
for ax, level in zip(axes, levels, strict=True):
    part = scores[scores["level"] == level]
    for method, rows in part.groupby("method", observed=True):
        stats = rows.groupby("k")["balanced accuracy"].agg(["mean", "std"])
        ax.plot(ks, stats["mean"], marker="o", label=method)
        ax.fill_between(
            ks, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.15
        )
    ax.set_xscale("log")
    ax.set_xticks(ks, labels=[str(k) for k in ks])
    ax.set_title(f"{level} (shift x{levels[level]:g})")
    ax.set_xlabel("rows per class (k)")
axes[0].set_ylabel("balanced accuracy")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=5)
fig.suptitle("New groups near and far (mean ± SD over 3 seeds)")
plt.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()
