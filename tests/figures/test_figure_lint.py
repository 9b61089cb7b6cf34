"""Figure lint: every figure the pages and the report draw, with presentation mode off and on.

Checks what a slide shows: no text line wider than its figure, every visible axis titled, cell
numbers written on one scale (vizcore.core.numbers), a caption or a title on every figure.
Widths are estimated (0.55 of the font size a character), which is conservative for the
proportional fonts used.
"""

from __future__ import annotations

import json
import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.figures import CONTAINER_PX, title_room
from vizcore.store.runs import RunStore
from vizcore.views.report import ReportOptions, make_report

CHAR = 0.55  # below fit_text's CHAR_WIDTH: the lint only fails lines that fit_text would have wrapped
TAGS = re.compile(r"<[^>]+>")
CELL = re.compile(r"^(−|-|\+)?\d+(\.\d+)?$|^—$")
PAGES = ["pages/cam.py", "pages/distances.py", "pages/embeddings.py", "pages/compare.py"]  # the pages with figures


def _lines(text: str) -> list[str]:
    return [TAGS.sub("", line) for line in re.split(r"<br\s*/?>", text or "")]


def _font(obj: dict, layout: dict, default: float = 13) -> float:
    return float((obj.get("font") or {}).get("size") or (layout.get("font") or {}).get("size") or default)


def problems(fig: dict) -> list[str]:
    """Everything a reader of a slide would trip over in one plotly figure (its JSON)."""
    layout, out = fig.get("layout", {}), []
    width = float(layout.get("width") or CONTAINER_PX)
    title = layout.get("title") or {}
    title_text = title.get("text") if isinstance(title, dict) else title
    texts = [(title_text, _font(title, layout, 17), "title")]
    texts += [(a.get("text", ""), _font(a, layout), "annotation") for a in layout.get("annotations", [])]
    for text, size, what in texts:
        for line in _lines(text or ""):
            if len(line) * size * CHAR > width:
                out.append(f"{what} line wider than the figure ({len(line)} chars at {size:g}px): {line[:60]}…")
    if title_text:  # a title clipped at the top, or on the panel titles, in presentation mode above all
        top = float((layout.get("margin") or {}).get("t", 100))
        if title.get("yanchor") != "top" or top < title_room(layout):
            out.append(f"title may be cut: top margin {top:g}px, the title and panel titles need {title_room(layout)}px")
    has_text = bool(title_text) or any(a.get("text") for a in layout.get("annotations", []))
    if not has_text:
        out.append("no title and no caption")
    for name, axis in layout.items():
        # hidden axes, and axes without tick labels (a 2-D layout's coordinates have no units)
        if not re.fullmatch(r"[xy]axis\d*", name) or axis.get("visible") is False or axis.get("showticklabels") is False:
            continue
        used = any(t.get(name[0] + "axis", name[0]) == name[0] + name[5:] for t in fig.get("data", []))
        if used and not (axis.get("title") or {}).get("text"):
            out.append(f"{name} has no title")
    for trace in fig.get("data", []):
        if trace.get("type") == "heatmap" and isinstance(trace.get("text"), list):
            cells = [c for row in trace["text"] for c in (row if isinstance(row, list) else [row])]
            bad = [c for c in cells if not CELL.match(str(c))]
            if bad:
                out.append(f"heatmap cells not written by vizcore.core.numbers: {bad[:3]}")
            if cells and all(re.fullmatch(r"-?0(\.0+)?", str(c)) for c in cells):
                out.append("every heatmap cell reads 0: the values need a common power of ten")
    return out


DECIMAL = re.compile(r"^[+−-]?\d+\.(\d+)%?$")


