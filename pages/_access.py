"""Who may see the pages and write to the store: the token asked on a network address, the
read-only viewer, and the guard at the top of every page (see vizcore.app.access)."""

from __future__ import annotations

import os
import sys
from typing import Any

import streamlit as st
from streamlit import config as st_config

from vizcore.app.access import Access, access_for, page_allowed, token_matches


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
