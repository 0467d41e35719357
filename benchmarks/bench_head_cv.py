"""MAML's per-group correction: its cross-validation's solver, two ways.

With many mid-sized groups, ``MAMLClassifier.fit`` spends much of its time
choosing each group's correction penalty: 5 folds x 13 penalties of shrunk
logistic regressions per group (``skmeta/_heads.py``, ``cv_losses``). Where a
task has more rows than columns, those problems are solved in the columns'
space. This script records the batches a fit hands to ``choose_penalty``
(the scale data of ``bench_speed.py``: 50,000 rows in 1,000 groups of 20
columns; ``head="logistic"``, so that every group with five rows of each
class cross-validates (98 % of them; without the spread a group needs five),
as a group added by ``partial_fit`` does: with ``"auto"`` the
training groups need ``head_min_rows_`` rows, which none of these has) and
solves them again, interleaved, with

- the per-fold path (``_fold_changes``: each fold's fitting rows gathered and
  each of its 65 problems solved with products of its own), and
- today's path (``_binary_primal_shared``: a task's 65 problems share its
  rows, so its products are one matrix product for all of them),

and prints the time of each (the smallest of the repeats), and whether they
choose the same penalties and by how much their held-out losses differ.

Run (about 1 minute; ``--quick``: 100 groups of 50 rows, 10 seconds)::

    OMP_NUM_THREADS=1 python benchmarks/bench_head_cv.py
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

from skmeta import MAMLClassifier  # noqa: E402
from skmeta import _heads as H  # noqa: E402
from skmeta import _maml as maml_module  # noqa: E402


def capture(n_rows, n_groups):
    """The arguments of every ``choose_penalty`` call of a default fit."""
    calls, original = [], maml_module.choose_penalty

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    X, y, groups = make_rows(n_rows, n_groups)
    maml_module.choose_penalty = recording
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MAMLClassifier(
                max_epochs=1, n_threads=1, random_state=0, head="logistic"
            ).fit(X, y, sensitive_features=groups)
    finally:
        maml_module.choose_penalty = original
    return calls


def per_fold_losses(phi, f0, y, w, fit, held_out):
    """``cv_losses`` with every fold's problems solved on their own."""
    penalties = H._HEAD_PENALTIES.to(phi.device, phi.dtype)
    n_fit = int(fit.sum(-1).max())
    change, _ = H._fold_changes(phi, f0, y, w, fit, penalties, n_fit, False)
    return H.held_out_losses(f0, change, y, w, held_out, penalties)


def choose(losses, args, kwargs):
    phi, f0, y, w, fit, held_out, used = args[:7]
    candidates, row_loss = losses(phi, f0, y, w, fit, held_out)
    tolerance = args[7] if len(args) > 7 else kwargs.get("tolerance", 1.0)
    max_penalty = args[8] if len(args) > 8 else kwargs.get("max_penalty")
    allowed = H.allowed_candidates(candidates, max_penalty)
    chosen = H.one_standard_error_choice(
        candidates, row_loss, used.any(1), tolerance, allowed
    )
    return chosen, row_loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="100 groups of 50 rows, one repeat"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.groups, args.rows, args.repeats = 100, 5000, 1
    torch.set_num_threads(1)
    B.exploration_header("bench_head_cv", argv)
    calls = capture(args.rows, args.groups)
    calls = [c for c in calls if c[0][0].shape[-2] > c[0][0].shape[-1]]
    n_tasks = sum(len(c[0][0]) for c in calls)
    print(
        f"\nMAMLClassifier(max_epochs=1, head='logistic'), {args.rows:,} rows in "
        f"{args.groups:,} "
        f"groups: {len(calls)} batches, {n_tasks} tasks, "
        f"{n_tasks * H._HEAD_FOLDS * len(H._HEAD_PENALTIES):,} problems; one "
        "thread.\n"
    )
    paths = {"per fold": per_fold_losses, "shared rows (today)": H.cv_losses}
    times = {name: [] for name in paths}
    results = {}
    for _ in range(args.repeats):
        for name, losses in paths.items():
            start = time.perf_counter()
            results[name] = [choose(losses, a, k) for a, k in calls]
            times[name].append(time.perf_counter() - start)
    (a, b) = results.values()
    same = all(bool((x[0] == y[0]).all()) for x, y in zip(a, b, strict=True))
    gap = max(float((x[1] - y[1]).abs().max()) for x, y in zip(a, b, strict=True))
    print("| path | seconds (smallest) | / per fold |")
    print("|---|---|---|")
    base = min(times["per fold"])
    for name, values in times.items():
        print(f"| {name} | {min(values):.3f} | {min(values) / base:.2f} |")
    print(
        f"\nSame penalties: {same}; largest difference of a held-out loss: {gap:.1e}."
    )


if __name__ == "__main__":
    main()
