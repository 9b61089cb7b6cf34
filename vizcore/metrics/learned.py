"""Distances that learn: a classifier two-sample test, a GAN discriminator and a WGAN-GP critic.

Each entry of a matrix compares two samples P and Q (see :class:`SamplePlan`). A learned measure
trains a small model to tell P from Q and reads the distance from how well it does on samples it
did not train on. These are estimates, with their own variance and seed, not formulas: the help
text of each says so, and each result reports the held-out size it used.

All the models of a matrix train together. Their weights are stacked along a leading "model"
axis and every layer is one batched matmul (``torch.bmm``), so the 45 pairs of a 10×10 matrix
cost one training loop instead of 45. The loss is the sum of the models' own losses, so each
model's gradient, and (Adam being element-wise) its whole trajectory, is the one it would have
trained alone with the same seed; a test checks it.

Held-out scoring is cross-fitting: every sample of a pair gets one of ``folds`` folds (seeded,
per side); the model of fold f trains on the other folds and scores fold f, so every sample is
scored once, by a model that never saw it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from torch import Tensor

from vizcore.core.device import resolve_device
from vizcore.metrics.distances import Computed, register_metric
from vizcore.metrics.logistic import fit_logistic
from vizcore.metrics.mmd import permutation_p_value
from vizcore.metrics.sampling import SamplePlan

Pair = tuple[np.ndarray, np.ndarray]
CLASSIFIERS = ("logistic", "mlp")
ESTIMATE_NOTE = (
    " A learned distance is an estimate with its own variance and seed: it depends on the model's "
    "training, and is scored on held-out samples (cross-fitting)."
)


# --------------------------------------------------------------------------- per-model data


def pair_seeds(seed: int, n: int) -> list[int]:
    """One seed per pair of a matrix, derived from the matrix's seed and the pair's position."""
    return [int(np.random.SeedSequence([seed, j]).generate_state(1)[0]) for j in range(n)]


def _fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
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
        fx, fy = _fold_ids(len(x), folds, rng), _fold_ids(len(y), folds, rng)
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


def _mean(values: Tensor, weights: Tensor) -> Tensor:
    """Per-model weighted mean over rows. Shape: (B, rows) -> (B,)."""
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _standardise(f: Folds, per_feature: bool) -> tuple[Folds, Tensor]:
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


def train(net: BatchedMLP, losses: Callable[[int], Tensor], steps: int, lr: float) -> None:
    """Full-batch Adam on the sum of the per-model losses (each model's gradient is its own)."""
    opt = torch.optim.Adam(net.params, lr=lr)
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        losses(t).sum().backward()
        opt.step()


def _per_pair(values: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Sum a per-model quantity over the folds of each pair. Shape: (B,) -> (pairs,)."""
    out = np.zeros(int(pair.max()) + 1)
    np.add.at(out, pair, values)
    return out


def _held_out_sums(net: Callable[[Tensor], Tensor], f: Folds, fns: Sequence[tuple[Callable[[Tensor], Tensor], str]]) -> list[np.ndarray]:  # fmt: skip
    """Per model, the sum of fn(output) over its held-out rows of one side ("p" or "q")."""
    with torch.no_grad():
        out = {"p": net(f.p_test), "q": net(f.q_test)}
        w = {"p": f.p_test_w, "q": f.q_test_w}
        return [(fn(out[side]) * w[side]).sum(1).double().cpu().numpy() for fn, side in fns]


_THREADS = threading.Lock()


def _fit_on_device(f: Folds, fit: Callable[[Folds], list[np.ndarray]]) -> list[np.ndarray]:
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


# ------------------------------------------------------------------------ discriminators


@dataclass(frozen=True)
class Discriminated:
    """What a trained discriminator says about each pair, on held-out samples.

    Attributes:
        correct: samples classified correctly (threshold 0 on the logit; P is class 1).
        log_d_p: mean log D(x) over P's held-out samples.
        log_1md_q: mean log(1 − D(y)) over Q's held-out samples.
        n_test: held-out samples per pair (all of P and Q, each once).
    """

    correct: np.ndarray
    log_d_p: np.ndarray
    log_1md_q: np.ndarray
    n_test: np.ndarray


def discriminate(
    pairs: Sequence[Pair],
    seeds: Sequence[int],
    *,
    hidden: int = 64,
    folds: int = 2,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 0.01,
) -> Discriminated:
    """Train one discriminator per pair and fold (all at once) and score it on held-out samples.

    The loss is the logistic loss with the two samples weighted equally (equal priors), plus
    ``weight_decay`` × the squared weights. hidden = 0 is logistic regression, solved to its
    optimum by Newton's method (``steps`` and ``lr`` are the MLP's and unused there): the values
    of scikit-learn's ``LogisticRegression(C=1 / (2 · weight_decay))`` with the samples weighted
    equally, in less time (``bench/learned_distances.py --vs-sklearn``).
    """
    f, _ = _standardise(make_folds(pairs, seeds, folds), per_feature=True)

    def fit(g: Folds) -> list[np.ndarray]:
        net = _logistic(g, weight_decay) if hidden == 0 else _adam_mlp(g, hidden, steps, lr, weight_decay)
        return _held_out_sums(net, g, [
            (lambda o: (o > 0).double(), "p"), (lambda o: (o < 0).double(), "q"),
            (F.logsigmoid, "p"), (lambda o: F.logsigmoid(-o), "q"), (torch.ones_like, "p"), (torch.ones_like, "q"),
        ])  # fmt: skip

    right_p, right_q, log_p, log_q, n_p, n_q = (_per_pair(a, f.pair) for a in _fit_on_device(f, fit))
    return Discriminated(right_p + right_q, log_p / n_p, log_q / n_q, f.n_test)


def _logistic(g: Folds, weight_decay: float) -> Callable[[Tensor], Tensor]:
    """Every model's exact logistic regression (Newton, float64: :mod:`vizcore.metrics.logistic`),
    as a function from (B, rows, d) to logits."""
    z = torch.cat([g.p_train, g.q_train], 1)
    t = torch.cat([torch.ones_like(g.p_train_w), torch.zeros_like(g.q_train_w)], 1)
    # the two samples weigh equally (equal priors), as in the MLP's loss
    v = 0.5 * torch.cat([g.p_train_w / g.p_train_w.sum(1, keepdim=True),
                         g.q_train_w / g.q_train_w.sum(1, keepdim=True)], 1)  # fmt: skip
    w, c, _ = fit_logistic(z, t, v, weight_decay)
    return lambda rows: torch.baddbmm(c[:, None, None], rows.double(), w[..., None])[..., 0]


def _adam_mlp(g: Folds, hidden: int, steps: int, lr: float, weight_decay: float) -> BatchedMLP:
    """Every model's MLP discriminator after ``steps`` full-batch Adam steps on the logistic loss."""
    net = BatchedMLP(g.p_train.shape[2], hidden, g.seeds, g.p_train.device)

    def losses(_: int) -> Tensor:
        lp = _mean(F.softplus(-net(g.p_train)), g.p_train_w)  # -log D on P
        lq = _mean(F.softplus(net(g.q_train)), g.q_train_w)  # -log(1 - D) on Q
        return 0.5 * (lp + lq) + weight_decay * net.weight_norm2()

    train(net, losses, steps, lr)
    return net


def _slopes(net: BatchedMLP, p: Tensor, q: Tensor, partner: Tensor, eps: Tensor, create_graph: bool) -> Tensor:
    """The critic's gradient norm at points between each P row and its Q partner. Shape: (B, rows)."""
    q = torch.gather(q, 1, partner[..., None].expand(-1, -1, q.shape[2]))
    x_hat = (eps * p + (1 - eps) * q).requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x_hat).sum(), x_hat, create_graph=create_graph)
    return (grad.pow(2).sum(2) + 1e-12).sqrt()