def table_problems(frame) -> list[str]:  # noqa: ANN001 — a pandas DataFrame as a page shows it
    """What a reader of a table would trip over: a negative zero, or one column written in several
    formats (numbers as text with different decimals, "+0.120" beside "+0.0300"). A column of
    numbers (not text) is drawn in its column_config format by Streamlit."""
    out = []
    for col in frame.columns:
        cells = [v for v in frame[col].tolist() if isinstance(v, str)]  # numbers are formatted by column_config
        if any(re.fullmatch(r"[−-]0(\.0+)?%?", c) for c in cells):
            out.append(f"column {col!r} has a negative zero")
        decimals = {len(m.group(1)) for c in cells if (m := DECIMAL.match(c))}
        if len(decimals) > 1:
            out.append(f"column {col!r} mixes {sorted(decimals)} decimals: {cells[:4]}")
    return out


def _page(page: str, presentation: bool) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["presentation"] = presentation
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at



@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.mark.parametrize("presentation", [False, True], ids=["screen", "presentation"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_figure_and_table_reads_well(page: str, presentation: bool) -> None:
    at = _page(page, presentation)
    figs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert figs, f"{page} draws no figure for the demo runs"
    found = {f"{page} figure {i}": p for i, fig in enumerate(figs) if (p := problems(fig))}
    tables = [t.value for t in at.table] + [t.value for t in at.dataframe]
    found |= {f"{page} table {i}": p for i, t in enumerate(tables) if (p := table_problems(t))}
    assert found == {}


def test_the_table_lint_catches_what_it_is_for() -> None:
    import pandas as pd

    found = table_problems(pd.DataFrame({"change": ["+0.120", "+0.0300"], "mmd": ["-0.00", "1.20"]}))
    assert any("mixes" in p for p in found) and any("negative zero" in p for p in found)
    assert table_problems(pd.DataFrame({"change": ["+0.120", "+0.030", "—"], "acc": ["94.2%", "53.3%", "—"]})) == []


@pytest.mark.parametrize("presentation", [False, True], ids=["screen", "presentation"])
def test_every_report_figure_reads_well(presentation: bool, tmp_path) -> None:
    store = RunStore(tmp_path / "runs")
    runs = [store.get("demo-source_only-mnist-to-mnist-m"), store.get("demo-dann-mnist-to-mnist-m")]
    report = make_report(runs, ReportOptions(presentation=presentation))
    found = {f"report figure {i}": p for i, f in enumerate(report.figures) if (p := problems(json.loads(f.to_json())))}
    assert found == {}


def test_the_lint_catches_what_it_is_for() -> None:
    bad = {"layout": {"xaxis": {}, "annotations": [{"text": "x" * 300, "font": {"size": 11}}]},
           "data": [{"type": "heatmap", "text": [["0.00000", "0.00000"]]}]}  # fmt: skip
    found = problems(bad)
    assert any("wider" in p for p in found) and any("xaxis" in p for p in found)
    assert any("reads 0" in p for p in found)


def test_a_three_line_title_in_presentation_size_gets_room_above_the_panels() -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from vizcore.figures import fit_text, style

    fig = style(make_subplots(1, 2, subplot_titles=["before<br>run a", "after<br>run b"]), presentation=True)
    fig.update_layout(title_text="DANN mnist → mnist-m<br>source mnist, test split<br>GAP features", margin_t=70)
    fig.add_trace(go.Heatmap(z=[[1]]), 1, 1)
    assert any("title may be cut" in p for p in problems(json.loads(fig.to_json())))  # as the issue saw it
    fit_text(fig)
    assert not [p for p in problems(json.loads(fig.to_json())) if "cut" in p]
    assert fig.layout.margin.t >= 3 * 22 * 1.3 + 2 * 18 * 1.3  # three title lines above two panel-title lines


@pytest.mark.parametrize("presentation", [False, True], ids=["screen", "presentation"])
def test_the_overview_tables_read_well(presentation: bool) -> None:
    at = _page("pages/home.py", presentation)
    tables = [t.value for t in at.table] + [t.value for t in at.dataframe]
    assert tables and {i: p for i, t in enumerate(tables) if (p := table_problems(t))} == {}
    assert "name" in tables[0].columns  # the run's given name, not only its id
