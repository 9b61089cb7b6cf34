"""2-D layouts of feature vectors (t-SNE, UMAP, PCA) and fair before/after pairs.

``embed()`` returns coordinates only; drawing is ``vizcore.figures``' job. Methods live in
a registry, each with a label, the parameters it takes (name, default, range: enough for
a page to build sliders) and a caption template saying how the layout was computed.

Every layout is deterministic given its inputs and ``seed``: the same call returns the
same coordinates, so the run store can cache it under :func:`embedding_key`.

Speed (see ``bench/embeddings.py`` for the measurements behind these choices):

- t-SNE is openTSNE with exact neighbours up to 20k points (brute force on <= 50
  dimensions beats building an Annoy index there), FFT-interpolated repulsion on a
  coarser grid (Barnes-Hut below 2k points, where it is cheaper), PCA initialisation
  and a shorter schedule (125 early-exaggeration iterations + 250, instead of
  250 + 500): several times faster than scikit-learn's defaults at the same
  trustworthiness and class neighbourhoods.
- UMAP's first call in a process compiles numba code for tens of seconds; an app calls
  :func:`start_umap_warmup_thread` at start-up so that cost is paid before anyone asks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA

from vizcore.core.params import Param
from vizcore.core.params import defaults as param_defaults
from vizcore.core.params import validate as validate_params
from vizcore.core.registry import Registry

__all__ = [
    "ALIGNMENTS",
    "EMBED_VERSION",
    "EMBEDDINGS",
    "MIN_POINTS",
    "EmbeddingMethod",
    "Param",
    "ProcrustesInfo",
    "check_embed_inputs",
    "describe",
    "embed",
    "embed_pair",
    "embedding_key",
    "features_digest",
    "procrustes_align",
    "resolve_params",
    "start_umap_warmup_thread",
    "subsample_per_group",
    "umap_warmed_up",
    "warm_up_umap",
]

log = logging.getLogger(__name__)

#: Bump when a method's computation changes, so cached layouts are recomputed.
EMBED_VERSION = "1"
#: Fewest points any method accepts; below this a 2-D layout says nothing.
MIN_POINTS = 5

ProgressFn = Callable[[float, str], None]
# (features (N, D) float64, seed, init (N, 2) or None, progress, **params) -> (N, 2)
EmbedFn = Callable[..., np.ndarray]


def _no_progress(fraction: float, message: str) -> None:
    return None


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EmbeddingMethod:
    """A registered way to lay features out in 2-D."""

    name: str
    label: str
    caption: str  # format template over the params and ``seed``
    run: EmbedFn
    params: tuple[Param, ...] = ()
    supports_init: bool = False
    min_points: int = MIN_POINTS
    # (n_points, n_features, params) -> None; raises ValueError before any work starts
    validate: Callable[[int, int, Mapping[str, Any]], None] = field(default=lambda n, d, p: None)

    def defaults(self) -> dict[str, float | int]:
        return param_defaults(self.params)


EMBEDDINGS: Registry[EmbeddingMethod] = Registry("embedding method")


def _method(
    name: str,
    *,
    label: str,
    caption: str,
    params: tuple[Param, ...] = (),
    supports_init: bool = False,
    min_points: int = MIN_POINTS,
    validate: Callable[[int, int, Mapping[str, Any]], None] | None = None,
) -> Callable[[EmbedFn], EmbedFn]:
    """Decorator registering ``fn`` as embedding method ``name``."""

    def deco(fn: EmbedFn) -> EmbedFn:
        spec = EmbeddingMethod(
            name,
            label,
            caption,
            fn,
            params,
            supports_init,
            min_points,
            validate or (lambda n, d, p: None),
        )
        EMBEDDINGS.add(name, spec)
        return fn

    return deco


def resolve_params(method: str, params: Mapping[str, Any]) -> dict[str, float | int]:
    """Fill defaults, reject unknown names and cast types, so equal settings hash equal."""
    spec = EMBEDDINGS.get(method)
    return validate_params(spec.params, params, owner=spec.label)


def describe(method: str, seed: int = 0, **params: Any) -> str:
    """One line saying how a layout was computed, for the figure caption."""
    spec = EMBEDDINGS.get(method)
    return spec.caption.format(seed=seed, **resolve_params(method, params))


# --------------------------------------------------------------------------- checks


def _check_features(features: np.ndarray, min_points: int, what: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (points, features); got shape {x.shape}")
    if x.shape[0] < min_points:
        raise ValueError(
            f"{what}: {x.shape[0]} points are too few; a 2-D layout needs at least "
            f"{min_points} points"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what} contain NaN or Inf in {int(bad.sum())} of {x.shape[0]} rows "
            f"(first at row {int(np.argmax(bad))}); drop or fix those rows before embedding"
        )
    return x


def _check_init(init: np.ndarray | None, n: int, spec: EmbeddingMethod) -> np.ndarray | None:
    if init is None:
        return None
    if not spec.supports_init:
        raise ValueError(f"{spec.label} takes no initial layout; align with Procrustes instead")
    init = np.asarray(init, dtype=np.float64)
    if init.shape != (n, 2):
        raise ValueError(f"init must have shape ({n}, 2) to match the features; got {init.shape}")
    if not np.isfinite(init).all():
        raise ValueError("init contains NaN or Inf")
    return init


def check_embed_inputs(features: np.ndarray, method: str, **params: Any) -> dict[str, Any]:
    """Raise the ValueError ``embed`` would raise, without computing; returns the params.

    A page can call this to show a message before starting a long computation.
    """
    spec = EMBEDDINGS.get(method)
    values = resolve_params(method, params)
    x = _check_features(features, spec.min_points)
    spec.validate(x.shape[0], x.shape[1], values)
    return values


# --------------------------------------------------------------------------- t-SNE

# Measured choices (bench/embeddings.py); see the module docstring.
_TSNE_EARLY_ITER = 125
_TSNE_EXAGGERATION = 12.0
_TSNE_EXACT_MAX = 20_000  # exact kNN up to here, Annoy above
# Fit at most this many points; place the others into that layout (openTSNE's transform).
TSNE_FIT_MAX = 20_000
# Barnes-Hut below this many points, FFT from here: the FFT grid costs about the same from
# 1k to 5k points while Barnes-Hut grows with N; they cross near 2k.
_TSNE_FFT_MIN = 2_000
_TSNE_PCA_DIMS = 50  # wider features are PCA-reduced first (kNN cost grows with width)
# Layout units per FFT grid interval: 3 (openTSNE's default is 1) stops the grid growing
# as the layout expands late in the run, where the default spends most of its time.
_TSNE_INTS_IN_INTERVAL = 3
_TSNE_CALLBACK_EVERY = 25


def _n_jobs() -> int:
    """Threads for openTSNE: the cores idle right now, at least 1 and at most 8.

    openTSNE's OpenMP threads meet at a barrier every iteration; on a busy machine a
    descheduled thread stalls the others (measured: 2 threads 2-10x slower than 1 on a
    loaded 2-core box). The layout does not depend on the thread count (tested).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on Windows
        busy = 0.0
    return max(1, min(8, round((cores or 1) - busy)))


