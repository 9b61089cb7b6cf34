"""CAM heatmaps: where a trained network looks, image by image and class by class, by any
explanation method, with numbers for whether the maps are faithful and a side-by-side comparison."""

from __future__ import annotations

import streamlit as st

from pages._access import guard, writable
from pages._background import ready, run_tasks
from pages._figures import figure, presentation, table
from pages._pin import Pin
from pages._shared import friendly_errors, pick_run, store
from vizcore.explain.methods import EXPLAINERS, list_explainers
from vizcore.figures.cam import cam_grid, mean_cam_figure, randomisation_figure
from vizcore.store import tasks
from vizcore.views import builders
from vizcore.views.analysis import (
    CAM_SCALES,
    cam_analysis,
    eval_images,
    localization_summary,
    mean_cams,
    select_images,
)
from vizcore.views.background import analysis_spec
from vizcore.views.estimates import estimate_rows, request_estimate
from vizcore.views.explanations import (
    agreement,
    class_phrase,
    comparable,
    explained_count,
    faithfulness_table,
    method_maps,
    request_scores,
    sanity_target,
    scored_methods,
    scoring_problems,
    scoring_spec,
    table_columns,
    target_layers,
    tile_caption,
    unscored_methods,
    verdict,
)
from vizcore.views.sanity import FIGURE_CAPTION, checked, figure_tiles, sanity_caption

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("CAM heatmaps")
st.caption(
    "Class Activation Map (Zhou et al. 2016): the class's weights of the final linear layer applied to the last "
    "conv feature maps, M_k = Σ_c w[k, c]·A_c (no ReLU, no gradients), bilinearly upsampled to the input and "
    "min-max normalised per image for display (jet colour map, 50 % over the image). Grad-CAM, Layer-CAM and "
    "XGrad-CAM (torchcam), Grad-CAM++, Score-CAM and Eigen-CAM (from their papers) explain any CNN at a target layer."
)

run = pick_run("Run", key="cam_run")
if run is None:
    st.stop()
with friendly_errors("this run"):
    cfg = run.config()
    default_layer, layer_names = target_layers(run)
sides = ["source"] + (["target"] if cfg.target else [])
# once per weights, on the background queue; every widget below only reads stored arrays
if not ready([analysis_spec(run, side, "test") for side in sides], "this run's analysis", "cam_analysis"):
    st.stop()

c0, c1, c2, c3, c4 = st.columns([1.3, 1, 1, 1, 1])
method = c0.selectbox("Method", list_explainers(), key="cam_method",
                      help="CAM is exact for GAP networks; the others are computed for the images shown")  # fmt: skip
which = c1.radio("Images from", sides, horizontal=True, format_func=lambda s: f"{s} ({cfg.shown(getattr(cfg, s))})",
                 key="cam_which")  # fmt: skip
with friendly_errors("CAMs for this run"):
    base = cam_analysis(run, which, "predicted")
n_classes = base["probs"].shape[1]
names = [str(c) for c in base.get("classes", range(n_classes))]  # class names where the analysis has them
mode = c2.selectbox("Explain class", ["predicted", "true", *map(str, range(n_classes))],
                    format_func=lambda m: m if m in ("predicted", "true") else f"class {names[int(m)]}", key="cam_mode")  # fmt: skip
show = c3.selectbox("Show", ["all", "misclassified", "correct"], key="cam_show")
# "all" rather than None: a None kept in the session state reads as "nothing chosen"
true_class = c4.selectbox("True class", ["all", *range(n_classes)], key="cam_true",
                          format_func=lambda k: k if k == "all" else names[k])  # fmt: skip
cls_filter = None if true_class == "all" else int(true_class)
with st.expander(f"Target layer: `{default_layer}` (the last conv block, found automatically)"):
    layer = st.selectbox("Explain at layer (expert)", layer_names, index=layer_names.index(default_layer),
                         key="cam_layer", help="any layer with 2-D feature maps; CAM is defined only at the last block")  # fmt: skip
if EXPLAINERS.get(method).fixed_layer and layer != default_layer:
    st.warning(f"{method} is defined only at `{default_layer}` (the layer before global pooling); showing it there.")
    layer = default_layer
exact_cam = method == "CAM"
c5, c6, c7 = st.columns([1, 1, 2])
count = c5.select_slider("Images", [12, 24, 48], value=24, key="cam_count")
sample_seed = c6.number_input("Sample", 0, 10_000, 0, help="another seeded sample of the matching images",
                              key="cam_sample")  # fmt: skip
scale = c7.radio("Colour scale", list(CAM_SCALES), format_func=CAM_SCALES.get, horizontal=True, key="cam_scale",
                 disabled=not exact_cam,
                 help="per image: every map stretched to its own range (a class absent from the image still gets "
                 "a red peak); per class: one range for all maps of a class, so a weak map looks weak (CAM only)")  # fmt: skip
scale = scale if exact_cam else "image"

