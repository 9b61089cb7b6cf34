"""Information between features and the sample they came from: a k-nearest-neighbour estimate of
the mutual information I(X; S), S the binary "which sample" label with equal priors.

With equal priors, I(X; S) is exactly the Jensen–Shannon divergence of the two distributions
(in nats, between 0 and log 2): I(X; S) = H(½P + ½Q) − ½H(P) − ½H(Q) = JS(P, Q). So this
measure and ``js_neural`` estimate one quantity by two routes, a non-parametric one and a
trained discriminator; a test checks both against a numerically integrated value.

Estimator: Ross (2014), "Mutual information between discrete and continuous data sets" — the
one scikit-learn's ``mutual_info_classif`` applies to each feature separately — applied here to
the whole feature vector (Euclidean distances): with N samples, N_s of the point's own sample,
k neighbours within its own sample (the k-th at distance r) and m points of either sample
closer than r (itself included),  I = ψ(N) + ⟨ψ(k)⟩ − ⟨ψ(N_s)⟩ − ⟨ψ(m)⟩, clipped at 0.
scikit-learn offers it only per feature, so it is written here over all features at once.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import digamma

from vizcore.metrics.distances import Computed, register_metric
from vizcore.metrics.mmd import permutation_p_value
from vizcore.metrics.sampling import SamplePlan


def _ross_mi(dist: torch.Tensor, labels: torch.Tensor, n_neighbors: int) -> np.ndarray:
    """Ross's estimate for several labellings of one set of points.

    Shape:
        dist: (N, N) pairwise distances; labels: (L, N) 0/1 labellings; output: (L,).
    """
    n = dist.shape[0]
    same = labels[:, :, None] == labels[:, None, :]  # (L, N, N)
    eye = torch.eye(n, dtype=torch.bool)
    counts = torch.stack([(labels == 0).sum(1), (labels == 1).sum(1)], 1)  # (L, 2)
    own = torch.gather(counts, 1, labels.long())  # (L, N) N_s of each point's own sample
    k = (own - 1).clamp(max=n_neighbors)  # (L, N), as in scikit-learn for a small sample
    if int(k.min()) < 1:
        raise ValueError("mutual information needs at least 2 samples on each side")
    within = dist.expand(len(labels), n, n).masked_fill(~same | eye, float("inf"))
    nearest = torch.topk(within, int(k.max()), dim=2, largest=False).values  # (L, N, k_max)
    r = torch.gather(nearest, 2, (k - 1)[..., None])  # (L, N, 1) distance to the k-th neighbour
    # strictly closer than r (scikit-learn queries the radius nextafter(r, 0)); itself included
    m = ((dist[None] < r) | (dist[None] <= 0)).sum(2)  # (L, N)
    mi = digamma(n) + digamma(k.numpy()).mean(1) - digamma(own.numpy()).mean(1) - digamma(m.numpy()).mean(1)
    return np.maximum(0.0, mi)


def mutual_information(x: np.ndarray, y: np.ndarray, n_neighbors: int = 3, n_perm: int = 0,
                       seed: int = 0) -> tuple[float, float | None]:  # fmt: skip
    """I(Z; S) in nats for Z drawn from x (S = 1) or y (S = 0), and a permutation p-value.

    Shape:
        x: (n, d), y: (m, d).
    """
    z = torch.from_numpy(np.concatenate([x, y]).astype(np.float64))
    dist = torch.cdist(z, z)
    s = torch.cat([torch.ones(len(x), dtype=torch.long), torch.zeros(len(y), dtype=torch.long)])
    gen = torch.Generator().manual_seed(seed)
    labellings = torch.stack([s] + [s[torch.randperm(len(s), generator=gen)] for _ in range(n_perm)])
    mi = _ross_mi(dist, labellings, n_neighbors)
    if n_perm == 0:
        return float(mi[0]), None
    return float(mi[0]), permutation_p_value(mi[0], mi[1:])


@register_metric(
    "mutual_info",
    "Mutual information (k-NN)",
    "Mutual information between the features and which of the two samples they came from (equal priors), "
    "in nats: 0 when the samples are indistinguishable, log 2 ≈ 0.693 when they never overlap. With equal "
    "priors it equals the Jensen–Shannon divergence, which the GAN discriminator estimates another way. "
    "Estimator: Ross (2014) k-nearest-neighbour estimate over the whole feature vector; an estimate, biased "
    "in high dimension, so read entries against the diagonal.",
    family="information",
)
def _mutual_info(plan: SamplePlan, *, seed: int, n_perm: int, n_neighbors: int = 3) -> Computed:
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    got = [
        mutual_information(plan.bank[a], plan.bank[b], n_neighbors, n_perm, seed=seed * 100_003 + j)
        for j, (a, b) in enumerate(plan.jobs)
    ]
    values = np.asarray([v for v, _ in got])
    p = None if n_perm == 0 else np.asarray([q for _, q in got])
    return Computed(
        values,
        p,
        {"n_neighbors": n_neighbors, "estimator": "Ross (2014) k-NN", "value_label": "MI (nats)"},
        f"Mutual information between features and sample label (Ross 2014 k-NN estimator, k = {n_neighbors}, "
        "Euclidean distances, nats)",
    )