def _tsne_validate(n: int, d: int, p: Mapping[str, Any]) -> None:
    # openTSNE (like scikit-learn) looks at 3 x perplexity neighbours of every point and
    # quietly lowers a perplexity that does not fit; say so instead.
    perplexity = float(p["perplexity"])
    if 3 * perplexity > n - 1:
        raise ValueError(
            f"perplexity {perplexity:g} is too large for {n} points: t-SNE needs "
            f"3 x perplexity <= points - 1 (here perplexity <= {(n - 1) / 3:.1f}); "
            f"lower the perplexity or use more points"
        )


def _tsne_progress(
    progress: ProgressFn, start: int, total: int, phase: str
) -> Callable[[int, float, np.ndarray], bool]:
    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        done = start + iteration
        # 5% goes to neighbours and affinities, the rest to the iterations.
        progress(0.05 + 0.95 * done / total, f"t-SNE {phase}: iteration {done}/{total}")
        return False  # True would stop the optimisation

    return callback


def _tsne_fit(
    x: np.ndarray, seed: int, init: np.ndarray | None, progress: ProgressFn, perplexity: float, n_iter: int
) -> Any:
    """openTSNE's full fit of every row of x with vizcore's schedule; the ``TSNEEmbedding``."""
    from openTSNE import TSNEEmbedding, affinity, initialization

    n_jobs = _n_jobs()
    progress(0.0, f"t-SNE: nearest neighbours of {len(x):,} points")
    exact = len(x) <= _TSNE_EXACT_MAX
    affinities = affinity.PerplexityBasedNN(
        x,
        perplexity=perplexity,
        method="exact" if exact else "annoy",
        # Annoy's threaded build gives each thread its own random stream and shares the
        # trees among threads as they run; one thread keeps the index a function of the seed.
        n_jobs=n_jobs if exact else 1,
        random_state=seed,
    )
    if init is None:
        start = initialization.pca(x, random_state=seed)  # std 1e-4, as openTSNE advises
    else:
        # Keep the given layout's shape but shrink it like a PCA start, so the early
        # exaggeration phase behaves the same for both members of a pair.
        start = initialization.rescale(init - init.mean(axis=0), target_std=1e-4)
    embedding = TSNEEmbedding(
        start,
        affinities,
        negative_gradient_method="fft" if len(x) >= _TSNE_FFT_MIN else "bh",
        ints_in_interval=_TSNE_INTS_IN_INTERVAL,
        n_jobs=n_jobs,
        random_state=seed,
    )
    total = _TSNE_EARLY_ITER + n_iter
    # Momentum 0.5 while exaggerated, then 0.8, as in the original t-SNE and scikit-learn.
    embedding.optimize(
        _TSNE_EARLY_ITER,
        exaggeration=_TSNE_EXAGGERATION,
        momentum=0.5,
        inplace=True,
        callbacks=_tsne_progress(progress, 0, total, "early exaggeration"),
        callbacks_every_iters=_TSNE_CALLBACK_EVERY,
    )
    embedding.optimize(
        n_iter,
        momentum=0.8,
        inplace=True,
        callbacks=_tsne_progress(progress, _TSNE_EARLY_ITER, total, "refinement"),
        callbacks_every_iters=_TSNE_CALLBACK_EVERY,
    )
    return embedding


