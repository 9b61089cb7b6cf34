"""CAM grids: each image with its class activation map laid over it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizcore.figures import style


def _jet(v: np.ndarray) -> np.ndarray:
    """(…) values in [0, 1] -> (…, 3) floats of the classic 'jet' map used in the CAM paper."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as vizcore.data converts RGB to grey


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, grey: bool = True) -> np.ndarray:
    """Blend a normalised CAM over an image.

    ``grey`` draws a colour image in grey under the map: jet over a colourful photo cannot be
    read (which colour is the map's?).

    Shape:
        image: (C, H, W) in [0, 1]; cam: (H, W) in [0, 1]. Returns (H, W, 3) uint8.
    """
    if image.shape[0] == 3 and grey:
        image = np.tensordot(LUMA, image, axes=1)[None]
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    rgb = np.transpose(rgb, (1, 2, 0))
    out = (1 - alpha) * rgb + alpha * _jet(cam)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def _box_shape(box: Sequence[float], row: int, col: int, fig: go.Figure) -> None:
    x0, y0, x1, y1 = (float(v) for v in box)
    # pixel (i, j) covers [j - 0.5, j + 0.5]: the box edge sits on pixel borders
    fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                  line=dict(color="white", width=2), row=row, col=col)  # fmt: skip


def cam_grid(
    images: np.ndarray,
    cams: np.ndarray,
    titles: Sequence[str],
    cols: int = 6,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
    title: str = "",
    presentation: bool = False,
    scale_label: str = "CAM, min–max per image",
) -> go.Figure:
    """A grid of CAM overlays with a colour bar naming the maps' scale.

    Shape:
        images: (N, C, H, W) in [0, 1]; cams: (N, H, W) normalised to [0, 1]; boxes: (N, 4) or None.
    """
    n = len(images)
    rows = max(1, -(-n // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), horizontal_spacing=0.01,
                        vertical_spacing=0.06 if rows > 1 else 0.0)  # fmt: skip
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Image(z=overlay(images[i], cams[i], alpha), hoverinfo="skip"), r, c)
        if boxes is not None:
            _box_shape(boxes[i], r, c, fig)
    # the colour bar: an invisible marker carrying the jet scale (Image traces have none)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
                             marker=dict(colorscale="Jet", cmin=0, cmax=1, color=[0], showscale=True,
                                         colorbar=dict(title=dict(text=scale_label, side="right"), thickness=12,
                                                       len=min(1.0, 300 / (175 * rows)), y=1, yanchor="top"))),
                  1, 1)  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    size = 16 if presentation else 13  # captions readable on a projector
    fig = style(fig, presentation, height=max(240, (190 if presentation else 175) * rows + 70))
    fig.update_annotations(font_size=size)
    fig.update_layout(title=title)
    return fig


def mean_cam_figure(mean_maps: np.ndarray, class_names: Sequence[str], presentation: bool = False) -> go.Figure:
    """Average normalised CAM of each true class, as heatmaps on one shared 0–1 scale.

    Shape:
        mean_maps: (K, H, W).
    """
    k = len(mean_maps)
    cols = min(k, 5)
    rows = -(-k // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"class {c}" for c in class_names],
                        horizontal_spacing=0.02, vertical_spacing=0.08)  # fmt: skip
    for i in range(k):
        fig.add_trace(
            go.Heatmap(z=mean_maps[i][::-1], zmin=0, zmax=1, colorscale="Jet", showscale=i == 0,
                       colorbar=dict(title="mean CAM", len=0.8)),
            i // cols + 1, i % cols + 1,
        )  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    return style(fig, presentation, height=200 * rows + 80)
