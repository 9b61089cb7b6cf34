"""What a run's views need first, computed ahead of time (after training, or from the CLI).

Order: the per-run analysis of each side (every view reads it), then the default distance
matrices the Distances page opens with. Each result lands in the run's caches, so a page
that opens the run later reads it instead of computing it.
"""

from __future__ import annotations

from collections.abc import Callable

from vizcore.analysis import run_analysis
from vizcore.distance_views import (
    DistanceSettings,
    class_matrix,
    cross_matrix,
    default_layer,
    default_permutations,
    layer_choices,
)
from vizcore.metrics import list_metrics
from vizcore.runs import Run

StageFn = Callable[[str], None]


def default_distance_settings(metric: str = "mmd") -> DistanceSettings:
    """What the Distances page starts from for ``metric``: its default parameters and permutations."""
    return DistanceSettings(metric, {}, None, default_permutations(metric))


def precompute(run: Run, stage: StageFn | None = None) -> None:
    """The run's analysis, then its default matrices (MMD first, the page's default), each
    announced through ``stage`` as it begins.

    Every metric's default matrices are made, not only MMD's: switching the metric on the
    Distances page is then a read (all seven take about 20 s of one core for an adaptation run,
    in the background, once per weights).
    """
    cfg = run.config()
    sides = ["source"] + (["target"] if cfg.target else [])
    for side in sides:
        if stage:
            stage(f"analysing the {side} test split")
        run_analysis(run, side)
    layer = default_layer(layer_choices(run))
    metrics = ["mmd", *(m for m in list_metrics() if m != "mmd")]
    for metric in metrics:
        settings = default_distance_settings(metric)
        for side in sides:
            if stage:
                stage(f"computing the default {side} class-distance matrix ({metric})")
            class_matrix(run, side, "test", layer, settings)
        if cfg.target:
            if stage:
                stage(f"computing the default source-vs-target matrix ({metric})")
            cross_matrix(run, "test", layer, settings)
