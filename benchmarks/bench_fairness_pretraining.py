"""MAML's demographic-parity penalty on Adult: pretraining against settings.

``bench_fairness.py`` found ``MAMLClassifier``'s DP penalty levelling off at a
larger DP difference after pretraining became the default, but its tuning had
also chosen other hyperparameters in that run. This script separates the two:
on Adult (the shipped split, sex as the sensitive feature, as in
``bench_fairness.py``), it fits ``MAMLClassifier(constraints=
"demographic_parity", fairness_weight=W, max_epochs=10)`` for each
(``prior_strength``, ``lr``) setting, with ``pretrain_epochs`` 0 and 10, over
``random_state`` 0 .. seeds - 1, and prints test accuracy and DP difference
(mean ± SD over the seeds) with the per-seed values.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_fairness_pretraining.py

``--quick`` runs one setting, one seed and 2 epochs (a smoke test).
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fairness  # noqa: E402
import bench_fewshot  # noqa: E402

import skmeta  # noqa: E402
from skmeta import MAMLClassifier  # noqa: E402

# The four (prior_strength, lr) pairs of bench_fairness.py's MAML grid.
SETTINGS = [("learn", 1e-3), ("learn", 3e-3), (10, 1e-3), (10, 3e-3)]


def run(data, prior_strength, lr, pretrain_epochs, weight, seeds, max_epochs):
    rows = []
    for seed in seeds:
        clf = MAMLClassifier(
            prior_strength=prior_strength,
            lr=lr,
            constraints="demographic_parity",
            fairness_weight=weight,
            max_epochs=max_epochs,
            pretrain_epochs=pretrain_epochs,
            random_state=seed,
        ).fit(data.X_train, data.y_train, sensitive_features=data.s_train)
        pred = clf.predict(data.X_test, sensitive_features=data.s_test)
        rows.append(bench_fairness.evaluate(data.y_test, pred, data.s_test))
    return rows


def _mean_sd(values):
    values = np.asarray(values)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.4f} ± {sd:.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weight", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = SETTINGS[:1] if args.quick else SETTINGS
    seeds = range(1 if args.quick else args.seeds)
    max_epochs = 2 if args.quick else 10
    print(
        f"# bench_fairness_pretraining {datetime.datetime.now():%Y-%m-%d %H:%M}\n"
        f"skmeta {skmeta.__version__} ({bench_fewshot.provenance()}), "
        f"torch {torch.__version__}; torch threads "
        f"{torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
        f"Adult (shipped split, sensitive feature sex); MAMLClassifier("
        f"constraints='demographic_parity', fairness_weight={args.weight:g}, "
        f"max_epochs={max_epochs}); random_state {list(seeds)}\n"
    )
    data = bench_fairness.load_adult_data()
    start = time.perf_counter()
    print(
        "| prior_strength | lr | pretrain_epochs | accuracy | DP difference "
        "| DP difference per seed |\n|---|---|---|---|---|---|"
    )
    for prior_strength, lr in settings:
        for pretrain_epochs in (0, 10):
            rows = run(
                data,
                prior_strength,
                lr,
                pretrain_epochs,
                args.weight,
                seeds,
                max_epochs,
            )
            per_seed = ", ".join(f"{r['dpd']:.4f}" for r in rows)
            print(
                f"| {prior_strength!r} | {lr:g} | {pretrain_epochs} | "
                f"{_mean_sd([r['accuracy'] for r in rows])} | "
                f"{_mean_sd([r['dpd'] for r in rows])} | {per_seed} |",
                flush=True,
            )
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
