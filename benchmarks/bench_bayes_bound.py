"""How well can any method adapt on the synthetic benchmarks? The Bayes bound.

``bench_fewshot.py``'s synthetic data sets are drawn from known distributions
(``make_group_classification``). For each group ``g`` of a generator seed,
with ``s = group_shift``:

- ``synthetic`` and ``synthetic-strong`` (``shift="isotropic"``):
  ``w_g = w_0 + s * N(0, I)`` and ``mu_g = s / 2 * N(0, I)``;
- ``synthetic-types`` (``shift="types"``, 3 types, within-type shift
  ``s_w = s / 10``): the type ``t`` of the group has weights ``W_t`` and mean
  ``M_t`` (drawn once per generator seed), and ``w_g = W_t + s_w * N(0, I)``,
  ``mu_g = M_t + s_w / 2 * N(0, I)``;

then ``x ~ N(mu_g, I)`` and ``y = 1[(x - mu_g) @ w_g + N(0, 1) > 0]``, so
``P(y = 1 | g) = 1/2``.

Given a new group's support set (k rows per class), the predictor with the
highest expected accuracy on that group's other rows is the Bayes predictive
``P(y = 1 | x, support) = E[Phi((x - mu) @ w) | support]`` under the *true*
prior of ``(w, mu)``. It knows everything the other groups can teach (``w_0``
or the types' ``W_t`` and ``M_t``, the scales of the shifts, and that each
boundary passes through its group's mean), so no method trained on the other
groups can beat it in expectation. For ``synthetic-types`` the prior is the
mixture of the three types' Gaussians with equal weights, since nothing tells
a method the type of a new group; the predictive is the mixture of the
per-type predictives weighted by each type's posterior probability
(proportional to the marginal likelihood of the support under that type). The
predictive that is also told the group's type is reported as well.

The script computes, on the same held-out groups and the same support sets as
``bench_fewshot.py`` (same seeds, same skipped groups), the balanced accuracy
(mean over held-out groups, and the worst group, per seed) of

- *Bayes*: the predictive above at threshold 1/2, by self-normalised
  importance sampling; per type, the proposal is a multivariate t (4 degrees
  of freedom) centred at the posterior mode with 1.5 times the Laplace
  covariance, and the mean of the unnormalised weights estimates the marginal
  likelihood. Since ``P(y | g) = 1/2`` for every group, a class-balanced
  support set has the same likelihood as an ordinary draw, up to a constant;
- *true weights*: ``1[(x - mu_g) @ w_g > 0]`` with the group's own parameters,
  the ceiling that no finite support set reaches;
- *LR shrunk to pooled*: the baseline of ``bench_fewshot.py``, with ``alpha``
  chosen per support set by cross-validation on it (the same function),

and the paired difference Bayes minus shrunk LR, in points, over seeds.

Usage::

    python benchmarks/bench_bayes_bound.py [--quick] [--seeds S]
        [--datasets synthetic,synthetic-strong,synthetic-types] [--samples N]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_ndtr, logsumexp, ndtr
from scipy.stats import multivariate_t
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot import (  # noqa: E402
    CV,
    KS,
    RANDOM_STATE,
    SYNTHETIC,
    _pm,
    _sem,
    balanced_accuracy,
    provenance,
    shrunk_lr,
    support_draw,
    synthetic_folds,
)


class GroupPosterior:
    """Posterior of ``theta = (w, mu)`` of one group given its support rows,
    under the Gaussian prior ``w ~ N(w_mean, w_sd^2 I)``,
    ``mu ~ N(mu_mean, mu_sd^2 I)``."""

    def __init__(self, w_mean, w_sd, mu_mean, mu_sd, X, y):
        self.w_mean, self.w_sd = np.asarray(w_mean), w_sd
        self.mu_mean, self.mu_sd = np.asarray(mu_mean), mu_sd
        self.X, self.sign = X, 2.0 * y - 1.0
        self.d = len(self.w_mean)

    def log_density(self, theta):
        """Log prior times likelihood; ``theta`` has shape (..., 2 * d).

        The constants left out (``2 pi`` terms) are the same for every prior
        of this class, so marginal likelihoods of different priors compare.
        """
        w, mu = theta[..., : self.d], theta[..., self.d :]
        prior = -0.5 * ((w - self.w_mean) ** 2).sum(-1) / self.w_sd**2
        prior = prior - 0.5 * ((mu - self.mu_mean) ** 2).sum(-1) / self.mu_sd**2
        prior = prior - self.d * (np.log(self.w_sd) + np.log(self.mu_sd))
        scores = np.einsum("...f,nf->...n", w, self.X)
        scores = scores - np.einsum("...f,...f->...", mu, w)[..., None]
        labels = log_ndtr(self.sign * scores).sum(-1)
        rows = -0.5 * ((self.X - mu[..., None, :]) ** 2).sum((-1, -2))
        return prior + labels + rows

    def _terms(self, theta):
        w, mu = theta[: self.d], theta[self.d :]
        centred = self.X - mu
        z = self.sign * (centred @ w)
        # d log Phi(z) / dz, the inverse Mills ratio, computed in log space.
        mills = np.exp(-0.5 * z**2 - 0.5 * np.log(2 * np.pi) - log_ndtr(z))
        return w, mu, centred, z, mills

    def gradient(self, theta):
        """Gradient of ``log_density`` at one ``theta``."""
        w, mu, centred, _, mills = self._terms(theta)
        signed = mills * self.sign
        grad_w = -(w - self.w_mean) / self.w_sd**2 + signed @ centred
        grad_mu = (
            -(mu - self.mu_mean) / self.mu_sd**2
            - signed.sum() * w
            + centred.sum(axis=0)
        )
        return np.r_[grad_w, grad_mu]

    def hessian(self, theta):
        """Hessian of ``log_density`` at one ``theta``."""
        w, _, centred, z, mills = self._terms(theta)
        curvature = -mills * (z + mills)  # d mills / dz
        d, eye = self.d, np.eye(self.d)
        h_ww = -eye / self.w_sd**2 + (centred * curvature[:, None]).T @ centred
        h_mm = (
            -eye / self.mu_sd**2 + curvature.sum() * np.outer(w, w) - len(self.X) * eye
        )
        h_wm = -np.outer(curvature @ centred, w) - (mills * self.sign).sum() * eye
        hessian = np.empty((2 * d, 2 * d))
        hessian[:d, :d], hessian[d:, d:] = h_ww, h_mm
        hessian[:d, d:], hessian[d:, :d] = h_wm, h_wm.T
        return hessian

    def mode_and_covariance(self):
        start = np.r_[self.w_mean, self.X.mean(axis=0)]
        mode = minimize(
            lambda t: -self.log_density(t),
            start,
            jac=lambda t: -self.gradient(t),
            method="BFGS",
        ).x
        n = mode.size
        covariance = np.linalg.inv(-self.hessian(mode) + 1e-8 * np.eye(n))
        return mode, (covariance + covariance.T) / 2

    def predictive(self, X_query, n_samples, seed):
        """``P(y = 1 | x, support)``, the log marginal likelihood of the
        support (up to the shared constant) and the effective sample size."""
        mode, covariance = self.mode_and_covariance()
        proposal = multivariate_t(loc=mode, shape=1.5 * covariance, df=4, seed=seed)
        theta = proposal.rvs(n_samples)
        log_weights = self.log_density(theta) - proposal.logpdf(theta)
        log_evidence = logsumexp(log_weights) - np.log(n_samples)
        weights = np.exp(log_weights - log_weights.max())
        weights /= weights.sum()
        w, mu = theta[:, : self.d], theta[:, self.d :]
        proba = ndtr(w @ X_query.T - np.einsum("mf,mf->m", mu, w)[:, None])
        return weights @ proba, log_evidence, 1.0 / (weights**2).sum()


def component_priors(name, truth):
    """``(w_mean, w_sd, mu_mean, mu_sd)`` of each mixture component of the
    true prior of a new group of data set ``name`` (one for isotropic)."""
    spec = SYNTHETIC[name]
    s = spec.group_shift
    if spec.shift == "isotropic":
        d = len(truth.shared_weights)
        return [(truth.shared_weights, s, np.zeros(d), s / 2)]
    if spec.shift == "types":
        s_w = spec.within_type_shift
        return [
            (w_t, s_w, m_t, s_w / 2)
            for w_t, m_t in zip(truth.type_weights, truth.type_means, strict=True)
        ]
    raise ValueError(f"no Bayes predictive for shift={spec.shift!r}")


def bayes_predictive(priors, X_support, y_support, X_query, n_samples, seed):
    """The mixture predictive (equal prior weights), each component's
    predictive, and the smallest ESS among components of posterior weight
    >= 1 %."""
    probas, log_evidences, ess = [], [], []
    for w_mean, w_sd, mu_mean, mu_sd in priors:
        posterior = GroupPosterior(w_mean, w_sd, mu_mean, mu_sd, X_support, y_support)
        proba, log_evidence, n_eff = posterior.predictive(X_query, n_samples, seed)
        probas.append(proba)
        log_evidences.append(log_evidence)
        ess.append(n_eff)
    log_evidences = np.asarray(log_evidences)
    post = np.exp(log_evidences - logsumexp(log_evidences))
    mixture = post @ np.asarray(probas)
    return mixture, probas, min(e for e, p in zip(ess, post, strict=True) if p >= 0.01)


def run(name, seeds, ks, n_samples, quick):
    """Per k: per seed and held-out group, the balanced accuracies."""
    dataset = synthetic_folds(name)
    folds = dataset.folds[:1] if quick else dataset.folds
    types = SYNTHETIC[name].shift == "types"
    cells = []  # (k, seed, task, bayes, type known, true weights, shrunk LR, ESS)
    first_index = 0
    for data in folds:
        source = data.source
        X_raw, truth = source["X"], source["truth"]
        priors = component_priors(name, truth)
        pooled = LogisticRegression(
            class_weight="balanced", max_iter=1000, random_state=RANDOM_STATE
        ).fit(data.X[data.train], data.y[data.train])
        # Positions in data.heldout: with first_index, they seed the support draws.
        positions = list(range(len(data.heldout)))[-2 if quick else 0 :]
        for t_pos in positions:
            task = data.heldout[t_pos]
            t_index = first_index + t_pos
            rows = np.flatnonzero(data.tasks == task)
            g = int(source["groups"][rows[0]])
            counts = np.bincount(data.y[rows], minlength=2)
            for k in ks:
                if counts.min() < k + data.min_query:
                    continue  # skipped by bench_fewshot.py too
                for seed in seeds:
                    support = support_draw(data, rows, k, 0, t_index, seed)
                    query = np.setdiff1d(rows, support)
                    ys, yq = data.y[support], data.y[query]
                    bayes, by_type, ess = bayes_predictive(
                        priors, X_raw[support], ys, X_raw[query], n_samples, seed
                    )
                    known = by_type[truth.types[g]] if types else bayes
                    true_scores = X_raw[query] @ truth.weights[g] + truth.intercepts[g]
                    shrunk, _ = shrunk_lr(pooled, CV, data.X[support], ys)
                    shrunk_proba = shrunk.predict_proba1(data.X[query])
                    cells.append(
                        (
                            k,
                            seed,
                            task,
                            balanced_accuracy(yq, (bayes >= 0.5).astype(int)),
                            balanced_accuracy(yq, (known >= 0.5).astype(int)),
                            balanced_accuracy(yq, (true_scores > 0).astype(int)),
                            balanced_accuracy(yq, (shrunk_proba >= 0.5).astype(int)),
                            ess,
                        )
                    )
        first_index += len(data.heldout)
    return dataset, folds, cells


def report(name, dataset, folds, cells, seeds, n_samples):
    types = SYNTHETIC[name].shift == "types"
    tasks = sorted({c[2] for c in cells})
    print(f"\n## {name}\n\n{dataset.description}.\n")
    print(
        f"{len(folds)} fold(s), {len(tasks)} held-out groups; {len(seeds)} paired "
        f"seeds (the support sets of bench_fewshot.py); {n_samples} importance "
        "samples per support set"
        + (" and type" if types else "")
        + ". Balanced accuracy: mean over groups and worst group per seed, then "
        "mean ± SE over seeds; the differences are paired by seed.\n"
    )
    header = ["k", "groups", "true weights", "Bayes predictive"]
    if types:
        header.append("Bayes, type known")
    header += [
        "LR shrunk to pooled",
        "Bayes - shrunk LR (points)",
        "worst group: Bayes",
        "worst group: shrunk LR",
        "worst: Bayes - shrunk LR (points)",
        "smallest ESS",
    ]
    rows = []
    cells = np.array(cells, dtype=object)
    for k in sorted({c[0] for c in cells}):
        at_k = cells[cells[:, 0] == k]
        by_seed = {}
        for seed in sorted(set(at_k[:, 1])):
            values = at_k[at_k[:, 1] == seed][:, 3:7].astype(float)
            by_seed[seed] = (values.mean(axis=0), values.min(axis=0))
        means = np.array([m for m, _ in by_seed.values()])  # (seed, method)
        worst = np.array([w for _, w in by_seed.values()])
        diff = 100 * (means[:, 0] - means[:, 3])
        diff_worst = 100 * (worst[:, 0] - worst[:, 3])
        row = [k, len(set(at_k[:, 2])), _ms(means[:, 2]), _ms(means[:, 0])]
        if types:
            row.append(_ms(means[:, 1]))
        row += [
            _ms(means[:, 3]),
            _ms(diff, digits=1, signed=True),
            _ms(worst[:, 0]),
            _ms(worst[:, 3]),
            _ms(diff_worst, digits=1, signed=True),
            f"{at_k[:, 7].astype(float).min():.0f}",
        ]
        rows.append(row)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def _ms(values, **kwargs):
    values = np.asarray(values, dtype=float)
    return _pm(values.mean(), _sem(values), **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--seeds", type=int, default=None, help="paired seeds")
    parser.add_argument(
        "--datasets",
        default="synthetic,synthetic-strong,synthetic-types",
        help="comma-separated",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="importance samples per support set and type (40,000; 10,000 for "
        "synthetic-types; 4,000 with --quick)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = set(names) - {"synthetic", "synthetic-strong", "synthetic-types"}
    if unknown:
        parser.error(f"unknown data sets: {sorted(unknown)}")
    seeds = range(args.seeds if args.seeds is not None else 2 if args.quick else 20)
    ks = (5,) if args.quick else KS
    # The types' posteriors are narrow (within-type shift 0.2), so fewer
    # samples per type give as large effective sample sizes.
    default_samples = {"synthetic-types": 10_000}
    full_samples = 40_000
    start = time.perf_counter()
    print("# The Bayes bound on the synthetic few-shot benchmarks\n")
    command = " ".join(["python benchmarks/bench_bayes_bound.py", *sys.argv[1:]])
    print(f"Command: `{command}`; {provenance()}.")
    for name in names:
        t0 = time.perf_counter()
        n_samples = args.samples or (
            4_000 if args.quick else default_samples.get(name, full_samples)
        )
        dataset, folds, cells = run(name, seeds, ks, n_samples, args.quick)
        report(name, dataset, folds, cells, seeds, n_samples)
        print(f"\n{name}: {time.perf_counter() - t0:.0f} s")
    print(f"\nWall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
