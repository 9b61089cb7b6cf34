"""Your checkpoints & images: check an outside checkpoint, keep it as a run, predict your own images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from pages._access import guard
from pages._figures import figure, presentation
from pages._shared import friendly_errors, load_model, pick_run, store
from vizcore.data.prepare import ImageOptions, prepare_image
from vizcore.figures.cam import cam_grid
from vizcore.models import list_models
from vizcore.models.architecture import resolve_input_shape
from vizcore.store.checkpoints import read_checkpoint
from vizcore.views.uploads import (
    Architecture,
    infer_architectures,
    matching_domains,
    predict,
    problems,
    save_uploaded_run,
    standardize_check,
)

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Your checkpoints & images")
AUTO = {"auto": None, "yes": True, "no": False}


def architecture_form(ckpt, key: str) -> Architecture:
    """Widgets prefilled with what the tensors' shapes say; keyed by the file so a new file resets them."""
    best = infer_architectures(ckpt.tensors)[0]
    if best.fits:
        st.success(f"Recognised from the tensors' shapes: **{best.arch.describe()}**.")
    else:
        st.warning(f"No registered architecture fits as is; the closest is {best.arch.describe()}.")
    c = st.columns(5)
    models = list_models()
    model = c[0].selectbox("Architecture", models, index=models.index(best.arch.model), key=f"arch_{key}")
    classes = c[1].number_input("Classes", 1, 1000, best.arch.num_classes, key=f"classes_{key}")
    chans = c[2].selectbox("Input channels", [1, 3], index=[1, 3].index(best.arch.in_channels)
                           if best.arch.in_channels in (1, 3) else 0, key=f"chans_{key}")  # fmt: skip
    bott = c[3].number_input("Bottleneck width (0 = none)", 0, 4096, best.arch.bottleneck_dim, key=f"bott_{key}")
    std = c[4].checkbox("Standardise inputs", False, key=f"std_{key}",
                        help="per-image standardisation has no weights, so the file cannot tell: say if it was trained with it")  # fmt: skip
    return Architecture(model, int(classes), int(chans), int(bott), bool(std))


@st.cache_data(max_entries=16, show_spinner="Checking the accuracy with and without standardised inputs…")
def _standardize_check(sha: str, arch: Architecture, data: str, shape: tuple | None, _ckpt=None) -> dict:
    return standardize_check(_ckpt, arch, data, shape)


def save_form(ckpt, arch: Architecture, key: str) -> None:
    domains = matching_domains(arch)
    if not domains:
        st.info(f"No bundled data set has {arch.num_classes} classes, so this checkpoint cannot be kept as a run.")
        return
    st.markdown("**Keep it as a run** — every view (CAM, distances, embeddings, report) then works on it.")
    c1, c2 = st.columns(2)
    data = c1.selectbox("Data set it classifies", domains, key=f"data_{key}",
                        help="the views evaluate the run on its test split")  # fmt: skip
    size = c2.number_input("Input size (pixels, square; 0 = the data set's own)", 0, 512, 0, key=f"size_{key}")
    shape = (arch.in_channels, int(size), int(size)) if size else None
    with friendly_errors("the accuracy check"):
        acc = _standardize_check(ckpt.sha256, arch, data, shape, _ckpt=ckpt)
    mine, other = acc[arch.standardize], acc[not arch.standardize]
    if mine is not None and other is not None and other > mine + 0.05:
        st.warning(f"With **Standardise inputs** {'off' if arch.standardize else 'on'} it scores {other:.1%} on "
                   f"{data} instead of {mine:.1%}: it was probably trained that way; switch the box above.")  # fmt: skip
    elif mine is not None:
        st.caption(f"{mine:.1%} on 500 {data} test images.")
    if not st.button("Save as run", type="primary", key=f"save_{key}"):
        return
    with friendly_errors("the uploaded run"), st.spinner("Evaluating and saving…"):
        run = save_uploaded_run(store(), ckpt, arch, data, shape)
    acc = run.summary().get("source_acc")
    st.success(f"Saved as run `{run.run_id}`" + ("" if acc is None else f" — {data} test accuracy {acc:.1%}"))
    # the Images tab below predicts with it; its picker is drawn later in this same script run
    st.session_state["upload_run"] = st.session_state["cam_run"] = run.run_id
    st.session_state["_upload_run_select"] = run.run_id  # pick_run's selectbox key


