"""Every page test starts on an empty store of its own and empty Streamlit caches."""

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture(scope="session")
def browser_server(tmp_path_factory):
    """One real server for every browser test (the smoke test, then the tour): its URL and folder
    (runs/ is its store). The smoke test only opens pages, so the tour starts from an empty store."""
    from tests.browser_utils import streamlit_server

    tmp = tmp_path_factory.mktemp("browser")
    with streamlit_server(tmp / "runs", tmp / "streamlit.log") as url:
        yield url, tmp


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test."""
    from tests.browser_utils import chromium

    with chromium() as b:
        yield b
