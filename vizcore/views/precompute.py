"""What a run's views need first, computed ahead of time (after training, or from the CLI).

Order: the per-run analysis of each side (every view reads it), then the default distance
matrices the Distances page opens with. Each result lands in the run's caches, so a page
that opens the run later reads it instead of computing it.
"""

from __future__ import annotations

from collections.abc import Callable

from vizcore.metrics import list_metrics, metric_info
from vizcore.store.run import Run
from vizcore.views.analysis import run_analysis
from vizcore.views.distances import (
    DistanceSettings,
    class_matrix,
    cross_matrix,
    default_layer,
    default_permutations,
    layer_choices,
)

StageFn = Callable[[str], None]


def default_distance_settings(metric: str = "mmd") -> DistanceSettings:
    """What the Distances page starts from for ``metric``: its default parameters and permutations."""
    return DistanceSettings(metric, {}, None, default_permutations(metric))


def precomputed_metrics(learned: bool = False) -> list[str]:
    """The measures whose default matrices are made ahead of time, MMD first.

    The formula measures always (all seven take about 20 s of one core for an adaptation run).
    The learned ones train a model per class pair, 10–40 s a matrix, so after a training run
    they are left for the page to compute when asked (it says what it is training); the demo
    runs ship them (``learned=True`` in scripts/build_demo_analyses.py).
    """
    names = ["mmd", *(m for m in list_metrics() if m != "mmd")]
    return [m for m in names if learned or metric_info(m).family != "learned"]


def precompute_steps(run: Run, learned: bool = False) -> list[tuple[str, Callable[[], object]]]:
    """The run's analysis of each side, then its default matrices (:func:`precomputed_metrics`),
    most used first, each as (what it is, in words; the call that computes and caches it)."""
    cfg = run.config()
    sides = ["source"] + (["target"] if cfg.target else [])
    steps: list[tuple[str, Callable[[], object]]] = [
        (f"analysing the {side} test split", lambda side=side: run_analysis(run, side)) for side in sides
    ]
    layer = default_layer(layer_choices(run))
    for metric in precomputed_metrics(learned):
        settings = default_distance_settings(metric)
        steps += [(f"computing the default {side} class-distance matrix ({metric})",
                   lambda side=side, settings=settings: class_matrix(run, side, "test", layer, settings))
                  for side in sides]  # fmt: skip
        if cfg.target:
            steps.append((f"computing the default source-vs-target matrix ({metric})",
                          lambda settings=settings: cross_matrix(run, "test", layer, settings)))  # fmt: skip
    return steps


def precompute(run: Run, stage: StageFn | None = None, learned: bool = False) -> None:
    """Every step of :func:`precompute_steps`, each announced through ``stage`` as it begins.
    Switching to one of these on the Distances page is then a read, once per weights."""
    for what, step in precompute_steps(run, learned):
        if stage:
            stage(what)
        step()
