"""
==============================================
Adapting to a group never seen during training
==============================================

A model trained on pooled data serves a group badly when that group follows
its own rule. Here the groups of a synthetic problem share a decision rule
up to a per-group shift (:func:`~skmeta.datasets.make_group_classification`).
Both skmeta classifiers are meta-trained on 18 groups; 6 other groups are
held out. For each held-out group, :meth:`~skmeta.MAMLClassifier.partial_fit`
receives ``k`` rows per class, and the model is scored on the group's other
rows. The baselines: a logistic regression on the pooled training groups
(no adaptation), and a logistic regression on the ``k`` rows alone.

Support sets hold as many rows of each class, so the score is balanced
accuracy and the skmeta models use ``class_prior="balanced"``.
"""

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification

X, y, groups = make_group_classification(
    n_groups=24,
    n_samples_per_group=200,
    n_features=6,
    group_shift=1.5,
    random_state=0,
)
held_out = np.arange(18, 24)
train = ~np.isin(groups, held_out)

# %%
# Meta-train on the training groups; each group is a task.
models = {
    "MAMLClassifier": MAMLClassifier(
        max_epochs=20, inner_steps=5, class_prior="balanced", random_state=0
    ),
    "PrototypicalClassifier": PrototypicalClassifier(
        max_epochs=20, class_prior="balanced", random_state=0
    ),
}
for model in models.values():
    model.fit(X[train], y[train], sensitive_features=groups[train])
pooled = LogisticRegression().fit(X[train], y[train])

# %%
# Adapt to each held-out group from ``k`` rows per class, three draws each.
ks = [1, 2, 5, 10, 20]
scores = {
    name: []
    for name in ["pooled LogisticRegression", "LogisticRegression on k rows", *models]
}
for k in ks:
    per_k = {name: [] for name in scores}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for group in held_out:
            rows = np.flatnonzero(groups == group)
            support = np.concatenate(
                [rng.choice(rows[y[rows] == c], k, replace=False) for c in (0, 1)]
            )
            query = np.setdiff1d(rows, support)

            def score(pred, query=query):
                return balanced_accuracy_score(y[query], pred)

            per_k["pooled LogisticRegression"].append(score(pooled.predict(X[query])))
            local = LogisticRegression().fit(X[support], y[support])
            per_k["LogisticRegression on k rows"].append(score(local.predict(X[query])))
            for name, model in models.items():
                adapted = copy.deepcopy(model)  # partial_fit accumulates rows
                adapted.partial_fit(
                    X[support], y[support], sensitive_features=groups[support]
                )
                per_k[name].append(
                    score(adapted.predict(X[query], sensitive_features=groups[query]))
                )
    for name, values in per_k.items():
        scores[name].append(np.mean(values))

for name, values in scores.items():
    print(f"{name:<30}" + "".join(f"{v:8.3f}" for v in values))

# %%
# Balanced accuracy on the held-out groups against the number of rows per
# class the model saw from them.
fig, ax = plt.subplots(figsize=(6, 4))
for name, values in scores.items():
    ax.plot(ks, values, marker="o", label=name)
ax.set_xscale("log")
ax.set_xticks(ks, labels=[str(k) for k in ks])
ax.set_xlabel("rows per class from the new group (k)")
ax.set_ylabel("balanced accuracy on its other rows")
ax.set_title("Adaptation to held-out groups")
ax.legend()
fig.tight_layout()
plt.show()
