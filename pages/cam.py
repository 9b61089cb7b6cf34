"""CAM heatmaps: where a trained network looks, image by image and class by class."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from pages._shared import figure, friendly_errors, pick_run
from vizcore.analysis import cam_analysis, eval_domain, localization_summary, select_images
from vizcore.cam import mean_cam_per_class
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
c1, c2, c3, c4 = st.columns(4)
which = c1.radio("Images from", sides, horizontal=True, format_func=lambda s: f"{s} ({getattr(cfg, s)})")
mode = c2.selectbox("Explain class", ["predicted", "true", *map(str, range(10))],
                    format_func=lambda m: m if m in ("predicted", "true") else f"class {m}")  # fmt: skip
show = c3.selectbox("Show", ["all", "misclassified", "correct"])
cls_filter = c4.selectbox("True class", [None, *range(10)], format_func=lambda k: "all" if k is None else str(k))
c5, c6 = st.columns([1, 3])
count = c5.select_slider("Images", [12, 24, 48], value=24)
sample_seed = c6.number_input("Sample", 0, 10_000, 0, help="another seeded sample of the matching images")

with friendly_errors("CAMs for this run"), st.spinner("Computing CAMs for the whole test split (cached)…"):
    arrays = cam_analysis(run, which, mode)
    dom = eval_domain(cfg, which)

probs, labels = arrays["probs"], arrays["labels"]
preds = probs.argmax(1)
acc = float((preds == labels).mean())
loc = localization_summary(arrays)
m = st.columns(4)
m[0].metric(f"{which} test accuracy", f"{acc:.2%}", help=f"{len(labels)} held-out images")
m[1].metric("misclassified", f"{int((preds != labels).sum())}")
if loc:
    m[2].metric("pointing game", f"{loc['pointing_game']:.1%}", help="share of CAM peaks inside the digit's box")
    m[3].metric("energy in box", f"{loc['energy_in_box']:.1%}", help="mean share of normalised CAM mass inside the box")

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
        fig = cam_grid(dom.images[idx].numpy(), arrays["maps"][idx].astype(np.float32), titles, cols=6, boxes=boxes,
                       title=f"{cfg.label} — CAM of the {mode if mode in ('predicted', 'true') else 'class ' + mode} class")  # fmt: skip
        figure(fig, f"cam-grid-{run.run_id}", key="cam_grid")
        if boxes is not None:
            st.caption("White rectangles: the digit's true bounding box (kept when the cluttered image was made).")
with tab_mean:
    mean = mean_cam_per_class(torch.from_numpy(arrays["maps"].astype(np.float32)), torch.from_numpy(labels), 10)
    figure(mean_cam_figure(mean.numpy(), [str(k) for k in range(10)]), f"mean-cam-{run.run_id}", key="cam_mean")
    st.caption("Average of the per-image normalised CAMs of all test images of each true class.")
