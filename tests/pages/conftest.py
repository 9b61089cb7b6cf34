"""Every page test starts on an empty store of its own and empty Streamlit caches."""

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()
