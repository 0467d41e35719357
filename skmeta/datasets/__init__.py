"""Bundled fairness data sets and a generator of grouped classification problems.

The loaders read data shipped inside the package (nothing is downloaded) and return a
:class:`~sklearn.utils.Bunch` with ``data``, ``target``, ``sensitive_features``,
``feature_names``, ``target_names``, ``frame`` and ``DESCR``.
"""

from skmeta.datasets._base import (
    load_adult,
    load_compas,
    load_german_credit,
    load_heart_disease,
)
from skmeta.datasets._generators import make_group_classification

__all__ = [
    "load_adult",
    "load_compas",
    "load_german_credit",
    "load_heart_disease",
    "make_group_classification",
]
