"""Training curves from a run's progress records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizcore.figures import style

_LOSS_KEYS = ("loss", "cls_loss", "transfer_loss")
_EXTRA_KEYS = ("domain_acc", "lambda", "lr")


def _series(records: Sequence[dict[str, Any]], kind: str, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r["values"][key]) for r in records if r["kind"] == kind and key in r.get("values", {})]
    return [p[0] for p in pts], [p[1] for p in pts]


def _mode(x: Sequence[int]) -> str:
    """Markers too when there are few points: a one-point line is invisible."""
    return "lines+markers" if len(x) < 20 else "lines"


def training_curves(records: Sequence[dict[str, Any]], title: str = "", presentation: bool = False) -> go.Figure:
    """Losses (left), accuracies (middle) and the method's schedule values (right) against steps.

    Step points are the logged training batches; the test accuracies are evaluated after
    each epoch on the held-out split.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Accuracy", "Schedule / domain"))
    for key in _LOSS_KEYS:
        x, y = _series(records, "step", key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, name=key.replace("_", " "), mode=_mode(x)), 1, 1)
    x, y = _series(records, "step", "train_acc")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, name="train acc (batch)", mode=_mode(x), opacity=0.6), 1, 2)
    for key, name in (("source_acc", "source test acc"), ("target_acc", "target test acc")):
        x, y = _series(records, "epoch", key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers"), 1, 2)
    for key in _EXTRA_KEYS:
        x, y = _series(records, "step", key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, name=key.replace("_", " "), mode=_mode(x)), 1, 3)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(title=title, hovermode="x unified", legend=dict(orientation="h", y=-0.2))
    return style(fig, presentation, height=380)


def compare_curves(
    runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], key: str = "target_acc", presentation: bool = False
) -> go.Figure:
    """One epoch-level metric of several runs on one plot (x = epoch)."""
    fig = go.Figure()
    for label, records in runs:
        pts = [(r["epoch"], r["values"][key]) for r in records if r["kind"] == "epoch" and key in r["values"]]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=label, mode="lines+markers"))
    fig.update_layout(title=key.replace("_", " ") + " per epoch", xaxis_title="epoch", yaxis_title=key)
    return style(fig, presentation, height=420)