with friendly_errors("CAMs for this run"):
    # the whole split's analysis, whatever the method: the headline numbers and the sample never
    # depend on which method draws the maps
    arrays = cam_analysis(run, which, mode)
    if not exact_cam:
        st.caption(f"{method} ({EXPLAINERS.get(method).about}) at `{layer}`: the maps of the images shown are "
                   "computed first, for every class at once (a class switch is then instant).")  # fmt: skip
explained = class_phrase(mode)
probs, labels = arrays["probs"], arrays["labels"]
preds = probs.argmax(1)
acc = float((preds == labels).mean())
m = st.columns(4)
m[0].metric(f"{which} test accuracy", f"{acc:.1%}", help=f"{len(labels):,} held-out images")
m[1].metric("misclassified", f"{int((preds != labels).sum()):,}")
loc = localization_summary(arrays)
if loc and exact_cam:
    true_loc = localization_summary({"pointing": arrays["true_pointing"], "energy": arrays["true_energy"]})
    n = int(loc["n"])
    m[2].metric("pointing game, true class", f"{true_loc['pointing_game']:.1%}",
                help=f"share of the {n:,} test images whose true class's CAM peaks inside the digit's box")  # fmt: skip
    m[3].metric("energy in box, true class", f"{true_loc['energy_in_box']:.1%}",
                help="mean share of the true class's normalised CAM mass inside the box")  # fmt: skip
    if mode != "true":
        st.caption(f"Explaining **{explained}** over all {n:,} test images: pointing game "
                   f"{loc['pointing_game']:.1%}, energy in box {loc['energy_in_box']:.1%}.")  # fmt: skip


def _maps(r, meth: str, idx, lay: str | None):  # type: ignore[no-untyped-def]
    """The maps of one method on screen: only these images, every class at once, under a spinner."""
    with st.spinner(f"computing {meth} maps of the {len(idx)} images shown..."):
        return method_maps(r, which, meth, idx, mode, arrays["class_idx"][idx], lay, scale)


