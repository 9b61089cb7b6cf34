"""Class distances: how far apart a run's classes (and its two domains) sit in feature space."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

from pages._access import guard
from pages._background import ready
from pages._figures import figure
from pages._figures import presentation as presentation_on
from pages._figures import table as show_table
from pages._params import param_widgets
from pages._pin import Pin
from pages._shared import before_is_parent, friendly_errors, pick_run, usable_runs
from vizcore.data.domains import SPLITS
from vizcore.figures.agreement import rank_agreement_figure
from vizcore.figures.matrix import MatrixPanel, difference_heatmap, matrix_figure, not_significant
from vizcore.metrics import FAMILIES, list_metrics, metric_info
from vizcore.views import builders
from vizcore.views import distances as dv
from vizcore.views import matrices as mx
from vizcore.views.background import analysis_spec, matrix_spec

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Class distances")
st.caption(
    "Each cell compares the features of two classes of one layer: small = the network maps them to similar "
    "features. Under every figure: how it was computed. The diagonal compares two disjoint halves of the same "
    "class, i.e. the noise floor every other entry should be read against."
)

run = pick_run("Run", key="dist_run")
if run is None:
    st.stop()
with friendly_errors("this run"):
    cfg = run.config()
    layers = dv.layer_choices(run)

c = st.columns(4)
which = c[0].radio("Domain", dv.side_choices(cfg), horizontal=True, format_func=lambda s: f"{s} ({getattr(cfg, s)})",
                   key="dist_which")  # fmt: skip
split = c[1].radio("Split", SPLITS, index=SPLITS.index("test"), horizontal=True, key="dist_split")
layer = c[2].selectbox("Layer", layers, index=layers.index(dv.default_layer(layers)),
                       format_func=lambda name: dv.LAYER_LABELS.get(name, name), key="dist_layer")
metric = c[3].selectbox("Metric", list_metrics(), format_func=dv.grouped_label, key="dist_metric",
                        help="grouped by family: " + ", ".join(FAMILIES))  # fmt: skip
if not ready([analysis_spec(run, which, split)], f"the features of the {which} {split} split", "dist_features"):
    st.stop()
with friendly_errors("the features of this split"):
    n_total, smallest = dv.smallest_class(run, which, split, layer)
c = st.columns(4)
n_default = max(4, dv.default_n_per_class(smallest))
# keyed by the smallest class, so other data start from their own default, not a number that
# their smallest class cannot supply
n_per_class = c[0].number_input("Samples per class", 4, 100_000, n_default, step=10, key=f"dist_n_{smallest}",
                                help=f"seeded subsample of every class; default min({dv.DEFAULT_N_PER_CLASS}, "
                                f"smallest class) = {n_default}; this split has {n_total} images, the smallest "
                                f"class {smallest}")  # fmt: skip
n_perm = c[1].number_input("Permutations (p-values)", 0, 10_000, dv.default_permutations(metric), step=50,
                           key=f"dist_perm_{metric}", help="0: no p-values (fastest)")  # fmt: skip
alpha = c[2].number_input("Significance level α", 0.001, 0.5, 0.05, step=0.01, format="%.3f", key="dist_alpha")
seed = c[3].number_input("Seed", 0, 1_000_000, 0, key="dist_seed", help="subsample, halves and permutations")
if smallest < dv.DEFAULT_N_PER_CLASS:
    st.caption(f"Samples per class default to min({dv.DEFAULT_N_PER_CLASS}, smallest class): this split's "
               f"smallest class has {smallest} images, so {n_default} by default.")  # fmt: skip


with st.expander(f"Parameters of {metric_info(metric).label}", expanded=metric == "mmd"):
    specs = dv.metric_params(metric)
    cols = st.columns(max(1, min(4, len(specs) + 1)))
    params = param_widgets(specs, f"dist_{metric}_", fixed=dv.fixed_params, columns=cols)
    with cols[len(specs) % len(cols)]:
        pairing = st.selectbox("Samples compared", dv.pairings(), key="dist_pairing",
                               help="class matrices: halves = every entry compares n/2 vs n/2 samples, so the "
                                    "diagonal is the noise floor; full = off-diagonal entries use all n (more power). "
                                    "The source-vs-target matrix always compares n vs n.")  # fmt: skip
    st.caption(metric_info(metric).description)
cluster = st.toggle("Order classes by clustering", key="dist_cluster", help=dv.CLUSTER_NOTE)
presentation = presentation_on()  # the app-wide switch in the sidebar (app.py)
settings = dv.DistanceSettings(metric, params, int(n_per_class), int(n_perm), int(seed), pairing)


def _order(view: dv.MatrixView) -> np.ndarray:
    return mx.cluster_order(view.values) if cluster else np.arange(len(view.row_labels))


def _caption(view: dv.MatrixView) -> str:
    return view.description + (f" {dv.CLUSTER_NOTE}" if cluster else "")


def _summary(view: dv.MatrixView, diagonal: str) -> None:
    diag, off = mx.diagonal_contrast(view)
    m = st.columns(3)
    m[0].metric(f"mean diagonal ({diagonal})", f"{diag:.3g}")
    m[1].metric("mean off-diagonal", f"{off:.3g}")
    ns = not_significant(view.p_values, alpha)
    if ns is not None:
        m[2].metric(f"not significant (p ≥ {alpha:g})", f"{int(ns.sum())} of {ns.size}",
                    help="entries whose permutation test finds no evidence the two samples differ")  # fmt: skip


def _csv(view: dv.MatrixView, name: str, key: str) -> None:
    row = st.container(horizontal=True, gap="small")  # buttons as wide as their labels
    row.download_button("⬇ CSV (values)", mx.to_csv(view), f"{name}.csv", "text/csv", key=f"{key}_csv")
    if view.p_values is not None:
        row.download_button("⬇ CSV (p-values)", mx.to_csv(view, "p_values"), f"{name}-p.csv", "text/csv",
                                key=f"{key}_pcsv")  # fmt: skip


def _pin(view: dv.MatrixView, title: str, used: dv.DistanceSettings, cross: bool, axes: tuple[str, str],
         outline: bool) -> Pin:  # fmt: skip
    """The figure's caption, run, settings and recorded spec, for the deck."""
    spec = builders.spec("distance_matrix", run_id=run.run_id, which=which, split=split, layer=layer, settings=used,
                         cross=cross, title=title, alpha=alpha, cluster=cluster, axes=axes, outline=outline)  # fmt: skip
    shown = {"metric": metric_info(used.metric).label, "domain": "source vs target" if cross else which,
             "split": split, "layer": dv.LAYER_LABELS.get(layer, layer), "samples per class": used.n_per_class or "default",
             "permutations": used.n_perm, "seed": used.seed, "α": alpha}  # fmt: skip
    return Pin.of(run, caption=_caption(view), settings=shown, spec=spec)


