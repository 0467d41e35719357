"""Exploration: do tasks drawn in proportion to their rows cost small groups?

``task_sampling="proportional"`` (the default) draws a training episode's task
with probability proportional to its rows; ``"uniform"`` draws every task
equally often. The few-shot benchmark (``bench_fewshot.py``) measures groups
held out of training. This script asks the other question: the *training*
groups of very different sizes, each predicted by its own adapted state. Do
the small ones lose when the large ones are drawn more often?

Data: ``make_group_classification`` with twelve groups of 800 down to 2
training rows and 200 test rows each, at two shift strengths, five generator
seeds (each also the estimators' ``random_state``). For each estimator and
sampling: accuracy on each group's test rows given its group, averaged over
the large groups (at least 100 training rows), the middle ones (12 to 50) and
the small ones (at most 8), the worst group, and the mean over groups.

Run (about 4 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/explore_task_sampling.py
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fewshot as B  # noqa: E402

from skmeta import MAMLClassifier, PrototypicalClassifier  # noqa: E402
from skmeta.datasets import make_group_classification  # noqa: E402

ESTIMATORS = {"MAML": MAMLClassifier, "ProtoNet": PrototypicalClassifier}
SIZES = [800, 400, 200, 100, 50, 25, 12, 8, 6, 4, 4, 2]
BANDS = {
    "large (>= 100)": (100, None),
    "middle (12-50)": (12, 50),
    "small (<= 8)": (0, 8),
}


def run(shift, seed, quick):
    params = dict(
        n_groups=len(SIZES), n_features=6, group_shift=shift, random_state=seed
    )
    X, y, groups = make_group_classification(group_sizes=SIZES, **params)
    X_test, y_test, groups_test = make_group_classification(
        n_samples_per_group=200, **params
    )
    rows = []
    for name, klass in ESTIMATORS.items():
        for sampling in ("proportional", "uniform"):
            clf = klass(
                task_sampling=sampling,
                max_epochs=2 if quick else 10,
                random_state=seed,
            )
            clf.fit(X, y, sensitive_features=groups)
            pred = clf.predict(X_test, sensitive_features=groups_test)
            for g, size in enumerate(SIZES):
                at = groups_test == g
                rows.append(
                    {
                        "shift": shift,
                        "seed": seed,
                        "estimator": name,
                        "task_sampling": sampling,
                        "group": g,
                        "rows": size,
                        "accuracy": accuracy_score(y_test[at], pred[at]),
                    }
                )
    return rows


def summarise(records):
    out = []
    keys = ["shift", "estimator", "task_sampling", "seed"]
    for key, frame in records.groupby(keys):
        row = dict(zip(keys, key, strict=True))
        for band, (low, high) in BANDS.items():
            inside = (frame["rows"] >= low) & (
                frame["rows"] <= (high if high is not None else np.inf)
            )
            row[band] = frame.loc[inside, "accuracy"].mean()
        row["worst group"] = frame["accuracy"].min()
        row["mean over groups"] = frame["accuracy"].mean()
        out.append(row)
    per_seed = pd.DataFrame(out)
    metrics = [*BANDS, "worst group", "mean over groups"]
    grouped = per_seed.groupby(["shift", "estimator", "task_sampling"])
    table = (
        grouped[metrics].mean().map("{:.3f}".format)
        + " ± "
        + grouped[metrics].std().map("{:.3f}".format)
    )
    # Paired differences, proportional minus uniform, per seed.
    wide = per_seed.pivot_table(
        index=["shift", "estimator", "seed"], columns="task_sampling", values=metrics
    )
    diff = pd.DataFrame(
        {m: wide[m]["proportional"] - wide[m]["uniform"] for m in metrics}
    )
    grouped = (100 * diff).groupby(["shift", "estimator"])
    n = grouped.size().iloc[0]
    paired = (
        grouped.mean().map("{:+.1f}".format)
        + " ± "
        + (grouped.std() / np.sqrt(n)).map("{:.1f}".format)
    )
    return table, paired


def as_markdown(frame):
    """A frame with a (shift, estimator[, task_sampling]) index as a table."""
    names = ["shift", "estimator", "task_sampling"][: frame.index.nlevels]
    rows = [
        [*(str(v) for v in index), *values]
        for index, values in zip(frame.index, frame.to_numpy().tolist(), strict=True)
    ]
    return B.markdown_table([*names, *frame.columns], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    start = time.perf_counter()
    script = "OMP_NUM_THREADS=1 python benchmarks/explore_task_sampling.py"
    command = " ".join([script, *sys.argv[1:]])
    print("# Task sampling and the training groups' sizes\n")
    print(
        f"Command: `{command.strip()}`; {B.provenance()}; started "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.\n"
    )
    print(
        f"Twelve training groups of {', '.join(map(str, SIZES))} rows "
        "(make_group_classification, 6 features), 200 test rows per group; "
        f"{len(seeds)} seeds (data and random_state); default parameters "
        f"{'(2 epochs, --quick) ' if args.quick else ''}except task_sampling. "
        "Accuracy on each group's test rows given its group.\n"
    )
    records = pd.DataFrame(
        [
            row
            for shift in (0.5, 1.5)
            for seed in seeds
            for row in run(shift, seed, args.quick)
        ]
    )
    table, paired = summarise(records)
    print("Mean ± SD over seeds:\n")
    print(as_markdown(table))
    print("\nProportional minus uniform, points, mean ± SE over the paired seeds:\n")
    print(as_markdown(paired))
    print(f"\nWall time: {time.perf_counter() - start:.0f} s; {B.provenance()}.")


if __name__ == "__main__":
    main()
