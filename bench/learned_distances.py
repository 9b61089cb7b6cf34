"""Benchmark: the learned, information and exact-transport distances on a 10×10 class matrix.

    python bench/learned_distances.py            # d = 64, 200 samples per class, 3 repeats
    python bench/learned_distances.py --quick    # smoke run (one repeat, no per-pair loop)
    python bench/learned_distances.py --vs-sklearn   # linear c2st against scikit-learn's LogisticRegression

Data: 10 Gaussian classes N(μ_k, I) in d dimensions, the centres drawn so that the distances
|μ_i − μ_j| spread between about 0.5 and 5. For such classes every measure has a closed form
to be read against: W1 = W2 = |Δμ| (a translation is the optimal transport), and with
δ = |Δμ| the Jensen–Shannon divergence (= the mutual information with the sample label) is a
1-D integral, and the best classifier's accuracy is Φ(δ/2), so c2st's population value is
2Φ(δ/2) − 1.

Columns:
- ``batched s``: ``class_distance_matrix`` on the halves plan (the 45 off-diagonal pairs and the
  10 diagonal ones), every pair's models trained as one batched model; median of --repeats.
- ``45 pairs one by one s``: the same pairs (off-diagonal only), each pair's models trained alone,
  one after the other, the way a Python loop over pairs would do it; ``speed-up`` is its ratio.
- ``ρ vs truth``: Spearman's rank correlation of the 45 off-diagonal entries with the closed form.
- ``mean |error|``: against the closed form in the measure's units (for W1: feature units).
- ``median estimate / truth``: below 1, the estimate is low (a held-out bound); above, high.
- ``diagonal``: the mean of the 10 diagonal entries (two halves of one class), the noise floor.

Times depend on a shared 2-core machine: compare the ratios measured in the same run.

``--vs-sklearn``: the linear c2st's classifiers (``discriminate(pairs, seeds, hidden=0)``: every
pair and fold, folds, standardisation and held-out scoring included) against scikit-learn doing
the same with ``LogisticRegression``: the same folds, ``StandardScaler`` fitted on each fold's
training rows, one fit per pair and fold (lbfgs, its default tolerance, ``C = 1 / (2 ·
weight_decay)``, the two samples weighted equally), then predicting the held-out rows; both on
one thread (threadpoolctl, torch.set_num_threads). Reported: the
best of --repeats seconds of each, vizcore's time / scikit-learn's, and the largest difference
in held-out accuracy between the two over the pairs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    import numpy as np


def gaussian_jsd(delta: float) -> float:
    """JS divergence (nats) of N(0, 1) and N(delta, 1); equal for N(μ, I) classes |Δμ| = delta apart."""
    from scipy import integrate, stats

    p, q = stats.norm(0, 1).pdf, stats.norm(delta, 1).pdf

    def f(t: float) -> float:
        m = 0.5 * (p(t) + q(t))
        return 0.5 * p(t) * math.log(p(t) / m) + 0.5 * q(t) * math.log(q(t) / m)

    return integrate.quad(f, -15, 15 + delta, limit=200)[0]


def truths() -> dict:
    """Each metric's closed form as a function of |Δμ| (None: no closed form here)."""
    from scipy import stats

    return {
        "wasserstein_exact": lambda d: d,
        "critic_w1": lambda d: d,
        "sliced_wasserstein": None,  # a different quantity (a projection average), no closed form here
        "c2st": lambda d: 2 * stats.norm.cdf(d / 2) - 1,
        "js_neural": gaussian_jsd,
        "mutual_info": gaussian_jsd,
        "mmd": None,
    }


def one_by_one() -> dict:
    """The learned metrics on one pair at a time, as a Python loop over pairs would call them."""
    from vizcore.metrics.learned import critic_w1, discriminate

    return {
        "c2st": lambda pair, seed: discriminate([pair], [seed], hidden=0),
        "js_neural": lambda pair, seed: discriminate([pair], [seed], hidden=64),
        "critic_w1": lambda pair, seed: critic_w1([pair], [seed]),
    }


