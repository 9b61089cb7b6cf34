"""The views' long work as background tasks: a page asks, the one queue computes, the cache keeps.

A page never computes a whole split inside a click (DESIGN.md section 6). For each view whose
result may be missing — a side's analysis (one forward pass over a split), a distance matrix, an
embedding pair, and everything a freshly trained run's pages open with — this module names a
:class:`~vizcore.store.tasks.TaskSpec` and registers the computation behind it. The page asks
:meth:`~vizcore.store.tasks.TaskQueue.ask`: ``None`` means the result is cached and reading it is
instant; otherwise the page shows the task's stage, progress, time left and a Stop button, and
draws the view when the task is done. The task calls the very function the page would have called,
so what it leaves in the cache is what a direct computation gives.
"""

from __future__ import annotations

from typing import Any

from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.store.tasks import Computation, Report, TaskSpec, register
from vizcore.views import distances as dv
from vizcore.views.analysis import analysis_path, run_analysis
from vizcore.views.embeddings import EmbeddingSettings, embedding_pair, pair_ready
from vizcore.views.precompute import precompute_steps

ANALYSIS = "analysis of a split"
MATRIX = "distance matrix"
EMBEDDING = "embedding pair"
PREPARE = "views of a new run"


def _analysed(run: Run, which: str, split: str, report: Report, share: float = 1.0, start: float = 0.0) -> None:
    """The side's analysis, its forward pass reported as ``start`` .. ``start + share`` of the task."""
    if analysis_path(run, which, split) is None:
        run_analysis(run, which, split,
                     progress=lambda stage, done, total: report(f"{stage} ({which} side)",
                                                                start + share * done / max(total, 1)))  # fmt: skip


# ------------------------------------------------------------------------------------ analysis


def analysis_spec(run: Run, which: str, split: str) -> TaskSpec:
    """The forward pass over one side's split that every view of it reads (features, logits, CAMs)."""
    return TaskSpec.of(run, ANALYSIS, which=which, split=split)


register(ANALYSIS, Computation(
    lambda store, run, p, report: _analysed(run, p["which"], p["split"], report),
    lambda store, run, p: analysis_path(run, p["which"], p["split"]) is not None,
))  # fmt: skip


# ------------------------------------------------------------------------------------ matrices


def matrix_spec(run: Run, kind: str, which: str, split: str, layer: str, settings: dv.DistanceSettings) -> TaskSpec:
    """A class matrix (kind "classes") or the source-vs-target matrix ("cross") of ``run``."""
    return TaskSpec.of(run, MATRIX, kind=kind, which=which, split=split, layer=layer, **settings.key())


def _matrix_args(p: dict[str, Any]) -> tuple[str, str, str, str, dv.DistanceSettings]:
    settings = dv.DistanceSettings(p["metric"], p["params"], p["n_per_class"], p["n_perm"], p["seed"], p["pairing"])
    return p["kind"], p["which"], p["split"], p["layer"], settings


def _matrix(store: RunStore, run: Run, p: dict[str, Any], report: Report) -> None:
    kind, which, split, layer, settings = _matrix_args(p)
    sides = ("source", "target") if kind == "cross" else (which,)
    for i, side in enumerate(sides):  # the forward passes: most of the time on a split not yet seen
        _analysed(run, side, split, report, share=0.6 / len(sides), start=0.6 * i / len(sides))
    report(dv.waiting_text(settings.metric, settings.n_perm).rstrip("…."), 0.6)
    dv.matrix(run, kind, which, split, layer, settings)


register(MATRIX, Computation(_matrix, lambda store, run, p: dv.matrix_ready(run, *_matrix_args(p))))


# ------------------------------------------------------------------------------------ embeddings


def embedding_spec(before: Run, after: Run, settings: EmbeddingSettings) -> TaskSpec:
    """The pair of layouts of ``before`` and ``after`` (kept in the after run, so its task is the after run's)."""
    return TaskSpec.of(after, EMBEDDING, before=before.run_id, **settings.key())


def _pair_args(store: RunStore, p: dict[str, Any]) -> tuple[Run, EmbeddingSettings]:
    """The before run and the settings of an embedding task."""
    return store.get(p["before"]), EmbeddingSettings(**{k: v for k, v in p.items() if k != "before"})


def _embedding(store: RunStore, run: Run, p: dict[str, Any], report: Report) -> None:
    before, settings = _pair_args(store, p)
    embedding_pair(before, run, settings, progress=lambda f, msg: report(msg.rstrip("…."), f))


def _embedded(store: RunStore, run: Run, p: dict[str, Any]) -> bool:
    before, settings = _pair_args(store, p)
    return pair_ready(before, run, settings)


register(EMBEDDING, Computation(_embedding, _embedded))


# ------------------------------------------------------------------------------------ after training


def prepare_spec(run: Run) -> TaskSpec:
    """Everything a freshly trained run's pages open with (:func:`vizcore.views.precompute.precompute`)."""
    return TaskSpec.of(run, PREPARE)


def _prepare(store: RunStore, run: Run, p: dict[str, Any], report: Report) -> None:
    steps = precompute_steps(run)
    for i, (what, step) in enumerate(steps):
        report(what, i / len(steps))
        step()


register(PREPARE, Computation(_prepare, lambda store, run, p: False))  # asked once, after training
