"""
==================================
Inspecting what adaptation changed
==================================

A skmeta classifier serves each group with its own state, adapted from the
group's rows. That state can be inspected rather than trusted: how much of it
comes from the group's own rows, how far it moved from the meta-learned model, and
whether moving helped. This example fits both classifiers on synthetic groups of
very different sizes, and looks at

- for :class:`~skmeta.MAMLClassifier`: each group's ``adaptation_weight_``
  (``n / (n + prior strength)``), its number of rows, and the distance of its
  adapted parameters (``task_states_``) from the meta-learned ones
  (``module_.named_parameters()``);
- for :class:`~skmeta.PrototypicalClassifier`: the prototypes of every group
  (``task_states_``) and the global ones (``global_state_``), drawn in two
  dimensions with some embedded rows.
"""

# %%
# Groups of very different sizes
# ------------------------------
# Eight groups, from 250 rows down to 2. ``return_tasks=True`` also returns each
# group's true decision rule, so the distance of each group's weights from the
# rule shared by all (``shared_weights``) says how much it really differs. A test
# set with 200 rows per group comes from the same generator: the same
# ``random_state`` gives the same group rules whatever the group sizes.
import numpy as np
import pandas as pd

from skmeta.datasets import make_group_classification

params = dict(n_groups=8, n_features=6, group_shift=0.5, random_state=0)
X, y, groups, truth = make_group_classification(
    group_sizes=[250, 100, 50, 25, 12, 6, 4, 2], return_tasks=True, **params
)
X_test, y_test, groups_test = make_group_classification(
    n_samples_per_group=200, **params
)
true_shift = np.linalg.norm(truth.weights - truth.shared_weights, axis=1)
print(
    pd.DataFrame(
        {"training rows": np.bincount(groups), "true shift": true_shift.round(2)}
    )
    .rename_axis("group")
    .T.to_string()
)

# %%
# MAML: how far each group moved
# ------------------------------
# For each group, the Euclidean distance between its adapted parameters and the
# meta-learned ones, over every weight of the network. The meta-learned prior
# strength decides how much each group's rows count; the distance also depends
# on how much the rows disagree with the meta-learned model. The table gives the
# mean ± standard deviation over three training seeds.
import torch
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score

from skmeta import MAMLClassifier


def distance(state, reference):
    """Euclidean distance between two sets of parameters, over all of them."""
    return float(
        torch.sqrt(sum(((state[k] - reference[k]) ** 2).sum() for k in reference))
    )


records = []
for seed in range(3):
    maml = MAMLClassifier(max_epochs=20, random_state=seed)
    maml.fit(X, y, sensitive_features=groups)
    meta = {k: v.detach() for k, v in maml.module_.named_parameters()}
    accuracy = {
        "own state": MetricFrame(
            metrics=accuracy_score,
            y_true=y_test,
            y_pred=maml.predict(X_test, sensitive_features=groups_test),
            sensitive_features=groups_test,
        ).by_group,
        "pooled state": MetricFrame(
            metrics=accuracy_score,
            y_true=y_test,
            y_pred=maml.predict(X_test),
            sensitive_features=groups_test,
        ).by_group,
    }
    for t, group in enumerate(maml.tasks_):
        records.append(
            {
                "group": group,
                "seed": seed,
                "prior strength": maml.prior_strength_,
                "adaptation weight": maml.adaptation_weight_[t],
                "distance moved": distance(maml.task_states_[t], meta),
                "test accuracy, own state": accuracy["own state"][group],
                "test accuracy, pooled state": accuracy["pooled state"][group],
            }
        )
records = pd.DataFrame(records)
grouped = records.drop(columns="seed").groupby("group")
summary = grouped.mean().apply(
    lambda col: col.map("{:.3f}".format)
) + grouped.std().apply(lambda col: col.map(" ± {:.3f}".format))
summary.insert(0, "training rows", np.bincount(groups))
summary.insert(1, "true shift", true_shift.round(2))
print(summary.drop(columns="prior strength").to_string())
print(
    f"learned prior strength: {records['prior strength'].mean():.2f} "
    f"± {records.groupby('seed')['prior strength'].first().std():.2f} rows"
)

# %%
# What to look for
# ----------------
# The adaptation weight depends only on a group's number of rows,
# ``n / (n + prior strength)``, and the prior strength was learned from the
# training episodes. How far a group moved depends on its rows too: a group
# whose rows agree with the meta-learned model moves little whatever its size.
# "pooled state" is :meth:`~skmeta.MAMLClassifier.predict` without the groups,
# the model adapted to all rows together: where a group's own state does worse
# than it, adapting did not help that group.
#
# Here the learned prior strength is about four rows, so the groups of 2 and 4
# rows get weights of about 0.34 and 0.50. Group 7's two rows (both of class 0)
# still move it about as far as groups 50 to 125 times larger, and its own
# state predicts 5 points better than the pooled state; group 6 moves less, and
# its own state predicts 3 points worse. Elsewhere the picture is mixed: groups
# 1, 2 and 5 gain 3 to 8 points from their own state, group 4 loses 2, and
# groups 0 and 3 are level within a point. Groups like group 6 are better
# served by the
# pooled state (predict their rows without their group), or by a model with a
# fixed ``prior_strength`` chosen on
# validation groups (see :ref:`maml`).
import matplotlib.pyplot as plt

