"""Sanity checks of explanation methods: do a method's maps depend on what the model learned?

Model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", NeurIPS;
arXiv:1810.03292), cascading from the top: the parameters of the layer nearest the logits are
re-initialised, then those of the layer below as well, and so on down to the input, and at each
stage every method's maps of the same images (for the same class) are compared with the trained
model's. A method whose maps survive the randomisation of the whole network explains the image,
not the model, and is flagged.

Random logit (Sixt et al. 2020, "When Explanations Lie", ICML; the test Quantus calls
``RandomLogit``): the map of a random class other than the explained one, against the map of the
explained class. A class-specific method should draw a different map.

Definitions follow Quantus 0.6.0 (``MPRT``, ``RandomLogit``, ``similarity_func``), which is the
anchor and a test-only reference (``tests/explain/test_explain_sanity.py``):

* the layers are the modules with a ``reset_parameters`` method, in ``named_modules`` order,
  randomised top-down, each re-initialised by its own ``reset_parameters`` (PyTorch's default
  initialisation) right after ``torch.manual_seed(seed + 1)``, as Quantus's
  ``get_random_layer_generator`` does, so the randomised weights equal Quantus's bit for bit;
  the global random state is restored afterwards, and the cascade works on a deep copy;
* Spearman's rank correlation of the flattened maps, ties given their average rank (as
  ``scipy.stats.spearmanr``), of the absolute values (Quantus's default, the paper's "absolute
  value" panels) and of the signed values (the paper reports both); a constant map has no ranks
  to correlate and counts 0;
* SSIM as Wang et al. 2004 ("Image Quality Assessment: From Error Visibility to Structural
  Similarity", IEEE TIP 13): an 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
  on both maps min-max normalised to [0, 1] as they are drawn (so L = 1), averaged over the
  window positions inside the map (no padding), population (biased) moments. Quantus calls
  scikit-image's ``structural_similarity`` with its defaults instead (a uniform 7 x 7 window,
  sample covariance), and in ``MPRT`` / ``RandomLogit`` on maps flattened to one row, which
  slides the window along the raster rather than over the image; here the window is 2-D, as in
  the paper. A map smaller than the window gets the largest odd window that fits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vizcore.explain.cam import normalize_maps
from vizcore.explain.layers import resolve_layer
from vizcore.explain.methods import explain

SEED = 42  # Quantus's default seed of MPRT and RandomLogit
FLAG_THRESHOLD = 0.5  # mean |rank corr.| with the fully randomised model above this: maps that do not change
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004

# (stage, fraction done in [0, 1]) -> None; may raise to stop between stages
Progress = Callable[[str, float], None]


# --------------------------------------------------------------------------- similarities


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of each row, tied values given the mean of the ranks they span (as scipy's
    ``rankdata(method="average")``).

    Shape:
        x: (N, D). Returns (N, D) float64.
    """
    out = np.empty(x.shape, dtype=np.float64)
    for i, row in enumerate(x):
        order = np.argsort(row, kind="mergesort")
        ordered = row[order]
        new = np.r_[True, ordered[1:] != ordered[:-1]]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(row)]  # exclusive
        mean_rank = (starts + ends - 1) / 2 + 1  # ranks starts+1 .. ends, averaged
        out[i, order] = mean_rank[np.cumsum(new) - 1]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each pair of maps: the Pearson correlation of their
    average ranks; 0 where either map is constant (no ranks to correlate; scipy gives NaN).

    Shape:
        a, b: (N, ...) flattened per map. Returns (N,) float64.
    """
    ra = average_ranks(np.asarray(a, dtype=np.float64).reshape(len(a), -1))
    rb = average_ranks(np.asarray(b, dtype=np.float64).reshape(len(b), -1))
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The 1-D Gaussian of SSIM's separable window, summing to 1. Shape: (size,) float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    r"""Mean SSIM (Wang et al. 2004, eq. 13 with the Gaussian window of their section III-C) of
    each pair of maps:

    .. math::

        SSIM(x, y) = \frac{(2 \mu_x \mu_y + C_1)(2 \sigma_{xy} + C_2)}
                          {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \qquad C_1 = (K_1 L)^2, \; C_2 = (K_2 L)^2,

    with the local means, variances and covariance weighted by the window, at every position where
    the window fits inside the map, then averaged. ``size`` is cut to the largest odd size that
    fits a smaller map.

    Shape:
        a, b: (N, H, W). Returns (N,) float64.
    """
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"SSIM needs two stacks of maps of one shape (N, H, W); got {tuple(a.shape)} and {tuple(b.shape)}")
    size = min(size, *(s - 1 + s % 2 for s in a.shape[1:]))
    g = gaussian_window(size, sigma)
    x, y = a.double()[:, None], b.double()[:, None]

    def blur(t: torch.Tensor) -> torch.Tensor:  # valid positions only: no padding
        return F.conv2d(F.conv2d(t, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def map_similarities(reference: torch.Tensor, other: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image similarity of two sets of maps of the same images: ``rank_abs`` (Spearman of
    |maps|), ``rank_signed`` (Spearman of the maps) and ``ssim`` (of the min-max normalised maps).
    A NaN in a map (a randomised network may overflow) counts as 0, so one bad pixel is not a NaN score.

    Shape:
        reference, other: (N, H, W). Returns three (N,) arrays.
    """
    reference, other = torch.nan_to_num(reference.double()), torch.nan_to_num(other.double())
    a, b = reference.numpy(), other.numpy()
    return {
        "rank_abs": spearman(np.abs(a), np.abs(b)),
        "rank_signed": spearman(a, b),
        "ssim": ssim(normalize_maps(reference), normalize_maps(other)).numpy(),
    }


# --------------------------------------------------------------------------- randomisation


def randomisable_layers(model: nn.Module) -> list[str]:
    """The layers the cascade re-initialises, bottom (input) first: every module with a
    ``reset_parameters`` method (convolutions, batch norms, linear layers), in ``named_modules``
    order, as Quantus lists them."""
    return [name for name, m in model.named_modules() if name and hasattr(m, "reset_parameters")]


def cascade(model: nn.Module, seed: int = SEED) -> Iterator[tuple[str, nn.Module]]:
    """Yield (layer, model with that layer and every layer above it re-initialised), top-down.

    One deep copy of ``model`` is randomised a layer further at each step (so a yielded model
    changes when the next is asked for; the original is never touched). Each layer gets
    ``reset_parameters()`` right after ``torch.manual_seed(seed + 1)``, as Quantus does; the
    caller's random state is restored around it.
    """
    randomised = copy.deepcopy(model)
    for name in reversed(randomisable_layers(randomised)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            randomised.get_submodule(name).reset_parameters()
        yield name, randomised


def other_classes(class_idx: torch.Tensor, n_classes: int, seed: int = SEED) -> torch.Tensor:
    """A random class other than each image's ``class_idx``, uniform over the n - 1 others,
    from a seeded generator (the global random state is not used).

    Shape:
        class_idx: (N,). Returns (N,) int64.
    """
    if n_classes < 2:
        raise ValueError("the random-logit test needs at least two classes")
    draw = torch.randint(0, n_classes - 1, (len(class_idx),), generator=torch.Generator().manual_seed(seed))
    return draw + (draw >= class_idx.cpu()).long()


@dataclass(frozen=True)
class SanityResult:
    """One method's sanity checks on N images.

    Shape:
        rank_abs, rank_signed, ssim: (S, N), row s the similarity of the trained model's maps with
        those of stage s (``stages[s]`` and every layer above it randomised; the last row: the
        whole network). logit_rank_abs, logit_ssim: (N,) the random-logit test. maps: (S + 1, M, H, W)
        the maps of the first M images, the trained model's first, as drawn (min-max per image).
    """

    method: str
    layer: str
    stages: tuple[str, ...]
    rank_abs: np.ndarray
    rank_signed: np.ndarray
    ssim: np.ndarray
    logit_rank_abs: np.ndarray
    logit_ssim: np.ndarray
    maps: np.ndarray

    @property
    def randomised_rank(self) -> float:
        """Mean |rank corr.| (Spearman of absolute values) with the fully randomised model."""
        return float(self.rank_abs[-1].mean())

    @property
    def flagged(self) -> bool:
        """The maps do not depend on the learned weights: a mean rank correlation of |maps| with
        the fully randomised model above FLAG_THRESHOLD."""
        return self.randomised_rank > FLAG_THRESHOLD


def sanity_check(
    model: nn.Module,
    images: torch.Tensor,
    class_idx: torch.Tensor,
    method: str,
    layer: str | None = None,
    *,
    seed: int = SEED,
    keep: int = 2,
    progress: Progress | None = None,
) -> SanityResult:
    """The cascading randomisation and random-logit tests of ``method`` on ``images``, the maps
    of ``class_idx`` (the same classes at every stage) at ``layer`` (None: the last conv block).

    Cost: the method's maps of the images once per stage (one per randomisable layer), plus the
    trained model's and the random class's; ``progress`` hears after each stage.

    Shape:
        images: (N, C, H, W); class_idx: (N,).
    """
    if len(images) == 0:
        raise ValueError("no images for the sanity checks")
    class_idx = torch.as_tensor(class_idx, dtype=torch.long).reshape(-1)
    name = resolve_layer(model, tuple(images.shape[1:]), layer)
    layers = randomisable_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no layer with parameters to randomise")
    tell = progress or (lambda _s, _f: None)
    total = len(layers) + 2

    def maps_of(m: nn.Module, cls: torch.Tensor) -> torch.Tensor:
        return explain(m, images, cls, method, name).maps

    trained = maps_of(model, class_idx)
    with torch.no_grad():
        n_classes = int(model(images[:1].to(next(model.parameters()).device)).shape[1])
    logit = map_similarities(trained, maps_of(model, other_classes(class_idx, n_classes, seed)))
    tell(f"{method}: the trained model and a random class", 2 / total)
    rows: dict[str, list[np.ndarray]] = {"rank_abs": [], "rank_signed": [], "ssim": []}
    shown, stages = [normalize_maps(trained[:keep])], []
    for i, (stage, randomised) in enumerate(cascade(model, seed)):
        now = maps_of(randomised, class_idx)
        for k, v in map_similarities(trained, now).items():
            rows[k].append(v)
        shown.append(normalize_maps(now[:keep]))
        stages.append(stage)
        tell(f"{method}: layers down to {stage} randomised", (i + 3) / total)
    return SanityResult(
        method=method,
        layer=name,
        stages=tuple(stages),
        rank_abs=np.stack(rows["rank_abs"]),
        rank_signed=np.stack(rows["rank_signed"]),
        ssim=np.stack(rows["ssim"]),
        logit_rank_abs=logit["rank_abs"],
        logit_ssim=logit["ssim"],
        maps=torch.stack(shown).numpy(),
    )
