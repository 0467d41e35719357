"""What ProtoNet's logistic head costs a new group's ``partial_fit``.

The data and model of ``bench_speed.py``'s latency section (10 groups, 75,045
rows, 1 epoch of 20 meta-batches, ``n_threads=1``): ``PrototypicalClassifier``
fitted once with ``head="logistic"`` (the default ``"auto"`` until
``head_min_rows_``, ``4c2fc14``; on these data ``"auto"`` gives a 10-row group
no head) and once with ``head="prototypes"``, then
new-group ``partial_fit`` calls of 10 rows, interleaved call by call so that
all settings see the same machine load:

- ``logistic (one solve)``: a new group, whose rows all choose
  its penalty, has its head fitted with the cross-validation's problems;
- ``logistic (two solves)``: the same model with the head fitted by a
  separate Newton solve after the choice (the package before this option,
  forced here through the private ``_MERGED_TASKS``); the same heads to the
  solver's tolerance;
- ``prototypes``: no head to choose.

Prints the median and minimum times and the ratios to the prototypes.

Run (about a minute)::

    OMP_NUM_THREADS=1 python benchmarks/bench_head_latency.py
"""

import argparse
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
import bench_speed as S  # noqa: E402

from skmeta import PrototypicalClassifier, _prototypical  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X, y, groups = S.latency_rows()[10]
    print(f"# bench_head_latency: skmeta ({B.provenance()})")
    print(f"Command: `python benchmarks/bench_head_latency.py --calls {args.calls}`")
    print()
    kwargs = dict(random_state=S.RANDOM_STATE, **S.LATENCY_FIT)
    logistic = PrototypicalClassifier(head="logistic", **kwargs).fit(
        X, y, sensitive_features=groups
    )
    prototypes = PrototypicalClassifier(head="prototypes", **kwargs).fit(
        X, y, sensitive_features=groups
    )
    merged = _prototypical._MERGED_TASKS
    settings = {
        "logistic (one solve)": (logistic, merged),
        "logistic (two solves)": (logistic, 0),
        "prototypes": (prototypes, merged),
    }
    times = {name: [] for name in settings}
    for model in (logistic, prototypes):
        S.partial_fit_latency(model, 1, offset=100_000)  # warm-up
    try:
        for i in range(args.calls):
            for j, (name, (model, n_merged)) in enumerate(settings.items()):
                _prototypical._MERGED_TASKS = n_merged
                # A new group each call, for each setting.
                times[name] += S.partial_fit_latency(model, 1, offset=3 * i + j)
    finally:
        _prototypical._MERGED_TASKS = merged
    base = statistics.median(times["prototypes"])
    print("| head | median ms | min ms | / prototypes |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {1000 * median:.2f} | {1000 * min(values):.2f} | "
            f"{median / base:.2f} |"
        )


if __name__ == "__main__":
    main()
