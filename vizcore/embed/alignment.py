"""Fair before/after pairs: the layouts of the same points before and after adaptation, made
comparable by starting the second from the first and/or orthogonal Procrustes (``ALIGNMENTS``),
and the same points picked for both (:func:`subsample_per_group`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes

from vizcore.core.registry import Registry
from vizcore.embed.methods import embed
from vizcore.embed.registry import (
    EMBEDDINGS,
    EmbeddingMethod,
    ProgressFn,
    _check_features,
    _no_progress,
    check_embed_inputs,
    describe,
)


@dataclass(frozen=True)
class ProcrustesInfo:
    """How :func:`procrustes_align` moved a layout: ``aligned = scale * moving @ rotation + translation``."""

    rotation: np.ndarray  # (2, 2) orthogonal
    scale: float
    translation: np.ndarray  # (2,)
    reflection: bool  # det(rotation) < 0
    rms_residual: float  # sqrt(mean squared point distance to the reference), reference units
    # Residual sum of squares after both are centred and scaled to unit norm, in [0, 1]:
    # 0 = same shape, 1 = unrelated (scipy.spatial.procrustes' "disparity").
    disparity: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rotation": self.rotation.tolist(),
            "scale": self.scale,
            "translation": self.translation.tolist(),
            "reflection": self.reflection,
            "rms_residual": self.rms_residual,
            "disparity": self.disparity,
        }


def procrustes_align(
    moving: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, ProcrustesInfo]:
    """Rotate/reflect, scale uniformly and translate ``moving`` onto ``reference``.

    Orthogonal Procrustes on the same points in the same order (row i of both is the
    same sample), so only the layout's arbitrary pose changes, never its shape.

    Shape:
        moving, reference: (N, 2) (any equal width works). Returns aligned (N, 2).
    """
    mov = _check_features(moving, 3, "moving layout")
    ref = _check_features(reference, 3, "reference layout")
    if mov.shape != ref.shape:
        raise ValueError(f"layouts differ in shape: {mov.shape} vs {ref.shape}")
    mov_mean, ref_mean = mov.mean(axis=0), ref.mean(axis=0)
    mov_c, ref_c = mov - mov_mean, ref - ref_mean
    mov_ss, ref_ss = float(np.sum(mov_c**2)), float(np.sum(ref_c**2))
    if mov_ss == 0.0 or ref_ss == 0.0:
        raise ValueError("cannot align a layout whose points all coincide")
    rotation, singular_sum = orthogonal_procrustes(mov_c, ref_c)  # min ||mov_c R - ref_c||
    scale = float(singular_sum) / mov_ss
    translation = ref_mean - scale * mov_mean @ rotation
    aligned = scale * mov @ rotation + translation
    residual = float(np.sum((aligned - ref) ** 2))
    info = ProcrustesInfo(
        rotation=rotation,
        scale=scale,
        translation=translation,
        reflection=bool(np.linalg.det(rotation) < 0),
        rms_residual=float(np.sqrt(residual / len(ref))),
        disparity=float(min(1.0, residual / ref_ss)),
    )
    return aligned, info


def _procrustes_sentence(info: ProcrustesInfo) -> str:
    moves = "rotated, reflected" if info.reflection else "rotated"
    return (
        f"{moves}, scaled by {info.scale:.3g} and shifted onto the 'before' layout by "
        f"orthogonal Procrustes on the same points (disparity {info.disparity:.3f}; "
        f"0 = same shape, 1 = unrelated)"
    )


# Alignment strategies: (spec, after features, before layout, seed, params, progress)
# -> (after layout, clause for the description).
AlignFn = Callable[
    [EmbeddingMethod, np.ndarray, np.ndarray, int, Mapping[str, Any], ProgressFn],
    tuple[np.ndarray, str],
]
ALIGNMENTS: Registry[AlignFn] = Registry("alignment")


@ALIGNMENTS.register("init")
def _align_init(
    spec: EmbeddingMethod,
    after: np.ndarray,
    before_xy: np.ndarray,
    seed: int,
    params: Mapping[str, Any],
    progress: ProgressFn,
) -> tuple[np.ndarray, str]:
    if not spec.supports_init:
        xy, clause = _align_procrustes(spec, after, before_xy, seed, params, progress)
        return xy, f"{spec.label} takes no initial layout, so {clause}"
    xy = embed(after, spec.name, seed, init=before_xy, progress=progress, **params)
    aligned, info = procrustes_align(xy, before_xy)
    return aligned, "it started from the 'before' layout instead of its own initialisation, and was then " + (
        _procrustes_sentence(info)
    )


@ALIGNMENTS.register("procrustes")
def _align_procrustes(
    spec: EmbeddingMethod,
    after: np.ndarray,
    before_xy: np.ndarray,
    seed: int,
    params: Mapping[str, Any],
    progress: ProgressFn,
) -> tuple[np.ndarray, str]:
    xy = embed(after, spec.name, seed, progress=progress, **params)
    aligned, info = procrustes_align(xy, before_xy)
    return aligned, "the 'after' layout was computed independently, then " + _procrustes_sentence(
        info
    )


@ALIGNMENTS.register("none")
def _align_none(
    spec: EmbeddingMethod,
    after: np.ndarray,
    before_xy: np.ndarray,
    seed: int,
    params: Mapping[str, Any],
    progress: ProgressFn,
) -> tuple[np.ndarray, str]:
    xy = embed(after, spec.name, seed, progress=progress, **params)
    return xy, (
        "the two layouts were not aligned: their orientation and position are arbitrary, "
        "so compare cluster structure, not where clusters sit"
    )


def _sub_progress(progress: ProgressFn, low: float, high: float, tag: str) -> ProgressFn:
    def report(fraction: float, message: str) -> None:
        progress(low + (high - low) * fraction, f"{tag}: {message}")

    return report


def embed_pair(
    before_feats: np.ndarray,
    after_feats: np.ndarray,
    method: str,
    seed: int = 0,
    align: str = "init",
    *,
    progress: ProgressFn | None = None,
    **params: Any,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Layouts of the same points before and after adaptation, made comparable.

    Both use the same method, parameters and seed. ``align`` (see :data:`ALIGNMENTS`):

    - ``"init"``: the 'after' layout starts from the 'before' layout (t-SNE, UMAP), then
      is Procrustes-aligned; PCA takes no start, so it is Procrustes-aligned only.
    - ``"procrustes"``: computed independently, then Procrustes-aligned.
    - ``"none"``: computed independently, left as is.

    Returns:
        ``(before_xy, after_xy, description)``; the description is a sentence saying how
        the pair was computed and aligned, for the page and the figure caption.

    Shape:
        before_feats: (N, D1), after_feats: (N, D2) with row i the same sample in both.
    """
    align_fn = ALIGNMENTS.get(align)
    spec = EMBEDDINGS.get(method)
    n_before, n_after = len(np.asarray(before_feats)), len(np.asarray(after_feats))
    if n_before != n_after:
        raise ValueError(
            f"before and after must hold the same points; got {n_before} and {n_after} rows"
        )
    # Check both before spending time on the first.
    check_embed_inputs(after_feats, method, **params)
    values = check_embed_inputs(before_feats, method, **params)
    report = progress or _no_progress
    before_xy = embed(
        before_feats, method, seed, progress=_sub_progress(report, 0.0, 0.5, "before"), **values
    )
    after_xy, clause = align_fn(
        spec, after_feats, before_xy, seed, values, _sub_progress(report, 0.5, 1.0, "after")
    )
    description = (
        f"Before: {describe(method, seed, **values)}, on {n_before:,} points. After: the same method and "
        f"settings on the same points; {clause}."
    )
    return before_xy, after_xy, description


def subsample_per_group(groups: np.ndarray, n_per_group: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n_per_group`` seeded random points from each group.

    Use it once and index both 'before' and 'after' features with the result, so the two
    layouts show the same points (e.g. ``groups`` = domain of each point).

    Shape:
        groups: (N,). Returns (M,) int indices.
    """
    groups = np.asarray(groups)
    if n_per_group < 1:
        raise ValueError(f"n_per_group must be at least 1; got {n_per_group}")
    rng = np.random.default_rng(seed)
    picks = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        take = min(n_per_group, len(members))
        picks.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picks))
