"""vizcore dashboard: `streamlit run app.py`. Pages are thin; all computation is in vizcore."""

import streamlit as st

from pages._shared import presentation_toggle, remember_widgets
from vizcore.warmup import imports_in_turn, schedule_warmup

st.set_page_config(page_title="vizcore", page_icon="🔬", layout="wide")

PAGES = {
    "Start": [st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True)],
    "Train": [
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    ],
    "See what it learned": [
        st.Page("pages/cam.py", title="CAM heatmaps", icon=":material/local_fire_department:"),
        st.Page("pages/distances.py", title="Class distances", icon=":material/grid_on:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    ],
    "Share": [
        st.Page("pages/report.py", title="Report", icon=":material/description:"),
        st.Page("pages/upload.py", title="Your checkpoints & images", icon=":material/upload_file:"),
    ],
}

# once per server process, after the first page has rendered: load torch and the newest runs' analyses,
# then compile UMAP's numba code, so the first view of a run and a UMAP asked for later are fast
schedule_warmup()

remember_widgets()  # a page's choices survive a visit to another page
page = st.navigation(PAGES)
presentation_toggle()  # in the sidebar of every page; the choice is kept for the session
with imports_in_turn():  # until torch, scikit-learn... are in, no page imports beside the warm-up
    page.run()
