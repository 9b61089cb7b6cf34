"""Many small models trained at once, for the learned distances (:mod:`vizcore.metrics.learned`).

Each sample of a pair gets one of ``folds`` folds (seeded, per side): :class:`Folds` holds every
pair's samples padded to one size with their fold ids and weights, so the models of all pairs and
folds are one stack. :class:`BatchedMLP` stacks their weights along a leading "model" axis, so every
layer is one batched matmul (``torch.bmm``) and a 10×10 matrix costs one training loop, not 45.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vizcore.core.device import resolve_device

Pair = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- per-model data


def pair_seeds(seed: int, n: int) -> list[int]:
    """One seed per pair of a matrix, derived from the matrix's seed and the pair's position."""
    return [int(np.random.SeedSequence([seed, j]).generate_state(1)[0]) for j in range(n)]


def fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold for each of n samples, as even as n allows, in a seeded random order."""
    ids = np.empty(n, dtype=np.int64)
    ids[rng.permutation(n)] = np.arange(n) % folds
    return ids


def _padded(rows: Sequence[np.ndarray], d: int) -> tuple[Tensor, Tensor]:
    """Stack variable-length (n_b, d) arrays into (B, max n_b, d) and a (B, max n_b) 0/1 mask."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width, d), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
        mask[b, : len(r)] = 1.0
    return torch.from_numpy(out), torch.from_numpy(mask)


@dataclass(frozen=True)
class Folds:
    """The training and held-out samples of every model (one per pair and fold), padded.

    Attributes:
        p_train, q_train, p_test, q_test: Shape (B, rows, d), real rows first, zero padding.
        p_train_w, q_train_w, p_test_w, q_test_w: Shape (B, rows): 1 for a real row, 0 for padding.
        pair: Shape (B,): the pair each model belongs to.
        seeds: one seed per model (weights, interpolation noise).
        n_test: held-out samples per pair (each sample of P and Q once).
    """

    p_train: Tensor
    p_train_w: Tensor
    q_train: Tensor
    q_train_w: Tensor
    p_test: Tensor
    p_test_w: Tensor
    q_test: Tensor
    q_test_w: Tensor
    pair: np.ndarray
    seeds: list[int]
    n_test: np.ndarray

    def to(self, device: torch.device) -> Folds:
        """The same folds with every tensor on ``device``."""
        names = ("p_train", "p_train_w", "q_train", "q_train_w", "p_test", "p_test_w", "q_test", "q_test_w")
        return Folds(*(getattr(self, n).to(device) for n in names), self.pair, self.seeds, self.n_test)


def make_folds(pairs: Sequence[Pair], seeds: Sequence[int], folds: int) -> Folds:
    """Split every pair's P and Q into ``folds`` folds (per side, seeded by the pair's seed).

    Raises:
        ValueError: a side with fewer than ``folds`` samples (a fold would have nothing to score)."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2 (one to train on, one to score), got {folds}")
    d = pairs[0][0].shape[1]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ptr", "qtr", "pte", "qte")}
    owner, model_seeds = [], []
    for j, ((x, y), s) in enumerate(zip(pairs, seeds, strict=True)):
        if min(len(x), len(y)) < folds:
            raise ValueError(
                f"a learned distance with {folds} folds needs at least {folds} samples on each side; "
                f"this comparison has {len(x)} and {len(y)}"
            )
        rng = np.random.default_rng(s)
        fx, fy = fold_ids(len(x), folds, rng), fold_ids(len(y), folds, rng)
        for f in range(folds):
            parts["ptr"].append(x[fx != f])
            parts["qtr"].append(y[fy != f])
            parts["pte"].append(x[fx == f])
            parts["qte"].append(y[fy == f])
            owner.append(j)
            model_seeds.append(int(np.random.SeedSequence([s, f]).generate_state(1)[0]))
    t = {k: _padded(v, d) for k, v in parts.items()}
    return Folds(
        *t["ptr"], *t["qtr"], *t["pte"], *t["qte"],
        pair=np.asarray(owner),
        seeds=model_seeds,
        n_test=np.asarray([len(x) + len(y) for x, y in pairs]),
    )  # fmt: skip


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Per-model weighted mean over rows. Shape: (B, rows) -> (B,)."""
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def standardise(f: Folds, per_feature: bool) -> tuple[Folds, Tensor]:
    """Centre and scale every model's samples by its own training rows.

    per_feature: divide each feature by its standard deviation (classifiers: a well-conditioned
    problem); otherwise by one number, the root mean variance, which keeps the geometry, so a
    1-Lipschitz critic of the scaled samples is one of the originals after multiplying by it.

    Returns:
        The scaled folds and the scale of each model, shape (B, 1, d) or (B, 1, 1).
    """
    w = torch.cat([f.p_train_w, f.q_train_w], 1)[..., None]  # (B, rows, 1)
    z = torch.cat([f.p_train, f.q_train], 1)
    n = w.sum(1, keepdim=True)
    mu = (z * w).sum(1, keepdim=True) / n
    var = (((z - mu) ** 2) * w).sum(1, keepdim=True) / n  # (B, 1, d)
    if not per_feature:
        var = var.mean(2, keepdim=True)
    scale = var.sqrt().clamp_min(1e-8)

    def s(a: Tensor, m: Tensor) -> Tensor:
        return (a - mu) / scale * m[..., None]  # padding stays exactly zero

    scaled = Folds(
        s(f.p_train, f.p_train_w), f.p_train_w, s(f.q_train, f.q_train_w), f.q_train_w,
        s(f.p_test, f.p_test_w), f.p_test_w, s(f.q_test, f.q_test_w), f.q_test_w,
        f.pair, f.seeds, f.n_test,
    )  # fmt: skip
    return scaled, scale


# --------------------------------------------------------------------------- batched models


class BatchedMLP:
    """B independent networks d -> hidden -> 1 (ReLU), or linear (hidden = 0), one weight tensor
    per layer with the models along axis 0. Each model's initial weights come from its own seed
    (PyTorch's default uniform(±1/sqrt(fan_in)) rule), so a model is the same in any batch."""

    def __init__(self, d: int, hidden: int, seeds: Sequence[int], device: torch.device | None = None) -> None:
        sizes = [d, hidden, 1] if hidden else [d, 1]
        per_model: list[list[Tensor]] = []
        for s in seeds:
            g = torch.Generator().manual_seed(s % (2**63))
            layer: list[Tensor] = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
                bound = 1.0 / math.sqrt(fan_in)
                layer.append((torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound)
                layer.append((torch.rand(1, fan_out, generator=g) * 2 - 1) * bound)
            per_model.append(layer)
        self.params = [torch.stack(ts).to(device).requires_grad_(True) for ts in zip(*per_model, strict=True)]

    def __call__(self, z: Tensor) -> Tensor:
        """Shape: (B, rows, d) -> (B, rows)."""
        h = z
        for i in range(0, len(self.params), 2):
            h = torch.baddbmm(self.params[i + 1], h, self.params[i])
            if i + 2 < len(self.params):
                h = F.relu(h)
        return h[..., 0]

    def weight_norm2(self) -> Tensor:
        """Per-model sum of squared weights (biases excluded). Shape: (B,)."""
        return sum((w**2).sum((1, 2)) for w in self.params[::2])


def train_models(net: BatchedMLP, losses: Callable[[int], Tensor], steps: int, lr: float) -> None:
    """Full-batch Adam on the sum of the per-model losses (each model's gradient is its own)."""
    opt = torch.optim.Adam(net.params, lr=lr)
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        losses(t).sum().backward()
        opt.step()


def per_pair(values: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Sum a per-model quantity over the folds of each pair. Shape: (B,) -> (pairs,)."""
    out = np.zeros(int(pair.max()) + 1)
    np.add.at(out, pair, values)
    return out


def held_out_sums(net: Callable[[Tensor], Tensor], f: Folds, fns: Sequence[tuple[Callable[[Tensor], Tensor], str]]) -> list[np.ndarray]:  # fmt: skip
    """Per model, the sum of fn(output) over its held-out rows of one side ("p" or "q")."""
    with torch.no_grad():
        out = {"p": net(f.p_test), "q": net(f.q_test)}
        w = {"p": f.p_test_w, "q": f.q_test_w}
        return [(fn(out[side]) * w[side]).sum(1).double().cpu().numpy() for fn, side in fns]


_THREADS = threading.Lock()


def fit_on_device(f: Folds, fit: Callable[[Folds], list[np.ndarray]]) -> list[np.ndarray]:
    """``fit(f)`` on the GPU when there is one; on the CPU with torch's intra-op threads set to
    one, then restored.

    On the CPU the ops are small (a few hundred thousand numbers): splitting each across
    threads costs a barrier per op, and with a second busy process on a 2-core machine 100
    critic steps for 55 pairs took 41 s on torch's two threads, 6.6 s on two Python threads of
    single-threaded ops, and 2.5 s on one thread. The lock keeps two matrices computed at once
    from restoring each other's thread count wrongly.
    """
    device = resolve_device("auto")
    if device.type == "cuda":
        return fit(f.to(device))
    with _THREADS:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fit(f)
        finally:
            torch.set_num_threads(threads)
