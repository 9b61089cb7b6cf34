"""Figure builders by name: how a pinned figure is made again from its recorded inputs.

A builder is ``fn(inputs, store) -> plotly Figure``; ``inputs`` is plain JSON (run ids, the page's
settings), never the data itself, so a figure re-made after a run was retrained shows the new
weights. The pages draw their main figures through the same functions, so a re-made figure is
the figure that was pinned: same data, same layout.

Every builder reads through the cached views (matrices, layouts, maps are cached in the run
folders), so re-making a figure already seen is a cache read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vizcore.core.registry import Registry
from vizcore.store.run import Run
from vizcore.store.runs import RunStore

Inputs = Mapping[str, Any]
Builder = Callable[[Inputs, RunStore], go.Figure]
FIGURE_BUILDERS: Registry[Builder] = Registry("figure builder")


def spec(builder: str, **inputs: Any) -> dict[str, Any]:
    """A recorded spec: ``{"builder": name, "inputs": {...}}``; the name must be registered."""
    FIGURE_BUILDERS.get(builder)  # a clear error now rather than at export
    return {"builder": builder, "inputs": _plain(inputs)}


def _plain(x: Any) -> Any:
    """``x`` with numpy scalars and arrays, tuples and dataclasses made JSON types."""
    if hasattr(x, "__dataclass_fields__"):
        return _plain(asdict(x))
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_plain(v) for v in x]
    return x.item() if isinstance(x, np.generic) else x


def remake(recorded: Mapping[str, Any], store: RunStore, presentation: bool | None = None) -> go.Figure:
    """The figure of a recorded spec, drawn afresh; ``presentation`` overrides the recorded setting.

    Raises:
        UnknownNameError: no builder of that name. RunNotFound, ValueError: its run or data is gone.
    """
    inputs = dict(recorded["inputs"])
    if presentation is not None:
        inputs["presentation"] = presentation
    return FIGURE_BUILDERS.get(recorded["builder"])(inputs, store)


# ---------------------------------------------------------------------------- distance matrices


def matrix_from_view(view: Any, title: str, alpha: float, presentation: bool, cluster: bool = False,
                     axes: tuple[str, str] = ("class", "class"), outline: bool = False) -> go.Figure:  # fmt: skip
    """The Class distances page's matrix of one view: ordered by clustering when asked, its
    description (and the clustering note) as the caption."""
    from vizcore.figures.matrix import MatrixPanel, matrix_figure
    from vizcore.views import distances as dv
    from vizcore.views import matrices as mx

    view = mx.reorder(view, mx.cluster_order(view.values) if cluster else np.arange(len(view.row_labels)))
    caption = view.description + (f" {dv.CLUSTER_NOTE}" if cluster else "")
    panel = MatrixPanel(view.values, view.p_values, view.row_labels, view.col_labels, title, mx.hover_info(view))
    return matrix_figure([panel], title, alpha, presentation, value_label=view.value_label, axis_titles=tuple(axes),
                         caption=caption, outline_matching=outline)  # fmt: skip


def distance_view(inputs: Inputs, store: RunStore) -> Any:
    """The matrix a distance spec names: class matrix, or source-vs-target (``cross``)."""
    from vizcore.views import distances as dv

    run = store.get(inputs["run_id"])
    settings = dv.DistanceSettings(**inputs["settings"])
    if inputs.get("cross"):
        return dv.cross_matrix(run, inputs["split"], inputs["layer"], settings)
    return dv.class_matrix(run, inputs["which"], inputs["split"], inputs["layer"], settings)


@FIGURE_BUILDERS.register("distance_matrix")
def distance_matrix(inputs: Inputs, store: RunStore) -> go.Figure:
    """inputs: run_id, which, split, layer, settings (DistanceSettings' fields), cross, title, alpha,
    cluster, axes, outline, presentation."""
    return matrix_from_view(distance_view(inputs, store), inputs["title"], float(inputs["alpha"]),
                            bool(inputs.get("presentation")), bool(inputs.get("cluster")),
                            tuple(inputs.get("axes", ("class", "class"))), bool(inputs.get("outline")))  # fmt: skip


# ---------------------------------------------------------------------------- training curves


@FIGURE_BUILDERS.register("training_curves")
def training_curves(inputs: Inputs, store: RunStore) -> go.Figure:
    """inputs: run_ids, key (a curve name such as "target_acc"), presentation."""
    from vizcore.figures.training import compare_curves

    runs = [store.get(i) for i in inputs["run_ids"]]
    return compare_curves([(r.config().label, r.metrics()) for r in runs], inputs["key"],
                          bool(inputs.get("presentation")))  # fmt: skip


@FIGURE_BUILDERS.register("run_curves")
def run_curves(inputs: Inputs, store: RunStore) -> go.Figure:
    """inputs: run_id, presentation. One run's loss and accuracy per logged step (the Train page's
    live plot), with the curves its method declares."""
    from vizcore.figures.training import training_curves
    from vizcore.methods import curves_of

    run = store.get(inputs["run_id"])
    steps, epochs = curves_of(run.config().method)
    return training_curves(run.metrics(), curves=steps, epoch_curves=epochs, presentation=bool(inputs.get("presentation")))


# ---------------------------------------------------------------------------- embeddings


def embedding_from_pair(pair: Any, settings: Any, before: Run, after: Run, mask: np.ndarray | None,
                        presentation: bool, highlight: int | None = None) -> go.Figure:  # fmt: skip
    """The Embeddings page's two panels (before, after) of one computed pair."""
    from textwrap import shorten

    from vizcore.embed.methods import EMBEDDINGS
    from vizcore.figures.scatter import pair_figure
    from vizcore.views.distances import LAYER_LABELS

    def head(tag: str, run: Run) -> str:
        return f"<b>{tag}</b><br><span style='font-size:0.8em'>{shorten(run.config().label, 48)}</span>"

    s = settings
    return pair_figure(
        [pair.before_xy, pair.after_xy], pair.labels, pair.domain, [head("before", before), head("after", after)],
        predictions=[pair.pred_before, pair.pred_after], class_names=pair.class_names,
        domain_names=[f"{d} ({n})" for d, n in zip(pair.sides, pair.domain_names, strict=True)], mask=mask,
        highlight=highlight, caption=pair.description, presentation=presentation,
        title=f"{EMBEDDINGS.get(s.method).label} of the {LAYER_LABELS.get(s.layer, s.layer)}",
    )  # fmt: skip


