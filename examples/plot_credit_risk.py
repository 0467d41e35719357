r"""
==============================================
Credit risk with a cost matrix, group by group
==============================================

The German credit data (:func:`~skmeta.datasets.load_german_credit`) classify loan
applicants as good or bad risks, and come with a cost matrix: approving a bad risk
costs 5, rejecting a good one costs 1. With calibrated probabilities, the decision
that minimises the expected cost rejects an applicant when

.. math::

   5 \, p(\text{bad}) > 1 - p(\text{bad})
   \iff p(\text{bad}) > 1/6,

not when :math:`p(\text{bad}) > 1/2`, the threshold of ``predict``.

The applicants fall into four groups, by age (under 25 or not) and sex. Here the
skmeta classifiers treat each group as a task (``sensitive_features`` with both
columns), and a logistic regression is fitted on the pooled rows. Each model's
probabilities are turned into decisions with the cost threshold; the total cost and
each group's approval and error rates are reported, as the mean ± standard
deviation over three random train/test splits (each with its own training seed).
"""

# %%
# The data
# --------
# ``sensitive_features`` has two columns, ``sex`` and ``age_group``; given both,
# the skmeta classifiers make one task of each combination (``"female, <25"`` and
# so on). The groups are small: the youngest men are 65 applicants.
import numpy as np
import pandas as pd

from skmeta.datasets import load_german_credit

credit = load_german_credit()
X, y = credit.data, credit.target  # y = 1: good risk, 0: bad risk
groups = credit.sensitive_features[["age_group", "sex"]]
group = groups["age_group"].astype(str) + ", " + groups["sex"].astype(str)
group = group.rename("group")

print(
    pd.crosstab(group, pd.Series(credit.target_names[y], name="risk"))
    .assign(**{"share bad": lambda t: (t["bad"] / (t["bad"] + t["good"])).round(3)})
    .to_string()
)

# %%
# Costs and decisions
# -------------------
# A decision is "approve" (predict good, 1) or "reject" (predict bad, 0).
COST_BAD_APPROVED, COST_GOOD_REJECTED = 5, 1
THRESHOLD = COST_GOOD_REJECTED / (COST_BAD_APPROVED + COST_GOOD_REJECTED)  # 1/6


def cost(y_true, y_pred):
    """Total cost of the decisions under the data set's cost matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    bad_approved = np.sum((y_true == 0) & (y_pred == 1))
    good_rejected = np.sum((y_true == 1) & (y_pred == 0))
    return COST_BAD_APPROVED * bad_approved + COST_GOOD_REJECTED * good_rejected


def cost_per_applicant(y_true, y_pred):
    return cost(y_true, y_pred) / len(y_true)


def decide(p_bad, threshold=THRESHOLD):
    """Approve (1) unless the probability of a bad risk exceeds the threshold."""
    return (p_bad <= threshold).astype(int)


# %%
# The models
# ----------
# The features are standardised inside each pipeline. The skmeta classifiers
# keep their default ``class_prior="auto"``, which without a fairness penalty
# corrects the probabilities to each group's own share of bad risks (shrunk
# toward the pooled share): the cost rule needs probabilities that match each
# group's frequencies, not balanced classes.
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit

from skmeta import MAMLClassifier, PrototypicalClassifier


def fit_predict(seed):
    """P(bad) of each model on a test split, with the split's rows."""
    train, test = train_test_split(
        np.arange(len(y)),
        test_size=0.3,
        stratify=group + y.astype(str),
        random_state=seed,
    )
    p_bad = {}
    for cls in (MAMLClassifier, PrototypicalClassifier):
        clf = cls(
            max_epochs=30,
            train_split=ValidSplit(0.2, stratified=True, random_state=seed),
            callbacks=[EarlyStopping(patience=3, load_best=True)],
            random_state=seed,
        )
        pipe = make_pipeline(StandardScaler(), clf)
        step = pipe.steps[-1][0]
        pipe.fit(
            X[train], y[train], **{f"{step}__sensitive_features": groups.iloc[train]}
        )
        p_bad[cls.__name__] = pipe.predict_proba(
            X[test], sensitive_features=groups.iloc[test]
        )[:, 0]
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    p_bad["LogisticRegression"] = logreg.fit(X[train], y[train]).predict_proba(X[test])[
        :, 0
    ]
    return test, p_bad


runs = [fit_predict(seed) for seed in range(3)]

# %%
# Probabilities first
# -------------------
# The cost rule is only as good as the probabilities: their ranking (ROC AUC)
# and their calibration (log loss; the mean predicted p(bad) against the share
# of bad risks, 0.30). A network trained for many epochs on 700 rows becomes
# overconfident, which moves the threshold that minimises the cost away from
# 1/6; the early stopping above guards against it.
from sklearn.metrics import log_loss, roc_auc_score


