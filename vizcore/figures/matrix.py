"""Distance-matrix heatmaps: the value written in every cell, non-significant entries marked.

Rows run top to bottom like a printed matrix. An entry whose permutation p-value is at least
``alpha`` gets a small "n.s." under its value (and a legend entry saying what that means), so a
slide shows at a glance which distances are indistinguishable from sampling noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale, unlabel_rgb
from plotly.subplots import make_subplots

from vizcore.core.numbers import fmt, power_of_ten, shared_scale
from vizcore.figures import caption_below, style

SEQUENTIAL = "Viridis"  # perceptually uniform; dark = close, bright = far
DIVERGING = "RdBu_r"  # blue = smaller after, red = larger after; white = no change
NS_TEXT = "n.s."
HoverInfo = str | np.ndarray | None


@dataclass(frozen=True, eq=False)
class MatrixPanel:
    """One matrix to draw.

    Attributes:
        values: the entries. Shape: (R, C).
        p_values: permutation p-values, same shape, or None.
        row_labels: R class names (top to bottom).
        col_labels: C class names (left to right).
        title: panel title.
        hover_info: extra hover lines, one string for every cell or one per cell, shape (R, C).
    """

    values: np.ndarray
    p_values: np.ndarray | None
    row_labels: Sequence[str]
    col_labels: Sequence[str]
    title: str = ""
    hover_info: HoverInfo = None


def not_significant(p_values: np.ndarray | None, alpha: float) -> np.ndarray | None:
    """Mask of the entries with p >= alpha (None when there are no p-values)."""
    return None if p_values is None else np.asarray(p_values) >= alpha


def cell_text(values: np.ndarray, write: Callable[[float], str] | None = None) -> np.ndarray:
    """The numbers written in the cells, on one scale (vizcore.core.numbers.shared_scale). Shape: as values."""
    write = write or shared_scale(values)[1]
    return np.vectorize(write, otypes=[object])(values).astype(str) if values.size else values.astype(str)


def _hover(panel: MatrixPanel, alpha: float) -> np.ndarray:
    v, p = panel.values, panel.p_values
    info = np.broadcast_to(np.asarray("" if panel.hover_info is None else panel.hover_info, dtype=object), v.shape)
    out = np.empty(v.shape, dtype=object)
    for i, j in np.ndindex(v.shape):
        lines = [f"<b>{panel.row_labels[i]} vs {panel.col_labels[j]}</b>", f"value: {fmt(v[i, j])}"]
        if p is not None:
            verdict = "not significant" if p[i, j] >= alpha else "significant"
            lines.append(f"p = {fmt(p[i, j])} ({verdict} at α = {alpha:g})")
        if info[i, j]:
            lines.append(str(info[i, j]))
        out[i, j] = "<br>".join(lines)
    return out


def _contrast(values: np.ndarray, colorscale: str, lo: float, hi: float) -> list[str]:
    """Black or white, whichever reads better on each cell's colour."""
    t = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.full(values.shape, 0.5)
    rgb = [unlabel_rgb(c) for c in sample_colorscale(colorscale, t.ravel().tolist())]
    return ["black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white" for r, g, b in rgb]


def _range(values: np.ndarray, zmid: float | None) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if zmid is None:
        return float(finite.min()), float(finite.max())
    half = float(np.abs(finite - zmid).max()) or 1.0  # symmetric, so zmid is the scale's centre
    return zmid - half, zmid + half


def _add_panel(
    fig: go.Figure,
    panel: MatrixPanel,
    col: int,
    coloraxis: str,
    colorscale: str,
    z_range: tuple[float, float],
    alpha: float,
    text_size: int,
    legend: bool,
    outline_matching: bool = False,
    write: Callable[[float], str] | None = None,
) -> None:
    v = np.asarray(panel.values, dtype=float)
    fig.add_trace(
        go.Heatmap(
            z=v, x=list(range(v.shape[1])), y=list(range(v.shape[0])), text=cell_text(v, write),
            texttemplate="%{text}", textfont=dict(size=text_size), hovertext=_hover(panel, alpha),
            hoverinfo="text", coloraxis=coloraxis, xgap=1, ygap=1, name=panel.title,
        ), row=1, col=col,
    )  # fmt: skip
    mask = not_significant(panel.p_values, alpha)
    rows, cols = np.nonzero(mask) if mask is not None else (np.array([], int), np.array([], int))
    # added even when empty, so every panel has the same traces (a test or a script can rely on it)
    fig.add_trace(
        go.Scatter(
            x=cols, y=rows + 0.3, mode="text", text=[NS_TEXT] * len(rows), hoverinfo="skip",
            textfont=dict(size=text_size - 2, color=_contrast(v[rows, cols], colorscale, *z_range)),
            name=f"{NS_TEXT} = not significant (permutation p ≥ {alpha:g})", showlegend=legend and len(rows) > 0,
            legendgroup="ns",
        ), row=1, col=col,
    )  # fmt: skip
    if outline_matching:  # e.g. source class k vs target class k, wherever the ordering put it
        same = [(i, j) for i, r in enumerate(panel.row_labels) for j, c in enumerate(panel.col_labels) if r == c]
        for i, j in same:
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="black", width=2),
                          row=1, col=col)  # fmt: skip
    # fixed ranges: the marks' text would otherwise pad the axes; rows run top to bottom
    fig.update_xaxes(tickvals=list(range(v.shape[1])), ticktext=list(panel.col_labels), showgrid=False,
                     zeroline=False, range=[-0.5, v.shape[1] - 0.5], row=1, col=col)  # fmt: skip
    fig.update_yaxes(tickvals=list(range(v.shape[0])), ticktext=list(panel.row_labels), showgrid=False,
                     zeroline=False, range=[v.shape[0] - 0.5, -0.5], row=1, col=col)  # fmt: skip