def critic_w1(
    pairs: Sequence[Pair],
    seeds: Sequence[int],
    *,
    hidden: int = 64,
    folds: int = 2,
    steps: int = 500,
    lr: float = 0.005,
    penalty: float = 10.0,
) -> np.ndarray:
    """WGAN-GP critics' held-out estimates of W1(P, Q), one per pair (Gulrajani et al. 2017).

    A critic f maximises E_P f − E_Q f − penalty · E (‖∇f(x̂)‖ − 1)², x̂ on segments between
    training samples of P and Q. By duality E_P f − E_Q f ≤ L · W1 for an L-Lipschitz f, and the
    soft penalty lets the slope exceed 1 (for a shift Δ in 1-D the optimum is 1 + Δ / 2·penalty,
    7.5 % at Δ = 1.5), so the estimate is the held-out gap divided by the critic's mean gradient
    norm on held-out segments, in the samples' own units (the critic sees them scaled by one
    number, see :func:`_standardise`).
    """
    f, scale = _standardise(make_folds(pairs, seeds, folds), per_feature=False)

    def fit(g: Folds) -> list[np.ndarray]:
        net = BatchedMLP(g.p_train.shape[2], hidden, g.seeds, g.p_train.device)
        gens = [torch.Generator().manual_seed(s % (2**63)) for s in g.seeds]
        rows = g.p_train.shape[1]
        eps = torch.stack([torch.rand(steps, rows, 1, generator=gen) for gen in gens], 1).to(g.p_train.device)
        n_q = g.q_train_w.sum(1).long()[:, None]  # (B, 1) real Q rows, which come first

        def losses(t: int) -> Tensor:
            gap = _mean(net(g.p_train), g.p_train_w) - _mean(net(g.q_train), g.q_train_w)
            # each P row meets a Q row that shifts by one every step, so the segments vary
            partner = (torch.arange(rows, device=n_q.device)[None, :] + t) % n_q
            slope = _slopes(net, g.p_train, g.q_train, partner, eps[t], create_graph=True)
            return -gap + penalty * _mean((slope - 1) ** 2, g.p_train_w)

        train(net, losses, steps, lr)
        test_rows = g.p_test.shape[1]
        partner = torch.arange(test_rows, device=n_q.device)[None, :] % g.q_test_w.sum(1).long()[:, None]
        mid = torch.stack([torch.rand(test_rows, 1, generator=gen) for gen in gens]).to(n_q.device)
        slope = _mean(_slopes(net, g.p_test, g.q_test, partner, mid, create_graph=False), g.p_test_w)
        sums = _held_out_sums(net, g, [(lambda o: o.double(), "p"), (lambda o: o.double(), "q"),
                                       (torch.ones_like, "p"), (torch.ones_like, "q")])  # fmt: skip
        return [*sums, slope.detach().double().cpu().numpy()]

    sum_p, sum_q, n_p, n_q, slope = _fit_on_device(f, fit)
    # each critic saw its samples divided by its own scale: multiplying back gives feature units
    per_model = (sum_p / n_p - sum_q / n_q) / slope * scale.reshape(-1).double().cpu().numpy()
    return _per_pair(per_model * (n_p + n_q), f.pair) / _per_pair(n_p + n_q, f.pair)