def _cuml_tsne() -> Any:
    """cuML's t-SNE class when cuML is installed and a CUDA GPU is visible, else None."""
    try:
        import torch
        from cuml.manifold import TSNE  # type: ignore[import-not-found]
    except ImportError:
        return None
    return TSNE if torch.cuda.is_available() else None


def tsne_reference_rows(n: int, seed: int) -> np.ndarray:
    """The rows a large t-SNE is fitted on (sorted, seeded); all rows up to ``TSNE_FIT_MAX``."""
    if n <= TSNE_FIT_MAX:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 17]).choice(n, TSNE_FIT_MAX, replace=False))


@_method(
    "tsne",
    label="t-SNE",
    caption=(
        "t-SNE (openTSNE): perplexity {perplexity:g}, PCA initialisation, "
        f"{_TSNE_EARLY_ITER} iterations with early exaggeration {_TSNE_EXAGGERATION:g} "
        "then {n_iter} more, seed {seed}"
        f"; above {TSNE_FIT_MAX:,} points, fitted on a seeded subsample of {TSNE_FIT_MAX:,} and the "
        "other points placed into it (openTSNE transform), or all fitted by cuML where it and a GPU are present"
    ),
    params=(
        Param(
            "perplexity",
            "Perplexity",
            "float",
            30.0,
            low=2,
            high=100,
            step=1,
            widget="slider",
            help="Effective number of neighbours each point attends to.",
        ),
        Param(
            "n_iter",
            "Iterations",
            "int",
            250,
            low=50,
            high=1000,
            step=50,
            widget="slider",
            help="Optimisation iterations after the early-exaggeration phase.",
        ),
    ),
    supports_init=True,
    min_points=7,  # 3 x the smallest perplexity (2) + 1
    validate=_tsne_validate,
)
def _tsne(
    x: np.ndarray,
    seed: int,
    init: np.ndarray | None,
    progress: ProgressFn,
    perplexity: float,
    n_iter: int,
) -> np.ndarray:
    if x.shape[1] > _TSNE_PCA_DIMS:
        x = PCA(_TSNE_PCA_DIMS, random_state=seed).fit_transform(x)
    ref = tsne_reference_rows(len(x), seed)
    gpu = _cuml_tsne() if len(ref) < len(x) else None
    if gpu is not None:  # a GPU fits every point in the time the CPU needs for the subsample
        progress(0.0, f"t-SNE: cuML on the GPU, {len(x):,} points")
        return np.asarray(gpu(n_components=2, perplexity=perplexity, n_iter=_TSNE_EARLY_ITER + n_iter,
                              random_state=seed).fit_transform(x), dtype=np.float64)  # fmt: skip
    if len(ref) == len(x):
        return np.asarray(_tsne_fit(x, seed, init, progress, perplexity, n_iter))
    # Above TSNE_FIT_MAX points a full fit costs more than it gives (bench/embeddings.py): fit a
    # seeded subsample, then place every other point against the fixed reference layout.
    rest = np.setdiff1d(np.arange(len(x)), ref)
    fitted = _tsne_fit(x[ref], seed, None if init is None else init[ref],
                       lambda f, m: progress(0.7 * f, m), perplexity, n_iter)  # fmt: skip
    out = np.empty((len(x), 2))
    out[ref] = np.asarray(fitted)  # copied first: openTSNE's transform moves the reference layout
    progress(0.7, f"t-SNE: placing {len(rest):,} more points into the {len(ref):,}-point layout")
    out[rest] = np.asarray(fitted.transform(x[rest]))
    return out


