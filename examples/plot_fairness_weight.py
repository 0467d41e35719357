"""
=======================================
Trading accuracy for demographic parity
=======================================

``constraints="demographic_parity"`` adds to the meta-objective a penalty on the
gap between groups in the mean predicted probability of the positive class, and
``fairness_weight`` sets its weight. This example sweeps the weight of a
:class:`~skmeta.PrototypicalClassifier` on the bundled Adult data, with ``sex`` as
the sensitive feature, and plots test accuracy against the demographic parity
difference measured by fairlearn.
"""

# %%
# Data
# ----
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

# %%
# Two reference points
# --------------------
# By default (``class_prior="auto"``) an unconstrained model corrects its
# predictions to the class frequencies of each row's group, which carries the
# groups' different base rates into the predictions. As soon as a fairness
# penalty is active, ``"auto"`` means ``class_prior="pooled"`` instead: every row
# is corrected to the pooled frequencies. To separate the effect of the penalty
# from the effect of the prior, the sweep below sets ``class_prior="pooled"``
# for every weight, including 0.
from fairlearn.metrics import demographic_parity_difference
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from skmeta import PrototypicalClassifier


def evaluate(y_pred):
    """Test accuracy and demographic parity difference."""
    return (
        accuracy_score(y_test, y_pred),
        demographic_parity_difference(y_test, y_pred, sensitive_features=sex_test),
    )


logreg = LogisticRegression(max_iter=1000).fit(X_train, y_train)
default = PrototypicalClassifier(max_epochs=3, random_state=0)
default.fit(X_train, y_train, sensitive_features=sex_train)
references = {
    "LogisticRegression": evaluate(logreg.predict(X_test)),
    "class_prior='task'": evaluate(
        default.predict(X_test, sensitive_features=sex_test)
    ),
}

# %%
# The sweep
# ---------
weights = [0.0, 0.1, 0.25, 0.5, 1.0]
results = []
for weight in weights:
    clf = PrototypicalClassifier(
        max_epochs=3,
        constraints="demographic_parity",
        fairness_weight=weight,
        class_prior="pooled",
        random_state=0,
    )
    clf.fit(X_train, y_train, sensitive_features=sex_train)
    results.append(evaluate(clf.predict(X_test, sensitive_features=sex_test)))

print(f"{'model':<28}{'accuracy':>10}{'DP difference':>15}")
for name, (accuracy, dpd) in references.items():
    print(f"{name:<28}{accuracy:>10.3f}{dpd:>15.3f}")
for weight, (accuracy, dpd) in zip(weights, results, strict=True):
    print(f"{f'fairness_weight={weight}':<28}{accuracy:>10.3f}{dpd:>15.3f}")

# %%
# Plot
# ----
# Correcting to the pooled class frequencies removes much of the gap already;
# the penalty removes most of the rest, at some cost in accuracy. Past the
# weight where the gap is closed, a larger weight only costs accuracy, and the
# measured difference stays within noise of zero (training is stochastic, and
# the penalty acts on sharpened probabilities, not on the decisions).
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4.5))
dpds = [dpd for _, dpd in results]
accuracies = [accuracy for accuracy, _ in results]
ax.plot(dpds, accuracies, "o-", label="PrototypicalClassifier, class_prior='pooled'")
for weight, dpd, accuracy in zip(weights, dpds, accuracies, strict=True):
    ax.annotate(
        f"{weight:g}", (dpd, accuracy), textcoords="offset points", xytext=(5, 5)
    )
for (name, (accuracy, dpd)), marker in zip(references.items(), "sD", strict=True):
    ax.plot(dpd, accuracy, marker, label=name)
ax.set_xlabel("demographic parity difference (lower is fairer)")
ax.set_ylabel("test accuracy")
ax.set_title("Adult, groups by sex: points labelled with fairness_weight")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()
