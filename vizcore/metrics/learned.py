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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from torch import Tensor

from vizcore.metrics.batched import (
    BatchedMLP,
    Folds,
    fit_on_device,
    held_out_sums,
    make_folds,
    pair_seeds,
    per_pair,
    standardise,
    train_models,
    weighted_mean,
)
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
    f, _ = standardise(make_folds(pairs, seeds, folds), per_feature=True)

    def fit(g: Folds) -> list[np.ndarray]:
        net = _logistic(g, weight_decay) if hidden == 0 else _adam_mlp(g, hidden, steps, lr, weight_decay)
        return held_out_sums(net, g, [
            (lambda o: (o > 0).double(), "p"), (lambda o: (o < 0).double(), "q"),
            (F.logsigmoid, "p"), (lambda o: F.logsigmoid(-o), "q"), (torch.ones_like, "p"), (torch.ones_like, "q"),
        ])  # fmt: skip

    right_p, right_q, log_p, log_q, n_p, n_q = (per_pair(a, f.pair) for a in fit_on_device(f, fit))
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
        lp = weighted_mean(F.softplus(-net(g.p_train)), g.p_train_w)  # -log D on P
        lq = weighted_mean(F.softplus(net(g.q_train)), g.q_train_w)  # -log(1 - D) on Q
        return 0.5 * (lp + lq) + weight_decay * net.weight_norm2()

    train_models(net, losses, steps, lr)
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
    number, see :func:`standardise`).
    """
    f, scale = standardise(make_folds(pairs, seeds, folds), per_feature=False)

    def fit(g: Folds) -> list[np.ndarray]:
        net = BatchedMLP(g.p_train.shape[2], hidden, g.seeds, g.p_train.device)
        gens = [torch.Generator().manual_seed(s % (2**63)) for s in g.seeds]
        rows = g.p_train.shape[1]
        eps = torch.stack([torch.rand(steps, rows, 1, generator=gen) for gen in gens], 1).to(g.p_train.device)
        n_q = g.q_train_w.sum(1).long()[:, None]  # (B, 1) real Q rows, which come first

        def losses(t: int) -> Tensor:
            gap = weighted_mean(net(g.p_train), g.p_train_w) - weighted_mean(net(g.q_train), g.q_train_w)
            # each P row meets a Q row that shifts by one every step, so the segments vary
            partner = (torch.arange(rows, device=n_q.device)[None, :] + t) % n_q
            slope = _slopes(net, g.p_train, g.q_train, partner, eps[t], create_graph=True)
            return -gap + penalty * weighted_mean((slope - 1) ** 2, g.p_train_w)

        train_models(net, losses, steps, lr)
        test_rows = g.p_test.shape[1]
        partner = torch.arange(test_rows, device=n_q.device)[None, :] % g.q_test_w.sum(1).long()[:, None]
        mid = torch.stack([torch.rand(test_rows, 1, generator=gen) for gen in gens]).to(n_q.device)
        slope = weighted_mean(_slopes(net, g.p_test, g.q_test, partner, mid, create_graph=False), g.p_test_w)
        sums = held_out_sums(net, g, [(lambda o: o.double(), "p"), (lambda o: o.double(), "q"),
                                       (torch.ones_like, "p"), (torch.ones_like, "q")])  # fmt: skip
        return [*sums, slope.detach().double().cpu().numpy()]

    sum_p, sum_q, n_p, n_q, slope = fit_on_device(f, fit)
    # each critic saw its samples divided by its own scale: multiplying back gives feature units
    per_model = (sum_p / n_p - sum_q / n_q) / slope * scale.reshape(-1).double().cpu().numpy()
    return per_pair(per_model * (n_p + n_q), f.pair) / per_pair(n_p + n_q, f.pair)


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
