"""Per-run analysis, computed once and kept with the run; every view reads it.

For each side of a run (source, and target for an adaptation run) the test split is passed
through the model once, in batches, and what every view needs is stored with the run:

    labels    (N,)                 true classes;  probs (N, K) softmax;  pred (N,)
    size      (2,)                 the input's (H, W), to which maps are upsampled
    cams      (N, K, h, w) uint8   raw CAMs of *every* class at the last conv resolution, each map
                                   quantised to 256 levels between cam_lo and cam_hi (N, K)
    feat_<l>  (N, D) float32       features of each layer: gap, bottleneck (if any), logits
    boxes     (N, 4)               object boxes, where the data has them, and then
    pointing  (N, K) bool, energy (N, K) float32: localisation of each class's full-size CAM

so that a class switch, a filter or a metric is an index into stored arrays plus upsampling
of the maps on screen: no forward pass. It is an entry of the run's one cache of computed
results (vizcore.store.cache), keyed by the SHA-256 of the weights file (content, not
modification time), so a clone of a run, or a demo run shipped with its analysis, opens at once,
and retrained weights are never shown stale analyses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vizcore.core.config import TrainConfig
from vizcore.data.domains import Domain, load_domain
from vizcore.data.pairs import align_target
from vizcore.explain.cam import energy_in_box, mean_cam_per_class, normalize_maps, pointing_game
from vizcore.store.cache import read
from vizcore.store.run import Run

CLASS_MODES = ("predicted", "true")  # or a class index as a string
ANALYSIS_VERSION = 2  # bump when the stored arrays change meaning
BATCH = 512
# (stage name, done, total) -> None: how long work reports where it is
ProgressFn = Callable[[str, int, int], None]

# How many model forward passes the analysis layer has run in this process: tests assert that
# a class switch, a filter or a metric change adds none.
FORWARD_PASSES = [0]


def domain_name(config: TrainConfig, which: str) -> str:
    """'source' or 'target' -> the data set name of that side of the run."""
    if which == "source":
        return config.source
    if which == "target" and config.target:
        return config.target
    raise ValueError(f"this run has no {which} domain")


def eval_domain(
    config: TrainConfig, which: str = "source", split: str = "test", limit: int | None = None
) -> Domain:
    """The images a run is evaluated on, in the shape its model takes; a target's labels are
    the source's class indices (through the run's ``class_map``), as in training."""
    d = load_domain(
        domain_name(config, which),
        split,
        seed=config.seed,
        root=config.data_root,
        shape=tuple(config.input_shape) if config.input_shape else None,
        limit=limit,
    )
    return align_target(d, config.source, config.class_map) if which == "target" else d


# --------------------------------------------------------------------------- computing


@torch.no_grad()
def compute_analysis(
    model: torch.nn.Module, dom: Domain, progress: ProgressFn | None = None
) -> dict[str, np.ndarray]:
    """Everything the views need of one split, from one batched pass (see the module doc).

    Shape:
        dom.images: (N, C, H, W). Returns the arrays listed in the module docstring.
    """
    model.eval()
    dev = next(model.parameters()).device
    w, _ = model.cam_weights()  # (K, C)
    n = len(dom)
    if n == 0:
        raise ValueError(f"{dom.name} ({dom.split}) has no images to analyse")
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, n, BATCH):
        if progress:
            progress(f"passing the {n:,} {dom.split} images through the model", i, n)
        f = model.forward_features(dom.images[i : i + BATCH].to(dev))
        FORWARD_PASSES[0] += 1
        # (B, K, h, w): every class's map, contracted from the last conv maps
        cams = torch.einsum("kc,bchw->bkhw", w.float(), f.conv.float())
        lo, hi = cams.amin(dim=(2, 3)), cams.amax(dim=(2, 3))  # (B, K)
        # 8 bits a pixel: the maps are for display (a colour map has 256 levels); every score
        # is computed below from the full-precision maps
        q = ((cams - lo[..., None, None]) / (hi - lo).clamp_min(1e-12)[..., None, None] * 255).round()
        got = {"cams": q.to(torch.uint8), "cam_lo": lo, "cam_hi": hi, "probs": f.logits.float().softmax(1)}
        got |= {f"feat_{name}": f.layer(name).float() for name in f.layers()}
        for k, v in got.items():
            parts.setdefault(k, []).append(v.cpu())
    out = {k: torch.cat(v).numpy() for k, v in parts.items()}
    out["labels"] = dom.labels.numpy()
    out["pred"] = out["probs"].argmax(1)
    out["size"] = np.array(dom.images.shape[-2:])
    out["classes"] = np.array(dom.classes)
    if dom.boxes is not None:
        out["boxes"] = dom.boxes.numpy()
        out["pointing"], out["energy"] = _localisation(model, dom, progress)
    return out


@torch.no_grad()
def _localisation(model: torch.nn.Module, dom: Domain, progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray]:
    """Pointing game and energy in box of every class's full-size CAM, at full precision: (N, K) each."""
    dev = next(model.parameters()).device
    w, _ = model.cam_weights()
    n, k = len(dom), w.shape[0]
    pointing, energy = np.zeros((n, k), dtype=bool), np.zeros((n, k), dtype=np.float32)
    for i in range(0, n, BATCH):
        if progress:
            progress("scoring the localisation of every class's map", i, n)
        conv = model.forward_features(dom.images[i : i + BATCH].to(dev)).conv.float()
        FORWARD_PASSES[0] += 1
        boxes = dom.boxes[i : i + BATCH]
        for c in range(k):
            maps = upsample(torch.einsum("c,bchw->bhw", w[c].float(), conv).cpu(), dom.images.shape[-2:])
            pointing[i : i + len(boxes), c] = pointing_game(maps, boxes).numpy()
            energy[i : i + len(boxes), c] = energy_in_box(maps, boxes).numpy()
    return pointing, energy


