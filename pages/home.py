"""Overview: what the dashboard does and the runs it knows."""

import streamlit as st

from pages._shared import guard, page_link, relative_time, run_table, store
from vizcore.runs import lineage_text

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("vizcore — see what your network learned")
st.markdown(
    "Train or load a **LeNet-GAP** or a **domain-adaptation** model (DDC, DAN, DANN, CORAL, CDAN, ADDA), "
    "fine-tune, distil or learn features without labels, then look inside: "
    "**CAM heatmaps** show where it looks, **class distance matrices** (MMD and friends) how far apart its "
    "classes and domains sit, and **t-SNE / UMAP embeddings** how adaptation moved the features."
)
c1, c2, c3, c4 = st.columns(4)
page_link(c1, "pages/train.py", label="Train a model", icon=":material/model_training:")  # not in the viewer
c2.page_link("pages/cam.py", label="CAM heatmaps", icon=":material/local_fire_department:")
c3.page_link("pages/distances.py", label="Class distances", icon=":material/grid_on:")
c4.page_link("pages/embeddings.py", label="Embeddings", icon=":material/scatter_plot:")

runs = store().list()
st.subheader(f"Runs ({len(runs)})")
if not runs:
    st.info("No runs yet. Train one on the Train page, or from a terminal: `python -m vizcore train --data mnist`.")
else:
    known = {r.run_id for r in runs}
    rows = [
        {
            "run": r.run_id,
            "status": r.status,
            "method": r.method,
            "data": r.source if not r.target else f"{r.source} → {r.target}",
            "seed": r.seed,
            "source acc": r.summary.get("source_acc"),
            "target acc": r.summary.get("target_acc"),
            "created": "shipped demo" if r.read_only else relative_time(r.created),
            "starts from": lineage_text(r, known),
            "note": r.message,
        }
        for r in runs
    ]
    st.dataframe(run_table(rows), hide_index=True, width="stretch")
    st.caption(f"Runs are folders under `{store().root}/`; demo runs ship read-only in `assets/demo_runs/`.")
