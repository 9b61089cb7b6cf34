"""The pin action on the pages and the Deck page (AppTest, headless)."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.store.runs import RunStore
from vizcore.views import builders
from vizcore.views.deck import Deck, pin_figure

USER = "tester"


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"  # where tests/pages/conftest.py points VIZCORE_RUNS


def _app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["_deck_user"] = USER  # the browser's cookie, in a real session
    at.run()
    return at.switch_page(page).run()


def test_a_figure_pinned_on_the_cam_page_is_re_made_equal_from_its_spec(runs: Path) -> None:
    at = _app("pages/cam.py")
    assert not at.exception, at.exception
    shown = json.loads(at.get("plotly_chart")[0].proto.spec)
    at.button(key="cam_grid_pin").click().run()
    assert not at.exception, at.exception
    (item,) = Deck(runs, USER).items()
    assert item.kind == "figure" and item.spec["builder"] == "cam_grid" and item.run_id.startswith("demo-")
    assert item.settings["method"] == "CAM" and item.run_name  # the run's given name beside its id
    again = builders.remake(item.spec, RunStore(runs))
    keys = ("type", "source", "x", "y", "z", "text")
    assert [{k: t.get(k) for k in keys} for t in json.loads(again.to_json())["data"]] == \
        [{k: t.get(k) for k in keys} for t in shown["data"]]  # fmt: skip


def test_a_table_is_pinned_with_its_cells_as_shown(runs: Path) -> None:
    at = _app("pages/home.py")
    at.button(key="home_runs_table_pin").click().run()
    deck = Deck(runs, USER)
    (item,) = deck.items()
    snap = deck.snapshot(item.item_id)
    acc = snap["columns"].index("source acc")
    assert item.kind == "table" and snap["columns"][0] == "name" and "97.8%" in {r[acc] for r in snap["rows"]}


def test_the_deck_page_lists_reorders_and_removes(runs: Path) -> None:
    deck = Deck(runs, USER)
    a, b = (pin_figure(deck, go.Figure(layout={"title": {"text": t}}), title=t, caption=f"about {t}") for t in "AB")
    at = _app("pages/deck.py")
    assert not at.exception, at.exception
    assert [m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")] == ["1. A", "2. B"]
    at.button(key=f"deck_down_{a.item_id}").click().run()
    assert [i.title for i in deck.items()] == ["B", "A"]
    at.text_area(key=f"deck_notes_{a.item_id}").input("the diagonal is the noise floor").run()
    assert deck.items()[1].notes == "the diagonal is the noise floor"
    at.button(key=f"deck_remove_{b.item_id}").click().run()
    assert [i.title for i in deck.items()] == ["A"] and not at.exception


def test_a_damaged_deck_is_one_warning_on_the_page(runs: Path) -> None:
    path = Deck(runs, USER).path
    path.parent.mkdir(parents=True)
    path.write_text("{oops")
    at = _app("pages/deck.py")
    assert not at.exception and "damaged" in at.warning[0].value and at.info  # and the empty-deck hint


@pytest.mark.parametrize(("page", "builder"), [("pages/embeddings.py", "embedding_pair"), ("pages/distances.py",
                                                                                           "distance_matrix")])
def test_the_main_figure_of_a_page_is_re_made_equal_from_its_pin(runs: Path, page: str, builder: str) -> None:
    at = _app(page)
    shown = json.loads(at.get("plotly_chart")[0].proto.spec)
    next(b for b in at.button if b.key and b.key.endswith("_pin")).click().run()
    assert not at.exception, at.exception
    (item,) = Deck(runs, USER).items()
    assert item.spec["builder"] == builder and item.caption and item.settings
    again = json.loads(builders.remake(item.spec, RunStore(runs)).to_json())
    keys = ("type", "x", "y", "z", "text", "customdata")
    assert [{k: t.get(k) for k in keys} for t in again["data"]] == [{k: t.get(k) for k in keys} for t in shown["data"]]
