"""Soak: many new-group ``partial_fit`` calls on one fitted model.

A fitted model adapts to 10,000 groups it never saw, one ``partial_fit`` call
of 10 rows (5 per class) each, as a service that meets new groups would. The
script reports, in blocks of calls, the median time per call and the process's
resident memory, and checks that both stay flat: the last block against the
first (ratios in the same run; absolute times drift between machines). It also
measures the memory each group adds (the state, the rows kept for it and the
class counts) against the figure the documentation gives: MAML keeps the
adapted parameters of the network (4 bytes each), ProtoNet one prototype per
class (4 bytes per embedding dimension) and a presence flag, and with its
logistic head (the default) the head's coefficients (4 bytes per class and
embedding dimension or feature), its intercepts (4 bytes per class) and the
group's penalty (4 bytes); MAML's logistic correction (the default) adds 4
bytes per class and feature, 4 per class and 4 for the penalty; both keep
the group's rows (up to ``support_size`` per class) with their labels,
weights, group codes and task codes.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_soak.py [--quick] [--calls N]
"""

import argparse
import gc
import platform
import resource
import time

import numpy as np
import torch
from bench_fewshot import provenance

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification


def rss_mb():
    """Resident memory of this process now (Linux: /proc), in MB."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # not Linux: the peak instead
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def state_bytes(clf):
    """Bytes of the task states in use (spare room left out) and of the
    support store."""
    n = len(clf.tasks_) + 1
    states = sum(v[0].numel() * v.element_size() * n for v in clf.states_.values())
    return states, clf.support_.nbytes()


def documented_bytes_per_group(clf, n_rows, n_features):
    """The per-group figure of the documentation (see the module docstring)."""
    if isinstance(clf, MAMLClassifier):
        state = sum(p.numel() for p in clf.module_.parameters()) * 4
        if clf.head_ == "logistic":
            state += len(clf.classes_) * (clf.n_features_model_ * 4 + 4) + 4
    else:
        dim = clf.states_["prototypes"].shape[-1]
        state = len(clf.classes_) * (dim * 4 + 1)
        if clf.head_ == "logistic":
            n_model = clf.n_features_model_
            state += len(clf.classes_) * ((dim + n_model) * 4 + 4) + 4
    state += 4  # the share of the group's own rows (adaptation_weight_)
    rows = n_rows * (n_features * 4 + 8 + 4 + 8 + 8)  # X, y, weight, group, task
    counts = len(clf.classes_) * 8  # class weights of every row seen
    return state + rows + counts


def soak(klass, n_calls, block, seed=0):
    X, y, groups = make_group_classification(
        n_groups=20, n_samples_per_group=200, n_features=20, random_state=seed
    )
    clf = klass(max_epochs=2, random_state=seed, n_threads=1).fit(
        X, y, sensitive_features=groups
    )
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    times, memory = [], []
    gc.collect()
    before = state_bytes(clf)
    rss_start = rss_mb()
    for call in range(n_calls):
        rows = np.r_[rng.choice(pos, 5), rng.choice(neg, 5)]
        start = time.perf_counter()
        clf.partial_fit(X[rows], y[rows], sensitive_features=[f"new {call}"] * 10)
        times.append(time.perf_counter() - start)
        if (call + 1) % block == 0:
            memory.append(rss_mb())
    after = state_bytes(clf)
    per_group = (sum(after) - sum(before)) / n_calls
    blocks = np.array(times).reshape(-1, block)
    return {
        "model": klass.__name__,
        "median_ms": np.median(blocks, axis=1) * 1e3,
        "rss_mb": np.array(memory),
        "rss_start": rss_start,
        "per_group_bytes": per_group,
        "documented_bytes": documented_bytes_per_group(clf, 10, X.shape[1]),
        "n_tasks": len(clf.tasks_),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="500 calls")
    args = parser.parse_args(argv)
    n_calls = 500 if args.quick else args.calls
    block = max(1, n_calls // 10)
    n_calls = block * 10
    torch.set_num_threads(1)
    print("# Soak: new-group partial_fit calls\n")
    print(
        f"skmeta {skmeta.__version__} ({provenance()}), torch {torch.__version__}, "
        f"Python {platform.python_version()}; {n_calls} calls of 10 rows (5 per "
        f"class), each a new group; blocks of {block} calls; one torch thread.\n"
    )
    rows = []
    for klass in (MAMLClassifier, PrototypicalClassifier):
        start = time.perf_counter()
        r = soak(klass, n_calls, block)
        r["seconds"] = time.perf_counter() - start
        rows.append(r)
    print(
        "| model | groups at the end | median ms/call, first block | last block "
        "| last / first | RSS MB, first block | last block | MB per 1,000 groups "
        "| bytes per group, measured | documented |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t, m = r["median_ms"], r["rss_mb"]
        growth = (m[-1] - m[0]) / (9 * n_calls / 10) * 1000
        print(
            f"| {r['model']} | {r['n_tasks']} | {t[0]:.2f} | {t[-1]:.2f} | "
            f"{t[-1] / t[0]:.2f} | {m[0]:.0f} | {m[-1]:.0f} | {growth:.1f} | "
            f"{r['per_group_bytes']:.0f} | {r['documented_bytes']} |"
        )
    print("\nMedian ms per call by block:")
    for r in rows:
        print(f"- {r['model']}: " + ", ".join(f"{v:.2f}" for v in r["median_ms"]))
    print(f"\nWall time: {sum(r['seconds'] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