# --------------------------------------------------------------------------- UMAP


def _umap_validate(n: int, d: int, p: Mapping[str, Any]) -> None:
    if p["n_neighbors"] >= n:
        raise ValueError(
            f"n_neighbors={p['n_neighbors']} must be smaller than the number of points "
            f"({n}); lower n_neighbors or use more points"
        )


# umap-learn runs 500 epochs up to 10k points and 200 above. From where it switches to
# approximate neighbours (4096 points) 200 epochs already give the same trustworthiness
# and class neighbourhoods at 10k points (bench/embeddings.py) in 40% less time.
_UMAP_LARGE = 4096
_UMAP_EPOCHS_LARGE = 200


@_method(
    "umap",
    label="UMAP",
    caption=(
        "UMAP (umap-learn): n_neighbors {n_neighbors}, min_dist {min_dist:g}, "
        "spectral initialisation, "
        f"500 epochs ({_UMAP_EPOCHS_LARGE} above {_UMAP_LARGE:,} points), seed {{seed}}"
    ),
    params=(
        Param(
            "n_neighbors",
            "Neighbours",
            "int",
            15,
            low=2,
            high=200,
            step=1,
            unit="points",
            widget="slider",
            help="Size of the local neighbourhood; larger keeps more global structure.",
        ),
        Param(
            "min_dist",
            "Minimum distance",
            "float",
            0.1,
            low=0.0,
            high=0.99,
            step=0.01,
            widget="slider",
            help="How tightly points may pack together in the layout.",
        ),
    ),
    supports_init=True,
    validate=_umap_validate,
)
def _umap(
    x: np.ndarray,
    seed: int,
    init: np.ndarray | None,
    progress: ProgressFn,
    n_neighbors: int,
    min_dist: float,
) -> np.ndarray:
    progress(0.0, "UMAP: loading umap-learn")
    import umap  # lazily: a cold import compiles numba code for ~15 s

    progress(0.05, f"UMAP: neighbour graph and layout of {len(x):,} points")
    model = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        n_epochs=_UMAP_EPOCHS_LARGE if len(x) > _UMAP_LARGE else None,
        init="spectral" if init is None else init,
        random_state=seed,  # a seed makes umap single-threaded, and reproducible
        n_jobs=1,  # stated explicitly: otherwise umap warns that the seed overrode it
        transform_seed=seed,
    )
    return model.fit_transform(x.astype(np.float32))


_WARMUP_LOCK = threading.Lock()
_WARMUP_THREAD: threading.Thread | None = None
_WARMUP_DONE = threading.Event()


