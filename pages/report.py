"""Report: one self-contained HTML file of a run, or of a before/after pair, for a group meeting."""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from pages._access import guard
from pages._figures import presentation
from pages._shared import friendly_errors, pick_run, store
from vizcore.embed.methods import EMBEDDINGS
from vizcore.metrics import list_metrics
from vizcore.views.distances import DistanceSettings, default_permutations, grouped_label
from vizcore.views.report import SECTIONS, ReportOptions, build_report

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Report")
st.caption(
    "One HTML file that opens with a one-screen summary (runs, accuracies, what changed), then training curves, "
    "accuracies, CAMs with the localisation score, class distance matrices and the embeddings with their numbers; "
    "the full configuration is the appendix. plotly.js is inside the file, so it opens on a laptop with no "
    "network; every figure stays interactive."
)


@st.cache_data(max_entries=4, show_spinner=False)
def _report(run_ids: tuple[str, ...], digests: tuple[str, ...], options: ReportOptions, _progress=None) -> str:
    """Cached by run ids, their weights and the options, so a finished report is not rebuilt on every click."""
    return build_report([store().get(r) for r in run_ids], options, _progress)


mode = st.radio("Report on", ["one run", "before / after"], horizontal=True, key="report_mode",
                help="before / after: e.g. a source-only run and a domain-adaptation run on the same data")  # fmt: skip
if mode == "one run":
    runs = [pick_run("Run", key="report_run")]
else:
    c1, c2 = st.columns(2)
    with c1:
        before = pick_run("Before (e.g. source only)", key="report_before")
    with c2:
        after = pick_run("After (e.g. DANN)", key="report_after")
    runs = [before, after]
if any(r is None for r in runs):
    st.stop()

defaults = ReportOptions()  # the pages' defaults, so the report reads what the pages cached
with st.expander("Options"):
    c = st.columns(3)
    cam_images = c[0].select_slider("Images per CAM grid", [6, 12, 18, 24], value=defaults.cam_images,
                                    key="report_cams")  # fmt: skip
    names = EMBEDDINGS.names()
    method = c[1].selectbox("Embedding", names, index=names.index(defaults.embed_method), key="report_embed",
                            format_func=lambda m: EMBEDDINGS.get(m).label,
                            help="t-SNE: a few seconds; UMAP: slower the first time")  # fmt: skip
    points = c[2].number_input("Embedded test points per domain", 50, 2000, defaults.embed_points, step=50,
                               key="report_points")  # fmt: skip
    c = st.columns(3)
    metric = c[0].selectbox("Distance", list_metrics(), format_func=grouped_label, key="report_metric")
    n_per_class = c[1].number_input("Samples per class (0 = default)", 0, 1000, 0, step=10, key="report_n",
                                    help="0: min(100, smallest class), as on the Distances page")  # fmt: skip
    n_perm = c[2].number_input("Permutations (p-values)", 0, 2000, default_permutations(metric), step=50,
                               key=f"report_perm_{metric}")  # fmt: skip
options = ReportOptions(
    presentation=presentation(), cam_images=int(cam_images), embed_method=method, embed_points=int(points),
    distance=DistanceSettings(metric=metric, n_per_class=int(n_per_class) or None, n_perm=int(n_perm)),
)  # fmt: skip
st.caption("Sections: " + " · ".join(SECTIONS.get(k)[0] for k in SECTIONS)
           + (" — presentation mode: larger fonts" if options.presentation else ""))  # fmt: skip

with friendly_errors("these runs"):
    request = (tuple(r.run_id for r in runs), tuple(r.weights_digest() for r in runs), options)
if st.button("Build report", type="primary"):
    st.session_state["report_request"] = request
if st.session_state.get("report_request") != request:
    st.stop()

bar = st.progress(0.0, text="Building the report…")
with friendly_errors("the report"):
    page = _report(*request, _progress=lambda f, m: bar.progress(min(f, 1.0), text=f"Building the report: {m}…"))
bar.empty()
name = "-vs-".join(request[0])
st.download_button("⬇ Download report (HTML)", page, f"vizcore-report-{name}.html", "text/html",
                   type="primary", on_click="ignore", key="report_download")  # fmt: skip
st.caption(f"{len(page) / 1e6:.1f} MB, self-contained: open it in any browser, no network needed.")
if "Could not make this section" in page:
    st.warning("Some sections could not be made; the file says why in each of them.")
st.subheader("Preview")
st.caption("The file as it opens: the summary first, the configuration in the appendix at the end.")
components.html(page, height=900 if options.presentation else 700, scrolling=True)
