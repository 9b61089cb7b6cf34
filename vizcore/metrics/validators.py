"""Unsupervised validators: scores that rank trained runs for a target domain without its labels.

In domain adaptation the target labels are what a user does not have, so λ, the epoch and the
method cannot honestly be picked by target accuracy. A validator scores one trained model from
what is available: its predictions on the unlabelled target training images, and labelled
held-out source images. Musgrave et al. (2022), "Benchmarking validation methods for
unsupervised domain adaptation", measured how well such scores rank runs.

Sign convention: every registered score is oriented so that **higher is a better pick**. Scores
that papers define as a loss or a risk (entropy, DEV) are registered negated; the description
of each says so.

Inputs (:class:`ValidationData`): softmax outputs and features of a sample of the target
*training* split (no labels), of the source test split (the labelled held-out source data;
the project keeps no separate source validation split), and features of a sample of the source
training split (DEV's domain classifier).

Where pytorch-adapt (the library Musgrave et al. used) defines a score differently from its paper,
the paper is followed and the difference is stated beside the score (SND compared with
pytorch-adapt's ``SNDValidator`` source; the BNM and DEV notes from memory of its code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vizcore.core.params import Param, defaults, validate
from vizcore.core.registry import Registry

EPS = 1e-12


@dataclass(frozen=True)
class ValidationData:
    """What the validators read of one run; nothing here holds a target label.

    Shape:
        target_probs: (N, K) softmax on target training images; target_feat: (N, D).
        source_probs: (M, K) softmax on source held-out images; source_labels: (M,);
        source_feat: (M, D). source_train_feat: (S, D), for DEV's domain classifier.
    """

    target_probs: np.ndarray
    target_feat: np.ndarray
    source_probs: np.ndarray
    source_labels: np.ndarray
    source_feat: np.ndarray
    source_train_feat: np.ndarray


ScoreFn = Callable[..., float]


@dataclass(frozen=True)
class Validator:
    """A registry entry: what a page shows, the paper, and the scoring function.

    Attributes:
        name: registry name.
        label: short label for tables and legends.
        paper: the paper that defines it.
        description: what it scores and how it is oriented (higher is always a better pick).
        fn: (ValidationData, **params) -> float.
        params: typed parameters, checked by :func:`vizcore.core.params.validate`.
    """

    name: str
    label: str
    paper: str
    description: str
    fn: ScoreFn
    params: tuple[Param, ...] = field(default_factory=tuple)

    def score(self, data: ValidationData, **params: Any) -> float:
        """The score with checked parameters (defaults filled)."""
        return float(self.fn(data, **validate(self.params, params)))


VALIDATORS: Registry[Validator] = Registry("validator")


def register_validator(name: str, label: str, paper: str, description: str,
                       params: tuple[Param, ...] = ()) -> Callable[[ScoreFn], ScoreFn]:  # fmt: skip
    """Decorator registering a scoring function with its label, paper, description and parameters."""

    def deco(fn: ScoreFn) -> ScoreFn:
        VALIDATORS.add(name, Validator(name, label, paper, description, fn, params))
        return fn

    return deco


def entropies(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row of ``probs`` in nats: (N, K) -> (N,)."""
    p = np.asarray(probs, dtype=np.float64)
    return -(p * np.log(p + EPS)).sum(1)


@register_validator(
    "source_acc", "Source accuracy", "the classical baseline (Musgrave et al. 2022, §3)",
    "Accuracy on the labelled held-out source images. Higher is better.",
)
def source_accuracy(d: ValidationData) -> float:
    return float((d.source_probs.argmax(1) == d.source_labels).mean())


@register_validator(
    "entropy", "Entropy", "Grandvalet & Bengio (2005); as a validator, Morerio et al. (2018)",
    "Mean prediction entropy on the target, negated: confident target predictions score higher.",
)
def neg_entropy(d: ValidationData) -> float:
    return -float(entropies(d.target_probs).mean())


@register_validator(
    "im", "Information maximisation", "Shi & Sha (2012); the loss of Liang et al. (2020, SHOT)",
    "Entropy of the mean target prediction minus the mean entropy (SHOT's loss, negated): "
    "confident predictions that still use every class score higher.",
)
def information_maximisation(d: ValidationData) -> float:
    mean = d.target_probs.astype(np.float64).mean(0, keepdims=True)
    return float(entropies(mean)[0] - entropies(d.target_probs).mean())


@register_validator(
    "bnm", "BNM", "Cui et al. (2020), batch nuclear-norm maximisation",
    "Nuclear norm of the target prediction matrix divided by its number of rows: higher when "
    "predictions are both confident and diverse.",
)
def batch_nuclear_norm(d: ValidationData) -> float:
    # Cui et al. divide by the batch size B; pytorch-adapt's validator reports the raw norm.
    # Dividing keeps scores of runs with different sample sizes comparable; the ranking is the same.
    p = d.target_probs.astype(np.float64)
    return float(np.linalg.svd(p, compute_uv=False).sum() / len(p))


