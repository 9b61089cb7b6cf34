"""Reading a computed before/after embedding pair on the page: its table of numbers with a verdict
per row, the points a filter keeps, the point a click selected, and that point's image and CAMs
in both runs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vizcore.core.config import TrainConfig
from vizcore.explain.cam import class_activation_maps, normalize_maps
from vizcore.figures.cam import overlay
from vizcore.metrics.domain import (
    REPORT_COLUMNS,
)
from vizcore.store.run import Run
from vizcore.views.analysis import cam_analysis, cam_maps, domain_name, eval_domain
from vizcore.views.embeddings import DOMAIN_ROWS, PANELS, EmbeddingPair, images_for, same_images

DISPLAY_SIZE = 140  # pixels of a clicked image and its CAMs


# ---------------------------------------------------------------------------------- table, filters


def row_label(key: str) -> str:
    """A measure's row name in :func:`report_table`, e.g. "Proxy A-distance ↓"."""
    label, better = REPORT_COLUMNS[key]
    return f"{label} {'↓' if better == 'lower' else '↑'}"


def report_table(pair: EmbeddingPair) -> pd.DataFrame:
    """The numbers for before and after, one row per measure (metric rows read well beside a plot).

    Rows are named by :data:`REPORT_COLUMNS`' labels with ↓ or ↑ for the better direction. Columns:
    before, after, change (after − before), better ("lower"/"higher" is better for adaptation),
    verdict (whether the change is an improvement: "better", "worse" or "same").
    Without a target domain the domain rows are left out (see NO_TARGET_NOTE).
    """
    keys = [k for k in REPORT_COLUMNS if pair.has_target or k not in DOMAIN_ROWS]
    pos = [list(REPORT_COLUMNS).index(k) for k in keys]
    before, after = pair.report[0, pos], pair.report[1, pos]
    better = [REPORT_COLUMNS[k][1] for k in keys]
    change = after - before
    return pd.DataFrame(
        {"before": before, "after": after, "change": change, "better": better,
         "verdict": [_verdict(c, b) for c, b in zip(change, better, strict=True)]},
        index=pd.Index([row_label(k) for k in keys], name="measure"),
    )  # fmt: skip


def _verdict(change: float, better: str) -> str:
    """Whether a change of a measure is an improvement, given which direction is better."""
    if not np.isfinite(change) or abs(change) < 1e-12:
        return "same"
    return "better" if (change < 0) == (better == "lower") else "worse"


def visible_mask(pair: EmbeddingPair, sides: Collection[str], classes: Collection[int]) -> np.ndarray:
    """Which points to draw: those of the chosen domains ("source", "target") and classes. Shape: (N,)."""
    wanted = [d for d, s in enumerate(pair.sides) if s in sides]
    return np.isin(pair.domain, wanted) & np.isin(pair.labels, list(classes))


def selected_point(selection: Mapping[str, Any] | None, n: int) -> tuple[int, str] | None:
    """(row, panel) of the first clicked point in a plotly selection event, or None.

    Points carry ``customdata = [row, panel index]`` (see :mod:`vizcore.figures.scatter`); a row
    outside ``range(n)`` (a stale selection from other settings) is ignored.
    """
    for point in (selection or {}).get("points", []):
        data = point.get("customdata")
        if isinstance(data, Mapping):  # a typed array serialised by the browser: {"0": row, "1": panel}
            data = [data[k] for k in sorted(data, key=int)]
        if data is not None and len(data) >= 2 and 0 <= int(data[0]) < n:
            return int(data[0]), PANELS[int(data[1]) % len(PANELS)]
    return None


# ---------------------------------------------------------------------------------- one point


@dataclass(frozen=True, eq=False)
class PointView:
    """One clicked sample: its image, true class and, per run, prediction and CAM overlay.

    Attributes:
        image: the image as stored, enlarged by whole pixels for display. Shape: (sH, sW, 3) uint8.
        overlays: per panel, the CAM of the predicted class over the image, enlarged alike.
        predictions: per panel, (predicted class name, its probability).
    """

    side: str
    domain_name: str
    index: int
    label: str
    image: np.ndarray
    overlays: dict[str, np.ndarray]
    predictions: dict[str, tuple[str, float]]


def _cam(run: Run, points: TrainConfig, which: str, split: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (C, H, W), normalised CAM (H, W), probabilities (K,)) of one image for ``run``."""
    dom = images_for(run, points, which, split)
    image = dom.images[index].numpy()
    if same_images(run, points, which):  # the CAM page's cached maps of the whole split
        arrays = cam_analysis(run, which, "predicted", split)
        cam = cam_maps(run, which, np.array([index]), arrays["class_idx"][[index]], split)[0]
        return image, cam, arrays["probs"][index]
    r = class_activation_maps(run.load_model(), dom.images[index : index + 1])
    return image, normalize_maps(r.maps)[0].numpy(), r.probs[0].numpy()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    return (np.clip(np.transpose(rgb, (1, 2, 0)), 0, 1) * 255).astype(np.uint8)


def _enlarge(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Blow a small (H, W, 3) image up by whole pixels, so a browser shows crisp pixels, not a blur."""
    f = max(1, size // max(image.shape[:2]))
    return np.repeat(np.repeat(image, f, axis=0), f, axis=1)


def point_view(pair: EmbeddingPair, row: int, before: Run, after: Run, split: str = "test") -> PointView:
    """The image behind point ``row`` with both runs' predictions and CAMs."""
    side = pair.sides[int(pair.domain[row])]
    index = int(pair.index[row])
    points = after.config()
    overlays, predictions = {}, {}
    for panel, run in zip(PANELS, (before, after), strict=True):
        img, cam, probs = _cam(run, points, side, split, index)  # img in this model's input shape
        overlays[panel] = _enlarge(overlay(img, cam))
        k = int(np.argmax(probs))
        predictions[panel] = (pair.class_names[k], float(probs[k]))
    image = _enlarge(_as_rgb(eval_domain(points.replace(input_shape=None), side, split).images[index].numpy()))
    return PointView(side, points.shown(domain_name(points, side)), index, pair.class_names[int(pair.labels[row])], image,
                     overlays, predictions)  # fmt: skip
