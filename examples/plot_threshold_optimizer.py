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
from sklearn.model_selection import train_test_split
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
print(X["race"].value_counts().to_string())

# %%
# Half of the rows train the model, a fifth choose the thresholds, and the rest
# measure the result. Each split keeps the proportions of the groups.
X_model, X_rest, y_model, y_rest = train_test_split(
    X, y, train_size=0.5, stratify=X["race"], random_state=0
)
X_thresh, X_test, y_thresh, y_test = train_test_split(
    X_rest, y_rest, train_size=0.4, stratify=X_rest["race"], random_state=0
)

# %%
# Fit the model
# -------------
# ``sensitive_columns="race"`` takes the column out of the model's input and uses
# it as the groups, in ``fit`` and in every prediction method.
from skmeta import PrototypicalClassifier

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
# The post-processed predictions are randomised between two thresholds for some
# groups; ``random_state`` fixes them.
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
from sklearn.metrics import accuracy_score

predictions = {
    "PrototypicalClassifier": clf.predict(X_test),
    "+ ThresholdOptimizer": postprocessed.predict(
        X_test, sensitive_features=X_test["race"], random_state=0
    ),
}
for name, y_pred in predictions.items():
    accuracy = accuracy_score(y_test, y_pred)
    dpd = demographic_parity_difference(
        y_test, y_pred, sensitive_features=X_test["race"]
    )
    print(f"{name:<24} accuracy {accuracy:.3f}   DP difference {dpd:.3f}")

rates = pd.DataFrame(
    {
        name: MetricFrame(
            metrics=selection_rate,
            y_true=y_test,
            y_pred=y_pred,
            sensitive_features=X_test["race"],
        ).by_group
        for name, y_pred in predictions.items()
    }
)
print(rates.round(3).to_string())

# %%
# The per-group models follow each group's base rate of recidivism, so their
# selection rates differ widely. The thresholds bring them together for a small
# loss of accuracy.
import matplotlib.pyplot as plt

ax = rates.plot.bar(rot=0, figsize=(7, 4))
ax.axhline(np.mean(y_test), color="gray", linestyle="--", label="test base rate")
ax.set_ylabel("selection rate (predicted recidivism)")
ax.set_ylim(0, 0.7)
ax.set_title("COMPAS: selection rate by race")
ax.legend(loc="upper right")
plt.tight_layout()
plt.show()
