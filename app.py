"""vizcore dashboard: `streamlit run app.py`. Pages are thin; all computation is in vizcore."""

import streamlit as st

from pages._access import ask_for_token, page_access, token_granted
from pages._figures import presentation_toggle
from pages._pin import keep_deck_cookie
from pages._shared import remember_widgets
from vizcore.app.access import page_allowed
from vizcore.app.warmup import imports_in_turn, schedule_warmup

st.set_page_config(page_title="vizcore", page_icon="🔬", layout="wide")

HOME = "pages/home.py"
SECTIONS = {  # section -> (page, title, icon)
    "Start": [(HOME, "Overview", ":material/home:")],
    "Train": [
        ("pages/train.py", "Train", ":material/model_training:"),
        ("pages/data.py", "Your data", ":material/folder_open:"),
        ("pages/compare.py", "Compare runs", ":material/compare_arrows:"),
        ("pages/sweeps.py", "Sweeps", ":material/tune:"),
    ],
    "See what it learned": [
        ("pages/cam.py", "CAM heatmaps", ":material/local_fire_department:"),
        ("pages/distances.py", "Class distances", ":material/grid_on:"),
        ("pages/embeddings.py", "Embeddings", ":material/scatter_plot:"),
    ],
    "Share": [
        ("pages/report.py", "Report", ":material/description:"),
        ("pages/deck.py", "Deck", ":material/slideshow:"),
        ("pages/upload.py", "Your checkpoints & images", ":material/upload_file:"),
    ],
}
# the pages this server offers: all of them on 127.0.0.1, the read-only ones in the viewer or on a
# network address without a token (vizcore.app.access); until a token asked for is given, only the question
ACCESS = page_access()
GRANTED = token_granted(ACCESS)


def offered(pages: list[tuple[str, str, str]]) -> list[st.Page]:
    return [st.Page(path, title=title, icon=icon, default=path == HOME)
            for path, title, icon in pages if page_allowed(path, ACCESS)]  # fmt: skip


PAGES = {section: shown for section, pages in SECTIONS.items() if (shown := offered(pages))}
if not GRANTED:
    PAGES = {"": [st.Page(ask_for_token, title="Access token", icon=":material/lock:")]}

# once per server process, after the first page has rendered: load torch and the newest runs' analyses,
# then compile UMAP's numba code, so the first view of a run and a UMAP asked for later are fast
schedule_warmup()

remember_widgets()  # a page's choices survive a visit to another page
page = st.navigation(PAGES, position="sidebar" if GRANTED else "hidden")
if GRANTED:
    presentation_toggle()  # in the sidebar of every page; the choice is kept for the session
    if ACCESS.writable:
        keep_deck_cookie()  # the pinned items' deck follows this browser across reloads
if ACCESS.notice:
    st.sidebar.warning(ACCESS.notice)
with imports_in_turn():  # until torch, scikit-learn... are in, no page imports beside the warm-up
    page.run()
