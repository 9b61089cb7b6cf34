"""Streamlit glue shared by the pages: the run store, run pickers, cached loaders, errors.

Only UI code lives here; every number comes from vizcore.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st
from streamlit import config as st_config

from vizcore.app.access import Access, access_for, page_allowed, token_matches
from vizcore.core.errors import DataUnavailable
from vizcore.store.info import RunInfo, RunNotFound
from vizcore.store.run import Run
from vizcore.store.runs import CheckpointError, RunStore

# Errors a user can cause (a deleted run, a bad checkpoint, missing data, bad parameters):
# each becomes a message on the page, never a traceback.
USER_ERRORS = (RunNotFound, CheckpointError, DataUnavailable, ValueError, PermissionError, KeyError)


def run_table(rows: list[dict[str, Any]], accuracies: tuple[str, ...] = ("source acc", "target acc")) -> Any:
    """A table of runs for st.dataframe: 0..1 accuracies written as "97.8%" and anything missing as
    "—" (vizcore.core.numbers). Written out as text: st.dataframe draws a missing number as "None"."""
    import pandas as pd

    from vizcore.core.numbers import MISSING, percent

    def cell(key: str, v: Any) -> Any:
        return percent(v) if key in accuracies else (MISSING if v is None else v)

    return pd.DataFrame([{k: cell(k, v) for k, v in r.items()} for r in rows])


def store() -> RunStore:
    return RunStore()


def class_map_of(source: str, target: str | None) -> dict[str, str]:
    """The class map chosen for this pair on the Your data page this session ({} if none)."""
    return st.session_state.get("_class_maps", {}).get(f"{source}|{target}", {}) if target else {}


def keep_class_map(source: str, target: str, class_map: dict[str, str]) -> None:
    """Remember the class map of a pair that passed the check, for the Train page."""
    st.session_state.setdefault("_class_maps", {})[f"{source}|{target}"] = class_map


def page_access() -> Access:
    """What this server offers (vizcore.app.access): from the environment, the address it listens on
    and the script's own arguments (``streamlit run app.py -- --viewer``)."""
    # streamlit.config.get_option is st.get_option, looked up at the call (so a test can set it)
    return access_for(os.environ, st_config.get_option("server.address"), sys.argv[1:])


def writable() -> bool:
    """May this session write to the run store (train, save, score)? Off in the read-only viewer."""
    return page_access().writable


_GRANTED = "_access_granted"


def token_granted(access: Access) -> bool:
    """May this session see the pages: no token is asked, or it gave the right one?"""
    return access.token is None or bool(st.session_state.get(_GRANTED))


def ask_for_token() -> None:
    """The only page before the token is given: a password field. The right token opens the pages
    for this browser session (a new tab asks again); the token itself is not kept."""
    access = page_access()
    st.title("vizcore")
    given = st.text_input("Access token", type="password", key="_access_token",
                          help="the presenter set it when starting the dashboard; ask them")  # fmt: skip
    if given and access.token is not None and token_matches(given, access.token):
        st.session_state[_GRANTED] = True
        del st.session_state["_access_token"]
        st.rerun()
    if given:
        st.error("That is not the token.")
    st.caption("This dashboard is shared on the network: type the token the presenter gave you.")


def guard(script: str) -> None:
    """At the top of every page (``guard(__file__)``): stop unless this session may see it.

    app.py offers only the allowed pages, and only after the token. But until app.py first calls
    st.navigation in a server process, Streamlit runs a file of the pages/ folder on its own when
    the request names it (its older multipage mode): the first visitor of /train would skip app.py."""
    access = page_access()
    if not token_granted(access):
        ask_for_token()
        st.stop()
    if not page_allowed(script, access):
        st.info("This page is not offered here: the dashboard is shared read-only.")
        st.stop()


def page_link(where: Any, path: str, **kwargs: Any) -> None:
    """``where.page_link`` to a page that exists on this server (none to the Train page in the viewer)."""
    if page_allowed(path, page_access()):
        where.page_link(path, **kwargs)


