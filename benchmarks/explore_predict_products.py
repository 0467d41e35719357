"""What makes MAML's prediction slower per row with 10,000 groups of 5 rows?

Each group's rows go through the group's own network: 10,000 products of 5
rows where 10 groups take 10 large ones. Two explanations, measured apart:
reading every group's weights (memory), or the cost of each small product.

1. The default MLP's two layers (20-64-2) on 50,000 rows split into 10 to
   10,000 groups, each with its own weights, as the package evaluates them
   (``torch.baddbmm``), against one product of all rows with shared weights,
   and against only reading the 10,000 groups' first-layer weights; and the
   same with the last layer (64 -> 2) computed transposed, its stored
   ``(out, in)`` weights times the hidden rows transposed (``W2 @ h.T``), a
   product of 2 long rows where the package's is one of 2 short columns.
2. A fitted ``MAMLClassifier`` on 10,000 groups of exactly 5 rows: a group's
   first layer differs from the meta-learned one by a matrix of rank at most
   its rows (inner gradient steps on 5 rows, and a prior that pulls toward
   the meta-learned weights). Stored as rank-5 factors, 420 numbers instead
   of 1,280, the shared weights multiply all rows at once and two small
   products add each group's change: the route issue #11 names. Its time and
   largest difference against the full first layer, and the package's
   ``predict_proba`` on the same rows and on 10 groups.

One torch thread; each time is the smallest of 21 calls.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/explore_predict_products.py   # 10 s
"""

import time
import warnings

import numpy as np
import torch
from bench_fewshot import exploration_header
from bench_speed import make_rows

from skmeta import MAMLClassifier

N_ROWS, N_FEATURES, HIDDEN = 50_000, 20, 64


def best_ms(fn, repeats=21):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def products():
    print("## 1. The two layers' products, 50,000 rows\n")
    print(
        "| groups | rows each | per-group weights, ms | x 10 groups "
        "| last layer transposed, ms | x 10 groups | largest difference |"
    )
    print("|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    base = base_t = None
    for n_groups in (10, 100, 1_000, 10_000):
        n = N_ROWS // n_groups
        X = torch.randn(n_groups, n, N_FEATURES, generator=g)
        W1 = torch.randn(n_groups, HIDDEN, N_FEATURES, generator=g)
        b1 = torch.randn(n_groups, 1, HIDDEN, generator=g)
        W2 = torch.randn(n_groups, 2, HIDDEN, generator=g)
        b2 = torch.randn(n_groups, 1, 2, generator=g)

        def forward(X=X, W1=W1, b1=b1, W2=W2, b2=b2):
            hidden = torch.baddbmm(b1, X, W1.mT).relu_()
            return torch.baddbmm(b2, hidden, W2.mT)

        def transposed(X=X, W1=W1, b1=b1, W2=W2, b2=b2):
            hidden = torch.baddbmm(b1, X, W1.mT).relu_()
            return torch.baddbmm(b2.mT, W2, hidden.mT).mT

        ms, ms_t = best_ms(forward), best_ms(transposed)
        diff = (forward() - transposed()).abs().max().item()
        base, base_t = base or ms, base_t or ms_t
        print(
            f"| {n_groups:,} | {n:,} | {ms:.2f} | {ms / base:.2f} | {ms_t:.2f} "
            f"| {ms_t / base_t:.2f} | {diff:.1e} |"
        )
    X = torch.randn(N_ROWS, N_FEATURES, generator=g)
    W = torch.randn(HIDDEN, N_FEATURES, generator=g)
    print(
        f"\nOne product of all rows with shared first-layer weights: "
        f"{best_ms(lambda: X @ W.T):.2f} ms; reading the first-layer weights of "
        f"10,000 groups (a sum over their 51 MB): {best_ms(W1.sum):.2f} ms.\n"
    )


def factored():
    print("## 2. A fitted model, 10,000 groups of 5 rows: full or factored\n")
    X, y, groups = make_rows(N_ROWS, group_sizes=[5] * 10_000)
    clf = MAMLClassifier(max_epochs=1, n_threads=1, random_state=0)
    clf.fit(X, y, sensitive_features=groups)
    states = clf.states_
    W1, b1, W2, b2 = (
        states[name][1:]
        for name in ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias")
    )
    W0 = clf.module_.state_dict()["net.0.weight"].to(W1.dtype)
    task = torch.as_tensor(np.searchsorted(clf.tasks_, groups))
    rows = torch.as_tensor(X)[torch.argsort(task, stable=True)]
    blocks = rows.view(10_000, 5, N_FEATURES)
    change = (W1 - W0).double()
    U, S, Vh = torch.linalg.svd(change, full_matrices=False)
    median = S.median(0).values[:7].tolist()
    print(
        "Singular values of a group's first-layer change, the median over groups: "
        + ", ".join(f"{s:.2g}" for s in median)
        + ".\n"
    )

    def full():
        hidden = torch.baddbmm(b1.unsqueeze(1), blocks, W1.mT).relu_()
        return torch.baddbmm(b2.unsqueeze(1), hidden, W2.mT)

    reference = full()
    print("| first layer | numbers per group | ms | largest difference |")
    print("|---|---|---|---|")
    print(f"| full | {HIDDEN * N_FEATURES:,} | {best_ms(full):.2f} | – |")
    for rank in (5, 10):
        A = (U[..., :rank] * S[:, None, :rank]).to(W1.dtype).contiguous()
        B = Vh[:, :rank].to(W1.dtype).contiguous()
        error = ((A @ B).double() - change).norm() / change.norm()

        def low_rank(A=A, B=B):
            shared = (rows @ W0.T).view(10_000, 5, HIDDEN)
            hidden = torch.baddbmm(shared, blocks @ B.mT, A.mT)
            hidden = hidden.add_(b1.unsqueeze(1)).relu_()
            return torch.baddbmm(b2.unsqueeze(1), hidden, W2.mT)

        diff = (low_rank() - reference).abs().max().item()
        print(
            f"| rank {rank} (relative error {error:.1e}) | "
            f"{rank * (HIDDEN + N_FEATURES):,} | {best_ms(low_rank):.2f} | "
            f"{diff:.1e} |"
        )
    many = best_ms(lambda: clf.predict_proba(X, sensitive_features=groups), 9)
    X10, y10, groups10 = make_rows(N_ROWS, 10)
    clf10 = MAMLClassifier(max_epochs=1, n_threads=1, random_state=0)
    clf10.fit(X10, y10, sensitive_features=groups10)
    few = best_ms(lambda: clf10.predict_proba(X10, sensitive_features=groups10), 9)
    print(
        f"\nThe package's predict_proba of the 50,000 rows: {many:.2f} ms with "
        f"these 10,000 groups, {few:.2f} ms with 10 groups ({many / few:.2f}x).\n"
    )


def main():
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    exploration_header("explore_predict_products", None)
    products()
    factored()


if __name__ == "__main__":
    main()