# ------------------------------------------------------------------------ the measures


def _permuted(pairs: Sequence[Pair], n_perm: int, seed: int) -> list[Pair]:
    """n_perm relabelled copies of every pair (P ∪ Q shuffled, split at |P|), pair by pair."""
    out: list[Pair] = []
    for j, (x, y) in enumerate(pairs):
        rng = np.random.default_rng([seed, j, 7])
        z = np.concatenate([x, y])
        for _ in range(n_perm):
            order = rng.permutation(len(z))
            out.append((z[order[: len(x)]], z[order[len(x) :]]))
    return out


def _with_null(
    stat: Callable[[list[Pair], list[int]], np.ndarray], plan: SamplePlan, seed: int, n_perm: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The statistic for every pair of the plan, and, when n_perm > 0, permutation p-values from
    relabelled copies trained in the same batch."""
    pairs = [(plan.bank[a], plan.bank[b]) for a, b in plan.jobs]
    everything = pairs + _permuted(pairs, n_perm, seed)
    values = stat(everything, pair_seeds(seed, len(everything)))
    observed = values[: len(pairs)]
    if n_perm == 0:
        return observed, None
    null = values[len(pairs) :].reshape(len(pairs), n_perm)
    return observed, np.asarray([permutation_p_value(v, row) for v, row in zip(observed, null, strict=True)])


def _held_out_phrase(plan: SamplePlan, folds: int) -> str:
    return f"{folds}-fold cross-fitting, every one of the 2 × {plan.n_per_side} samples of a comparison scored once"


@register_metric(
    "c2st",
    "Classifier two-sample test",
    "How well a small classifier (logistic regression or an MLP) tells the two samples apart on held-out "
    "data (Lopez-Paz & Oquab 2017): 2·(accuracy − ½), 0 at chance, 1 when every held-out sample is "
    "classified right; p-value from the binomial null of chance accuracy (or from permutations)."
    + ESTIMATE_NOTE,
    family="learned",
    revision=1,  # the linear classifier is solved exactly (Newton) instead of 300 Adam steps
)
def _c2st(
    plan: SamplePlan,
    *,
    seed: int,
    n_perm: int,
    classifier: str = "logistic",
    folds: int = 2,
    steps: int = 300,
    weight_decay: float = 0.01,
) -> Computed:
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier={classifier!r} is not a valid choice; valid values: {', '.join(CLASSIFIERS)}")
    hidden = 64 if classifier == "mlp" else 0

    def stat(pairs: list[Pair], seeds: list[int]) -> np.ndarray:
        got = discriminate(pairs, seeds, hidden=hidden, folds=folds, steps=steps, weight_decay=weight_decay)
        return got.correct / got.n_test

    acc, perm_p = _with_null(stat, plan, seed, n_perm)
    n_test = np.asarray([len(plan.bank[a]) + len(plan.bank[b]) for a, b in plan.jobs])
    correct = np.rint(acc * n_test)
    # P(at least this many right by chance): accuracy is a count of n_test fair coin flips under H0
    binom_p = scipy.stats.binom.sf(correct - 1, n_test, 0.5)
    p = binom_p if perm_p is None else perm_p
    how = "permutations" if perm_p is not None else "the binomial null"
    return Computed(
        np.clip(2 * (acc - 0.5), 0.0, 1.0),
        p,
        {"classifier": classifier, "folds": folds, "steps": steps, "weight_decay": weight_decay, "n_held_out": int(n_test.min()),
         "value_label": "2·(accuracy − ½)", "p_value_from": how},  # fmt: skip
        f"Classifier two-sample test ({classifier}; 2·(held-out accuracy − ½), clipped at 0; "
        f"{_held_out_phrase(plan, folds)}; p-values from {how}, seed {seed})",
    )


@register_metric(
    "js_neural",
    "Jensen–Shannon (GAN discriminator)",
    "The GAN's neural distance: a discriminator D (an MLP) trained with the logistic loss, read on held-out "
    "data as log 2 + ½·E_P log D + ½·E_Q log(1 − D), a lower bound of the Jensen–Shannon divergence "
    "(nats, 0 to log 2 ≈ 0.693), clipped at 0." + ESTIMATE_NOTE,
    family="learned",
)
def _js_neural(
    plan: SamplePlan,
    *,
    seed: int,
    n_perm: int,
    hidden: int = 64,
    folds: int = 2,
    steps: int = 300,
    weight_decay: float = 0.01,
) -> Computed:
    def stat(pairs: list[Pair], seeds: list[int]) -> np.ndarray:
        got = discriminate(pairs, seeds, hidden=hidden, folds=folds, steps=steps, weight_decay=weight_decay)
        return np.maximum(0.0, math.log(2) + 0.5 * got.log_d_p + 0.5 * got.log_1md_q)

    values, p = _with_null(stat, plan, seed, n_perm)
    return Computed(
        values,
        p,
        {"hidden": hidden, "folds": folds, "steps": steps, "weight_decay": weight_decay,
         "n_held_out": 2 * plan.n_per_side, "value_label": "JS (nats)"},  # fmt: skip
        f"Jensen–Shannon divergence estimated by an MLP discriminator ({hidden} hidden units, {steps} Adam "
        f"steps; {_held_out_phrase(plan, folds)}; clipped at 0; seed {seed})",
    )


@register_metric(
    "critic_w1",
    "Wasserstein-1 (WGAN-GP critic)",
    "The WGAN's neural distance: a critic f (an MLP) with a gradient penalty keeping it about 1-Lipschitz "
    "(Gulrajani et al. 2017), read on held-out data as E_P f − E_Q f, an estimate of the Wasserstein-1 "
    "distance in feature units (compare with the exact optimal transport measure); clipped at 0."
    + ESTIMATE_NOTE,
    family="learned",
)
def _critic_w1(
    plan: SamplePlan,
    *,
    seed: int,
    n_perm: int,
    hidden: int = 64,
    folds: int = 2,
    steps: int = 500,
    penalty: float = 10.0,
) -> Computed:
    def stat(pairs: list[Pair], seeds: list[int]) -> np.ndarray:
        return np.maximum(0.0, critic_w1(pairs, seeds, hidden=hidden, folds=folds, steps=steps, penalty=penalty))

    values, p = _with_null(stat, plan, seed, n_perm)
    return Computed(
        values,
        p,
        {"hidden": hidden, "folds": folds, "steps": steps, "penalty": penalty,
         "n_held_out": 2 * plan.n_per_side, "value_label": "W1 (critic)"},  # fmt: skip
        f"Wasserstein-1 distance estimated by a WGAN-GP critic ({hidden} hidden units, penalty {penalty:g}, "
        f"{steps} Adam steps; {_held_out_phrase(plan, folds)}; clipped at 0; seed {seed})",
    )
