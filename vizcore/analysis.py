"""Per-run analyses the pages show, cached in the run folder keyed by their parameters.

Each function takes a Run, rebuilds what it needs from the run folder alone (config and
weights), and returns plain numpy arrays, so a page reopened next week is instant.
"""

from __future__ import annotations

import numpy as np
import torch

from vizcore.cam import class_activation_maps, energy_in_box, normalize_maps, pointing_game
from vizcore.config import TrainConfig
from vizcore.data import Domain, align_target, load_domain
from vizcore.runs import Run

CLASS_MODES = ("predicted", "true")  # or a class index as a string


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


def _class_target(mode: str, labels: torch.Tensor) -> int | torch.Tensor | None:
    if mode == "predicted":
        return None
    if mode == "true":
        return labels
    return int(mode)


def cam_analysis(
    run: Run, which: str = "source", class_mode: str = "predicted", split: str = "test"
) -> dict[str, np.ndarray]:
    """CAMs of a whole evaluation split.

    Returns arrays: maps (N, H, W) float16 min-max normalised, probs (N, K), labels (N,),
    class_idx (N,) the class each map explains, and for data with boxes: boxes (N, 4),
    pointing (N,) bool and energy (N,) float, both computed on the raw maps.
    """

    def compute() -> dict[str, np.ndarray]:
        cfg = run.config()
        dom = eval_domain(cfg, which, split)
        r = class_activation_maps(
            run.load_model(), dom.images, _class_target(class_mode, dom.labels)
        )
        out = {
            "maps": normalize_maps(r.maps).numpy().astype(np.float16),
            "probs": r.probs.numpy().astype(np.float32),
            "labels": dom.labels.numpy(),
            "class_idx": r.class_idx.numpy(),
        }
        if dom.boxes is not None:
            out["boxes"] = dom.boxes.numpy()
            out["pointing"] = pointing_game(r.maps, dom.boxes).numpy()
            out["energy"] = energy_in_box(r.maps, dom.boxes).numpy()
        return out

    return run.cached("cam", {"which": which, "class_mode": class_mode, "split": split}, compute)


@torch.no_grad()
def feature_arrays(
    run: Run, which: str = "source", split: str = "test", layer: str = "gap"
) -> dict[str, np.ndarray]:
    """Features of one layer for a whole split: x (N, D) float32, y (N,), pred (N,)."""

    def compute() -> dict[str, np.ndarray]:
        cfg = run.config()
        dom = eval_domain(cfg, which, split)
        model = run.load_model()
        xs, preds = [], []
        for i in range(0, len(dom), 1024):
            f = model.forward_features(dom.images[i : i + 1024])
            xs.append(f.layer(layer).float())
            preds.append(f.logits.argmax(1))
        return {
            "x": torch.cat(xs).numpy(),
            "y": dom.labels.numpy(),
            "pred": torch.cat(preds).numpy(),
        }

    return run.cached("features", {"which": which, "split": split, "layer": layer}, compute)


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
