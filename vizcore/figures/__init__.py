"""Plotly figure builders: arrays in, ``go.Figure`` out. No computation beyond layout.

Every figure uses one class palette (colour-blind safe, Paul Tol's "safe" scheme) and one
style function, so a class has the same colour on every page and in every report.
"""

from __future__ import annotations

import plotly.graph_objects as go

# Paul Tol's colour-blind-safe qualitative palette, one colour per class index
CLASS_COLORS = (
    "#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288",
    "#AA4499", "#44AA99", "#999933", "#882255", "#661100",
)  # fmt: skip
DOMAIN_SYMBOLS = ("circle", "x", "diamond", "square")
# Series that are not classes (runs on Compare, curves of a training plot): Tol's "bright" scheme,
# each series always the same colour, whatever else is plotted beside it
SERIES_COLORS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB", "#000000")
FONT = "Inter, Helvetica, Arial, sans-serif"


def class_color(k: int) -> str:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


def style(fig: go.Figure, presentation: bool = False, height: int | None = None) -> go.Figure:
    """The app's look; ``presentation`` enlarges every font for a projector."""
    base = 18 if presentation else 13
    fig.update_layout(
        template="plotly_white",
        font=dict(family=FONT, size=base),
        title_font=dict(size=base + 4),
        legend=dict(font=dict(size=base - 1)),
        margin=dict(l=60, r=30, t=70, b=50),
    )
    fig.update_annotations(font_size=base)
    if height:
        fig.update_layout(height=height)
    return fig


def caption_annotation(fig: go.Figure, text: str) -> go.Figure:
    """A small note under the plot saying how it was computed (kept in exports)."""
    fig.add_annotation(
        text=text, xref="paper", yref="paper", x=0, y=-0.12, xanchor="left", yanchor="top",
        showarrow=False, font=dict(size=11, color="#555"), align="left",
    )  # fmt: skip
    fig.update_layout(margin=dict(b=90))
    return fig