def stored_cams(a: dict[str, np.ndarray], index: np.ndarray, class_idx: np.ndarray) -> torch.Tensor:
    """The low-resolution raw CAMs of images ``index`` for ``class_idx``, dequantised: (M, h, w)."""
    i, c = np.asarray(index), np.asarray(class_idx)
    q = torch.from_numpy(a["cams"][i, c]).float() / 255.0
    lo, hi = torch.from_numpy(a["cam_lo"][i, c]), torch.from_numpy(a["cam_hi"][i, c])
    return lo[:, None, None] + q * (hi - lo)[:, None, None]


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Low-resolution CAMs to the input size, bilinear, as the CAM paper draws them.

    Shape:
        maps: (N, h, w) -> (N, H, W) float32.
    """
    return F.interpolate(maps.float()[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


# --------------------------------------------------------------------------- storing


def _key(which: str, split: str) -> dict[str, object]:
    return {"which": which, "split": split, "version": ANALYSIS_VERSION}


def analysis_path(run: Run, which: str, split: str = "test") -> Path | None:
    """The stored analysis of one side, if there is one (shipped with a demo run, or computed)."""
    return run.cache_entry("analysis", _key(which, split))


def run_analysis(
    run: Run, which: str = "source", split: str = "test", progress: ProgressFn | None = None
) -> dict[str, np.ndarray]:
    """The stored analysis of one side of a run, computed once per weights if missing.

    It is an entry of the run's one cache (:mod:`vizcore.store.cache`): two sessions asking at
    once compute it once, a stopped computation leaves nothing, and reading it is an in-memory
    hit after the first time.
    """
    domain_name(run.config(), which)  # a side the run does not have is refused at once
    report = progress or (lambda stage, done, total: None)

    def compute() -> dict[str, np.ndarray]:
        report(f"loading the model and the {split} images", 0, 1)
        dom = eval_domain(run.config(), which, split)
        return compute_analysis(run.load_model(), dom, report)

    return run.cached("analysis", _key(which, split), compute, compressed=True, in_memory=True)


# --------------------------------------------------------------------------- views of it


def class_target(mode: str, a: dict[str, np.ndarray]) -> np.ndarray:
    """The class each image's map explains under ``mode``: (N,) ints."""
    if mode == "predicted":
        return a["pred"]
    if mode == "true":
        return a["labels"]
    k = int(mode)
    if not 0 <= k < a["probs"].shape[1]:
        raise ValueError(f"class {k} does not exist; this run has {a['probs'].shape[1]} classes")
    return np.full(len(a["labels"]), k)


def cam_analysis(
    run: Run, which: str = "source", class_mode: str = "predicted", split: str = "test"
) -> dict[str, np.ndarray]:
    """Per-image numbers of the CAM page under ``class_mode`` (no maps: see :func:`cam_maps`).

    Returns arrays: probs (N, K), labels (N,), class_idx (N,) the class each map explains, and
    for data with boxes: boxes (N, 4), pointing (N,) bool and energy (N,) float of that class's
    map, plus true_pointing / true_energy of the true class's map.
    """
    a = run_analysis(run, which, split)
    cls = class_target(class_mode, a)
    rows = np.arange(len(cls))
    out = {"probs": a["probs"], "labels": a["labels"], "class_idx": cls}
    if "classes" in a:  # the class names, for captions (an analysis stored before they were kept has none)
        out["classes"] = a["classes"]
    if "boxes" in a:
        out |= {"boxes": a["boxes"], "pointing": a["pointing"][rows, cls], "energy": a["energy"][rows, cls],
                "true_pointing": a["pointing"][rows, a["labels"]], "true_energy": a["energy"][rows, a["labels"]]}  # fmt: skip
    return out