def _show(view: dv.MatrixView, title: str, name: str, key: str, axes: tuple[str, str] = ("class", "class"),
          outline: bool = False, used: dv.DistanceSettings | None = None, cross: bool = False) -> None:  # fmt: skip
    fig = builders.matrix_from_view(view, title, alpha, presentation, cluster, axes, outline)  # as a pin re-makes it
    figure(fig, name, key=key, theme=None, pin=_pin(view, title, used or settings, cross, axes, outline))
    _csv(mx.reorder(view, _order(view)), name, key)


side = f"{which} {getattr(cfg, which)}, {split} split, {dv.LAYER_LABELS.get(layer, layer)}"
# one view at a time (not tabs): Streamlit draws every tab's figures on every rerun, and four matrix
# figures made each click on this page wait for three that were not shown
VIEWS = ["Class matrix", "Compare two runs", "Two metrics", "Source vs target classes"]
view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="dist_view") or VIEWS[0]
if view == VIEWS[0]:
    with friendly_errors("the distance matrix"):
        if not ready([matrix_spec(run, "classes", which, split, layer, settings)], "the class matrix", "dist_main"):
            st.stop()
        after = dv.class_matrix(run, which, split, layer, settings)
    _summary(after, "noise floor")
    _show(after, f"{cfg.label} — {side}", f"distances-{run.run_id}-{which}-{layer}", "dist_main")

elif view == VIEWS[1]:
    st.caption(f"**After** is the run above; pick the run **before** it (e.g. source-only on {cfg.shown(cfg.source)}"
               f"{'→' + cfg.shown(cfg.target) if cfg.target else ''}). Both use the settings above; the difference is "
               "after − before (blue: classes moved closer, red: moved apart).")  # fmt: skip

    def comparable(r: Any) -> bool:
        return r.run_id != run.run_id and r.source == cfg.source and (which == "source" or r.target == cfg.target)

    before_is_parent(run.run_id, "dist_before", comparable)  # a run from a run: its parent first
    if not usable_runs(comparable):
        st.info(f"No other finished run uses the same {which} data ({getattr(cfg, which)}): train one to compare.")
    elif (before_run := pick_run("Before", key="dist_before", predicate=comparable)) is None:
        pass
    elif layer not in (before_layers := dv.layer_choices(before_run)):
        st.warning(f"The before run has no {dv.LAYER_LABELS.get(layer, layer)} layer; pick one both have: "
                   f"{', '.join(before_layers)}.")  # fmt: skip
    else:
        with friendly_errors("the comparison"):
            if not ready([matrix_spec(r, "classes", which, split, layer, settings) for r in (run, before_run)],
                         "the two runs' class matrices", "dist_pair"):  # fmt: skip
                st.stop()
            # the run above, through the same cached call as the first view (read back, not recomputed)
            after = dv.class_matrix(run, which, split, layer, settings)
            before = dv.class_matrix(before_run, which, split, layer, settings)
            diff = mx.difference(after, before)
        order = _order(after)  # one order for all three panels, from the after matrix
        b, a, d = (mx.reorder(v, order) for v in (before, after, diff))
        panels = [MatrixPanel(v.values, v.p_values, v.row_labels, v.col_labels, f"{tag}: {r.config().label}",
                              mx.hover_info(v)) for tag, v, r in (("before", b, before_run), ("after", a, run))]  # fmt: skip
        note = " Each run's bandwidth comes from its own features." if isinstance(params.get("bandwidth"), str) else ""
        fig = matrix_figure(panels, f"Before and after — {side}", alpha, presentation, value_label=a.value_label,
                            caption=f"Shared colour scale.{note} Before: {b.description} After: {a.description}")  # fmt: skip
        figure(fig, f"distances-before-after-{run.run_id}", key="dist_pair", theme=None, pin=Pin.of(run))
        fig_d = difference_heatmap(d.values, d.row_labels, d.col_labels, f"Difference after − before — {side}",
                                   presentation=presentation, value_label=d.value_label,
                                   caption=_caption(d))  # fmt: skip
        figure(fig_d, f"distances-difference-{run.run_id}", key="dist_diff", theme=None, pin=Pin.of(run))
        _csv(d, f"distances-difference-{run.run_id}", "dist_diff")

