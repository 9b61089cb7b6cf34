"""Sharing the dashboard: it listens on this machine only, a read-only viewer has no page or button
that writes, and on a network address a visitor gives the presenter's token before any page."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
import tomllib
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from tests.paths import APP, ROOT
from vizcore.app.access import (
    TOKEN_ENV,
    VIEWER_ENV,
    Access,
    access_for,
    is_loopback,
    page_allowed,
    token_matches,
    viewer_mode,
)

PAGES = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("[!_]*.py"))
WRITING = ["pages/data.py", "pages/deck.py", "pages/train.py", "pages/upload.py"]


def test_the_server_listens_on_this_machine_only() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and is_loopback(config["server"]["address"])
    assert config["server"]["fileWatcherType"] == "none"  # the file's other settings are kept
    assert config["browser"]["gatherUsageStats"] is False


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("", False), (None, False), ("192.168.1.20", False), ("::", False),
     ("laptop.local", False)],
)  # fmt: skip
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback  # unset: Streamlit listens on every interface


@pytest.mark.parametrize(
    ("address", "env", "argv", "expected"),
    [
        # this machine: everything, and no token even when one is set
        ("127.0.0.1", {}, (), Access(writable=True)),
        ("localhost", {TOKEN_ENV: "s3cret"}, (), Access(writable=True)),
        # the viewer, asked for by the environment or by the script's own argument
        ("127.0.0.1", {VIEWER_ENV: "1"}, (), Access(writable=False)),
        ("127.0.0.1", {}, ("--viewer",), Access(writable=False)),
        ("0.0.0.0", {VIEWER_ENV: "true"}, (), Access(writable=False)),
        # on the network: the token for everything, or for the viewer when both are set
        ("0.0.0.0", {TOKEN_ENV: "s3cret"}, (), Access(writable=True, token="s3cret")),
        ("192.168.1.20", {TOKEN_ENV: "s3cret", VIEWER_ENV: "1"}, (), Access(False, token="s3cret")),
    ],
)
def test_what_a_server_offers(address, env, argv, expected) -> None:
    assert access_for(env, address, argv) == expected


@pytest.mark.parametrize("address", ["0.0.0.0", None])
@pytest.mark.parametrize("token", [None, "", "   "])
def test_the_network_without_a_token_gets_the_read_only_pages_and_how_to_set_one(
    address, token
) -> None:
    access = access_for({} if token is None else {TOKEN_ENV: token}, address)
    assert not access.writable and access.token is None
    assert TOKEN_ENV in access.notice and VIEWER_ENV in access.notice


def test_viewer_mode_reads_yes_and_no() -> None:
    assert [viewer_mode({VIEWER_ENV: v}) for v in ("1", "yes", "ON", "0", "no", "")] == [
        True
    ] * 3 + [False] * 3
    assert not viewer_mode({}) and viewer_mode({}, ["--viewer"])


def test_the_read_only_pages() -> None:
    full, viewer = Access(writable=True), Access(writable=False)
    assert [p for p in PAGES if page_allowed(p, full)] == PAGES
    assert [p for p in PAGES if not page_allowed(p, viewer)] == WRITING


def test_the_token_is_compared_whole() -> None:
    assert token_matches("s3cret", "s3cret") and token_matches(" s3cret\n", "s3cret")  # pasted
    assert not any(token_matches(g, "s3cret") for g in ("s3cre", "s3cret!", "S3CRET", ""))


# ------------------------------------------------------------------------------------- AppTest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    for name in (VIEWER_ENV, TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def _pages(at: AppTest) -> list[str]:
    """The files of pages/ that st.navigation offered in the last run."""
    registered = at._registered_pages.values()  # what AppTest.switch_page checks a page against
    paths = [Path(p["script_path"]) for p in registered if p.get("url_pathname") is not None]
    return sorted(str(q.relative_to(ROOT)) for q in paths if q.parent == ROOT / "pages")


def test_the_viewer_has_no_page_or_button_that_writes(monkeypatch, unscored_demo) -> None:
    monkeypatch.setenv(VIEWER_ENV, "1")
    unscored_demo("demo-lenet-gap-mnist")  # a run with methods left to score
    at = _app()
    assert not at.exception, at.exception
    assert _pages(at) == [p for p in PAGES if p not in WRITING]
    assert "Train a model" not in [link.label for link in at.get("page_link")]
    at.switch_page("pages/cam.py").run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.label.startswith("Score")]
    assert any("read-only viewer does not score" in c.value for c in at.caption)


def test_on_this_machine_everything_is_on(unscored_demo, _background_queue) -> None:
    unscored_demo("demo-lenet-gap-mnist")  # a run with methods left to score
    at = _app()
    assert _pages(at) == PAGES
    assert "Train a model" in [link.label for link in at.get("page_link")]
    at.switch_page("pages/cam.py").run()
    score = [b.label for b in at.button if b.label.startswith("Score")]
    assert len(score) == 1 and score[0].endswith("in the background"), score
    assert _background_queue.tasks("demo-lenet-gap-mnist")  # the method on screen was queued


def test_on_the_network_a_visitor_gives_the_token_before_any_page(monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    with patch_config_options({"server.address": "0.0.0.0"}):
        at = _app()
        field = at.text_input(key="_access_token")
        assert field.proto.type == TextInputProto.PASSWORD
        assert _pages(at) == [] and not at.dataframe  # no page, no runs table

        field.input("s3cre").run()
        assert [e.value for e in at.error] == ["That is not the token."]
        assert _pages(at) == [] and not at.dataframe

        at.text_input(key="_access_token").input("s3cret").run()
        assert not at.exception and not at.error, (at.exception, at.error)
        assert at.title[0].value.startswith("vizcore — ") and at.dataframe  # the Overview
        assert "_access_token" not in at.session_state  # the token is not kept
        assert _pages(at) == PAGES  # with the token, everything
        at.switch_page("pages/compare.py").run()
        assert not at.exception and at.title[0].value == "Compare runs"  # and it stays open


def test_on_the_network_without_a_token_the_writing_pages_are_off_and_it_says_why() -> None:
    with patch_config_options({"server.address": "0.0.0.0"}):
        at = _app()
        assert not at.exception, at.exception
        assert _pages(at) == [p for p in PAGES if p not in WRITING]
        assert any(TOKEN_ENV in w.value for w in at.sidebar.warning)


def test_a_page_run_on_its_own_asks_for_the_token_and_keeps_to_the_viewer(monkeypatch) -> None:
    # Streamlit runs a file of pages/ on its own when the first request of a server names it (its
    # pages-folder mode, until app.py first calls st.navigation): the page checks for itself
    monkeypatch.setenv(VIEWER_ENV, "1")
    train = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=120).run()
    assert not train.exception and not train.title and not train.button
    assert [i.value for i in train.info] == [
        "This page is not offered here: the dashboard is shared read-only."
    ]

    monkeypatch.delenv(VIEWER_ENV)
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    with patch_config_options({"server.address": "0.0.0.0"}):
        compare = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=120).run()
        assert [t.value for t in compare.title] == ["vizcore"] and not compare.dataframe
        compare.text_input(key="_access_token").input("s3cret").run()
        assert not compare.exception, compare.exception
        assert [t.value for t in compare.title] == ["Compare runs"] and compare.dataframe
