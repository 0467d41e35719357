"""How well can any method adapt on the synthetic benchmark? The Bayes bound.

``bench_fewshot.py``'s synthetic data set is drawn from a known distribution
(``make_group_classification(n_groups=20, n_samples_per_group=200,
n_features=6, group_shift=1.5, random_state=0)``): for each group ``g``

- ``w_g = w_0 + group_shift * N(0, I)`` (the shared weights ``w_0`` are fixed),
- ``mu_g = group_shift / 2 * N(0, I)`` and ``x ~ N(mu_g, I)``,
- ``y = 1[(x - mu_g) @ w_g + N(0, 1) > 0]``, so ``P(y = 1 | g) = 1/2``.

Given a new group's support set (k rows per class), the predictor with the
highest expected accuracy on that group's other rows is the Bayes predictive
``P(y = 1 | x, support) = E[Phi((x - mu) @ w) | support]`` under the *true*
prior of ``(w, mu)``. No method trained on the other groups can beat it in
expectation, because it knows everything the other groups can teach: ``w_0``,
the shift scale and that each boundary passes through its group's mean. It
bounds from above what meta-learning can reach on this data set.

The script computes, on the same held-out groups (15-19) and the same support
sets as ``bench_fewshot.py`` (same seeds), the balanced accuracy of

- *Bayes*: the predictive above at threshold 1/2, by self-normalised
  importance sampling; the proposal is a multivariate t (4 degrees of freedom)
  centred at the posterior mode with 1.5 times the Laplace covariance. Since
  ``P(y | g) = 1/2`` for every group, a class-balanced support set has the
  same likelihood as an ordinary draw, up to a constant;
- *true weights*: ``1[(x - mu_g) @ w_g > 0]`` with the group's own parameters,
  the ceiling that no finite support set reaches;
- *LR shrunk to pooled*: the best baseline of ``bench_fewshot.py`` at k <= 10,
  with the ``alpha`` it chose on the validation groups,

and the paired difference Bayes minus shrunk LR, in points, over seeds.

Usage::

    python benchmarks/bench_bayes_bound.py [--quick] [--seeds S]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr
from scipy.stats import multivariate_t
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot import (  # noqa: E402
    KS,
    RANDOM_STATE,
    ShrunkLogisticRegression,
    _pm,
    _sem,
    load_synthetic,
)

from skmeta.datasets import make_group_classification  # noqa: E402

GROUP_SHIFT = 1.5
ALPHA = 1.0  # bench_fewshot.py's choice for "LR shrunk to pooled" on synthetic


class GroupPosterior:
    """Posterior of ``theta = (w, mu)`` of one group given its support rows."""

    def __init__(self, shared, X, y):
        self.shared, self.X, self.sign = shared, X, 2.0 * y - 1.0
        self.d = len(shared)

    def log_density(self, theta):
        """Unnormalised log posterior; ``theta`` has shape (..., 2 * d)."""
        w, mu = theta[..., : self.d], theta[..., self.d :]
        prior = -0.5 * ((w - self.shared) ** 2).sum(-1) / GROUP_SHIFT**2
        prior = prior - 0.5 * (mu**2).sum(-1) / (GROUP_SHIFT / 2) ** 2
        scores = np.einsum("...f,nf->...n", w, self.X)
        scores = scores - np.einsum("...f,...f->...", mu, w)[..., None]
        labels = log_ndtr(self.sign * scores).sum(-1)
        rows = -0.5 * ((self.X - mu[..., None, :]) ** 2).sum((-1, -2))
        return prior + labels + rows

    def mode_and_covariance(self, h=1e-4):
        def objective(theta):
            return -self.log_density(theta)

        start = np.r_[self.shared, self.X.mean(axis=0)]
        mode = minimize(objective, start, method="BFGS").x
        n = mode.size
        steps = h * np.eye(n)
        hessian = np.empty((n, n))
        for i in range(n):
            for j in range(i, n):
                hessian[i, j] = hessian[j, i] = (
                    objective(mode + steps[i] + steps[j])
                    - objective(mode + steps[i] - steps[j])
                    - objective(mode - steps[i] + steps[j])
                    + objective(mode - steps[i] - steps[j])
                ) / (4 * h * h)
        covariance = np.linalg.inv(hessian + 1e-8 * np.eye(n))
        return mode, (covariance + covariance.T) / 2

    def predictive(self, X_query, n_samples, seed):
        """``P(y = 1 | x, support)`` and the effective sample size."""
        mode, covariance = self.mode_and_covariance()
        proposal = multivariate_t(loc=mode, shape=1.5 * covariance, df=4, seed=seed)
        theta = proposal.rvs(n_samples)
        log_weights = self.log_density(theta) - proposal.logpdf(theta)
        weights = np.exp(log_weights - log_weights.max())
        weights /= weights.sum()
        w, mu = theta[:, : self.d], theta[:, self.d :]
        proba = ndtr(w @ X_query.T - np.einsum("mf,mf->m", mu, w)[:, None])
        return weights @ proba, 1.0 / (weights**2).sum()


def _mean_sem(values, **kwargs):
    return _pm(values.mean(), _sem(values), **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds")
    args = parser.parse_args(argv)
    seeds = range(args.seeds if args.seeds is not None else 2 if args.quick else 20)
    ks = (5,) if args.quick else KS
    n_samples = 4_000 if args.quick else 40_000
    start = time.perf_counter()

    X_raw, y, _, truth = make_group_classification(
        n_groups=20,
        n_samples_per_group=200,
        n_features=6,
        group_shift=GROUP_SHIFT,
        random_state=RANDOM_STATE,
        return_tasks=True,
    )
    data = load_synthetic()  # the same rows, standardised, with the split
    assert np.array_equal(data.y, y), "bench_fewshot.load_synthetic changed"
    pooled = LogisticRegression(
        class_weight="balanced", max_iter=1000, random_state=RANDOM_STATE
    ).fit(data.X[data.train], data.y[data.train])
    # Positions in data.heldout: they seed the support draws.
    positions = list(range(len(data.heldout)))[-2 if args.quick else 0 :]
    heldout = [data.heldout[i] for i in positions]

    results = {}  # k -> array (seed, group, [bayes, true weights, shrunk LR, ESS])
    for k in ks:
        cells = np.empty((len(seeds), len(heldout), 4))
        for g_col, (t_index, task) in enumerate(zip(positions, heldout, strict=True)):
            g = int(task[1:])
            rows = np.flatnonzero(data.tasks == task)
            by_class = [rows[y[rows] == c] for c in (0, 1)]
            for s_index, seed in enumerate(seeds):
                # The support draw of bench_fewshot.evaluate (base_seed=0).
                rng = np.random.default_rng([0, t_index, k, seed])
                support = np.concatenate(
                    [rng.choice(r, k, replace=False) for r in by_class]
                )
                query = np.setdiff1d(rows, support)
                posterior = GroupPosterior(
                    truth.shared_weights, X_raw[support], y[support]
                )
                bayes, ess = posterior.predictive(X_raw[query], n_samples, seed)
                true_scores = X_raw[query] @ truth.weights[g] + truth.intercepts[g]
                shrunk = ShrunkLogisticRegression(
                    pooled.coef_[0], pooled.intercept_[0], ALPHA
                ).fit(data.X[support], y[support])
                yq = y[query]
                cells[s_index, g_col] = (
                    balanced_accuracy_score(yq, bayes >= 0.5),
                    balanced_accuracy_score(yq, true_scores > 0),
                    balanced_accuracy_score(
                        yq, shrunk.predict_proba1(data.X[query]) >= 0.5
                    ),
                    ess,
                )
        results[k] = cells

    print("# The Bayes bound on the synthetic few-shot benchmark\n")
    print(
        f"Held-out groups {', '.join(heldout)}; {len(seeds)} paired seeds (the "
        f"support sets of bench_fewshot.py); {n_samples} importance samples per "
        "support set. Balanced accuracy, mean over groups, then mean ± SE over "
        "seeds; the difference is paired by seed.\n"
    )
    print(
        "| k | true weights | Bayes predictive | LR shrunk to pooled "
        "| Bayes - shrunk LR (points) | smallest ESS |"
    )
    print("|---|---|---|---|---|---|")
    for k, cells in results.items():
        per_seed = cells[:, :, :3].mean(axis=1)  # (seed, method)
        diff = 100 * (per_seed[:, 0] - per_seed[:, 2])
        print(
            f"| {k} | {_mean_sem(per_seed[:, 1])} | {_mean_sem(per_seed[:, 0])} | "
            f"{_mean_sem(per_seed[:, 2])} | "
            f"{_mean_sem(diff, digits=1, signed=True)} | "
            f"{cells[:, :, 3].min():.0f} |"
        )
    print(f"\nWall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