def checkpoint_panel() -> None:
    # PyTorch's suffixes stay accepted so that such a file gets the refusal that says why and what to do
    up = st.file_uploader("Checkpoint: .safetensors",
                          type=["safetensors", "pt", "pth", "bin"], key="ckpt_upload")  # fmt: skip
    st.caption(
        "Only safetensors files are read. A PyTorch file (.pt, .pth, .bin from torch.save) is a pickle, and "
        "unpickling can run any code in it, so it is refused without being loaded. Shapes and the number of "
        "classes are checked tensor by tensor."
    )
    if up is None:
        return
    with friendly_errors("this checkpoint"):
        ckpt = read_checkpoint(up.getvalue(), up.name)
    st.caption(f"{len(ckpt.tensors)} tensors, {ckpt.provenance}. " + " ".join(n.capitalize() + "." for n in ckpt.notes))
    key = ckpt.sha256[:12]
    arch = architecture_form(ckpt, key)
    found = problems(ckpt.tensors, arch, expected_classes=arch.num_classes)
    if found:
        st.error(f"The checkpoint does not fit {arch.describe()}:\n\n" + "\n".join(f"- {p}" for p in found))
        return
    st.success(f"All {len(ckpt.tensors)} tensors fit {arch.describe()}.")
    save_form(ckpt, arch, key)


def _enlarge(img: np.ndarray, side: int = 168) -> np.ndarray:
    """Nearest-neighbour upscale of a tiny model input so its pixels can be seen."""
    k = max(1, side // img.shape[0])
    return np.kron(img, np.ones((k, k) + (1,) * (img.ndim - 2), dtype=img.dtype))


def show_image(p, pred, shape: tuple[int, int, int]) -> None:
    with st.container(border=True):
        c1, c2, c3 = st.columns([1, 1, 2])
        c1.image(p.original, caption=f"uploaded: {p.name}", width=168)
        c2.image(_enlarge(p.model_view), caption=f"model input {shape[2]}x{shape[1]}, {shape[0]} channel(s)")
        top = pd.DataFrame([{"class": str(k), "probability": prob} for k, prob in pred.top])
        c3.dataframe(top, hide_index=True, column_config={
            "probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})  # fmt: skip
        c3.markdown("\n".join(f"- {s}" for s in p.steps))


def images_panel() -> None:
    run = pick_run("Run that predicts", key="upload_run", help="a demo run, a run you trained, or a checkpoint kept as a run")
    if run is None:
        return
    with friendly_errors("this run"):
        cfg = run.config()
        model = load_model(run)
    shape = tuple(resolve_input_shape(cfg))
    files = st.file_uploader("Images (PNG or JPEG, any size, colour or grey)", type=["png", "jpg", "jpeg"],
                             accept_multiple_files=True, key="img_upload")  # fmt: skip
    c1, c2 = st.columns(2)
    invert = c1.radio("Invert", list(AUTO), horizontal=True, key="img_invert",
                      help="auto: a grey model gets dark-on-light images inverted (MNIST digits are light-on-dark)")  # fmt: skip
    frame = c2.radio("Frame the digit like MNIST", list(AUTO), horizontal=True, key="img_frame",
                     help="auto: for grey models, crop to the digit and centre it in a 20x20 box of 28x28")  # fmt: skip
    if not files:
        st.caption(f"The model takes {shape[0]} x {shape[1]} x {shape[2]} images; yours are converted visibly.")
        return
    opts = ImageOptions(invert=AUTO[invert], frame=AUTO[frame])
    with friendly_errors("these images"):
        prepared = [prepare_image(f.getvalue(), shape, f.name, opts) for f in files]
    x = torch.cat([p.tensor for p in prepared])
    preds = predict(model, x)
    for p, pred in zip(prepared, preds, strict=True):
        show_image(p, pred, shape)
    titles = [f"{p.name[:18]}: {pred.label} ({pred.top[0][1]:.0%})" for p, pred in zip(prepared, preds, strict=True)]
    fig = cam_grid(x.numpy(), np.stack([pr.cam for pr in preds]), titles, cols=min(len(x), 4), tile_px=200,
                   title=f"CAM of the predicted class — {cfg.label}", presentation=presentation())  # fmt: skip
    figure(fig, "upload-cam", key="upload_cam", stretch=False, theme=None)  # a mosaic has its own size


tab_ckpt, tab_img = st.tabs(["Checkpoint", "Images"])
with tab_ckpt:
    checkpoint_panel()
with tab_img:
    images_panel()