mean = records.drop(columns="seed").groupby("group").mean()
sd = records.drop(columns="seed").groupby("group").std()
fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
axes[0, 0].bar(mean.index, np.bincount(groups), color="tab:gray")
axes[0, 0].set_yscale("log")
axes[0, 0].set_title("training rows")
axes[0, 1].bar(
    mean.index, mean["adaptation weight"], yerr=sd["adaptation weight"], capsize=3
)
axes[0, 1].set_ylim(0, 1.05)
axes[0, 1].set_title("adaptation_weight_")
axes[1, 0].bar(
    mean.index,
    mean["distance moved"],
    yerr=sd["distance moved"],
    capsize=3,
    color="tab:orange",
)
axes[1, 0].set_title("distance from the meta-learned parameters")
for offset, column, color in [
    (-0.2, "test accuracy, own state", "tab:green"),
    (0.2, "test accuracy, pooled state", "tab:gray"),
]:
    axes[1, 1].bar(
        mean.index + offset,
        mean[column],
        yerr=sd[column],
        width=0.4,
        capsize=2,
        color=color,
        label=column.removeprefix("test accuracy, "),
    )
axes[1, 1].set_ylim(0.5, 1)
axes[1, 1].set_title("test accuracy")
axes[1, 1].legend(loc="lower left", fontsize="small")
for ax in axes[1]:
    ax.set_xlabel("group")
    ax.set_xticks(mean.index)
fig.suptitle("MAMLClassifier: what adaptation did to each group (mean ± SD, 3 seeds)")
plt.tight_layout()
plt.show()

# %%
# Prototypical networks: the prototypes
# -------------------------------------
# A :class:`~skmeta.PrototypicalClassifier` summarises each class of each group
# by a prototype in its embedding space: the group's mean embedding of the
# class, shrunk toward the global prototype by ``shrinkage`` rows (learned,
# ``prior_strength_``). ``module_`` embeds rows; a PCA of the embedded training
# rows gives two dimensions to draw them, the groups' prototypes and the global
# ones in.
from sklearn.decomposition import PCA

from skmeta import PrototypicalClassifier

proto = PrototypicalClassifier(max_epochs=20, random_state=0)
proto.fit(X, y, sensitive_features=groups)
with torch.no_grad():
    embedded = proto.module_(torch.as_tensor(X, dtype=torch.float32)).numpy()
prototypes = np.stack([state.numpy() for state in proto.task_states_])
global_prototypes = proto.global_state_.numpy()
print(
    f"shrinkage (prior_strength_): {proto.prior_strength_:.2f} rows, "
    f"distance_scale_: {proto.distance_scale_:.2f}"
)
print(
    pd.DataFrame(
        {
            "training rows": np.bincount(groups),
            "adaptation weight": proto.adaptation_weight_.round(3),
            **{
                f"class {c}: distance to global": np.linalg.norm(
                    prototypes[:, c] - global_prototypes[c], axis=1
                ).round(3)
                for c in proto.classes_
            },
        },
        index=pd.Index(proto.tasks_, name="group"),
    ).to_string()
)

# %%
# Each arrow goes from a global prototype to a group's prototype of the same
# class; the numbers are the groups. The global prototypes are the class means
# over all rows, so they lie near those of group 0, which holds half of them. A
# class that a group lacks takes the global prototype: group 7 has no row of
# class 1. With a learned shrinkage of about ten rows, the large groups'
# prototypes are mostly their own class means, spread around the global ones,
# and those of the smallest groups are pulled toward the global ones.
pca = PCA(n_components=2).fit(embedded)
rows_2d = pca.transform(embedded)
fig, ax = plt.subplots(figsize=(7, 5.5))
colors = ["tab:blue", "tab:red"]
sample = np.random.default_rng(0).choice(len(X), 300, replace=False)
for c in proto.classes_:
    rows = sample[y[sample] == c]
    ax.scatter(*rows_2d[rows].T, s=8, alpha=0.25, color=colors[c])
    centre = pca.transform(global_prototypes[[c]])[0]
    ax.scatter(
        *centre,
        marker="*",
        s=400,
        color=colors[c],
        edgecolor="black",
        label=f"global prototype, class {c}",
        zorder=3,
    )
    for group, point in zip(proto.tasks_, pca.transform(prototypes[:, c]), strict=True):
        ax.annotate(
            "",
            xy=point,
            xytext=centre,
            arrowprops=dict(arrowstyle="->", color=colors[c], alpha=0.6),
        )
        ax.annotate(str(group), point, fontsize=9, color=colors[c], weight="bold")
# Zoom on the prototypes; the rows show how spread each class is.
corners = pca.transform(prototypes.reshape(-1, prototypes.shape[-1]))
low, high = corners.min(0) - 0.5, corners.max(0) + 0.5
ax.set_xlim(low[0], high[0])
ax.set_ylim(low[1], high[1])
ax.set_xlabel("first principal component of the embedding")
ax.set_ylabel("second principal component")
ax.set_title("PrototypicalClassifier: prototypes of each group (numbers)")
ax.legend(loc="best", fontsize="small")
plt.tight_layout()
plt.show()
