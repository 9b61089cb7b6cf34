"""vizcore dashboard: `streamlit run app.py`. Pages are thin; all computation is in vizcore."""

import streamlit as st

st.set_page_config(page_title="vizcore", page_icon="🔬", layout="wide")

PAGES = {
    "Start": [st.Page("pages/home.py", title="Overview", icon="🏠", default=True)],
    "Train": [
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/compare.py", title="Compare runs", icon="📈"),
    ],
    "See what it learned": [
        st.Page("pages/cam.py", title="CAM heatmaps", icon="🔥"),
        st.Page("pages/distances.py", title="Class distances", icon="🧮"),
        st.Page("pages/embeddings.py", title="Embeddings", icon="🗺️"),
    ],
    "Share": [
        st.Page("pages/report.py", title="Report", icon="📄"),
        st.Page("pages/upload.py", title="Your checkpoints & images", icon="📤"),
    ],
}

st.navigation(PAGES).run()