CAM_SCALES = {
    "image": "min–max per image",
    "class": "one scale per class (whole test split)",
}


def cam_maps(
    run: Run, which: str, index: np.ndarray, class_idx: np.ndarray, split: str = "test", scale: str = "image"
) -> np.ndarray:
    """Full-size CAMs of the images ``index`` for ``class_idx``, brought to [0, 1].

    ``scale="image"`` stretches every map to its own range (the CAM paper's display, which paints a
    full peak even for a class that is nowhere in the image); ``"class"`` uses one range per class,
    the lowest and highest value of that class's maps over the whole split, so maps of one class
    compare across images and a weak map looks weak.

    Shape:
        index, class_idx: (M,). Returns (M, H, W) float32 in [0, 1].
    """
    if scale not in CAM_SCALES:
        raise ValueError(f"unknown CAM scale {scale!r}; choose one of {', '.join(CAM_SCALES)}")
    a = run_analysis(run, which, split)
    maps = upsample(stored_cams(a, index, class_idx), tuple(a["size"]))
    if scale == "image":
        return normalize_maps(maps).numpy()
    c = np.asarray(class_idx)
    lo = torch.from_numpy(a["cam_lo"].min(0)[c])[:, None, None]
    hi = torch.from_numpy(a["cam_hi"].max(0)[c])[:, None, None]
    return ((maps - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1).numpy()


def eval_images(run: Run, which: str, index: np.ndarray, split: str = "test") -> np.ndarray:
    """The evaluation images ``index`` as float32 in [0, 1]: (M, C, H, W).

    Read from the data (kept in memory per process, and warmed at server start) rather than
    stored with the analysis: that would ship every demo run's test images a second time.
    """
    return eval_domain(run.config(), which, split).images[np.asarray(index)].numpy()


def mean_cams(run: Run, which: str, class_mode: str, split: str = "test") -> np.ndarray:
    """Mean normalised full-size CAM of each true class's images under ``class_mode``: (K, H, W)."""
    run_analysis(run, which, split)
    path = analysis_path(run, which, split)
    assert path is not None
    return _mean_cams(str(path), path.stat().st_mtime_ns, class_mode)


@functools.lru_cache(maxsize=16)
def _mean_cams(path: str, mtime_ns: int, class_mode: str) -> np.ndarray:
    a = read(Path(path), in_memory=True)
    rows = np.arange(len(a["labels"]))
    maps = upsample(stored_cams(a, rows, class_target(class_mode, a)), tuple(a["size"]))  # (N, H, W)
    return mean_cam_per_class(maps, torch.from_numpy(a["labels"]), a["probs"].shape[1]).numpy()


def feature_arrays(
    run: Run, which: str = "source", split: str = "test", layer: str = "gap"
) -> dict[str, np.ndarray]:
    """Features of one layer for a whole split: x (N, D) float32, y (N,), pred (N,)."""
    a = run_analysis(run, which, split)
    if f"feat_{layer}" not in a:
        have = [k[5:] for k in a if k.startswith("feat_")]
        raise ValueError(f"this model has no {layer!r} features; available: {', '.join(have)}")
    return {"x": a[f"feat_{layer}"], "y": a["labels"], "pred": a["pred"]}


def localization_summary(arrays: dict[str, np.ndarray]) -> dict[str, float] | None:
    """Mean pointing game and energy-in-box of a cam_analysis result, if it has boxes."""
    if "pointing" not in arrays:
        return None
    return {
        "pointing_game": float(arrays["pointing"].mean()),
        "energy_in_box": float(arrays["energy"].mean()),
        "n": float(len(arrays["pointing"])),
    }


def select_images(
    arrays: dict[str, np.ndarray],
    show: str = "all",
    true_class: int | None = None,
    count: int = 24,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the images a CAM grid shows: all / misclassified / correct, one class or all, a seeded sample."""
    preds = arrays["probs"].argmax(1)
    keep = np.ones(len(preds), dtype=bool)
    if show == "misclassified":
        keep &= preds != arrays["labels"]
    elif show == "correct":
        keep &= preds == arrays["labels"]
    if true_class is not None:
        keep &= arrays["labels"] == true_class
    idx = np.flatnonzero(keep)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(idx)[:count])
