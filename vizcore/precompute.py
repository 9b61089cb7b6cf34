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
from vizcore.runs import Run

StageFn = Callable[[str], None]


def default_distance_settings() -> DistanceSettings:
    """What the Distances page starts from: MMD with its default parameters and permutations."""
    return DistanceSettings("mmd", {}, None, default_permutations("mmd"))


def precompute(run: Run, stage: StageFn | None = None) -> None:
    """The run's analysis and default matrices, each announced through ``stage`` as it begins."""
    cfg = run.config()
    sides = ["source"] + (["target"] if cfg.target else [])
    for side in sides:
        if stage:
            stage(f"analysing the {side} test split")
        run_analysis(run, side)
    layer, settings = default_layer(layer_choices(run)), default_distance_settings()
    for side in sides:
        if stage:
            stage(f"computing the default {side} class-distance matrix")
        class_matrix(run, side, "test", layer, settings)
    if cfg.target:
        if stage:
            stage("computing the default source-vs-target matrix")
        cross_matrix(run, "test", layer, settings)