elif view == VIEWS[2]:
    st.caption("Do two measures agree about **which classes sit close**? Each class pair is ranked under the metric "
               "above (with its parameters) and under a second one (its defaults, same samples and seed); Spearman's "
               "ρ over the pairs says how alike the two rankings are (1: the same order).")  # fmt: skip
    others = [m for m in list_metrics() if m != metric]
    second = st.selectbox("Second metric", others, index=others.index(dv.second_metric_default(metric)),
                          format_func=dv.grouped_label, key="dist_second")  # fmt: skip
    second_settings = dv.DistanceSettings(second, {}, int(n_per_class), dv.default_permutations(second), int(seed),
                                          pairing)  # fmt: skip
    with friendly_errors("the two matrices"):
        if not ready([matrix_spec(run, "classes", which, split, layer, x) for x in (settings, second_settings)],
                     "the two metrics' matrices", "dist_ranks"):  # fmt: skip
            st.stop()
        first_view = dv.class_matrix(run, which, split, layer, settings)
        second_view = dv.class_matrix(run, which, split, layer, second_settings)
        agreement = mx.rank_agreement(first_view, second_view)
    m = st.columns(3)
    m[0].metric("Spearman ρ (class pairs)", f"{agreement.rho:.2f}",
                help=f"over {len(agreement.pairs)} pairs of distinct classes; p = {agreement.p_value:.2g} under independence")  # fmt: skip
    m[1].metric(f"closest pair, {metric_info(metric).label}", agreement.closest(1).iloc[0, 0])
    m[2].metric(f"closest pair, {metric_info(second).label}", agreement.closest(1).iloc[0, 1])
    fig = rank_agreement_figure(agreement.pairs, agreement.rank_first, agreement.rank_second,
                                (agreement.first, agreement.second), agreement.labels, agreement.rho,
                                f"{cfg.label} — {side}", presentation,
                                caption=f"First: {first_view.description} Second: {second_view.description}")  # fmt: skip
    if note := agreement.saturation_note():
        st.info(note)
    figure(fig, f"distances-two-metrics-{run.run_id}-{metric}-{second}", key="dist_ranks", theme=None, pin=Pin.of(run))
    show_table(agreement.closest(10), f"Closest class pairs — {cfg.label}", "dist_closest", width="stretch",
               pin=Pin.of(run, settings={"metrics": f"{metric_info(metric).label}, {metric_info(second).label}"}))

else:
    if not cfg.target:
        st.info("This run has no target domain. Pick a domain-adaptation run (source → target) to see whether its "
                "source class i and target class j line up: adaptation should make the diagonal small.")  # fmt: skip
    else:
        st.caption(f"Row i: source class i ({cfg.shown(cfg.source)}); column j: target class j ({cfg.shown(cfg.target)}, true labels, "
                   "used for analysis only). Adaptation should make the framed cells (same class) small compared to the rest.")  # fmt: skip
        with friendly_errors("the cross-domain matrix"):
            # left at the default, the count fits both domains: min(100, smallest class of either)
            at_default = n_per_class == n_default
            cross_settings = replace(settings, n_per_class=None) if at_default else settings
            if not ready([matrix_spec(run, "cross", which, split, layer, cross_settings)],
                         "the source-vs-target matrix", "dist_cross"):  # fmt: skip
                st.stop()
            cross = dv.cross_matrix(run, split, layer, cross_settings)
        _summary(cross, "same class across domains")
        _show(cross, f"{cfg.label} — source vs target, {split} split, {dv.LAYER_LABELS.get(layer, layer)}",
              f"distances-cross-{run.run_id}-{layer}", "dist_cross",
              (f"source class ({cfg.shown(cfg.source)})", f"target class ({cfg.shown(cfg.target)})"), outline=True,
              used=cross_settings, cross=True)  # fmt: skip
