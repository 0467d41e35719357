"""Fit and predict time against the number of groups, this checkout against
an earlier commit of the package, interleaved in one process.

The package at ``--against`` is exported with ``git archive`` into a scratch
folder and imported under another name, so both versions run side by side on
the same data (``bench_speed.py``'s scale data: 50,000 rows in 10 to 10,000
groups, ``max_epochs=1``, ``n_threads=1``), alternating call by call, so that
both see the same machine load. Each fit is followed by ``predict_proba`` on
all rows, five times (the fastest counts), and the script prints the largest
difference between the two versions' probabilities: 0 for a change that
should not move any result.

Prints, per estimator and number of groups, the smallest fit and predict times
of each version over ``--repeats`` fits, the ratio of the fit times, and each
version's fit and predict times per row relative to its 10-group ones (the
scale target's ratios).

With ``--new-groups N``, each fit is also followed by a ``partial_fit`` of N
never-seen groups of 10 rows (``bench_speed.py``'s new-group rows) and five
``predict_proba`` calls on 5,000 rows of the data relabelled as those groups
(the smallest time counts): new groups are served through the training tasks'
mixture where the fitted ``task_mixture_`` is above 0 (printed;
``--task-mixture 0.5`` fixes it).

Run (about 4 minutes with the defaults)::

    OMP_NUM_THREADS=1 python benchmarks/compare_fit_speed.py --against ec33904~2
"""

import argparse
import importlib
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
import bench_speed as S  # noqa: E402

import skmeta  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Predict calls after each fit (all rows each); the smallest time counts.
PREDICT_CALLS = 5


def import_commit(commit, scratch):
    """The package at ``commit``, imported as ``skmeta_<short hash>``."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    name = f"skmeta_{short}"
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "skmeta"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
    package = pathlib.Path(scratch) / name
    (pathlib.Path(scratch) / "skmeta").rename(package)
    absolute = re.compile(r"\b(from|import) skmeta\b")
    for path in package.rglob("*.py"):
        text = path.read_text()
        path.write_text(absolute.sub(rf"\1 {name}", text))
    sys.path.insert(0, scratch)
    return name, importlib.import_module(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="an earlier commit")
    parser.add_argument("--groups", default="10,1000,10000")
    parser.add_argument("--estimators", default="MAMLClassifier,PrototypicalClassifier")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--new-groups",
        type=int,
        default=0,
        help="new groups added by partial_fit after each fit, then predicted",
    )
    parser.add_argument(
        "--task-mixture",
        default="auto",
        help="the estimators' task_mixture ('auto' or a share in [0, 1])",
    )
    args = parser.parse_args(argv)
    mixture = (
        args.task_mixture if args.task_mixture == "auto" else float(args.task_mixture)
    )
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    groups = [int(g) for g in args.groups.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        name, old = import_commit(args.against, scratch)
        versions = {"this checkout": skmeta, args.against: old}
        B.exploration_header("compare_fit_speed", argv)
        print(
            f"Against the package at {args.against} (imported as {name}); "
            f"torch {torch.__version__}, torch threads 1; 50,000 rows, "
            f"max_epochs=1; fit s: the smallest of {args.repeats} fits, "
            f"alternating between the versions; predict: the smallest of "
            f"{PREDICT_CALLS} calls after each fit.\n"
        )
        extra = " new-group predict ms (min) | task_mixture_ |" * bool(args.new_groups)
        print(
            "| estimator | groups | version | fit s (min) | / other version "
            "| x 10 groups, per row | predict ms (min) | x 10 groups, per row "
            "| max abs. difference of probabilities |" + extra
        )
        print("|---|---|---|---|---|---|---|---|---|" + "---|---|" * bool(extra))
        for estimator in args.estimators.split(","):
            X, y, g = S.make_rows(400, 10)
            for module in versions.values():  # warm-up
                getattr(module, estimator)(
                    max_epochs=1, steps_per_epoch=2, n_threads=1, random_state=0
                ).fit(X, y, sensitive_features=g)
            base, base_predict = {}, {}
            for n_groups in groups:
                X, y, g = S.make_rows(50_000, n_groups)
                times = {label: [] for label in versions}
                predict_times = {label: [] for label in versions}
                proba, new_times, shares = {}, {label: [] for label in versions}, {}
                if args.new_groups:
                    parts = [S.new_group_rows(i) for i in range(args.new_groups)]
                    new_X = np.concatenate([p[0] for p in parts])
                    new_y = np.concatenate([p[1] for p in parts])
                    new_g = np.concatenate([p[2] for p in parts])
                    query_X = X[:5000]
                    query_g = np.array([f"new{i}" for i in range(args.new_groups)])
                    query_g = query_g[np.arange(5000) % args.new_groups]
                for r in range(args.repeats):
                    order = list(versions.items())
                    for label, module in order if r % 2 == 0 else order[::-1]:
                        clf = getattr(module, estimator)(
                            max_epochs=1,
                            n_threads=1,
                            random_state=S.RANDOM_STATE,
                            task_mixture=mixture,
                        )
                        start = time.perf_counter()
                        clf.fit(X, y, sensitive_features=g)
                        times[label].append(time.perf_counter() - start)
                        clf.predict_proba(X[:1000], sensitive_features=g[:1000])
                        for _ in range(PREDICT_CALLS):
                            start = time.perf_counter()
                            proba[label] = clf.predict_proba(X, sensitive_features=g)
                            predict_times[label].append(time.perf_counter() - start)
                        if args.new_groups:
                            clf.partial_fit(new_X, new_y, sensitive_features=new_g)
                            shares[label] = clf.task_mixture_
                            for _ in range(PREDICT_CALLS):
                                start = time.perf_counter()
                                p = clf.predict_proba(
                                    query_X, sensitive_features=query_g
                                )
                                new_times[label].append(time.perf_counter() - start)
                            proba[label] = np.concatenate([proba[label], p])
                best = {label: min(t) for label, t in times.items()}
                predict = {label: min(t) for label, t in predict_times.items()}
                labels = list(versions)
                diff = float(np.abs(proba[labels[0]] - proba[labels[1]]).max())
                for label in labels:
                    other = best[labels[1] if label == labels[0] else labels[0]]
                    base.setdefault(label, best[label])
                    base_predict.setdefault(label, predict[label])
                    ratio, per_row = best[label] / other, best[label] / base[label]
                    print(
                        f"| {estimator} | {n_groups:,} | {label} | {best[label]:.2f} "
                        f"| {ratio:.2f} | {per_row:.2f} | {predict[label] * 1e3:.1f} "
                        f"| {predict[label] / base_predict[label]:.2f} | {diff:.1e} |"
                        + (
                            f" {min(new_times[label]) * 1e3:.1f} | {shares[label]} |"
                            if args.new_groups
                            else ""
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
