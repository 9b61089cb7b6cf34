"""Figures and tables on a page: presentation mode (larger fonts for a projector, one sidebar switch
for every page), and each figure's downloads and "Pin" button."""

from __future__ import annotations

from typing import Any

import streamlit as st

PRESENTATION_KEY = "presentation"
PRESENTATION_FONT = 18  # the base font size vizcore.figures.style uses for presentation=True


def presentation() -> bool:
    """Is presentation mode on? (larger fonts; every page passes this to its figure builders)"""
    return bool(st.session_state.get(PRESENTATION_KEY, False))


def _keep_presentation() -> None:
    st.session_state[PRESENTATION_KEY] = st.session_state["_presentation_toggle"]


def presentation_toggle() -> bool:
    """The sidebar switch for presentation mode; returns whether it is on.

    The choice lives in ``st.session_state["presentation"]``, not in the widget's own key,
    because Streamlit forgets a widget's state on a page that does not draw it.
    """
    st.sidebar.toggle(
        "Presentation mode", value=presentation(), key="_presentation_toggle", on_change=_keep_presentation,
        help="Larger fonts in every figure, title, number, table and caption, and in exports, for a projector. "
        "Classes keep their colour-blind-safe colours everywhere.",
    )  # fmt: skip
    if presentation():
        st.html(f"<style>{PRESENTATION_CSS}</style>")
    return presentation()


# presentation mode beyond the figures: titles, metrics, captions, text and tables of the main column
# grow with the figures' fonts (18 px for 13). A st.dataframe draws on a canvas that CSS cannot
# enlarge, so table() shows an HTML table instead in this mode.
PRESENTATION_CSS = """
[data-testid="stMain"] h1 { font-size: 3.4rem; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.2rem; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] li { font-size: 1.3rem; }
[data-testid="stMain"] [data-testid="stCaptionContainer"],
[data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.15rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 3.2rem !important; }
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] * { font-size: 1.25rem !important; }
[data-testid="stMain"] [data-testid="stTable"] table { font-size: 1.3rem; }
[data-testid="stMain"] [data-testid="stTable"] th, [data-testid="stMain"] [data-testid="stTable"] td {
  overflow-wrap: anywhere; }
[data-testid="stMain"] [data-testid="stWidgetLabel"] p { font-size: 1.1rem; }
"""


def _enlarged(fig: Any) -> Any:
    """A copy of a figure with presentation-size fonts; the layout (margins, sizes) is kept."""
    import plotly.graph_objects as go

    base = fig.layout.font.size or 13
    if base >= PRESENTATION_FONT:  # already built with presentation=True
        return fig
    factor = PRESENTATION_FONT / base
    out = go.Figure(fig)
    out.update_layout(font_size=PRESENTATION_FONT, title_font_size=PRESENTATION_FONT + 4,
                      legend_font_size=PRESENTATION_FONT - 1)  # fmt: skip
    out.for_each_annotation(lambda a: a.update(font_size=round((a.font.size or base) * factor)))
    return out


def figure(fig: Any, name: str, key: str | None = None, stretch: bool = True, pin: Any = None, **kwargs: Any) -> Any:
    """Show a plotly figure with its downloads (interactive HTML, PNG and SVG) and a "Pin" button
    that adds it to the user's deck (``pin``: a pages._pin.Pin with its caption, run, settings, spec).

    Files are made only when a button is clicked (deferred), so showing a page stays fast.
    In presentation mode a figure built without it gets presentation-size fonts here, so every
    page follows the sidebar switch.
    """
    from pages._pin import pin_button
    from vizcore.figures import fit_text
    from vizcore.views.export import (
        INSTALL_HINT,
        figure_html,
        figure_static,
        static_export_available,
    )
    from vizcore.views.slides import figure_title

    if presentation():
        fig = _enlarged(fig)
    fit_text(fig)  # long run names and captions wrap instead of running off the figure
    # a figure with a size of its own (a CAM mosaic) is shown at that size: stretched, it would
    # leave blank bands or crowd its captions
    event = st.plotly_chart(fig, width="stretch" if stretch else "content", key=key, **kwargs)
    key = key or name
    static_ok = static_export_available()
    # a row of buttons as wide as their labels (in equal columns a half-page figure's read "⬇..")
    row = st.container(horizontal=True, gap="small")
    row.download_button("⬇ HTML", lambda: figure_html(fig), f"{name}.html", "text/html",
                        key=f"{key}_html", on_click="ignore", help="interactive, works offline")  # fmt: skip
    for fmt in ("png", "svg"):
        row.download_button(
            f"⬇ {fmt.upper()}", lambda fmt=fmt: figure_static(fig, fmt), f"{name}.{fmt}", f"image/{fmt}",
            key=f"{key}_{fmt}", on_click="ignore", disabled=not static_ok,
            help=None if static_ok else INSTALL_HINT,
        )  # fmt: skip
    pin_button(row, "figure", figure_title(fig) or name, key, fig, pin)
    return event


def table(data: Any, name: str, key: str, pin: Any = None, styled: bool = False, **kwargs: Any) -> None:
    """Show a table (``st.dataframe``, or ``st.table`` when ``styled``) with a "Pin" button; the
    pinned cells are the ones shown. ``name`` is the table's title on a slide."""
    from pages._pin import pin_button, table_cells, table_text

    if presentation() and not styled:  # an HTML table: it fits its column and grows with the page's fonts
        st.table(table_text(data, kwargs.get("column_config")))
    else:
        (st.table if styled else st.dataframe)(data, **kwargs)
    pin_button(st, "table", name, key, table_cells(data), pin)
