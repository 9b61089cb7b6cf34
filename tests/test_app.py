"""AppTest: every page renders without an exception; the main flows work headless."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from vizcore.jobs import MANAGER
from vizcore.runs import DEMO_ROOT

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = [
    "pages/home.py",
    "pages/train.py",
    "pages/compare.py",
    "pages/cam.py",
    "pages/distances.py",
    "pages/embeddings.py",
    "pages/report.py",
    "pages/upload.py",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str) -> None:
    at = _app()
    at.switch_page(page).run()
    assert not at.exception, at.exception


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def test_cam_page_shows_the_demo_run() -> None:
    assert any(DEMO_ROOT.iterdir()), "a demo run ships in assets/demo_runs"
    at = _app()
    at.switch_page("pages/cam.py").run()
    assert not at.exception
    figs = _figures(at)
    assert figs, "the CAM grid is drawn"
    assert any(t.get("type") == "image" for t in figs[0]["data"])
    assert not at.error


def test_train_page_runs_a_tiny_training() -> None:
    at = _app()
    at.switch_page("pages/train.py").run()
    at.number_input[0].set_value(1)  # epochs
    advanced_limit = [n for n in at.number_input if "Training images" in n.label][0]
    advanced_limit.set_value(512)
    at.button[0].click()  # the form's Train button
    at.run()
    assert not at.exception, at.exception
    rid = at.session_state["watch"]
    MANAGER.wait(rid, timeout=300)
    at.run()
    assert not at.exception
    assert any("complete" in s.value for s in at.success), [e.value for e in at.error]
    assert _figures(at), "live curves are drawn"