def warm_up_umap(n: int = 5000, seed: int = 0) -> float:
    """Run UMAP once on synthetic data so numba compiles its code paths now.

    ``n`` must be at least 4096: below that umap-learn uses exact neighbours, and the
    approximate (pynndescent) path that real data of a few thousand points takes is
    compiled only on its first use. The data are 128 wide because pynndescent's forest
    builder splits breadth-first (more code to compile) only nodes holding over 1 MiB of
    rows. A small fit before it compiles the exact path.

    Returns:
        Seconds spent.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(10, 128))  # overlapping: one connected graph
    x = centers[rng.integers(0, 10, size=n)] + rng.normal(size=(n, 128))  # (n, 128)
    # Small first: the exact-neighbour path is what pages with < 4,096 points use, so it
    # is ready early; then the approximate path.
    embed(x[:300], "umap", seed)
    embed(x, "umap", seed)
    _WARMUP_DONE.set()
    return time.perf_counter() - t0


def _warm_up_in_background(n: int) -> None:
    try:
        seconds = warm_up_umap(n)
        log.info("UMAP warm-up finished in %.1f s", seconds)
    except Exception:  # a failed warm-up only means the first real call is slow
        log.exception("UMAP warm-up failed")


def start_umap_warmup_thread(n: int = 5000) -> threading.Thread:
    """Start :func:`warm_up_umap` once per process in a daemon thread; returns that thread.

    Idempotent and thread-safe: later calls return the same thread. Call it when the app
    starts, so the first UMAP a user asks for skips the compilation.
    """
    global _WARMUP_THREAD
    with _WARMUP_LOCK:
        if _WARMUP_THREAD is None:
            _WARMUP_THREAD = threading.Thread(
                target=_warm_up_in_background, args=(n,), name="umap-warmup", daemon=True
            )
            _WARMUP_THREAD.start()
        return _WARMUP_THREAD


def umap_warmed_up() -> bool:
    """Whether a UMAP warm-up has finished in this process."""
    return _WARMUP_DONE.is_set()


# --------------------------------------------------------------------------- PCA


def _pca_validate(n: int, d: int, p: Mapping[str, Any]) -> None:
    if d < 2:
        raise ValueError(f"PCA to 2-D needs at least 2 feature dimensions; got {d}")


@_method(
    "pca",
    label="PCA",
    caption="PCA (scikit-learn): the first two principal components, seed {seed}",
    validate=_pca_validate,
)
def _pca(x: np.ndarray, seed: int, init: np.ndarray | None, progress: ProgressFn) -> np.ndarray:
    # svd_flip inside scikit-learn fixes the component signs, so this is deterministic.
    return PCA(n_components=2, random_state=seed).fit_transform(x)


# --------------------------------------------------------------------------- embed


def embed(
    features: np.ndarray,
    method: str,
    seed: int = 0,
    *,
    init: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    **params: Any,
) -> np.ndarray:
    """Lay ``features`` out in 2-D with a registered method.

    Args:
        features: one row per point.
        method: a name in :data:`EMBEDDINGS` (``"tsne"``, ``"umap"``, ``"pca"``).
        seed: fixes every random choice; the same call returns identical coordinates.
        init: optional starting layout (t-SNE, UMAP), e.g. another layout of the same points.
        progress: optional ``callback(fraction, message)`` called during long computations.
        **params: the method's parameters (see ``EMBEDDINGS.get(method).params``).

    Returns:
        (N, 2) float64 coordinates.

    Raises:
        ValueError: too few points, NaN/Inf rows, parameters that do not fit the data.

    Shape:
        features: (N, D); init: (N, 2).
    """
    spec = EMBEDDINGS.get(method)
    values = check_embed_inputs(features, method, **params)
    x = _check_features(features, spec.min_points)
    start = _check_init(init, len(x), spec)
    report = progress or _no_progress
    xy = spec.run(x, seed, start, report, **values)
    report(1.0, f"{spec.label}: done")
    return np.ascontiguousarray(xy, dtype=np.float64)


# --------------------------------------------------------------------------- alignment


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


# --------------------------------------------------------------------------- caching helpers


def features_digest(features: np.ndarray) -> str:
    """Stable SHA-256 of an array's dtype, shape and values."""
    x = np.ascontiguousarray(features)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes())
    return h.hexdigest()


def embedding_key(
    method: str,
    seed: int,
    params: Mapping[str, Any],
    features_digest: str,
    *,
    init_digest: str | None = None,
) -> str:
    """Stable cache key of a layout, e.g. ``"tsne-3f9c0a1b2c3d4e5f"``.

    Defaults are filled in first, so ``{}`` and the explicit defaults share a key; an
    'after' layout started from a 'before' layout passes the latter's digest as
    ``init_digest``. :data:`EMBED_VERSION` is part of the key.
    """
    payload = {
        "version": EMBED_VERSION,
        "method": method,
        "seed": int(seed),
        "params": resolve_params(method, params),
        "features": features_digest,
        "init": init_digest,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{method}-{digest[:16]}"


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