def _colorbar(title: str, colorscale: str, z_range: tuple[float, float], zmid: float | None) -> dict:
    return dict(colorscale=colorscale, cmin=z_range[0], cmax=z_range[1], cmid=zmid,
                colorbar=dict(title=dict(text=title, side="right"), thickness=14, exponentformat="power"))  # fmt: skip


def matrix_figure(
    panels: Sequence[MatrixPanel],
    title: str = "",
    alpha: float = 0.05,
    presentation: bool = False,
    zmid: float | None = None,
    value_label: str = "distance",
    axis_titles: tuple[str, str] = ("class", "class"),
    caption: str = "",
    outline_matching: bool = False,
) -> go.Figure:
    """Panels side by side on one shared colour scale (sequential, or diverging around ``zmid``).

    ``outline_matching`` frames the cells whose row and column carry the same class name.
    """
    n = len(panels)
    colorscale = SEQUENTIAL if zmid is None else DIVERGING
    every = np.concatenate([np.asarray(p.values, float).ravel() for p in panels])
    z_range = _range(every, zmid)
    exp, write = shared_scale(every)  # one scale for every panel, named on the colour bar
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p.title for p in panels] if n > 1 else None,
                        horizontal_spacing=0.08)  # fmt: skip
    size = 16 if presentation else 12
    marked = [k for k, p in enumerate(panels, start=1) if p.p_values is not None and (p.p_values >= alpha).any()]
    for k, panel in enumerate(panels, start=1):  # the legend explains the mark once, on a panel that has it
        _add_panel(fig, panel, k, "coloraxis", colorscale, z_range, alpha, size, marked[:1] == [k], outline_matching,
                   write)  # fmt: skip
        fig.update_xaxes(title_text=axis_titles[1], row=1, col=k)
        fig.update_yaxes(title_text=axis_titles[0], row=1, col=k)
    style(fig, presentation)
    # cells tall enough for a value and its "n.s." mark; the height grows with the caption, not the cells shrink
    rows = max(len(p.row_labels) for p in panels) if panels else 1
    axis_space = 3 * size + 30  # tick labels and the axis title
    plot_h = max(300, rows * (3 * size + 4))
    # title at the very top, then the legend, then (several panels) the subplot titles, then the plot
    above = 2 * size + 10 if n > 1 else 0  # room for the subplot titles
    top = above + 3 * size + 34
    bottom = axis_space + 10 + caption_below(fig, caption, presentation, below=axis_space)
    fig.update_layout(
        height=top + bottom + plot_h,
        margin=dict(t=top, b=bottom),
        title=dict(text=title, yref="container", y=1, yanchor="top", pad=dict(t=12)),
        legend=dict(orientation="h", x=1, xanchor="right", y=1 + above / plot_h, yanchor="bottom"),
        coloraxis=_colorbar(value_label + (f"<br>cells in {power_of_ten(exp)}" if exp else ""), colorscale, z_range,
                            zmid),  # fmt: skip
        plot_bgcolor="white",
    )
    return fig


def matrix_heatmap(
    values: np.ndarray,
    p_values: np.ndarray | None,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    hover_info: HoverInfo = None,
    alpha: float = 0.05,
    presentation: bool = False,
    zmid: float | None = None,
    value_label: str = "distance",
    axis_titles: tuple[str, str] = ("class", "class"),
    caption: str = "",
) -> go.Figure:
    """One distance matrix as an annotated heatmap; entries with p >= alpha are marked "n.s.".

    Shape:
        values: (R, C); p_values: (R, C) or None; hover_info: a string or (R, C) strings.
    """
    panel = MatrixPanel(np.asarray(values, float), p_values, row_labels, col_labels, title, hover_info)
    return matrix_figure([panel], title, alpha, presentation, zmid, value_label, axis_titles, caption)


def difference_heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    hover_info: HoverInfo = None,
    presentation: bool = False,
    value_label: str = "after − before",
    axis_titles: tuple[str, str] = ("class", "class"),
    caption: str = "",
) -> go.Figure:
    """A difference of two matrices on a diverging scale centred at 0 (no significance marks)."""
    return matrix_heatmap(values, None, row_labels, col_labels, title, hover_info, presentation=presentation,
                          zmid=0.0, value_label=value_label, axis_titles=axis_titles, caption=caption)  # fmt: skip
