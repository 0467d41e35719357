"""Memory and time of fit and predict on wide sparse rows (one-hot data).

A data set of many one-hot columns is small as a sparse matrix but large
dense: 20,000 rows of 5,000 columns, 8 ones per row, take 2 MB sparse and
400 MB as dense float32. skmeta densifies rows a chunk at a time; this script
measures what a fit and a predict of all rows cost in peak memory (the
process's largest resident size, above what it held before the call: the
package imported and the data built) and in time, for each estimator, with
``max_epochs=2`` and the default parameters otherwise (20 groups as
``sensitive_features``). The reference, printed beside, is the size of the
rows as one dense float32 array.

Fit and predict each run in a fresh process (peak memory is per process;
predict loads the fitted model, pickled). With
``--against COMMIT``, the package at that commit (exported with ``git
archive``, as in ``compare_fit_speed.py``) is measured the same way, and the
largest difference between the two versions' probabilities is printed.

Run (about 3 minutes; 5 with ``--against``; ``--quick``, 2,000 rows of 1,000
columns, checks that the script runs)::

    OMP_NUM_THREADS=1 python benchmarks/bench_wide.py --against 002e6a8
"""

import argparse
import contextlib
import json
import pathlib
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import scipy.sparse as sp

HERE = pathlib.Path(__file__).resolve().parent
N_ROWS, N_COLUMNS, ONES, N_GROUPS = 20_000, 5_000, 8, 20
# --quick (CI: the script runs): 2,000 rows of 1,000 columns.
QUICK_ROWS, QUICK_COLUMNS = 2_000, 1_000


def sizes(quick):
    """``(rows, columns)`` of the data: the full run's or ``--quick``'s."""
    return (QUICK_ROWS, QUICK_COLUMNS) if quick else (N_ROWS, N_COLUMNS)


def make_wide(quick=False, seed=0):
    """Sparse one-hot-like rows, labels from a linear rule, 20 groups."""
    n_rows, n_columns = sizes(quick)
    rng = np.random.default_rng(seed)
    columns = rng.integers(0, n_columns, (n_rows, ONES))
    X = sp.csr_matrix(
        (
            np.ones(n_rows * ONES, dtype=np.float32),
            columns.ravel(),
            np.arange(0, n_rows * ONES + 1, ONES),
        ),
        shape=(n_rows, n_columns),
    )
    coef = rng.standard_normal(n_columns)
    y = (np.asarray(X @ coef).ravel() + rng.standard_normal(n_rows) > 0).astype(int)
    groups = rng.integers(0, N_GROUPS, n_rows)
    return X, y, groups


def peak_mb():
    """The process's peak resident size since the last :func:`reset_peak`
    (Linux's VmHWM; elsewhere the peak since the process started), in MB."""
    try:
        status = pathlib.Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def reset_peak():
    """Reset the peak to the current resident size (Linux; else nothing)."""
    with contextlib.suppress(OSError):
        pathlib.Path("/proc/self/clear_refs").write_text("5")


def worker(step, estimator, package, scratch, out, quick):
    """``fit`` (then pickle the model) or ``predict`` (the pickled model) in
    this process; write the figures (and the probabilities)."""
    warnings.filterwarnings("ignore")
    if package == "skmeta":
        import skmeta as pkg
    else:
        sys.path.insert(0, str(HERE))
        from compare_fit_speed import import_commit

        _, pkg = import_commit(package, scratch)
    import torch

    torch.set_num_threads(1)
    X, y, groups = make_wide(quick == "quick")
    reset_peak()
    start_mb = peak_mb()
    tic = time.perf_counter()
    if step == "fit":
        klass = getattr(pkg, estimator)
        model = klass(max_epochs=2, random_state=0).fit(X, y, sensitive_features=groups)
        seconds = time.perf_counter() - tic
        pathlib.Path(out + ".pkl").write_bytes(pickle.dumps(model))
    else:
        model = pickle.loads(pathlib.Path(out + ".pkl").read_bytes())
        reset_peak()
        start_mb = peak_mb()
        tic = time.perf_counter()
        proba = model.predict_proba(X, sensitive_features=groups)
        seconds = time.perf_counter() - tic
        np.save(out + ".npy", proba)
    figures = dict(mb=peak_mb() - start_mb, seconds=seconds)
    pathlib.Path(f"{out}.{step}.json").write_text(json.dumps(figures))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="an earlier commit, measured alike")
    parser.add_argument("--quick", action="store_true", help="2,000 x 1,000 rows")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    sys.path.insert(0, str(HERE))
    import bench_fewshot as B

    B.exploration_header("bench_wide", argv)
    X, _, _ = make_wide(args.quick)
    n_rows, n_columns = X.shape
    dense_mb = n_rows * n_columns * 4 / 2**20
    print(
        f"\n{n_rows:,} rows, {n_columns:,} columns, {ONES} ones per row "
        f"({X.data.nbytes / 2**20:.1f} MB of values sparse, {dense_mb:.0f} MB as "
        f"dense float32), {N_GROUPS} groups; max_epochs=2; one torch thread; "
        "fit and predict each in a fresh process (predict: the pickled model). "
        "Peak: the process's largest resident size above what it held before "
        "the call (the package imported, the data built).\n"
    )
    print(
        "| estimator | version | fit s | fit's peak, MB | / dense rows "
        "| predict s | predict's peak, MB | / dense rows | largest difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    versions = ["skmeta"] + ([args.against] if args.against else [])
    with tempfile.TemporaryDirectory() as scratch:
        for estimator in ("MAMLClassifier", "PrototypicalClassifier"):
            results = {}
            for version in versions:
                out = str(pathlib.Path(scratch) / f"{estimator}-{len(results)}")
                figures = {}
                for step in ("fit", "predict"):
                    folder = tempfile.mkdtemp(dir=scratch)  # the export
                    command = [sys.executable, __file__, "--worker", step]
                    command += [estimator, version, folder, out]
                    command += ["quick" if args.quick else "full"]
                    subprocess.run(command, check=True)
                    figures[step] = json.loads(
                        pathlib.Path(f"{out}.{step}.json").read_text()
                    )
                results[version] = (figures, np.load(out + ".npy"))
            reference = results["skmeta"][1]
            for version, (f, proba) in results.items():
                fit, predict = f["fit"], f["predict"]
                diff = np.abs(proba - reference).max()
                name = "this checkout" if version == "skmeta" else version
                print(
                    f"| {estimator} | {name} | {fit['seconds']:.1f} "
                    f"| {fit['mb']:,.0f} | {fit['mb'] / dense_mb:.1f} "
                    f"| {predict['seconds']:.2f} | {predict['mb']:,.0f} "
                    f"| {predict['mb'] / dense_mb:.2f} | {diff:.1e} |"
                )


if __name__ == "__main__":
    main()
