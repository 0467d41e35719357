"""Exploration: can the heads' cross-validation be solved faster, to the same optimum?

With many mid-sized groups, ``fit`` spends most of its time choosing each
group's head penalty: 5 folds x 13 penalties of regularised logistic
regressions per group, solved together by Newton's method from zero (see
``skmeta/_heads.py``). Two ways to reach the same optima faster are measured
on the batches of such a fit (``PrototypicalClassifier``, the scale data of
``bench_speed.py``):

- **warm starts along the penalty path**: the 13 penalties of each fold solved
  in turn from the largest, each from the last one's solution, instead of all
  at once from zero. Gradient evaluations (the problems still moving at each
  Newton iteration, summed) and time, interleaved, smallest of the repeats;
  and the largest difference of the logits from today's solutions;
- **larger batches**: the whole fit with the cross-validation's batch budget
  (``_HEAD_BUDGET``) at a quarter, today's and four times today's; the same
  heads.

Run (about 2 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_head_solver.py
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
from bench_speed import make_rows  # noqa: E402

from skmeta import PrototypicalClassifier  # noqa: E402
from skmeta import _heads as H  # noqa: E402


def fit(X, y, groups):
    # head="logistic": every group with five rows of each class (98 % of
    # them) runs the cross-validation (head="auto" skips groups under
    # head_min_rows_).
    clf = PrototypicalClassifier(
        max_epochs=1, n_threads=1, random_state=0, head="logistic"
    )
    start = time.perf_counter()
    clf.fit(X, y, sensitive_features=groups)
    return clf, time.perf_counter() - start


def capture_batches(X, y, groups, n_batches):
    """The first ``n_batches`` full batches of binary problems that a fit
    hands to the solver (G, h0, y, w, alpha)."""
    batches, original = [], H._binary_dual
    n_penalties = len(H._HEAD_PENALTIES)

    def recording(G, h0, y, w, alpha, n_iter):
        full = len(G) % n_penalties == 0 and len(G) >= 10 * n_penalties
        if len(batches) < n_batches and full:
            batches.append([t.clone() for t in (G, h0, y, w, alpha)])
        return original(G, h0, y, w, alpha, n_iter)

    H._binary_dual = recording
    try:
        fit(X, y, groups)
    finally:
        H._binary_dual = original
    return batches


def solve(G, h0, y, w, alpha, start, counts):
    """``_binary_dual`` from ``start`` instead of zero; appends the number of
    problems evaluated at each Newton iteration to ``counts``."""
    newton = H._newton

    def counted(G_, alpha_, newton_step, loss, beta, n_iter, Gbeta=None, dual=True):
        def step(active, G_a, Gb, b):
            counts.append(len(active))
            return newton_step(active, G_a, Gb, b)

        beta = start.clone()
        return newton(G_, alpha_, step, loss, beta, n_iter, H._times(G_, beta), dual)

    H._newton = counted
    try:
        return H._binary_dual(G, h0, y, w, alpha, H._NEWTON_ITERATIONS)
    finally:
        H._newton = newton


def warm_starts(batch, repeats):
    G, h0, y, w, alpha = batch
    n_pen = len(H._HEAD_PENALTIES)
    n_folds = len(G) // n_pen
    by_penalty = [t.view(n_folds, n_pen, *t.shape[1:]) for t in batch]

    def cold(counts):
        return solve(G, h0, y, w, alpha, torch.zeros_like(h0), counts)

    def warm(counts):
        out = torch.zeros(n_folds, n_pen, h0.shape[-1], dtype=h0.dtype)
        last = torch.zeros(n_folds, h0.shape[-1], dtype=h0.dtype)
        for k in range(n_pen - 1, -1, -1):  # the largest penalty first
            last = solve(*(t[:, k] for t in by_penalty), last, counts)
            out[:, k] = last
        return out.reshape(len(G), -1)

    cold_counts, warm_counts = [], []
    reference, warmed = cold(cold_counts), warm(warm_counts)
    gap = float((G @ (warmed - reference)[..., None]).abs().max())
    times = {"cold": [], "warm": []}
    for _ in range(repeats):
        for name, f in (("cold", cold), ("warm", warm)):
            start = time.perf_counter()
            f([])
            times[name].append(time.perf_counter() - start)
    return sum(cold_counts), sum(warm_counts), times, gap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*left out of meta-training.*")
    B.exploration_header("explore_head_solver", argv)
    n_rows, n_groups = (5_000, 100) if args.quick else (50_000, 1_000)
    n_batches, repeats = (1, 2) if args.quick else (3, 7)
    X, y, groups = make_rows(n_rows, n_groups)
    print(
        f"PrototypicalClassifier, max_epochs=1, one thread; {n_rows:,} rows in "
        f"{n_groups:,} groups of 20 columns (`bench_speed.py`'s scale data).\n"
    )
    fit(X[:400], y[:400], groups[:400])  # warm-up
    print("## Warm starts along the penalty path\n")
    print(
        "| batch | problems | gradient evaluations, from zero | warm-started | "
        "time from zero (ms) | warm-started (ms) | largest logit difference |"
    )
    print("|---|---|---|---|---|---|---|")
    for i, batch in enumerate(capture_batches(X, y, groups, n_batches)):
        cold_n, warm_n, times, gap = warm_starts(batch, repeats)
        print(
            f"| {i + 1} | {len(batch[0]):,} | {cold_n:,} | {warm_n:,} "
            f"({100 * (warm_n / cold_n - 1):+.0f} %) | {1e3 * min(times['cold']):.1f} "
            f"| {1e3 * min(times['warm']):.1f} | {gap:.1e} |"
        )
    print(f"\nTimes: the smallest of {repeats} interleaved calls.\n")
    print("## The cross-validation's batch budget\n")
    print("| `_HEAD_BUDGET` | fit (s), smallest of 2 | same probabilities |")
    print("|---|---|---|")
    saved = H._HEAD_BUDGET
    reference = None
    try:
        for budget in (saved // 4, saved, saved * 4):
            H._HEAD_BUDGET = budget
            runs = [fit(X, y, groups) for _ in range(2)]
            proba = runs[0][0].predict_proba(X[:2000], sensitive_features=groups[:2000])
            if reference is None:
                reference = proba
            same = bool((proba == reference).all())
            label = f"2^{budget.bit_length() - 1}" + (
                " (today)" if budget == saved else ""
            )
            print(f"| {label} | {min(t for _, t in runs):.2f} | {same} |")
    finally:
        H._HEAD_BUDGET = saved


if __name__ == "__main__":
    main()