@FIGURE_BUILDERS.register("embedding_pair")
def embedding_pair(inputs: Inputs, store: RunStore) -> go.Figure:
    """inputs: before, after (run ids), settings (EmbeddingSettings' fields), sides, classes, presentation."""
    from vizcore.views import embedding_reading as er
    from vizcore.views import embeddings as ev

    before, after = store.get(inputs["before"]), store.get(inputs["after"])
    settings = ev.EmbeddingSettings(**inputs["settings"])
    pair = ev.embedding_pair(before, after, settings)
    mask = er.visible_mask(pair, inputs.get("sides", pair.sides), inputs.get("classes", range(len(pair.class_names))))
    return embedding_from_pair(pair, settings, before, after, mask, bool(inputs.get("presentation")))


# ---------------------------------------------------------------------------- CAM grid


@FIGURE_BUILDERS.register("cam_grid")
def cam_grid(inputs: Inputs, store: RunStore) -> go.Figure:
    """inputs: run_id, which, method, mode (class explained), index (image numbers), layer, scale,
    presentation. The CAM page's image grid: maps of exactly these images."""
    from vizcore.figures.cam import cam_grid as draw
    from vizcore.views.analysis import CAM_SCALES, cam_analysis, eval_images
    from vizcore.views.explanations import grid_title, method_maps, tile_caption

    run, which, method, mode = store.get(inputs["run_id"]), inputs["which"], inputs["method"], inputs["mode"]
    scale = inputs.get("scale", "image")
    arrays = cam_analysis(run, which, mode)
    idx = np.asarray(inputs["index"], dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= len(arrays["labels"]):
        raise ValueError(f"the recorded images are not in {which}'s test split ({len(arrays['labels'])} images)")
    maps = method_maps(run, which, method, idx, mode, arrays["class_idx"][idx], inputs.get("layer"), scale)
    probs, labels = arrays["probs"], arrays["labels"]
    preds = probs.argmax(1)
    names = [str(c) for c in arrays.get("classes", ())]  # class names where the analysis has them
    titles = [tile_caption(preds[i], probs[i, preds[i]], labels[i], method, mode, arrays["class_idx"][i], names)
              for i in idx]  # fmt: skip
    boxes = arrays["boxes"][idx] if "boxes" in arrays else None
    return draw(eval_images(run, which, idx), maps, titles, cols=6, boxes=boxes,
                presentation=bool(inputs.get("presentation")), scale_label=f"{method}, {CAM_SCALES[scale]}",
                title=grid_title(run.config().label, method, mode))  # fmt: skip
