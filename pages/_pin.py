"""The "pin to deck" action beside every figure and table, and who the deck belongs to.

A deck belongs to a browser: its id lives in a cookie, so a reload (or a new tab) finds the same
deck in the run store (vizcore.views.deck). Pinning writes to the store, so it is off in the
read-only viewer, like every other write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from vizcore.views.deck import USER_PATTERN, Deck, DeckError, pin_figure, pin_table

DECK_COOKIE = "vizcore_deck"
_USER = "_deck_user"


@dataclass(frozen=True)
class Pin:
    """What a page knows about a figure or table beyond its pixels, kept with the pinned item.

    Attributes:
        caption: the sentence under it (the slide's caption).
        run_id, run_name: the run it shows (its id and given name).
        settings: the choices it was made with, for people ({"metric": "MMD", "layer": "GAP"}).
        spec: how to make it again (vizcore.views.builders.spec), or None.
    """

    caption: str = ""
    run_id: str | None = None
    run_name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: Any, **kwargs: Any) -> Pin:
        """A pin about ``run`` (a Run or a RunInfo): its id and given name."""
        name = run.config().label if hasattr(run, "config") else getattr(run, "label", None)
        return cls(run_id=run.run_id, run_name=name, **kwargs)


def deck_user() -> str:
    """This browser's deck id: from its cookie, or a new one (the cookie is set by keep_deck_cookie)."""
    if _USER not in st.session_state:
        given = st.context.cookies.get(DECK_COOKIE)
        ok = isinstance(given, str) and USER_PATTERN.fullmatch(given)
        st.session_state[_USER] = given if ok else uuid.uuid4().hex[:16]
    return st.session_state[_USER]


def keep_deck_cookie() -> None:
    """Write the deck id into a cookie once per session where the browser lacks it (a zero-size
    component in the sidebar: Streamlit cannot set cookies from Python)."""
    user = deck_user()
    if st.context.cookies.get(DECK_COOKIE) == user or st.session_state.get("_deck_cookie_sent"):
        return
    st.session_state["_deck_cookie_sent"] = True
    from streamlit.components.v1 import html

    with st.sidebar:
        html(f"<script>document.cookie='{DECK_COOKIE}={user}; path=/; max-age=31536000; SameSite=Strict';</script>",
             height=0)  # fmt: skip


def user_deck() -> Deck:
    from pages._shared import store

    return Deck(store().root, deck_user())


def _pin(kind: str, title: str, pin: Pin, what: Any) -> None:
    """The button's callback: pin, and say so in a toast (or say why not)."""
    deck = user_deck()
    meta = dict(title=title, caption=pin.caption, run_id=pin.run_id, run_name=pin.run_name, settings=pin.settings)
    try:
        if kind == "figure":
            pin_figure(deck, what, spec=pin.spec, **meta)
        else:
            pin_table(deck, *what, **meta)
    except (DeckError, OSError) as e:
        st.toast(f"Could not pin it: {e}", icon=":material/error:")
        return
    st.toast(f"Pinned to the deck: {title}. Open **Deck** (under Share) to export it.", icon=":material/push_pin:")


def pin_button(where: Any, kind: str, title: str, key: str, what: Any, pin: Pin | None) -> None:
    """A small "Pin" button; off (with the reason) in the read-only viewer."""
    from pages._access import writable

    ok = writable()
    where.button("Pin", icon=":material/push_pin:", key=f"{key}_pin", on_click=_pin,
                 args=(kind, title, pin or Pin(), what), disabled=not ok, help="add it to your deck for the meeting (Share → Deck): PowerPoint, PDF or HTML"
                 if ok else "the deck is off here: the dashboard is shared read-only")  # fmt: skip


def table_cells(data: Any) -> tuple[list[Any], list[list[Any]]]:
    """(columns, rows) of a DataFrame, a Styler or a list of dicts; a named index becomes the first column."""
    import pandas as pd
    from pandas.io.formats.style import Styler

    df = data.data if isinstance(data, Styler) else data  # a Styler holds its frame in .data
    df = df if isinstance(df, pd.DataFrame) else pd.DataFrame(df)
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(names=df.index.name or "")
    return [str(c) for c in df.columns], df.astype(object).where(df.notna(), None).values.tolist()


def table_text(data: Any, column_config: Any = None) -> Any:
    """The table as text for an HTML table (presentation mode): each numeric column in its
    column_config format ("%.3f") where the page gave one, else by vizcore.core.numbers; no index
    column unless the frame has a named one."""
    import pandas as pd

    from vizcore.core.numbers import fmt

    columns, rows = table_cells(data)
    formats = {k: (getattr(v, "get", lambda *_: None)("type_config") or {}).get("format")
               for k, v in (column_config or {}).items()}  # fmt: skip

    def cell(col: str, v: Any) -> str:
        if isinstance(v, float):
            return formats[col] % v if formats.get(col) else fmt(v)
        return "—" if v is None else str(v)

    frame = pd.DataFrame([[cell(c, v) for c, v in zip(columns, r, strict=False)] for r in rows], columns=columns)
    return frame.style.hide(axis="index")