@register_validator(
    "snd", "SND", "Saito et al. (2021), soft neighbourhood density",
    "Mean entropy of each target image's softmax over its cosine similarities to the other target "
    "images (of their predictions), divided by a temperature. Higher is better.",
    params=(Param("temperature", "Temperature", "float", 0.05, low=1e-4, high=10.0,
                  help="Divides the similarities before the softmax; 0.05 in the paper."),),  # fmt: skip
)
def soft_neighbourhood_density(d: ValidationData, temperature: float = 0.05) -> float:
    # Self-similarity is left out (the paper's "excluding itself"), as pytorch-adapt does; Saito's
    # code instead sets it to -1/T, which weighs it e^(-2/T) ≈ 0: the same value to float precision.
    p = d.target_probs.astype(np.float64)
    z = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), EPS)
    n = len(z)
    if n < 2:
        raise ValueError("SND needs at least 2 target images")
    sim = (z @ z.T)[~np.eye(n, dtype=bool)].reshape(n, n - 1) / temperature
    sim -= sim.max(1, keepdims=True)
    soft = np.exp(sim)
    soft /= soft.sum(1, keepdims=True)
    return float(entropies(soft).mean())


def dev_risk(loss: np.ndarray, weights: np.ndarray) -> float:
    """You et al.'s DEV risk from per-sample source losses and density ratios (their Algorithm 1):
    mean(w·ℓ) + η·mean(w) − η with the control variate η = −Cov(w·ℓ, w) / Var(w)."""
    wl, w = np.asarray(weights, float) * np.asarray(loss, float), np.asarray(weights, float)
    var = w.var(ddof=1)
    eta = 0.0 if var <= 0 else -np.cov(wl, w)[0, 1] / var
    return float(wl.mean() + eta * w.mean() - eta)


def density_ratio(source_train: np.ndarray, target: np.ndarray, source_val: np.ndarray,
                  seed: int = 0) -> np.ndarray:  # fmt: skip
    """w(x) = p_target(x) / p_source(x) at the source held-out points, from a logistic-regression
    domain classifier on standardised features: (n_s / n_t) · P(target | x) / P(source | x)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([source_train, target]).astype(np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    y = np.r_[np.zeros(len(source_train)), np.ones(len(target))]
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit((x - mu) / sd, y)
    p = clf.predict_proba((np.asarray(source_val, np.float64) - mu) / sd)  # (M, 2)
    return len(source_train) / len(target) * p[:, 1] / np.maximum(p[:, 0], EPS)


@register_validator(
    "dev", "DEV", "You et al. (2019), deep embedded validation",
    "Importance-weighted cross-entropy on the source held-out images, with a domain classifier's "
    "density ratio and the control variate, negated (DEV is a risk): higher is better.",
)
def deep_embedded_validation(d: ValidationData) -> float:
    # As in the paper's code: a logistic-regression domain classifier and the per-sample
    # cross-entropy. pytorch-adapt trains an MLP discriminator and by default normalises the
    # weights (divides by their maximum) before the same formula.
    w = density_ratio(d.source_train_feat, d.target_feat, d.source_feat)
    loss = -np.log(d.source_probs[np.arange(len(d.source_labels)), d.source_labels].astype(np.float64) + EPS)
    return -dev_risk(loss, w)


@register_validator(
    "reverse", "Reverse (centroids)", "after Zhong et al. (2010) and Ganin et al. (2016, §5.1)",
    "Reverse validation in feature space: class centroids of the target features under the "
    "model's own target predictions classify the source held-out images; their accuracy. "
    "Higher is better.",
)
def reverse_centroids(d: ValidationData) -> float:
    # The papers train a second network on the pseudo-labelled target and test it on the source;
    # a nearest-centroid classifier on the run's features is that check at no training cost.
    pseudo = d.target_probs.argmax(1)
    have = np.unique(pseudo)
    cent = np.stack([d.target_feat[pseudo == c].mean(0) for c in have])  # (C', D)
    dist = ((d.source_feat[:, None, :] - cent[None]) ** 2).sum(-1)
    guess = have[dist.argmin(1)]
    return float((guess == d.source_labels).mean())


def score_all(data: ValidationData, params: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """Every registered validator's score (with its default parameters unless ``params`` names some)."""
    params = params or {}
    return {name: VALIDATORS.get(name).score(data, **params.get(name, {})) for name in VALIDATORS}


def default_params() -> dict[str, dict[str, Any]]:
    """Each validator's default parameters, by name (what a cache key records)."""
    return {name: defaults(VALIDATORS.get(name).params) for name in VALIDATORS}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0 (smallest) to N - 1, ties sharing their mean rank."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(x, float)) - 1.0


def weighted_spearman(score: np.ndarray, accuracy: np.ndarray, power: float = 2.0) -> float:
    """Spearman's correlation of validator scores with accuracies, the best runs weighing most.

    After Musgrave et al. (2022, §4): both are turned into ranks scaled to [0, 1], each run weighs
    ``(its accuracy rank) ** power`` (the most accurate run 1, the least 0), and the result is the
    weighted Pearson correlation of the two ranks. ``power = 0`` weighs all runs alike: the plain
    Spearman correlation. A validator that ranks the top runs right scores near 1 even if it
    confuses the bad ones, which is what picking one run needs.
    """
    n = len(score)
    if n < 2:
        raise ValueError("a correlation needs at least 2 runs")
    rs, ra = _ranks(score) / (n - 1), _ranks(accuracy) / (n - 1)
    w = ra**power
    if w.sum() <= 0:
        return float("nan")
    w = w / w.sum()
    ms, ma = (w * rs).sum(), (w * ra).sum()
    cov = (w * (rs - ms) * (ra - ma)).sum()
    var = (w * (rs - ms) ** 2).sum() * (w * (ra - ma) ** 2).sum()
    return float(cov / np.sqrt(var)) if var > 0 else float("nan")
