"""Embeddings: where a run's features put every image, before and after adaptation, side by side."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from pages._access import guard
from pages._background import ready
from pages._figures import figure, presentation
from pages._figures import table as show_table
from pages._params import param_widgets
from pages._pin import Pin
from pages._shared import before_is_parent, friendly_errors, pick_run, usable_runs
from vizcore.app.warmup import start_umap_warmup
from vizcore.core.numbers import VERDICT_MARKS, column_format
from vizcore.embed.alignment import ALIGNMENTS
from vizcore.embed.methods import (
    EMBEDDINGS,
    umap_warmed_up,
)
from vizcore.store.cache import params_key
from vizcore.views import builders
from vizcore.views import embedding_reading as er
from vizcore.views import embeddings as ev
from vizcore.views.background import embedding_spec
from vizcore.views.distances import LAYER_LABELS, default_layer

VERDICT_COLORS = {VERDICT_MARKS["better"]: "#1a7f37", VERDICT_MARKS["worse"]: "#b42318"}


guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Embeddings")
st.caption(
    "Every dot is one test image, placed by a 2-D layout of one layer's features: colour = true class, "
    "symbol = domain. The left panel shows the run **before** adaptation (e.g. source only), the right one the "
    "run **after** it (e.g. DANN), on the same images with the same method and seed. Adaptation worked when "
    "target points join the source clusters of their class. Click a point to see its image and CAMs."
)

runs = usable_runs()
if len(runs) < 2:
    st.info("This page compares two runs: train a source-only baseline and an adaptation run (e.g. DANN) on the "
            "same source and target on the **Train** page.")  # fmt: skip
    st.stop()
default_before, default_after = ev.default_pair(runs)
st.session_state.setdefault("emb_before", default_before)
st.session_state.setdefault("emb_after", default_after)
# the after run's parent is its natural "before" (its widget state is read before it is drawn)
before_is_parent(st.session_state.get("_emb_after_select", st.session_state.get("emb_after")), "emb_before")
c = st.columns(2)
with c[0]:
    before = pick_run("Before (left)", key="emb_before", help="the baseline, e.g. a source-only run")
with c[1]:
    after = pick_run("After (right)", key="emb_after", help="the adapted run; the points come from its data")
if before is None or after is None:
    st.stop()
if before.run_id == after.run_id:
    st.info("Pick two different runs: the two panels would be identical.")
    st.stop()
with friendly_errors("this comparison"):
    sides = ev.comparable_sides(before.config(), after.config())
    layers = ev.common_layers(before, after)

c = st.columns([2, 1, 2, 1])
layer = c[0].selectbox("Layer", layers, index=layers.index(default_layer(layers)), key="emb_layer",
                       format_func=lambda n: LAYER_LABELS.get(n, n),
                       help="only layers both models have")  # fmt: skip
method = c[1].selectbox("Method", EMBEDDINGS.names(), format_func=lambda m: EMBEDDINGS.get(m).label, key="emb_method")
n_per_domain = c[2].slider("Points per domain", ev.MIN_PER_DOMAIN, 2000, 500, step=50, key="emb_n",
                           help="seeded random test images of each domain; the same ones in both panels")  # fmt: skip
seed = c[3].number_input("Seed", 0, 1_000_000, 0, key="emb_seed", help="points and layout")
spec = EMBEDDINGS.get(method)
c = st.columns(max(3, len(spec.params) + 1))
params = param_widgets(spec.params, f"emb_{method}_", columns=c[: len(spec.params)])
align = c[len(spec.params)].selectbox(
    "Alignment of 'after'", list(ALIGNMENTS.names()), format_func=lambda a: ev.ALIGN_LABELS.get(a, a), key="emb_align",
    help="start: the after layout starts from the before layout (t-SNE, UMAP); Procrustes: rotate, reflect, scale "
    "and shift it onto the before layout. Either way only its pose changes, so positions compare directly.",
)  # fmt: skip
if method == "umap" and not umap_warmed_up():
    st.caption("UMAP's first run in this server compiles code (about half a minute); later runs are fast.")
settings = ev.EmbeddingSettings(layer, method, params, int(n_per_domain), int(seed), align)

with friendly_errors("the embedding"):
    ev.check_pair(before, after, settings)  # a bad choice is said at once, not after a wait
    if not ready([embedding_spec(before, after, settings)], f"the {EMBEDDINGS.get(method).label} layouts", "emb"):
        st.stop()
    pair = ev.embedding_pair(before, after, settings)

c = st.columns([1, 3])
shown_sides = c[0].pills("Domains", sides, selection_mode="multi", default=list(sides), key="emb_sides",
                         format_func=lambda s: f"{s} ({pair.domain_names[pair.sides.index(s)]})")  # fmt: skip
classes = list(range(len(pair.class_names)))
shown_classes = c[1].pills("Classes", classes, selection_mode="multi", default=classes, key="emb_classes",
                           format_func=lambda k: pair.class_names[k])  # fmt: skip
mask = er.visible_mask(pair, shown_sides or [], shown_classes or [])
chart_key = params_key("emb_pair", ev.cache_key(before, after, settings))  # new settings: a fresh selection
picked = er.selected_point(st.session_state.get(chart_key, {}).get("selection"), len(pair.labels))

fig = builders.embedding_from_pair(pair, settings, before, after, mask, presentation(),
                                  highlight=None if picked is None else picked[0])  # as a pin re-makes it
pin = Pin.of(after, caption=pair.description, settings={
    "before": before.config().label, "method": EMBEDDINGS.get(method).label, "layer": LAYER_LABELS.get(layer, layer),
    "points per domain": int(n_per_domain), "seed": int(seed), "alignment": ev.ALIGN_LABELS.get(align, align)},
    spec=builders.spec("embedding_pair", before=before.run_id, after=after.run_id, settings=settings.key(),
                       sides=list(shown_sides or []), classes=list(shown_classes or [])))  # fmt: skip
# the panels take the page's whole width (beside a table they were too small to read), the numbers below
figure(fig, f"embedding-{before.run_id}-vs-{after.run_id}-{method}", key=chart_key, on_select="rerun",
       selection_mode="points", pin=pin)  # fmt: skip
if not mask.any():
    st.info("No point matches the chosen domains and classes.")
left, right = st.columns([3, 2])
with left:
    st.markdown(f"**Numbers** on all {len(pair.labels):,} points")
    table = er.report_table(pair)
    # one format per column (vizcore.core.numbers.column_format): the decimals of its largest value
    shown = pd.DataFrame({c: table[c].map(column_format(table[c].tolist(), signed=c == "change"))
                          for c in ("before", "after", "change")} | {"": table["verdict"].map(VERDICT_MARKS)},
                         index=table.index)  # fmt: skip
    show_table(shown.style.map(lambda v: f"color: {VERDICT_COLORS.get(v, 'inherit')}", subset=[""]),
               f"Numbers: {before.config().label} → {after.config().label}", "emb_numbers", styled=True,
               pin=replace(pin, spec=None, caption="↓/↑: lower/higher is better."))  # fmt: skip
with right:
    domain_note = ("proxy A-distance (0–2) and domain accuracy of a linear classifier telling source from target "
                   "(low = domains mixed); kNN target accuracy: target images labelled by their 5 nearest source "
                   "images; ") if pair.has_target else ""  # fmt: skip
    st.caption(f"↓/↑: lower/higher is better. On the layer's features: {domain_note}silhouette: class separation. "
               f"On the 2-D layout ({ev.K_LAYOUT} neighbours): trustworthiness and 2-D kNN accuracy, i.e. how far "
               "to trust the picture." + ("" if pair.has_target else " " + ev.NO_TARGET_NOTE))  # fmt: skip

if picked is None:
    st.caption("Click a point in either panel to see its image, its label and both runs' predictions and CAMs.")
else:
    row, panel = picked
    with friendly_errors("this image"), st.spinner("Computing both runs' CAMs of this domain (cached)…"):
        pv = er.point_view(pair, row, before, after)
    st.markdown(f"**Point {row}** (clicked in the {panel} panel): {pv.side} image #{pv.index} of "
                f"{pv.domain_name}, true class **{pv.label}**. The ring marks it in both panels.")  # fmt: skip
    c = st.columns([1, 1, 1, 2])
    c[0].image(pv.image, caption=f"true class {pv.label}", width=150)
    for col, name in ((c[1], "before"), (c[2], "after")):
        pred, prob = pv.predictions[name]
        mark = "✓" if pred == pv.label else "✗"
        col.image(pv.overlays[name], caption=f"{name}: {pred} ({prob:.0%}) {mark}", width=150)
    c[3].caption("Under each CAM: that run's predicted class and its probability. The CAM is of the predicted class, "
                 "over the image (jet colour map, red = strongest evidence for the class).")  # fmt: skip

# Compile UMAP's code in the background now, while the researcher looks at the plots (idempotent).
start_umap_warmup()
