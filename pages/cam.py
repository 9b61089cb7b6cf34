"""CAM heatmaps: where a trained network looks, image by image and class by class."""

from __future__ import annotations

import streamlit as st

from pages._shared import ensure_analysis, figure, friendly_errors, pick_run, presentation
from vizcore.analysis import (
    CAM_SCALES,
    cam_analysis,
    cam_maps,
    eval_images,
    localization_summary,
    mean_cams,
    select_images,
)
from vizcore.figures.cam import cam_grid, mean_cam_figure

st.title("CAM heatmaps")
st.caption(
    "Class Activation Map (Zhou et al. 2016): the class's weights of the final linear layer applied to the last "
    "conv feature maps, M_k = Σ_c w[k, c]·A_c (no ReLU, no gradients), bilinearly upsampled to the input and "
    "min-max normalised per image for display (jet colour map, 50 % over the image)."
)

run = pick_run("Run", key="cam_run")
if run is None:
    st.stop()
with friendly_errors("this run"):
    cfg = run.config()
sides = ["source"] + (["target"] if cfg.target else [])
ensure_analysis(run, sides)  # once per weights; every widget below only reads stored arrays

c1, c2, c3, c4 = st.columns(4)
which = c1.radio("Images from", sides, horizontal=True, format_func=lambda s: f"{s} ({getattr(cfg, s)})",
                 key="cam_which")  # fmt: skip
with friendly_errors("CAMs for this run"):
    base = cam_analysis(run, which, "predicted")
n_classes = base["probs"].shape[1]
mode = c2.selectbox("Explain class", ["predicted", "true", *map(str, range(n_classes))],
                    format_func=lambda m: m if m in ("predicted", "true") else f"class {m}", key="cam_mode")  # fmt: skip
show = c3.selectbox("Show", ["all", "misclassified", "correct"], key="cam_show")
# "all" rather than None: a None kept in the session state reads as "nothing chosen"
true_class = c4.selectbox("True class", ["all", *range(n_classes)], key="cam_true")
cls_filter = None if true_class == "all" else int(true_class)
c5, c6, c7 = st.columns([1, 1, 2])
count = c5.select_slider("Images", [12, 24, 48], value=24, key="cam_count")
sample_seed = c6.number_input("Sample", 0, 10_000, 0, help="another seeded sample of the matching images",
                              key="cam_sample")  # fmt: skip
scale = c7.radio("Colour scale", list(CAM_SCALES), format_func=CAM_SCALES.get, horizontal=True, key="cam_scale",
                 help="per image: every map stretched to its own range (a class absent from the image still gets "
                 "a red peak); per class: one range for all maps of a class, so a weak map looks weak")  # fmt: skip

with friendly_errors("CAMs for this run"):
    arrays = cam_analysis(run, which, mode)
explained = {"predicted": "the predicted class", "true": "the true class"}.get(mode, f"class {mode}")
probs, labels = arrays["probs"], arrays["labels"]
preds = probs.argmax(1)
acc = float((preds == labels).mean())
m = st.columns(4)
m[0].metric(f"{which} test accuracy", f"{acc:.1%}", help=f"{len(labels):,} held-out images")
m[1].metric("misclassified", f"{int((preds != labels).sum()):,}")
loc = localization_summary(arrays)
if loc:
    true_loc = localization_summary({"pointing": arrays["true_pointing"], "energy": arrays["true_energy"]})
    n = int(loc["n"])
    m[2].metric("pointing game, true class", f"{true_loc['pointing_game']:.1%}",
                help=f"share of the {n:,} test images whose true class's CAM peaks inside the digit's box")  # fmt: skip
    m[3].metric("energy in box, true class", f"{true_loc['energy_in_box']:.1%}",
                help="mean share of the true class's normalised CAM mass inside the box")  # fmt: skip
    if mode != "true":
        st.caption(f"Explaining **{explained}** over all {n:,} test images: pointing game "
                   f"{loc['pointing_game']:.1%}, energy in box {loc['energy_in_box']:.1%}.")  # fmt: skip

tab_grid, tab_mean = st.tabs(["Image grid", "Mean CAM per class"])
with tab_grid:
    idx = select_images(arrays, show, cls_filter, count, int(sample_seed))
    if len(idx) == 0:
        st.info("No test image matches these filters.")
    else:
        titles = [
            f"pred {preds[i]} ({probs[i, preds[i]]:.0%}) · true {labels[i]}"
            + ("" if mode == "predicted" else f" · CAM {arrays['class_idx'][i]}")
            for i in idx
        ]
        boxes = arrays["boxes"][idx] if "boxes" in arrays else None
        maps = cam_maps(run, which, idx, arrays["class_idx"][idx], scale=scale)  # only the images on screen
        fig = cam_grid(eval_images(run, which, idx), maps, titles, cols=6, boxes=boxes, presentation=presentation(),
                       scale_label=f"CAM, {CAM_SCALES[scale]}", title=f"{cfg.label} — CAM of {explained}")  # fmt: skip
        figure(fig, f"cam-grid-{run.run_id}", key="cam_grid", stretch=False, theme=None)
        if boxes is not None:
            st.caption("White rectangles: the digit's true bounding box (kept when the cluttered image was made).")
with tab_mean:
    mean = mean_cams(run, which, mode)
    fig = mean_cam_figure(mean, [str(k) for k in range(n_classes)], presentation(),
                          title=f"Mean CAM of {explained}, by true class")  # fmt: skip
    figure(fig, f"mean-cam-{run.run_id}", key="cam_mean", stretch=False, theme=None)
    st.caption(f"Average of the per-image normalised CAMs of {explained}, over all test images of each "
               "true class.")  # fmt: skip
