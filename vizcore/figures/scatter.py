"""2-D embedding scatter plots: colour = class, marker symbol = domain, one shared legend.

Arrays in, ``go.Figure`` out. Every point carries ``customdata = [row, panel]`` (its row in the
arrays passed in and the panel it sits in), so a click on either panel names the same sample.
Hidden points (``mask``) are left out of the traces but not out of the axis ranges, so a filter
never moves the points that stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizcore.figures import DOMAIN_SYMBOLS, caption_below, class_color, style

_MARKER_SIZE = 7
_DOMAIN_GREY = "#555555"  # domain legend swatches are grey: colour belongs to the class


def _names(names: Sequence[str] | None, count: int, prefix: str) -> list[str]:
    return list(names) if names is not None else [f"{prefix}{i}" for i in range(count)]


def _hover(row: int, k: int, d: int, pred: int | None, class_names: list[str], domain_names: list[str]) -> str:
    lines = [f"<b>class {class_names[k]}</b> · {domain_names[d]}"]
    if pred is not None:
        mark = "✓" if pred == k else "✗"
        lines.append(f"prediction: {class_names[pred]} {mark}")
    lines.append(f"point {row} (click for image and CAM)")
    return "<br>".join(lines)


def _panel_traces(
    xy: np.ndarray,
    classes: np.ndarray,
    domains: np.ndarray,
    predictions: np.ndarray | None,
    mask: np.ndarray,
    panel: int,
    class_names: list[str],
    domain_names: list[str],
) -> list[go.Scatter]:
    """One trace per class, in that class's legend group (a legend click hides it in every panel)."""
    traces = []
    for k in range(len(class_names)):
        rows = np.flatnonzero((classes == k) & mask)
        if rows.size == 0:
            continue
        preds = [None if predictions is None else int(predictions[r]) for r in rows]
        traces.append(
            go.Scatter(
                x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=class_names[k], legendgroup=f"class-{k}",
                showlegend=False,
                marker=dict(color=class_color(k), size=_MARKER_SIZE, opacity=0.8, line=dict(width=0),
                            symbol=[DOMAIN_SYMBOLS[int(domains[r]) % len(DOMAIN_SYMBOLS)] for r in rows]),
                # plain lists: a numpy array would reach the browser as a typed array, and a clicked point's
                # typed-array row comes back from Streamlit as {"0": row, "1": panel}
                customdata=[[int(r), panel] for r in rows],
                text=[_hover(int(r), k, int(domains[r]), p, class_names, domain_names) for r, p in zip(rows, preds, strict=True)],
                hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
    return traces


def _legend_entries(class_names: list[str], shown: np.ndarray, domain_names: list[str]) -> list[go.Scatter]:
    """Legend-only entries (no data): a colour swatch per shown class, a grey symbol per domain.

    Separate entries, because a data trace's legend icon would take its first point's symbol.
    """
    classes = [
        go.Scatter(x=[None], y=[None], mode="markers", name=class_names[k], legend="legend", legendgroup=f"class-{k}",
                   marker=dict(color=class_color(k), size=_MARKER_SIZE + 3, symbol="square"), hoverinfo="skip")
        for k in shown
    ]  # fmt: skip
    domains = [
        go.Scatter(
            x=[None], y=[None], mode="markers", name=name, legend="legend2", legendgroup=f"domain-{d}",
            marker=dict(color=_DOMAIN_GREY, size=_MARKER_SIZE + 2, symbol=DOMAIN_SYMBOLS[d % len(DOMAIN_SYMBOLS)]),
            hoverinfo="skip",
        )
        for d, name in enumerate(domain_names)
    ]  # fmt: skip
    return classes + domains


def _highlight(xy: np.ndarray, row: int, panel: int) -> go.Scatter:
    """A ring around the selected sample, so its place in both layouts is easy to find."""
    return go.Scatter(
        x=[xy[row, 0]], y=[xy[row, 1]], mode="markers", showlegend=False, hoverinfo="skip", name="selected",
        marker=dict(symbol="circle-open", size=20, color="black", line=dict(width=2.5)),
        customdata=[[row, panel]],
    )  # fmt: skip


def _range(values: np.ndarray) -> list[float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def pair_figure(
    layouts: Sequence[np.ndarray],
    classes: np.ndarray,
    domains: np.ndarray,
    titles: Sequence[str],
    *,
    predictions: Sequence[np.ndarray | None] | None = None,
    class_names: Sequence[str] | None = None,
    domain_names: Sequence[str] | None = None,
    mask: np.ndarray | None = None,
    highlight: int | None = None,
    title: str = "",
    caption: str = "",
    presentation: bool = False,
    height: int = 480,
) -> go.Figure:
    """Panels side by side (e.g. before and after adaptation) of the same points, one shared legend.

    Args:
        layouts: one (N, 2) layout per panel; row i is the same sample in each.
        classes: class index of every point, colour ``CLASS_COLORS[k]``.
        domains: domain index of every point, symbol ``DOMAIN_SYMBOLS[d]``.
        titles: one title per panel.
        predictions: per panel, the predicted class of every point (for the hover text), or None.
        class_names, domain_names: legend names (default: the indices).
        mask: which points to draw; the axis ranges still cover all points.
        highlight: a row to ring in every panel (the selected sample).
        caption: how the layouts were computed, written under the panels.

    Shape:
        layouts[i]: (N, 2); classes, domains, predictions[i], mask: (N,).
    """
    classes, domains = np.asarray(classes, dtype=int), np.asarray(domains, dtype=int)
    n = len(classes)
    mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    cnames = _names(class_names, int(classes.max(initial=-1)) + 1, "")
    dnames = _names(domain_names, int(domains.max(initial=-1)) + 1, "domain ")
    preds = list(predictions) if predictions is not None else [None] * len(layouts)
    cols = len(layouts)
    fig = make_subplots(rows=1, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.04)
    # One range for every panel: aligned layouts share coordinates, so a point's place compares directly.
    # No equal aspect: it would leave the panels small in a wide page, and both panels stretch alike.
    xr, yr = (_range(np.concatenate([np.asarray(xy)[:, j] for xy in layouts])) for j in (0, 1))
    for p, xy in enumerate(layouts):
        xy = np.asarray(xy, dtype=float)
        for trace in _panel_traces(xy, classes, domains, preds[p], mask, p, cnames, dnames):
            fig.add_trace(trace, row=1, col=p + 1)
        if highlight is not None and 0 <= highlight < n:
            fig.add_trace(_highlight(xy, highlight, p), row=1, col=p + 1)
        fig.update_xaxes(range=xr, row=1, col=p + 1)
        fig.update_yaxes(range=yr, row=1, col=p + 1)
    shown = np.unique(classes[mask])
    for trace in _legend_entries(cnames, shown, dnames):
        fig.add_trace(trace)
    # layout coordinates have no units: no tick labels, a light frame per panel
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, mirror=True, showline=True,
                     linecolor="#ddd")  # fmt: skip
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, mirror=True, showline=True,
                     linecolor="#ddd")  # fmt: skip
    style(fig, presentation)
    below = caption_below(fig, caption, presentation) + 10
    font = 17 if presentation else 12
    # The domain legend sits under the class legend: make the plot tall enough for both, then place it.
    row_px, top = round(1.75 * font), 110 if title else 70
    class_px = (len(shown) + 1) * row_px + 12
    plot_h = max(height - top - 20, class_px + (len(dnames) + 1) * row_px + 10)
    fig.update_layout(
        title=title, height=plot_h + top + 20 + below, margin=dict(l=20, r=20, t=top, b=20 + below),
        legend=dict(title=dict(text="Class (colour)", font=dict(size=font)), x=1.01, y=1, xanchor="left", yanchor="top",
                    font=dict(size=font), tracegroupgap=0),
        legend2=dict(title=dict(text="Domain (symbol)", font=dict(size=font)), x=1.01, y=1 - class_px / plot_h, xanchor="left",
                     yanchor="top", font=dict(size=font), itemclick=False, itemdoubleclick=False),
    )  # fmt: skip
    return fig


def embedding_scatter(
    xy: np.ndarray,
    classes: np.ndarray,
    domains: np.ndarray,
    title: str = "",
    *,
    predictions: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    domain_names: Sequence[str] | None = None,
    mask: np.ndarray | None = None,
    highlight: int | None = None,
    caption: str = "",
    presentation: bool = False,
    height: int = 480,
) -> go.Figure:
    """One 2-D layout: colour = class, symbol = domain, hover = class, domain and prediction.

    Shape:
        xy: (N, 2); classes, domains, predictions, mask: (N,).
    """
    return pair_figure(
        [xy], classes, domains, [""], predictions=[predictions], class_names=class_names, domain_names=domain_names,
        mask=mask, highlight=highlight, title=title, caption=caption, presentation=presentation, height=height,
    )  # fmt: skip
