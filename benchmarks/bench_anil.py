"""What ``adapt_layers="last"`` (ANIL) saves: fit time, new-group
``partial_fit`` latency and the numbers stored per task.

``MAMLClassifier`` with ``adapt_layers="all"`` (the default) and ``"last"``,
on 20,000 rows of 20 features in 100 groups, 1 epoch, one torch thread, for
the default MLP (one hidden layer of 64 units) and a wider one (two layers of
256). Fit: the faster of 2 fits (random_state 0 and 1); partial_fit: median
of 20 calls, each 10 rows of a new group.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_anil.py
"""

import time
import warnings

import numpy as np
import torch
from bench_fewshot import provenance

import skmeta
from skmeta import MAMLClassifier


def main():
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    print("# ANIL: adapt_layers='last' against 'all'\n")
    print(
        f"skmeta {skmeta.__version__} ({provenance()}), torch {torch.__version__}; "
        "20,000 rows, 20 features, 100 groups, max_epochs=1, n_threads=1.\n"
    )
    rng = np.random.default_rng(0)
    n, n_groups = 20000, 100
    X = rng.normal(size=(n, 20)).astype(np.float32)
    groups = rng.integers(0, n_groups, n)
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    rows = []
    for hidden in ((64,), (256, 256)):
        for layers in ("all", "last"):
            fits = []
            for seed in range(2):
                clf = MAMLClassifier(
                    adapt_layers=layers,
                    module__hidden_units=hidden,
                    max_epochs=1,
                    n_threads=1,
                    random_state=seed,
                )
                start = time.perf_counter()
                clf.fit(X, y, sensitive_features=groups)
                fits.append(time.perf_counter() - start)
            latencies = []
            for i in range(20):
                start = time.perf_counter()
                clf.partial_fit(
                    X[:10], y[:10], sensitive_features=np.full(10, n_groups + i)
                )
                latencies.append(time.perf_counter() - start)
            per_task = sum(
                v[1].numel() for k, v in clf.states_.items() if not k.startswith("_")
            )
            rows.append((hidden, layers, min(fits), np.median(latencies), per_task))
    print(
        "| hidden units | adapt_layers | fit s | partial_fit ms | "
        "numbers stored per task |"
    )
    print("|---|---|---|---|---|")
    for hidden, layers, fit, latency, per_task in rows:
        print(
            f"| {hidden} | {layers} | {fit:.2f} | {1000 * latency:.1f} | {per_task:,} |"
        )
    print()
    for hidden in ((64,), (256, 256)):
        full, last = (r for r in rows if r[0] == hidden)
        print(
            f"- hidden {hidden}: 'last' fits {full[2] / last[2]:.1f}x faster, adapts "
            f"a new group {full[3] / last[3]:.1f}x faster and stores "
            f"{full[4] / last[4]:.0f}x fewer numbers per task."
        )


if __name__ == "__main__":
    main()
