"""Print the versions of skmeta and its dependencies."""

import platform
from importlib.metadata import PackageNotFoundError, version


def show_versions():
    """Print the versions of Python, skmeta, its dependencies, torch's build,
    its threads and the BLAS in use.

    Include this in bug reports; as scikit-learn's ``show_versions``.

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
        "scipy",
        "pandas",
    ]:
        try:
            print(f"{name}: {version(name)}")
        except PackageNotFoundError:
            print(f"{name}: not installed")
    cuda = torch.version.cuda
    print(f"torch build: {'CUDA ' + cuda if cuda else 'CPU only'}")
    print(f"cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            print(f"cuda device {i}: {torch.cuda.get_device_name(i)}")
    print(
        f"torch threads: {torch.get_num_threads()} intra-op, "
        f"{torch.get_num_interop_threads()} inter-op"
    )
    config = torch.__config__.show()
    blas = [
        item.split("=", 1)[1].strip()
        for line in config.splitlines()
        for item in line.split(",")
        if item.strip().startswith(("BLAS_INFO=", "LAPACK_INFO="))
    ]
    print(f"torch BLAS: {', '.join(blas) if blas else 'unknown'}")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(
                f"threadpool: {pool.get('internal_api')} "
                f"{pool.get('version')} ({pool.get('num_threads')} threads, "
                f"{pool.get('filepath', '').rsplit('/', 1)[-1]})"
            )
    except ImportError:  # pragma: no cover - threadpoolctl comes with sklearn
        pass
