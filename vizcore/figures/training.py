"""Training curves from a run's progress records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizcore.figures import SERIES_COLORS, style

_LOSS_KEYS = ("loss", "cls_loss")
_ACC_KEYS = ("train_acc", "source_acc", "target_acc")
# a run whose method declares nothing (an old run) is drawn with DANN's curves, as before
DEFAULT_CURVES = ("domain_acc", "lambda", "transfer_loss")


def _series(records: Sequence[dict[str, Any]], kind: str, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r["values"][key]) for r in records if r["kind"] == kind and key in r.get("values", {})]
    return [p[0] for p in pts], [p[1] for p in pts]


def _mode(x: Sequence[int]) -> str:
    """Markers too when there are few points: a one-point line is invisible."""
    return "lines+markers" if len(x) < 20 else "lines"


def training_curves(
    records: Sequence[dict[str, Any]],
    title: str = "",
    presentation: bool = False,
    curves: Sequence[str] = DEFAULT_CURVES,
    epoch_curves: Sequence[str] = (),
) -> go.Figure:
    """Losses (left), accuracies (middle) and the method's own values (right) against steps.

    Step points are the logged training batches; the test accuracies are evaluated after
    each epoch on the held-out split. ``curves`` are the step values the method declares
    (``Method.extra_metrics``: a "*_loss" joins the losses, the rest the right panel, with the
    learning rate); ``epoch_curves`` its end-of-epoch accuracies (``Method.eval_metrics``).
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Accuracy", "Schedule / method"))
    losses = (*_LOSS_KEYS, *(k for k in curves if k.endswith("_loss")))
    others = (*(k for k in curves if not k.endswith("_loss")), "lr")
    order = (*losses, *_ACC_KEYS, *epoch_curves, *others)

    def add(key: str, kind: str, name: str, col: int, **kw: Any) -> None:
        x, y = _series(records, kind, key)
        if x:  # a fixed colour per series, so a curve keeps its colour from run to run
            color = SERIES_COLORS[order.index(key) % len(SERIES_COLORS)]
            mode = _mode(x) if kind == "step" else "lines+markers"
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode=mode, line_color=color, **kw), 1, col)

    for key in losses:
        add(key, "step", key.replace("_", " "), 1)
    add("train_acc", "step", "train acc (batch)", 2, opacity=0.6)
    for key, name in (("source_acc", "source test acc"), ("target_acc", "target test acc")):
        add(key, "epoch", name, 2)
    for key in epoch_curves:
        add(key, "epoch", curve_label(key), 2)
    for key in others:
        add(key, "step", key.replace("_", " "), 3)
    fig.update_xaxes(title_text="step")
    last = max((r.get("step", 0) for r in records), default=0)
    if last <= 10:  # steps are whole numbers: a short run must not be ticked 1, 1.5, 2
        fig.update_xaxes(dtick=1, tick0=0)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    for col, name in enumerate(("loss", "accuracy (0–1)", "value"), start=1):
        fig.update_yaxes(title_text=name, row=1, col=col)
    fig.update_layout(title=title, hovermode="x unified", legend=dict(orientation="h", y=-0.2))
    return style(fig, presentation, height=380)


# What the epoch-level values are, in words, with their unit; accuracies are drawn in percent.
CURVE_LABELS = {
    "target_acc": "target test accuracy (%)",
    "source_acc": "source test accuracy (%)",
    "domain_acc": "domain classifier accuracy (%)",
    "transfer_loss": "transfer loss",
    "cls_loss": "classification loss",
    "loss": "total loss",
    "train_acc": "training batch accuracy (%)",
    "knn_acc": "kNN accuracy, k = 20, cosine (%)",
    "teacher_agreement": "agreement with the teacher (%)",
}


def curve_label(key: str) -> str:
    return CURVE_LABELS.get(key, key.replace("_", " "))


def compare_curves(
    runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], key: str = "target_acc", presentation: bool = False
) -> go.Figure:
    """One epoch-level metric of several runs on one plot (x = epoch, whole epochs only).

    Each run keeps its colour whichever other runs are plotted: the colour follows the run's
    position in ``runs``, also when an earlier run has no values for ``key``.
    """
    fig = go.Figure()
    scale = 100.0 if key.endswith("_acc") else 1.0
    epochs: set[int] = set()
    for i, (label, records) in enumerate(runs):
        pts = [(r["epoch"], r["values"][key]) for r in records if r["kind"] == "epoch" and key in r["values"]]
        epochs |= {p[0] for p in pts}
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[scale * p[1] for p in pts], name=label,
                                 mode="lines+markers", line_color=SERIES_COLORS[i % len(SERIES_COLORS)]))  # fmt: skip
    fig.update_layout(title=curve_label(key) + " per epoch", xaxis_title="epoch", yaxis_title=curve_label(key))
    # whole epochs only: a one-epoch run would otherwise sit on an axis ticked 0.5, 1, 1.5
    if len(epochs) <= 12:
        fig.update_xaxes(tickmode="array", tickvals=sorted(epochs))
    else:
        fig.update_xaxes(dtick=1)
    return style(fig, presentation, height=420)


def transferability_figure(
    title: str, ks: Sequence[int], rows: Sequence[tuple[str, Sequence[float | None], Sequence[float]]],
    presentation: bool = False,
) -> go.Figure:  # fmt: skip
    """Target accuracy (%) against labelled target images per class, one line per row.

    Args:
        ks: The K of each column, ascending (a log axis: 1, 5, 10, 50 spread evenly).
        rows: (label, mean accuracy 0-1 or None per K, sample std 0-1 per K); "from scratch"
            is drawn dashed, the baseline the others are read against.
    """
    fig = go.Figure()
    for i, (label, means, stds) in enumerate(rows):
        pts = [(k, m, s) for k, m, s in zip(ks, means, stds, strict=True) if m is not None]
        dash = "dash" if label == "from scratch" else "solid"
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[100 * p[1] for p in pts], name=label,
                                 mode="lines+markers", line=dict(color=SERIES_COLORS[i % len(SERIES_COLORS)], dash=dash),
                                 error_y=dict(type="data", array=[100 * p[2] for p in pts], visible=True)))  # fmt: skip
    fig.update_layout(title=title, xaxis_title="labelled target images per class (K)",
                      yaxis_title="target test accuracy %")  # fmt: skip
    fig.update_xaxes(type="log", tickmode="array", tickvals=list(ks), ticktext=[str(k) for k in ks])
    return style(fig, presentation, height=440)
