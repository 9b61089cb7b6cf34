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


# The width a figure without one of its own is drawn at: the content column of a wide page beside
# the sidebar in a 1400 px window; a text line longer than this is cut off on screen and in exports.
CONTAINER_PX = 930
CHAR_WIDTH = 0.6  # of the font size: a generous average character width (wrapping early is harmless)


def fit_text(fig: go.Figure) -> go.Figure:
    """Wrap the title and every annotation line that would be wider than the figure.

    Run last, on the figure as it is shown (presentation fonts included): a figure builder
    cannot know how long a run's label will be.
    """
    import textwrap

    width = fig.layout.width or CONTAINER_PX
    base = fig.layout.font.size or 13

    def wrap(text: str, size: float) -> str:
        limit = max(20, int(width / (size * CHAR_WIDTH)))
        lines = text.replace("<br />", "<br>").split("<br>")
        return "<br>".join(part for line in lines for part in (textwrap.wrap(line, limit) or [""]))

    title = fig.layout.title.text
    if title:
        fig.update_layout(title_text=wrap(title, fig.layout.title.font.size or base + 4))
    for a in fig.layout.annotations:
        if a.text and "<" not in a.text.replace("<br>", ""):  # leave styled (HTML) annotations alone
            a.text = wrap(a.text, a.font.size or base)
    if title:  # the title hangs from the top edge; the margin holds it and the panel titles below it
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 80
        fig.update_layout(title_yref="container", title_y=1, title_yanchor="top", title_pad_t=TITLE_PAD,
                          margin_t=max(top, title_room(fig.layout.to_plotly_json())))  # fmt: skip
    return fig


TITLE_PAD = 10  # px between the top edge and a figure's title
LINE = 1.3  # a text line's height, in font sizes


def title_room(layout: dict) -> int:
    """The top margin a layout (plotly JSON) needs so that neither its title nor the panel titles
    above its plots are cut: the title's lines from the top edge, then the tallest block of text
    standing on the plots' top edge (annotations at y >= 1 in paper units)."""
    import re

    base = float((layout.get("font") or {}).get("size") or 13)
    title = layout.get("title") or {}
    text = title.get("text") or ""
    size = float((title.get("font") or {}).get("size") or base + 4)
    lines = len(re.split(r"<br\s*/?>", text)) if text else 0
    above = [
        len(re.split(r"<br\s*/?>", a.get("text") or "")) * float((a.get("font") or {}).get("size") or base) * LINE
        for a in layout.get("annotations", [])
        if a.get("yref", "paper") == "paper" and float(a.get("y", 0) or 0) >= 1 and a.get("yanchor") == "bottom"
    ]  # fmt: skip
    return int(TITLE_PAD + lines * size * LINE + max(above, default=0) + 10)


def caption_annotation(fig: go.Figure, text: str) -> go.Figure:
    """A small note under the plot saying how it was computed (kept in exports)."""
    fig.add_annotation(
        text=text, xref="paper", yref="paper", x=0, y=-0.12, xanchor="left", yanchor="top",
        showarrow=False, font=dict(size=11, color="#555"), align="left",
    )  # fmt: skip
    fig.update_layout(margin=dict(b=90))
    return fig


def caption_below(fig: go.Figure, text: str, presentation: bool, below: int = 12) -> int:
    """A wrapped note ``below`` pixels under the plot saying how it was computed (kept in exports).

    Returns the pixels the note takes, for the bottom margin.
    """
    import textwrap

    if not text:
        return 0
    lines = textwrap.wrap(text, 90 if presentation else 120)
    size = 14 if presentation else 11
    fig.add_annotation(
        text="<br>".join(lines), xref="paper", yref="paper", x=0, y=0, yshift=-below, xanchor="left",
        yanchor="top", showarrow=False, align="left", font=dict(size=size, color="#555"),
    )  # fmt: skip
    return int(len(lines) * size * 1.4) + 10