def session_id() -> str:
    """A per-browser-session id, so two people see their own jobs first."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex[:8]
    return st.session_state["session_id"]


@contextmanager
def friendly_errors(what: str = "this view", doing: str = "show") -> Iterator[None]:
    """Show known failures as a clear message (and stop the page), not a traceback:
    "Could not <doing> <what>: <why>"."""
    try:
        yield
    except USER_ERRORS as e:
        st.error(f"Could not {doing} {what}: {e}")
        st.stop()


def run_label(r: RunInfo) -> str:
    """Short enough for a select box in presentation mode: label, then compact accuracies."""
    from vizcore.core.numbers import percent

    acc, tacc = r.summary.get("source_acc"), r.summary.get("target_acc")
    score = "" if acc is None else f" — {percent(acc)} src" + ("" if tacc is None else f", {percent(tacc)} tgt")
    tag = "demo · " if r.read_only and not r.label.lower().startswith("demo") else ""
    status = "" if r.status == "complete" else f" [{r.status}]"
    return f"{tag}{r.label}{score}{status}"


def usable_runs(predicate: Callable[[RunInfo], bool] | None = None) -> list[RunInfo]:
    """Runs that have weights to analyse (complete or stopped), newest first, demos last."""
    runs = [r for r in store().list() if r.status in ("complete", "stopped")]
    return [r for r in runs if predicate is None or predicate(r)]


def pick_run(
    label: str = "Run", key: str = "run", predicate: Callable[[RunInfo], bool] | None = None, help: str | None = None
) -> Run | None:
    """A selectbox of runs; remembers the choice across pages in session_state[key]."""
    runs = usable_runs(predicate)
    if not runs:
        st.info("No trained runs yet: train one on the **Train** page (or run `python -m vizcore train`).")
        return None
    ids = [r.run_id for r in runs]
    labels = {r.run_id: run_label(r) for r in runs}
    current = st.session_state.get(key)
    index = ids.index(current) if current in ids else 0
    rid = st.selectbox(label, ids, index=index, format_func=labels.get, key=f"_{key}_select", help=help)
    st.session_state[key] = rid
    with friendly_errors("the run"):
        return store().get(rid)


def before_is_parent(after_id: str | None, before_key: str, predicate: Callable[[RunInfo], bool] | None = None) -> None:
    """When the "after" run becomes one that started from another (``init_from``), the "before"
    picker ``before_key`` starts at that parent. Call it before the "before" picker is drawn."""
    marker = f"_{before_key}_parent_of"
    if after_id is None or st.session_state.get(marker) == after_id:
        return  # the user's own choice of "before" stands until "after" changes
    st.session_state[marker] = after_id
    infos = {r.run_id: r for r in usable_runs(predicate)}
    after = next((r for r in usable_runs() if r.run_id == after_id), None)
    if after is not None and after.init_from in infos:
        st.session_state[before_key] = after.init_from
        st.session_state[f"_{before_key}_select"] = after.init_from


@st.cache_resource(max_entries=8, show_spinner=False)
def _model(run_id: str, digest: str) -> Any:
    return store().get(run_id).load_model()


def load_model(run: Run) -> Any:
    """The run's model, cached per (run, weights) so a retrained run is reloaded."""
    return _model(run.run_id, run.weights_digest())


# Widgets whose choice is kept when one leaves a page and comes back. Streamlit drops the state of
# a widget that a run does not draw; writing a key back at the start of every run keeps it.
REMEMBERED = ("cam_", "dist_", "emb_", "report_", "train_")
NOT_INPUTS = ("_html", "_png", "_svg", "_csv", "_pcsv", "_download", "_pin")  # buttons cannot be set
CHARTS = ("cam_grid", "cam_mean", "emb_pair-")  # plotly charts (their selection is not a choice to keep)


def remember_widgets() -> None:
    """Keep every page's choices (metric, domain, class, method...) across page switches."""
    for key in list(st.session_state):
        if (isinstance(key, str) and key.startswith(REMEMBERED) and not key.endswith(NOT_INPUTS)
                and not key.startswith(CHARTS)):  # fmt: skip
            st.session_state[key] = st.session_state[key]


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


def relative_time(ts: float) -> str:
    dt = time.time() - ts
    for unit, sec in (("d", 86400), ("h", 3600), ("min", 60)):
        if dt >= sec:
            return f"{dt / sec:.0f} {unit} ago"
    return "just now"