def mean_sd(values, digits=1):
    """Mean ± standard deviation over the splits, as text."""
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


quality = {
    name: {
        "ROC AUC": mean_sd([roc_auc_score(y[t] == 0, p[name]) for t, p in runs], 3),
        "log loss": mean_sd([log_loss(y[t] == 0, p[name]) for t, p in runs], 3),
        "mean p(bad)": mean_sd([p[name].mean() for _, p in runs], 3),
    }
    for name in runs[0][1]
}
print(pd.DataFrame(quality).T.rename_axis("model").to_string())

# %%
# Total cost
# ----------
# The cost of each model's decisions on the 300 test applicants, at the cost
# threshold and at ``predict``'s threshold of 1/2, next to two trivial policies.
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)

totals = {}
for name in runs[0][1]:
    totals[name, "p(bad) > 1/6"] = [cost(y[t], decide(p[name])) for t, p in runs]
    totals[name, "p(bad) > 1/2"] = [cost(y[t], decide(p[name], 0.5)) for t, p in runs]
totals["approve everyone", "-"] = [cost(y[t], np.ones(len(t))) for t, _ in runs]
totals["reject everyone", "-"] = [cost(y[t], np.zeros(len(t))) for t, _ in runs]
print(
    pd.Series({key: mean_sd(v) for key, v in totals.items()}, name="total cost")
    .rename_axis(["model", "reject when"])
    .to_frame()
    .to_string()
)

# %%
# Rejecting when p(bad) exceeds 1/6 rather than 1/2 cuts every model's cost by
# 41 to 43 %. The pooled logistic regression costs least here: four groups that
# differ mostly in their share of bad risks give per-group adaptation little to
# gain, and at the cost threshold MAML's cost varies the most from split to
# split.
#
# By group
# --------
# At the cost threshold: the share of each group approved, the share of its bad
# risks approved (the costly error), the share of its good risks rejected, and
# the cost per applicant. fairlearn's :class:`~fairlearn.metrics.MetricFrame`
# computes them group by group. The skmeta models follow each group's share of
# bad risks more closely (the applicants under 25, with the most bad risks, are
# approved least); each test group holds 20 to 190 applicants, so the smaller
# groups' rates vary much from split to split.
metrics = {
    "approved": selection_rate,
    "bad approved": false_positive_rate,
    "good rejected": false_negative_rate,
    "cost per applicant": cost_per_applicant,
}
frames = []
for seed, (test, p_bad) in enumerate(runs):
    for name, p in p_bad.items():
        frame = MetricFrame(
            metrics=metrics,
            y_true=y[test],
            y_pred=decide(p),
            sensitive_features=group.iloc[test],
        )
        frames.append(frame.by_group.assign(model=name, seed=seed))
by_group = pd.concat(frames).reset_index().drop(columns="seed")
grouped = by_group.groupby(["model", "group"], sort=False)
print(
    (
        grouped.mean().apply(lambda col: col.map("{:.2f}".format))
        + grouped.std().apply(lambda col: col.map(" ± {:.2f}".format))
    ).to_string()
)

# %%
# Cost against the threshold
# --------------------------
# The cost per applicant of each model as the threshold on p(bad) moves: the
# minimum should lie near 1/6 when the probabilities are calibrated. All three
# lie lower, the mean curves' minima at 0.10 to 0.13 (the logistic regression's
# highest, ProtoNet's lowest): every model's p(bad) runs below the share of bad
# risks (see the mean p(bad) above). Where the probabilities are off, a
# threshold chosen on held-out rows serves better than the rule.
import matplotlib.pyplot as plt

thresholds = np.linspace(0.02, 0.6, 59)
fig, ax = plt.subplots(figsize=(7, 4.5))
for name in runs[0][1]:
    curves = np.array(
        [
            [cost_per_applicant(y[t], decide(p[name], th)) for th in thresholds]
            for t, p in runs
        ]
    )
    mean, sd = curves.mean(0), curves.std(0, ddof=1)
    ax.plot(thresholds, mean, label=name)
    ax.fill_between(thresholds, mean - sd, mean + sd, alpha=0.2)
ax.axvline(THRESHOLD, color="gray", linestyle="--", label="1/6")
ax.set_xlabel("reject when p(bad) exceeds")
ax.set_ylabel("cost per test applicant")
ax.set_title("German credit: cost of the decisions (mean ± SD over 3 splits)")
ax.legend()
plt.tight_layout()
plt.show()
