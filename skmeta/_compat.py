"""The private scikit-learn names skmeta uses, imported in one place.

scikit-learn moves or renames its private helpers between releases. Every
private import goes through this module, so a release that moves one breaks
this file only (imbalanced-learn does the same with ``sklearn_compat``). The
tested range of scikit-learn is declared in ``pyproject.toml``.
"""

from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing
from sklearn.utils._metadata_requests import RequestMethod
from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.metadata_routing import _MetadataRequester, _routing_enabled
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "BaseSearchCV",
    "Interval",
    "Options",
    "RequestMethod",
    "StrOptions",
    "_MetadataRequester",
    "_check_partial_fit_first_call",
    "_check_sample_weight",
    "_routing_enabled",
    "_safe_indexing",
    "check_matplotlib_support",
    "validate_parameter_constraints",
]