def classes(k: int, m: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np

    rng = np.random.default_rng(seed)
    # |μ_i − μ_j| ≈ sqrt(s_i² + s_j²): from about 0.7 to 5.5
    centres = rng.normal(size=(k, d)) / math.sqrt(d) * rng.uniform(0.5, 4.0, size=(k, 1))
    x = np.concatenate([c + rng.normal(size=(m, d)) for c in centres])
    return x, np.repeat(np.arange(k), m), centres


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def sklearn_c2st(pairs: list, seeds: list[int], weight_decay: float) -> np.ndarray:
    """Held-out accuracy per pair from scikit-learn's LogisticRegression on discriminate()'s split:
    the same folds, each standardised by its training rows, the samples weighted equally."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vizcore.metrics.batched import fold_ids

    out = []
    for (x, y), s in zip(pairs, seeds, strict=True):
        rng = np.random.default_rng(s)  # the folds make_folds draws for this pair
        fx, fy = fold_ids(len(x), 2, rng), fold_ids(len(y), 2, rng)
        right = 0
        for f in range(2):
            p, q = x[fx != f], y[fy != f]
            scaler = StandardScaler().fit(np.concatenate([p, q]))
            weights = np.r_[np.full(len(p), 0.5 / len(p)), np.full(len(q), 0.5 / len(q))]
            clf = LogisticRegression(C=1 / (2 * weight_decay), max_iter=1000)
            clf.fit(scaler.transform(np.concatenate([p, q])), np.r_[np.ones(len(p)), np.zeros(len(q))], sample_weight=weights)
            right += (clf.predict(scaler.transform(x[fx == f])) == 1).sum() + (clf.predict(scaler.transform(y[fy == f])) == 0).sum()
        out.append(right / (len(x) + len(y)))
    return np.asarray(out)


def vs_sklearn(repeats: int) -> None:
    """The linear c2st against scikit-learn's LogisticRegression, same folds, one thread each."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from vizcore.metrics import class_samples
    from vizcore.metrics.batched import pair_seeds
    from vizcore.metrics.learned import discriminate

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x, y, _ = classes(10, 200, 64, 0)
    plan = class_samples(x, y, seed=0)
    cases = {
        "one pair, 500 + 500, d = 64": [(rng.normal(size=(500, 64)), rng.normal(size=(500, 64)) + 0.1)],
        "10×10 class matrix (55 pairs of 100 + 100), d = 64": [(plan.bank[a], plan.bank[b]) for a, b in plan.jobs],
        "one pair, 5,000 + 5,000, d = 256": [(rng.normal(size=(5000, 256)), rng.normal(size=(5000, 256)) + 0.05)],
    }
    print(f"linear c2st (2 folds, weight decay 0.01) against scikit-learn's LogisticRegression on the same folds; "
          f"1 thread each, best of {repeats}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| data | models fitted | vizcore s | LogisticRegression s | vizcore / sklearn | max \\|Δ accuracy\\| |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(limits=1):
        for label, pairs in cases.items():
            seeds = pair_seeds(0, len(pairs))
            ours, theirs = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                got = discriminate(pairs, seeds, hidden=0)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                acc = sklearn_c2st(pairs, seeds, 0.01)
                theirs.append(time.perf_counter() - t)
            gap = np.abs(got.correct / got.n_test - acc).max()
            print(f"| {label} | {2 * len(pairs)} | {min(ours):.3f} | {min(theirs):.3f} | "
                  f"{min(ours) / min(theirs):.2f} | {gap:.4f} |", flush=True)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--m", type=int, default=200, help="samples per class")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vs-sklearn", action="store_true", help="linear c2st against LogisticRegression, same folds")
    return p.parse_args(argv)


def main() -> None:
    a = parse_args()
    if a.vs_sklearn:
        vs_sklearn(a.repeats)
        return
    import numpy as np
    import torch
    from scipy import stats

    from vizcore.metrics import class_distance_matrix, class_samples
    from vizcore.metrics.batched import pair_seeds

    truth_of, pair_alone = truths(), one_by_one()
    torch.set_num_threads(a.threads)
    repeats = 1 if a.quick else a.repeats
    x, y, centres = classes(10, a.m, a.d, 0)
    delta = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    off = ~np.eye(10, dtype=bool)
    iu = np.triu_indices(10, 1)
    plan = class_samples(x, y, seed=0)
    pairs = [(plan.bank[i], plan.bank[j]) for (i, j), (r, c) in zip(plan.jobs, plan.cells, strict=True) if r != c]
    print(f"10 classes N(μ_k, I), d = {a.d}, {a.m} per class (halves of {a.m // 2}), |Δμ| from "
          f"{delta[off].min():.2f} to {delta[off].max():.2f}; torch {torch.__version__}, {a.threads} threads, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| metric | batched s | 45 pairs one by one s | speed-up | ρ vs truth | mean \\|error\\| | median estimate / truth | diagonal |")
    print("|---|---|---|---|---|---|---|---|")
    for metric in ["c2st", "js_neural", "critic_w1", "mutual_info", "wasserstein_exact", "sliced_wasserstein", "mmd"]:
        t, r = median_time(lambda metric=metric: class_distance_matrix(x, y, metric, seed=0), repeats)
        loop = "—"
        if metric in pair_alone and not a.quick:
            seeds = pair_seeds(0, len(pairs))
            t0 = time.perf_counter()
            for pair, s in zip(pairs, seeds, strict=True):
                pair_alone[metric](pair, s)
            loop = time.perf_counter() - t0
        truth = truth_of[metric]
        if truth is None:
            rho, err, ratio = stats.spearmanr(r.values[iu], delta[iu])[0], "—", "—"
        else:
            ref = np.vectorize(truth)(delta[iu])
            rho, err = stats.spearmanr(r.values[iu], ref)[0], f"{np.abs(r.values[iu] - ref).mean():.3f}"
            ratio = f"{np.median(r.values[iu] / ref):.2f}"
        speed = f"{loop / t:.1f}×" if loop != "—" else "—"
        loop_s = f"{loop:.1f}" if loop != "—" else "—"
        print(f"| {metric} | {t:.2f} | {loop_s} | {speed} | {rho:.3f} | {err} | {ratio} | {np.diag(r.values).mean():.3f} |",
              flush=True)  # fmt: skip
    print("\nρ for sliced Wasserstein and MMD is against |Δμ| (both grow with it, neither equals it).")


if __name__ == "__main__":
    main()
