"""t-SNE (openTSNE) with vizcore's measured settings: FFT repulsion from 2k points (Barnes-Hut
below), PCA initialisation and a short schedule. Up to ``TSNE_LARGE_N`` points the affinities are
perplexity-based on exact neighbours; above, every point is still fitted, on a uniform kernel over
approximate (Annoy) neighbours, 2/3 x perplexity of them instead of the perplexity's 3 x perplexity
(or cuML fits them all where it and a GPU are present). See ``bench/embeddings.py --large``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from vizcore.core.params import Param
from vizcore.embed.registry import ProgressFn, _method

# Measured choices (bench/embeddings.py); see the module docstring.
_TSNE_EARLY_ITER = 125
_TSNE_EXAGGERATION = 12.0
# Above this many points: Annoy neighbours and the uniform kernel (module docstring). At 60k
# points openTSNE's defaults spend a quarter of their time on 90 Annoy neighbours per point and
# most of the rest on 750 iterations; 20 uniform neighbours and 125 + 250 iterations keep the
# 10-NN accuracy within 1 point and the trustworthiness above it, at a sixth of the CPU time.
TSNE_LARGE_N = 20_000
# Uniform-kernel neighbours per unit of perplexity: perplexity 30 -> 20 neighbours. Measured at
# 60k points on two digit feature sets (k = 10 to 30): fewer neighbours raise the 10-NN accuracy
# and lower the trustworthiness; 15 lost 0.016 of trustworthiness to openTSNE's defaults on
# rotated digits, 30 lost 1.02 points of 10-NN accuracy on shifted ones; 20 kept both goals on both.
_TSNE_UNIFORM_PER_PERPLEXITY = 2 / 3
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
    progress: ProgressFn, start: int, total: int, phase: str, neighbours: float
) -> Callable[[int, float, np.ndarray], bool]:
    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        done = start + iteration
        # ``neighbours`` of the bar goes to neighbours and affinities, the rest to the iterations.
        progress(neighbours + (1 - neighbours) * done / total, f"t-SNE {phase}: iteration {done}/{total}")
        return False  # True would stop the optimisation

    return callback


def uniform_neighbours(perplexity: float) -> int:
    """Neighbours of the uniform kernel used above ``TSNE_LARGE_N`` points for this perplexity."""
    return max(2, round(_TSNE_UNIFORM_PER_PERPLEXITY * perplexity))


def _affinities(x: np.ndarray, seed: int, perplexity: float, n_jobs: int) -> Any:
    """openTSNE affinities: perplexity-based on exact neighbours up to ``TSNE_LARGE_N`` points,
    a uniform kernel on ``uniform_neighbours(perplexity)`` Annoy neighbours above."""
    from openTSNE import affinity

    if len(x) <= TSNE_LARGE_N:
        return affinity.PerplexityBasedNN(x, perplexity=perplexity, method="exact", n_jobs=n_jobs, random_state=seed)
    # Annoy's threaded build gives each thread its own random stream and shares the trees
    # among threads as they run; one thread keeps the index a function of the seed.
    return affinity.Uniform(x, k_neighbors=uniform_neighbours(perplexity), method="annoy", n_jobs=1, random_state=seed)


def _tsne_fit(
    x: np.ndarray, seed: int, init: np.ndarray | None, progress: ProgressFn, perplexity: float, n_iter: int
) -> Any:
    """openTSNE's fit of every row of x with vizcore's schedule; the ``TSNEEmbedding``."""
    from openTSNE import TSNEEmbedding, initialization

    n_jobs = _n_jobs()
    progress(0.0, f"t-SNE: nearest neighbours of {len(x):,} points")
    affinities = _affinities(x, seed, perplexity, n_jobs)
    # measured at 60k points: the neighbours take about 45 % of the time; below 20k, about 5 %
    neighbours = 0.45 if len(x) > TSNE_LARGE_N else 0.05
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
        callbacks=_tsne_progress(progress, 0, total, "early exaggeration", neighbours),
        callbacks_every_iters=_TSNE_CALLBACK_EVERY,
    )
    embedding.optimize(
        n_iter,
        momentum=0.8,
        inplace=True,
        callbacks=_tsne_progress(progress, _TSNE_EARLY_ITER, total, "refinement", neighbours),
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


@_method(
    "tsne",
    label="t-SNE",
    caption=(
        "t-SNE (openTSNE): perplexity {perplexity:g}, PCA initialisation, "
        f"{_TSNE_EARLY_ITER} iterations with early exaggeration {_TSNE_EXAGGERATION:g} "
        "then {n_iter} more, seed {seed}"
        f"; above {TSNE_LARGE_N:,} points, a uniform kernel on 2/3 x perplexity approximate (Annoy) neighbours "
        "instead of the perplexity's, or cuML where it and a GPU are present"
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
    gpu = _cuml_tsne() if len(x) > TSNE_LARGE_N else None
    if gpu is not None:  # a GPU fits every point with the perplexity in a fraction of the CPU's time
        progress(0.0, f"t-SNE: cuML on the GPU, {len(x):,} points")
        return np.asarray(gpu(n_components=2, perplexity=perplexity, n_iter=_TSNE_EARLY_ITER + n_iter,
                              random_state=seed).fit_transform(x), dtype=np.float64)  # fmt: skip
    return np.asarray(_tsne_fit(x, seed, init, progress, perplexity, n_iter))
