"""
=======================================
Quickstart: one adapted model per group
=======================================

Fit :class:`~skmeta.MAMLClassifier` on the bundled Adult census data with ``sex`` as
the sensitive feature. Each group is a meta-learning task: after fitting, the model
holds parameters adapted to each group, and
:meth:`~skmeta.MAMLClassifier.predict` uses them when it is given the groups.
:class:`fairlearn.metrics.MetricFrame` then reports the accuracy of each group, next
to a :class:`~sklearn.linear_model.LogisticRegression` fitted on the pooled data.
"""

# %%
# Load the data
# -------------
# :func:`~skmeta.datasets.load_adult` returns the encoded features, the 0/1 target
# (income above 50K), the sensitive features and the original train/test split.
# The sensitive columns are not among the features. Neural networks need scaled
# inputs, so the features are standardised with statistics of the training rows.
import pandas as pd
from sklearn.preprocessing import StandardScaler

from skmeta.datasets import load_adult

adult = load_adult()
train, test = adult.split == "train", adult.split == "test"
sex = adult.sensitive_features["sex"]

scaler = StandardScaler().fit(adult.data[train])
X_train = scaler.transform(adult.data[train])
X_test = scaler.transform(adult.data[test])
y_train, y_test = adult.target[train], adult.target[test]
sex_train, sex_test = sex[train], sex[test]
print(f"{len(y_train)} training rows, {len(y_test)} test rows")
print(sex_train.value_counts().rename("training rows").to_frame().to_string())

# %%
# Fit the models
# --------------
# ``sensitive_features`` makes each group a task. Two epochs are enough here;
# see the :ref:`user guide <user_guide>` for the parameters of the episodes.
from sklearn.linear_model import LogisticRegression

from skmeta import MAMLClassifier

maml = MAMLClassifier(max_epochs=2, random_state=0)
maml.fit(X_train, y_train, sensitive_features=sex_train)
print("tasks:", maml.tasks_)
print(f"learned prior strength: {maml.prior_strength_:.1f} rows")
print(
    pd.Series(maml.adaptation_weight_, index=maml.tasks_, name="adaptation weight")
    .rename_axis("group")
    .round(4)
    .to_frame()
    .to_string()
)

logreg = LogisticRegression(max_iter=1000).fit(X_train, y_train)

# %%
# Each group's ``adaptation_weight_`` is ``n / (n + prior strength)``: the share
# of its adapted parameters owed to its own rows, the rest to the meta-learned
# ones. ``n`` counts the rows the model adapts from, at most ``support_size``
# (500) of each class per group, so both groups report the same weight (about
# 0.9 here).
#
# Per-group accuracy
# ------------------
# Given the groups, each row is predicted by the model adapted to its group.
# Without them, :meth:`~skmeta.MAMLClassifier.predict` uses the model adapted to
# the pooled training data, which is how a group never seen in training is
# served. Training is stochastic, so two more models are fitted with other
# seeds, and each accuracy is the mean ± standard deviation over the three (the
# logistic regression is deterministic).
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score

mamls = [maml] + [
    MAMLClassifier(max_epochs=2, random_state=seed).fit(
        X_train, y_train, sensitive_features=sex_train
    )
    for seed in (1, 2)
]
rows = []
for seed, model in enumerate(mamls):
    predictions = {
        "MAML, per group": model.predict(X_test, sensitive_features=sex_test),
        "MAML, pooled": model.predict(X_test),
        "LogisticRegression": logreg.predict(X_test),
    }
    for name, y_pred in predictions.items():
        frame = MetricFrame(
            metrics=accuracy_score,
            y_true=y_test,
            y_pred=y_pred,
            sensitive_features=sex_test,
        )
        rows.append(
            {
                "model": name,
                "seed": seed,
                "overall": frame.overall,
                **frame.by_group,
                "worst group": frame.group_min(),
            }
        )
results = pd.DataFrame(rows).drop(columns="seed").groupby("model", sort=False)
summary = results.mean().apply(
    lambda col: col.map("{:.3f}".format)
) + results.std().apply(lambda col: col.map(" ± {:.3f}".format))
print(summary.to_string())

# %%
# With two large groups, the model adapted to each group and the model adapted
# to the pooled data are within about a point of each other and of the logistic
# regression, on each group and overall; the differences are of the order of
# the spread between seeds. The adapted models pay off on small groups and on
# groups unseen in training (see
# :ref:`sphx_glr_auto_examples_plot_unseen_group_partial_fit.py`). Plot the
# accuracy of each group:
import matplotlib.pyplot as plt

groups = list(sex_test.cat.categories)
mean, sd = results[groups].mean(), results[groups].std()
ax = mean.T.plot.bar(yerr=sd.T, rot=0, figsize=(7, 4), capsize=3)
ax.set_ylim(0.7, 1.0)
ax.set_ylabel("test accuracy")
ax.set_title("Adult: accuracy by sex (mean ± SD over 3 seeds)")
ax.legend(loc="upper right")
plt.tight_layout()
plt.show()
