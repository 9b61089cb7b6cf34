"""Overview: what the dashboard does and the runs it knows."""

from collections.abc import Callable

import streamlit as st

from pages._access import guard, page_link, writable
from pages._figures import table
from pages._shared import USER_ERRORS, relative_time, run_table, store
from vizcore.store.info import lineage_text

CONFIRM_KEY = "manage_confirm"
NOTE_KEY = "manage_note"


def _act(action: Callable[[str], object], run_id: str, done: str) -> None:
    """A Delete or Restore click, run as the button's callback: before the page is drawn, so
    the run table below already shows the result, and the confirmation box can be reset."""
    try:
        action(run_id)
        st.session_state[NOTE_KEY] = ("success", f"{done} `{run_id}`.")
    except USER_ERRORS as e:
        st.session_state[NOTE_KEY] = ("error", f"Could not change `{run_id}`: {e}")
    st.session_state[CONFIRM_KEY] = False


def manage_runs() -> None:
    """Delete a run to the store's trash (after a confirmation) and bring trashed runs back.

    One function, so a page that must not write (a read-only viewer) can leave it out."""
    with st.expander("Manage runs"):
        if note := st.session_state.pop(NOTE_KEY, None):
            getattr(st, note[0])(note[1])
        own = [r.run_id for r in store().list() if not r.read_only]
        if own:
            rid = st.selectbox("Run", own, key="manage_run")
            sure = st.checkbox("yes, move it to the trash", key=CONFIRM_KEY)
            st.button("Delete", disabled=not sure, key="manage_delete", on_click=_act,
                      args=(store().delete, rid, "Moved to the trash:"))  # fmt: skip
        else:
            st.caption("No runs of your own to delete; the demo runs ship read-only.")
        trashed = store().trash()
        st.markdown(f"**Trash ({len(trashed)})**: deleted runs stay in `{store().root}/.trash/` until restored.")
        for r in trashed:
            left, right = st.columns([5, 1])
            left.markdown(f"`{r.run_id}` — {r.label} ({r.status})")
            right.button("Restore", key=f"manage_restore_{r.run_id}", on_click=_act,
                         args=(store().restore, r.run_id, "Restored"))  # fmt: skip


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
            "name": r.label,
            "status": r.status,
            "method": r.method,
            "data": r.shown(r.source) if not r.target else f"{r.shown(r.source)} → {r.shown(r.target)}",
            "seed": r.seed,
            "source acc": r.summary.get("source_acc"),
            "target acc": r.summary.get("target_acc"),
            "created": "shipped demo" if r.read_only else relative_time(r.created),
            "starts from": lineage_text(r, known),
            "note": r.message,
            "run id": r.run_id,
        }
        for r in runs
    ]
    table(run_table(rows), "Runs", "home_runs_table", hide_index=True, width="stretch")
    st.caption(f"Runs are folders under `{store().root}/`; demo runs ship read-only in `assets/demo_runs/`.")

if writable():  # the read-only viewer deletes nothing
    manage_runs()
