"""2-D layouts of feature vectors (t-SNE, UMAP, PCA): :func:`embed`.

``embed()`` returns coordinates only; drawing is ``vizcore.figures``' job. Methods live in
``EMBEDDINGS`` (:mod:`vizcore.embed.registry`), each with a label, the parameters it takes
(name, default, range: enough for a page to build sliders) and a caption template saying how
the layout was computed. t-SNE is :mod:`vizcore.embed.tsne`; UMAP and PCA are here. Fair
before/after pairs are :mod:`vizcore.embed.alignment`.

Every layout is deterministic given its inputs and ``seed``: the same call returns the
same coordinates, so the run store can cache it under
:func:`~vizcore.embed.keys.embedding_key`.

Speed (see ``bench/embeddings.py`` for the measurements behind these choices):

- t-SNE is openTSNE with exact neighbours up to 20k points (brute force on <= 50
  dimensions beats building an Annoy index there), FFT-interpolated repulsion on a
  coarser grid (Barnes-Hut below 2k points, where it is cheaper), PCA initialisation
  and a shorter schedule (125 early-exaggeration iterations + 250, instead of
  250 + 500): several times faster than scikit-learn's defaults at the same
  trustworthiness and class neighbourhoods. Above 20k points it fits every point on a
  uniform kernel over 2/3 x perplexity Annoy neighbours: at 60k points a sixth of the CPU
  time of openTSNE's defaults, within 1 point of their 10-NN accuracy.
- UMAP's first call in a process compiles numba code for tens of seconds; an app calls
  :func:`start_umap_warmup_thread` at start-up so that cost is paid before anyone asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from vizcore.core.params import Param
from vizcore.embed import tsne  # noqa: F401  (registers t-SNE first: the order the pages list methods in)
from vizcore.embed.registry import (
    EMBEDDINGS,
    ProgressFn,
    _check_features,
    _check_init,
    _method,
    _no_progress,
    check_embed_inputs,
)

__all__ = [
    "EMBED_VERSION",
    "EMBEDDINGS",
    "embed",
    "start_umap_warmup_thread",
    "umap_warmed_up",
    "warm_up_umap",
]

log = logging.getLogger(__name__)

#: Bump when a method's computation changes, so cached layouts are recomputed.
EMBED_VERSION = "2"  # 2: above 20k points every point is fitted (uniform kernel), no subsample + placement


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
