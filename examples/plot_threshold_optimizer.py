"""
==========================================================
Post-processing a fitted model with fairlearn's thresholds
==========================================================

fairlearn's :class:`~fairlearn.postprocessing.ThresholdOptimizer` picks one
decision threshold per group on the scores of an already fitted model, so that
the groups get the same selection rate (demographic parity). It calls the model's
``predict_proba(X)`` with ``X`` alone, so a skmeta classifier finds the groups
through ``sensitive_columns``: it reads them from a column of ``X`` and still
predicts each row with the model adapted to its group.

The data are ProPublica's COMPAS two-year recidivism records, with ``race`` as
the sensitive feature.
"""

# %%
# Data
# ----
# The features are standardised, and ``race`` is added to ``X`` as a column.
# Groups with fewer than 50 rows (Asian, Native American) are merged into
# "Other", so that every group has enough test rows for a selection rate.
import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from skmeta.datasets import load_compas

compas = load_compas()
race = compas.sensitive_features["race"].astype(str)
counts = race.value_counts()
race = race.where(race.map(counts) >= 50, "Other")

X = pd.DataFrame(
    StandardScaler().fit_transform(compas.data), columns=compas.feature_names
)
X["race"] = race.to_numpy()
y = compas.target
print(X["race"].value_counts().rename("defendants").to_frame().to_string())

# %%
# Half of the rows train the model, a fifth choose the thresholds, and the rest
# measure the result. Each split keeps the proportions of the groups. The whole
# procedure runs with three seeds (splits and training), and every number below
# is the mean ± standard deviation over them.
from sklearn.model_selection import train_test_split


def split(seed):
    X_model, X_rest, y_model, y_rest = train_test_split(
        X, y, train_size=0.5, stratify=X["race"], random_state=seed
    )
    X_thresh, X_test, y_thresh, y_test = train_test_split(
        X_rest, y_rest, train_size=0.4, stratify=X_rest["race"], random_state=seed
    )
    return X_model, y_model, X_thresh, y_thresh, X_test, y_test


# %%
# Fit the model
# -------------
# ``sensitive_columns="race"`` takes the column out of the model's input and uses
# it as the groups, in ``fit`` and in every prediction method.
from skmeta import PrototypicalClassifier

X_model, y_model, X_thresh, y_thresh, X_test, y_test = split(0)
clf = PrototypicalClassifier(max_epochs=10, sensitive_columns="race", random_state=0)
clf.fit(X_model, y_model)
print("tasks:", clf.tasks_)

# %%
# Choose the thresholds
# ---------------------
# ``prefit=True`` keeps the fitted model as it is. The thresholds are learned on
# rows the model has not seen. ``ThresholdOptimizer`` needs the groups too, for
# its own per-group thresholds.
from fairlearn.postprocessing import ThresholdOptimizer

postprocessed = ThresholdOptimizer(
    estimator=clf,
    constraints="demographic_parity",
    objective="accuracy_score",
    prefit=True,
    predict_method="predict_proba",
)
postprocessed.fit(X_thresh, y_thresh, sensitive_features=X_thresh["race"])

# %%
# Compare
# -------
# The same steps with seeds 1 and 2. The post-processed predictions are
# randomised between two thresholds for some groups; ``random_state`` fixes
# them.
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
from sklearn.metrics import accuracy_score


def fit_postprocess(seed):
    """The steps above with another seed: the model, its thresholds, test rows."""
    X_model, y_model, X_thresh, y_thresh, X_test, y_test = split(seed)
    clf = PrototypicalClassifier(
        max_epochs=10, sensitive_columns="race", random_state=seed
    ).fit(X_model, y_model)
    postprocessed = ThresholdOptimizer(
        estimator=clf,
        constraints="demographic_parity",
        objective="accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    ).fit(X_thresh, y_thresh, sensitive_features=X_thresh["race"])
    return clf, postprocessed, X_test, y_test


runs = [(clf, postprocessed, X_test, y_test)]
runs += [fit_postprocess(seed) for seed in (1, 2)]
overall, rates = [], []
for seed, (clf, postprocessed, X_test, y_test) in enumerate(runs):
    predictions = {
        "PrototypicalClassifier": clf.predict(X_test),
        "+ ThresholdOptimizer": postprocessed.predict(
            X_test, sensitive_features=X_test["race"], random_state=seed
        ),
    }
    for name, y_pred in predictions.items():
        overall.append(
            {
                "model": name,
                "accuracy": accuracy_score(y_test, y_pred),
                "DP difference": demographic_parity_difference(
                    y_test, y_pred, sensitive_features=X_test["race"]
                ),
            }
        )
        frame = MetricFrame(
            metrics=selection_rate,
            y_true=y_test,
            y_pred=y_pred,
            sensitive_features=X_test["race"],
        )
        rates.append(
            frame.by_group.rename("selection rate").to_frame().assign(model=name)
        )


def mean_sd(frame, by):
    """The mean ± standard deviation over the seeds of each column, as text."""
    grouped = frame.groupby(by, sort=False)
    return grouped.mean().apply(
        lambda col: col.map("{:.3f}".format)
    ) + grouped.std().apply(lambda col: col.map(" ± {:.3f}".format))


print(mean_sd(pd.DataFrame(overall), "model").to_string())
rates = pd.concat(rates).reset_index()
print(mean_sd(rates, ["race", "model"])["selection rate"].unstack("model").to_string())

# %%
# The per-group models follow each group's base rate of recidivism, so their
# selection rates differ widely. The thresholds bring them together for a small
# loss of accuracy.
import matplotlib.pyplot as plt

by_race = rates.groupby(["race", "model"], sort=False)["selection rate"]
ax = (
    by_race.mean()
    .unstack("model")
    .plot.bar(yerr=by_race.std().unstack("model"), rot=0, figsize=(7, 4), capsize=3)
)
ax.axhline(np.mean(y), color="gray", linestyle="--", label="base rate")
ax.set_ylabel("selection rate (predicted recidivism)")
ax.set_ylim(0, 0.7)
ax.set_title("COMPAS: selection rate by race (mean ± SD over 3 seeds)")
ax.legend(loc="upper right")
plt.tight_layout()
plt.show()