def _titles(idx, meth: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [tile_caption(preds[i], probs[i, preds[i]], labels[i], meth, mode, arrays["class_idx"][i], names) for i in idx]


tab_grid, tab_mean, tab_compare, tab_faith = st.tabs(["Image grid", "Mean CAM per class", "Compare two maps",
                                                      "Faithfulness"])  # fmt: skip
idx = select_images(arrays, show, cls_filter, count, int(sample_seed))
boxes = arrays["boxes"][idx] if "boxes" in arrays else None
with tab_grid:
    if len(idx) == 0:
        st.info("No test image matches these filters.")
    else:
        grid = builders.spec("cam_grid", run_id=run.run_id, which=which, method=method, mode=mode, index=idx,
                             layer=layer, scale=scale, presentation=presentation())  # fmt: skip
        with friendly_errors(f"{method} maps"), st.spinner(f"computing {method} maps of the {len(idx)} images shown..."):
            fig = builders.remake(grid, store())  # only the images on screen; a pin re-makes it the same way
        settings = {"images from": which, "method": method, "explain class": mode, "show": show, "true class": true_class,
                    "images": count, "sample": int(sample_seed), "layer": layer, "colour scale": CAM_SCALES[scale]}  # fmt: skip
        figure(fig, f"cam-grid-{run.run_id}", key="cam_grid", stretch=False, theme=None,
               pin=Pin.of(run, settings=settings, spec=grid))  # fmt: skip
        if boxes is not None:
            st.caption("White rectangles: the digit's true bounding box (kept when the cluttered image was made).")
with tab_mean:
    if not exact_cam:
        st.info("The mean map per class is drawn for CAM, which covers the whole test split; choose CAM above.")
    else:
        mean = mean_cams(run, which, mode)
        fig = mean_cam_figure(mean, [str(k) for k in range(n_classes)], presentation(),
                              title=f"Mean CAM of {explained}, by true class")  # fmt: skip
        figure(fig, f"mean-cam-{run.run_id}", key="cam_mean", stretch=False, theme=None, pin=Pin.of(run))
        st.caption(f"Average of the per-image normalised CAMs of {explained}, over all test images of each "
                   "true class.")  # fmt: skip
with tab_compare:
    on = st.toggle("Compare", key="cam_compare_on", help="the second map may need computing once (it is then cached)")
    against = st.radio("Compare with", ["another method", "another run"], horizontal=True, key="cam_against")
    other_run, other_method = run, method
    if against == "another method":
        others = [x for x in list_explainers() if x != method]
        other_method = st.selectbox("Second method", others, key="cam_method2")
    else:
        other_run = pick_run("Second run (e.g. teacher and student, parent and child)", key="cam_run2",
                             predicate=lambda r: r.run_id != run.run_id)  # fmt: skip
    problem = None if other_run is None else comparable(run, other_run, which)
    if not on:
        st.info("Switch on **Compare** to draw the two maps of the images above side by side.")
    elif other_run is None:
        st.info("There is no second run to compare with.")
    elif problem:
        st.warning(f"These two runs cannot be compared image by image: {problem}.")
    else:
        both = idx[:12]
        try:
            first = _maps(run, method, both, layer)
            other_layer = layer if other_run is run and not EXPLAINERS.get(other_method).fixed_layer else None
            second = _maps(other_run, other_method, both, other_layer)
        except (ValueError, KeyError) as e:
            st.warning(f"Could not compare these maps: {e}")
        else:
            r = agreement(first, second)
            st.metric("agreement (mean per-image Pearson r of the two maps)", f"{r:.2f}",
                      help=f"over the {len(both)} images shown; 1 = the same map up to scale")  # fmt: skip
            images = eval_images(run, which, both)
            left, right = st.columns(2)
            name2 = other_method if other_run is run else f"{other_run.config().label} — {other_method}"
            for col, mp, title, key in ((left, first, f"{cfg.label} — {method}", "cam_cmp1"),
                                        (right, second, name2, "cam_cmp2")):  # fmt: skip
                with col:
                    fig = cam_grid(images, mp, _titles(both, ""), cols=3, boxes=arrays["boxes"][both]
                                   if boxes is not None else None, presentation=presentation(),
                                   scale_label="min–max per image", title=title)  # fmt: skip
                    figure(fig, f"{key}-{run.run_id}", key=key, stretch=False, theme=None, pin=Pin.of(run))
with tab_faith:
    st.caption("Deletion / insertion AUC (RISE, Petsiuk et al. 2018: class probability as the most salient pixels "
               "are removed, or inserted into a blurred copy), ROAD (Rong et al. 2022: removed pixels imputed from "
               "their neighbours; MoRF most relevant first, LeRF least relevant first, mean over 10–90 %), average "
               "drop / increase in confidence (Chattopadhay et al. 2018), and where the data has boxes the pointing "
               "game and energy in box — of each method's map of the predicted class, on the first "
               f"{explained_count(run, which):,} test images ({which}). ↓ lower is better, ↑ higher is better.")  # fmt: skip
    with friendly_errors("the faithfulness table"):
        # the chosen method's row is asked for at once and computed on the background queue,
        # never in this click; the grid above stays usable meanwhile
        if writable():  # a first estimate on 100 images (seconds), then the whole row
            request_estimate(tasks.QUEUE, store(), run, which, method)
            request_scores(tasks.QUEUE, store(), run, which, method)
        scored = scored_methods(run, which)
        may_score = writable()  # scoring writes to the run store (and takes minutes of CPU): not in the viewer
        asked = {t.spec for t in tasks.QUEUE.tasks(run.run_id)}
        missing = [x for x in unscored_methods(run, which) if scoring_spec(run, which, x) not in asked]
        if missing and not may_score:
            st.caption(f"Not scored yet: {', '.join(missing)} (the read-only viewer does not score).")
        if missing and may_score and st.button(f"Score {', '.join(missing)} in the background", key="score_explanations",  # not under cam_: buttons cannot be remembered
                                 help="a few seconds to minutes per method on a CPU (Score-CAM is the slowest)"):  # fmt: skip
            for x in missing:
                request_scores(tasks.QUEUE, store(), run, which, x, again=True)
        for problem in scoring_problems(tasks.QUEUE, run, which):
            st.warning(problem)
        if tasks.QUEUE.tasks(run.run_id):
            run_tasks(run.run_id, "cam_tasks")
        if estimates := estimate_rows(run, which):
            st.caption("First estimates, while the whole rows are computed: mean ± half-width of the 95 % confidence "
                       "interval over the images (1.96·s/√n).")  # fmt: skip
            st.dataframe(estimates, hide_index=True, width="stretch")
        if not scored:
            st.info("No method has been scored on every image for this run yet.")
        else:
            rows = faithfulness_table(run, which, scored)
            cols = table_columns()
            shown = [{"method": r["method"], **{f"{h} {'↓' if b == 'lower' else '↑'}": round(float(r[c]), 3)
                      for c, (h, b) in cols.items() if c in r}} for r in rows]  # fmt: skip
            # one number format per column: AUCs to 3 decimals, percentages to 1
            formats = {k: st.column_config.NumberColumn(k, format="%.1f" if "%" in k else "%.3f")
                       for k in shown[0] if k != "method"}  # fmt: skip
            table(shown, f"Faithfulness of the maps — {cfg.label} ({which})", "cam_faith_table", hide_index=True,
                  column_config=formats, width="stretch", pin=Pin.of(run, settings={"images from": which}))  # fmt: skip
            st.success(verdict(rows))
            sane_layer, n_sane = sanity_target(run, which)
            st.caption(sanity_caption(n_sane))
            if sane := checked(run, which, sane_layer, n_sane, scored):
                fig = randomisation_figure(eval_images(run, which, [0])[0], *figure_tiles(sane), presentation(),
                                           title=f"{cfg.label} — maps of test image 0 as the layers are randomised")  # fmt: skip
                figure(fig, f"cam-sanity-{run.run_id}", key="cam_sanity", stretch=False, theme=None)
                st.caption(FIGURE_CAPTION)
