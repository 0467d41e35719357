"""Meta-learning classifiers that serve small and new groups, for scikit-learn."""

from ._maml import MAMLClassifier
from ._prototypical import PrototypicalClassifier
from ._version import __version__
from .utils._show_versions import show_versions

__all__ = ["MAMLClassifier", "PrototypicalClassifier", "show_versions", "__version__"]
