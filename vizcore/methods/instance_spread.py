"""Invariant and spreading instance features (Ye et al. 2019): embedding learning without labels.

Every image of a batch is its own class. Two random augmentations of each image give the rows
``z`` (2m of them, L2-normalised features); for row i, ``P(k | i) = softmax_k(z_i · z_k / τ)``
over the other 2m - 1 rows, and the loss

    L = -1/(2m) Σ_i [ log P(p(i) | i) + Σ_{k ≠ i, p(i)} log(1 - P(k | i)) ]

pulls the two views of an image together (``p(i)`` is the other view, *invariant*) and pushes
every other image away (*spreading*). The features are those of the adaptation layer when the
network has one (signed, like the paper's linear embedding), else the GAP vector. Gradients flow through both sides (the paper's code
stops one). No label is used in training; the features are judged by the accuracy of a
k-nearest-neighbour classifier (k = 20, cosine similarity) with the labelled training images
as memory, on the test split: ``knn_acc``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from vizcore.core.params import Param
from vizcore.data.feeds import Feed
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.methods.ddc import adapted_features
from vizcore.models.base import GapNet

KNN_K = 20


def instance_spread_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The invariant-and-spreading loss of two views, rows L2-normalised here.

    Shape:
        z1, z2: (m, D) features of the two views of the same m images; output: ().
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2m, D)
    n = len(z)
    m = n // 2
    logits = z @ z.t() / temperature
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    p = F.softmax(logits.masked_fill(eye, float("-inf")), dim=1)  # (2m, 2m), zero diagonal
    pos = (torch.arange(n, device=z.device) + m) % n
    p_pos = p[torch.arange(n, device=z.device), pos]
    negative = ~eye
    negative[torch.arange(n, device=z.device), pos] = False
    spread = torch.log((1.0 - p).clamp_min(1e-12))[negative].view(n, n - 2).sum(1)
    return -(torch.log(p_pos.clamp_min(1e-12)) + spread).mean()


def random_affine(
    x: torch.Tensor, gen: torch.Generator, *, shift: float, rotate: float, scale: float
) -> torch.Tensor:
    """Each image rotated by up to ``rotate`` degrees, scaled by 1 ± ``scale`` and shifted by up to
    ``shift`` pixels, drawn from ``gen`` (zero fill outside the image).

    Shape:
        x: (B, C, H, W) -> (B, C, H, W).
    """
    b, _, h, w = x.shape

    def uniform(half: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) * 2 - 1) * half

    angle = uniform(math.radians(rotate))
    s = 1.0 + uniform(scale)
    tx, ty = uniform(2 * shift / w), uniform(2 * shift / h)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


@torch.no_grad()
def gap_features(model: GapNet, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """L2-normalised GAP features of the image batches, in eval mode, on the CPU.

    Shape:
        each batch: (B, C, H, W); output: (N, C) over all batches.
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model.forward_features(x.to(dev)).gap.float().cpu() for x in batches]
    model.train(was)
    return F.normalize(torch.cat(out), dim=1)


def knn_accuracy(
    memory: torch.Tensor,
    memory_labels: torch.Tensor,
    query: torch.Tensor,
    labels: torch.Tensor,
    k: int = KNN_K,
) -> float:
    """Accuracy of a k-nearest-neighbour majority vote by cosine similarity (rows normalised here);
    a tie goes to the smaller class index.

    Shape:
        memory: (N, D), memory_labels: (N,), query: (M, D), labels: (M,).
    """
    memory, query = F.normalize(memory.float(), dim=1), F.normalize(query.float(), dim=1)
    k = min(k, len(memory))
    classes = int(max(memory_labels.max(), labels.max())) + 1
    correct = 0
    for i in range(0, len(query), 1024):
        near = (query[i : i + 1024] @ memory.t()).topk(k, dim=1).indices  # (b, k)
        votes = F.one_hot(memory_labels[near], classes).sum(1)  # (b, K)
        correct += int((votes.argmax(1) == labels[i : i + 1024]).sum())
    return correct / max(len(query), 1)


@register_method("instance_spread")
class InstanceSpread(Method):
    uses_target = False
    uses_labels = False
    label = "Instance spreading (self-supervised)"
    description = (
        "No labels: two augmentations of each image are pulled together and different images pushed "
        "apart through a softmax over instance similarities; judged by kNN accuracy of the features."
    )
    params = (
        Param("features", "Features the loss spreads", "choice", "adapted", choices=("adapted", "gap"),
              choice_labels=("adaptation layer (else the GAP vector)", "GAP vector"),
              help="A linear adaptation layer (--bottleneck-dim) gives the loss signed features, as the "
              "paper's 128-d embedding; the GAP vector is non-negative (after ReLU). kNN reads the GAP vector."),
        Param("temperature", "Temperature τ", "float", 0.1, low=0.01, high=1.0, step=0.01,
              help="Sharpness of the softmax over instance similarities (0.1 in the paper)."),
        Param("shift", "Random shift", "float", 3.0, low=0.0, high=10.0, step=0.5, unit="pixels",
              help="Each view is shifted by up to this many pixels."),
        Param("rotate", "Random rotation", "float", 15.0, low=0.0, high=90.0, step=5.0, unit="degrees",
              help="Each view is rotated by up to this many degrees."),
        Param("scale", "Random scaling", "float", 0.15, low=0.0, high=0.5, step=0.05,
              help="Each view is scaled by a factor in 1 ± this."),
    )  # fmt: skip
    extra_metrics = ("positive_prob",)
    eval_metrics = ("knn_acc",)
    score = "knn_acc"

    def loss(
        self,
        model: GapNet,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xt: torch.Tensor | None,
        progress: float,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        p = self.hparams
        gen = self._gen(xs)
        views = [
            random_affine(xs, gen, shift=p["shift"], rotate=p["rotate"], scale=p["scale"])
            for _ in range(2)
        ]
        f = model.forward_features(torch.cat(views))
        z1, z2 = (adapted_features(f) if p["features"] == "adapted" else f.gap).chunk(2)
        loss = instance_spread_loss(z1, z2, p["temperature"])
        with torch.no_grad():
            a, b = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
            sim = a @ b.t() / p["temperature"]
            pos = F.softmax(sim, 1).diagonal().mean()  # how surely a view finds its twin
        return loss, {"loss": loss, "positive_prob": pos}

    def _gen(self, xs: torch.Tensor) -> torch.Generator:
        """The method's own seeded stream of augmentations (made on first use)."""
        if not hasattr(self, "_views_gen"):
            seed = int(torch.randint(0, 2**31 - 1, (1,)))  # from the run's seeded global stream
            object.__setattr__(self, "_views_gen", torch.Generator().manual_seed(seed))
        return self._views_gen

    def evaluate(self, model: GapNet, train: Feed, test: Feed) -> dict[str, float]:
        memory = gap_features(model, (x for x, _ in train.in_order()))
        query = gap_features(model, (x for x, _ in test.in_order()))
        return {"knn_acc": knn_accuracy(memory, train.labels.cpu(), query, test.labels.cpu(), KNN_K)}
