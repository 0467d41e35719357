"""What ``task_mixture`` adds to a new group's ``partial_fit``.

The data and models of ``bench_speed.py``'s latency section (10 groups,
75,045 rows, 1 epoch of 20 meta-batches, ``n_threads=1``): ``MAMLClassifier``
and ``PrototypicalClassifier`` fitted twice, with ``task_mixture="auto"`` and
``task_mixture=0``, then new-group ``partial_fit`` calls of 10 rows, the two
settings interleaved call by call so that both see the same machine load.
Prints the fitted shares, whether the mixture reads the rows' columns
(``task_mixture_columns_``), the median and minimum times and their ratio.

With ``--columns``, what the rows' columns add: each estimator fitted once
with ``task_mixture=0.5`` (a number always reads the columns) and timed
against a copy whose columns' moments are removed (a private attribute; the
mixture then weighs the training tasks by the rows' classes alone).

Run (about a minute each)::

    OMP_NUM_THREADS=1 python benchmarks/bench_mixture_latency.py
    OMP_NUM_THREADS=1 python benchmarks/bench_mixture_latency.py --columns
"""

import argparse
import copy
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402
import bench_speed as S  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument(
        "--columns",
        action="store_true",
        help="task_mixture=0.5 with the rows' columns against without them",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X, y, groups = S.latency_rows()[10]
    print(f"# bench_mixture_latency: skmeta ({B.provenance()})")
    flags = " --columns" if args.columns else ""
    print(
        f"Command: `python benchmarks/bench_mixture_latency.py --calls {args.calls}"
        f"{flags}`"
    )
    print()
    print("| estimator | task_mixture | fitted share | columns | median ms | min ms |")
    print("|---|---|---|---|---|---|")
    for cls in (MAMLClassifier, PrototypicalClassifier):
        if args.columns:
            with_columns = cls(
                random_state=S.RANDOM_STATE, task_mixture=0.5, **S.LATENCY_FIT
            ).fit(X, y, sensitive_features=groups)
            without = copy.deepcopy(with_columns)
            without._mixture_covariates_ = None
            models = {"auto": with_columns, 0: without}
        else:
            models = {
                setting: cls(
                    random_state=S.RANDOM_STATE,
                    task_mixture=setting,
                    **S.LATENCY_FIT,
                ).fit(X, y, sensitive_features=groups)
                for setting in ("auto", 0)
            }
        times = {setting: [] for setting in models}
        for model in models.values():
            S.partial_fit_latency(model, 1, offset=10_000)  # warm-up
        for i in range(args.calls):
            for setting, model in models.items():
                times[setting] += S.partial_fit_latency(model, 1, offset=i)
        names = {"auto": "0.5", 0: "0.5, columns off"} if args.columns else {}
        for setting, model in models.items():
            print(
                f"| {cls.__name__} | {names.get(setting, repr(setting))} | "
                f"{model.task_mixture_:g} | "
                f"{model.task_mixture_columns_} | "
                f"{1000 * statistics.median(times[setting]):.1f} | "
                f"{1000 * min(times[setting]):.1f} |"
            )
        ratio = statistics.median(times["auto"]) / statistics.median(times[0])
        label = "columns / none" if args.columns else "auto / 0"
        print(f"| {cls.__name__} | {label} | | | {ratio:.2f}x | |")


if __name__ == "__main__":
    main()
