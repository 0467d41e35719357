"""Scorers for model selection, and the accuracy-fairness trade-off plot.

The scorers request ``sensitive_features`` through scikit-learn's metadata
routing and pass them to the estimator's ``predict`` when it accepts them, so
that group-aware estimators are scored on their per-group predictions. They
follow scikit-learn's "greater is better" convention: differences between
groups are negated and named ``neg_*``. Metadata routing must be enabled.
:func:`make_few_shot_scorer` scores the adaptation to groups unseen in
training, as ``partial_fit`` serves them.
"""

from skmeta.metrics._display import FairnessTradeoffDisplay, pareto_front
from skmeta.metrics._few_shot import make_few_shot_scorer
from skmeta.metrics._scorers import (
    FAIRNESS_SCORERS,
    demographic_parity_ratio_scorer,
    group_aware_accuracy_scorer,
    make_accuracy_disparity_scorer,
    make_fairness_scorer,
    neg_demographic_parity_difference_scorer,
    neg_equal_opportunity_difference_scorer,
    neg_equalized_odds_difference_scorer,
    worst_group_accuracy_scorer,
)

__all__ = [
    "FAIRNESS_SCORERS",
    "FairnessTradeoffDisplay",
    "demographic_parity_ratio_scorer",
    "group_aware_accuracy_scorer",
    "make_accuracy_disparity_scorer",
    "make_fairness_scorer",
    "make_few_shot_scorer",
    "neg_demographic_parity_difference_scorer",
    "neg_equal_opportunity_difference_scorer",
    "neg_equalized_odds_difference_scorer",
    "pareto_front",
    "worst_group_accuracy_scorer",
]
