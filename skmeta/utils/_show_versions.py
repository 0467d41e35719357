"""Print the versions of skmeta and its dependencies."""

import platform
from importlib.metadata import PackageNotFoundError, version


def show_versions():
    """Print the versions of Python, skmeta, its dependencies and CUDA.

    Examples
    --------
    >>> from skmeta import show_versions
    >>> show_versions()  # doctest: +SKIP
    """
    import torch

    print(f"python: {platform.python_version()} ({platform.platform()})")
    for name in [
        "skmeta",
        "scikit-learn",
        "skorch",
        "torch",
        "fairlearn",
        "numpy",
        "pandas",
    ]:
        try:
            print(f"{name}: {version(name)}")
        except PackageNotFoundError:
            print(f"{name}: not installed")
    print(f"cuda available: {torch.cuda.is_available()}")
