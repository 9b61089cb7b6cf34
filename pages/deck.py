"""Deck: the figures and tables pinned while exploring, in order, with notes, exported for the meeting."""

from __future__ import annotations

import json

import plotly.io as pio
import streamlit as st

from pages._access import guard
from pages._pin import user_deck
from pages._shared import friendly_errors, store
from vizcore.views.deck import DeckError, DeckItem
from vizcore.views.export import INSTALL_HINT, static_export_available
from vizcore.views.slides import deck_html, deck_pdf, deck_pptx, deck_slides, slide_png

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Deck")
st.caption(
    "Everything you pinned with **:material/push_pin: Pin** under a figure or a table, on any page, in the "
    "order of the slides. The deck is kept in the run store for this browser, so a reload loses nothing. "
    "Each export makes one 16:9 slide per item: the title, the figure as a sharp image (or the table), the "
    "caption below; the run, the settings, the figure's numbers and your notes go into the slide notes."
)

deck = user_deck()
read = deck.read()
if read.problem:
    st.warning(read.problem)
items = read.items
if not items:
    st.info("Nothing pinned yet: press **:material/push_pin: Pin** under any figure or table (CAM heatmaps, Class distances, "
            "Embeddings, Compare runs...), then come back here to order, annotate and export.")  # fmt: skip
    st.stop()


def _change(action: str, item_id: str, *args: object) -> None:
    """A button's callback: move, remove or save notes; an item removed in another tab is one message."""
    try:
        getattr(deck, action)(item_id, *args)
    except (DeckError, OSError) as e:
        st.toast(f"Could not change the deck: {e}", icon=":material/error:")


def _save_notes(item_id: str) -> None:
    _change("set_notes", item_id, st.session_state[f"deck_notes_{item_id}"])


# ------------------------------------------------------------------------------------ export
remade = st.toggle("Re-make figures from their recorded settings", value=True, key="deck_remake",
                   help="on: each figure with recorded settings is drawn again from its run now (after a retrain it "
                   "shows the new weights), in presentation size; off, or where its run is gone: the snapshot taken "
                   "when it was pinned")  # fmt: skip
static_ok = static_export_available()


def _slides(kind: str) -> bytes | str:
    """The deck in one format (run when its download button is clicked)."""
    slides, problems = deck_slides(deck, store(), remade)
    if kind == "html":
        return deck_html(slides, "vizcore deck")
    pngs = [slide_png(s) if s.figure is not None else None for s in slides]
    return deck_pptx(slides, pngs) if kind == "pptx" else deck_pdf(slides, pngs)


c = st.columns(4)
formats = [("pptx", "⬇ PowerPoint (.pptx)", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
           ("pdf", "⬇ PDF (same slides)", "application/pdf"), ("html", "⬇ HTML report", "text/html")]  # fmt: skip
for col, (kind, label, mime) in zip(c, formats, strict=False):
    needs_browser = kind != "html"
    col.download_button(label, lambda kind=kind: _slides(kind), f"vizcore-deck.{kind}", mime, key=f"deck_{kind}_download",
                        on_click="ignore", disabled=needs_browser and not static_ok,
                        help=INSTALL_HINT if needs_browser and not static_ok else f"{len(items)} slides")  # fmt: skip
c[3].caption(f"{len(items)} item{'s' * (len(items) != 1)}; exporting takes a few seconds a figure.")


# ------------------------------------------------------------------------------------ items
def _preview(item: DeckItem) -> None:
    snap = deck.snapshot(item.item_id)
    if snap is None:
        st.warning("Its snapshot is missing or damaged: it can only be re-made from its recorded settings.")
    elif item.kind == "table":
        st.dataframe({c: [r[j] for r in snap["rows"]] for j, c in enumerate(snap["columns"])}, hide_index=True)
    else:
        with friendly_errors("this snapshot"):
            st.plotly_chart(pio.from_json(json.dumps(snap)), key=f"deck_fig_{item.item_id}", theme=None)


for n, item in enumerate(items):
    with st.container(border=True):
        head, buttons = st.columns([8, 2])
        head.markdown(f"**{n + 1}. {item.title}** · {item.kind}"
                      + ("" if item.spec is None else " · re-makeable"))  # fmt: skip
        if item.caption:
            head.caption(item.caption)
        meta = [f"run: {item.run_text()}" if item.run_id else "", item.settings_text()]
        if any(meta):
            head.caption(" · ".join(m for m in meta if m))
        b = buttons.columns(3)
        b[0].button("↑", key=f"deck_up_{item.item_id}", on_click=_change, args=("move", item.item_id, -1),
                    disabled=n == 0, help="one slide earlier")  # fmt: skip
        b[1].button("↓", key=f"deck_down_{item.item_id}", on_click=_change, args=("move", item.item_id, 1),
                    disabled=n == len(items) - 1, help="one slide later")  # fmt: skip
        b[2].button("✕", key=f"deck_remove_{item.item_id}", on_click=_change, args=("remove", item.item_id),
                    help="remove it from the deck")  # fmt: skip
        st.session_state.setdefault(f"deck_notes_{item.item_id}", item.notes)
        st.text_area("Notes (go into the slide notes)", key=f"deck_notes_{item.item_id}", height=68,
                     on_change=_save_notes, args=(item.item_id,))  # fmt: skip
        with st.expander("Preview"):
            _preview(item)
