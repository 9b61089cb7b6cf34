"""CAM grids: each image with its class activation map laid over it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from vizcore.figures import style


def _jet(v: np.ndarray) -> np.ndarray:
    """(…) values in [0, 1] -> (…, 3) floats of the classic 'jet' map used in the CAM paper."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as vizcore.data.images converts RGB to grey


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


def png_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a PNG data URI: a few kB where a JSON array of its pixels is
    hundreds, so a figure reaches the browser and is drawn quickly."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# how wide a tile is drawn: six tiles and the colour bar fit the content column of a wide page
# beside the sidebar (about 930 px in a 1400 px window), so the figure is never shrunk to fit
TILE_PX = 120


def _mosaic_layout(n: int, cols: int, h: int, w: int, band: int) -> list[tuple[int, int]]:
    """Top-left (y, x) of each tile's image in the mosaic; ``band`` rows above each hold its caption."""
    gap = max(2, w // 14)
    return [((i // cols) * (band + h + gap) + band, (i % cols) * (w + gap)) for i in range(n)]


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
    tile_px: int | None = None,
) -> go.Figure:
    """A grid of CAM overlays with a colour bar naming the maps' scale (see :func:`mosaic_figure`);
    ``tile_px`` draws fewer images larger (an upload's one or two).

    Shape:
        images: (N, C, H, W) in [0, 1]; cams: (N, H, W) normalised to [0, 1]; boxes: (N, 4) or None.
    """
    tiles = np.stack([overlay(images[i], cams[i], alpha) for i in range(len(images))]) if len(images) else None
    return mosaic_figure(tiles, titles, cols, boxes, title, presentation, scale_label, tile_px or TILE_PX)


def mean_cam_figure(
    mean_maps: np.ndarray, class_names: Sequence[str], presentation: bool = False, title: str = ""
) -> go.Figure:
    """Average normalised CAM of each true class, on one shared 0–1 scale.

    Shape:
        mean_maps: (K, H, W).
    """
    tiles = (np.clip(_jet(np.clip(mean_maps, 0, 1)), 0, 1) * 255).astype(np.uint8)
    return mosaic_figure(tiles, [f"true class {c}" for c in class_names], min(len(mean_maps), 5), None, title,
                         presentation, "mean CAM")  # fmt: skip


def mosaic_figure(
    tiles: np.ndarray | None,
    titles: Sequence[str],
    cols: int,
    boxes: np.ndarray | None,
    title: str,
    presentation: bool,
    scale_label: str | None,
    tile_px: int = TILE_PX,
) -> go.Figure:
    """Tiles in a grid, drawn as one PNG image on one axis, with a jet colour bar (none when
    ``scale_label`` is None: tiles that are images, not maps).

    One image, not one subplot per tile: building and drawing 24 subplots took a quarter of a
    second per rerun, and a JSON array of pixels is far larger than a PNG. Captions sit in a band
    above each tile, on two lines (split at the first " · "). The figure has a fixed size whose
    plot area has the mosaic's aspect, so captions sized for TILE_PX fit and no blank band opens
    above or below: pages show it at this size, not stretched.

    Shape:
        tiles: (N, h, w, 3) uint8; boxes: (N, 4) in tile pixels, or None.
    """
    n = 0 if tiles is None else len(tiles)
    rows = max(1, -(-n // cols))
    size = 16 if presentation else 13  # captions readable on a projector
    h, w = tiles.shape[1:3] if n else (28, 28)
    scale = tile_px / w  # screen pixels per image pixel
    band = int(np.ceil(2 * 1.3 * size / scale)) + 2  # two caption lines
    corners = _mosaic_layout(n, cols, h, w, band)
    gap = max(2, w // 14)
    mosaic = np.full((rows * (band + h + gap), cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for (y0, x0), tile in zip(corners, tiles if n else [], strict=True):
        mosaic[y0 : y0 + h, x0 : x0 + w] = tile
    # styled before the captions are added: style() would then visit every caption (slow in plotly)
    fig = style(go.Figure(go.Image(source=png_data_uri(mosaic), hoverinfo="skip")), presentation)
    # pixel (i, j) covers [j - 0.5, j + 0.5]: captions and box edges sit on pixel borders
    fig.update_layout(
        annotations=[dict(x=x0 + w / 2 - 0.5, y=y0 - 1.5, text=str(t).replace(" · ", "<br>", 1), showarrow=False,
                          xanchor="center", yanchor="bottom", font=dict(size=size))
                     for (y0, x0), t in zip(corners, titles, strict=False)],
        shapes=[] if boxes is None else [
            dict(type="rect", x0=x0 + float(b[0]) - 0.5, y0=y0 + float(b[1]) - 0.5, x1=x0 + float(b[2]) - 0.5,
                 y1=y0 + float(b[3]) - 0.5, line=dict(color="white", width=2))
            for (y0, x0), b in zip(corners, boxes, strict=True)],
    )  # fmt: skip
    # the colour bar: an invisible marker carrying the jet scale (an Image trace has none)
    if scale_label is not None:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
                                 marker=dict(colorscale="Jet", cmin=0, cmax=1, color=[0], showscale=True,
                                             colorbar=dict(title=dict(text=scale_label, side="right"), thickness=12,
                                                           len=min(1.0, 320 / (mosaic.shape[0] * scale)),
                                                           y=1, yanchor="top"))))  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    margin = dict(l=10, r=10 if scale_label is None else 110, t=70 if title else 20, b=10)
    fig.update_layout(width=int(mosaic.shape[1] * scale) + margin["l"] + margin["r"],
                      height=int(mosaic.shape[0] * scale) + margin["t"] + margin["b"], margin=margin, title=title)  # fmt: skip
    return fig


def sample_grid(tiles: np.ndarray, captions: Sequence[str], per_row: int, title: str = "",
                presentation: bool = False) -> go.Figure:
    """Images of a data set, one class per row, each captioned "class · file", at the size they are
    trained at (no colour bar: they are images, not maps).

    Shape:
        tiles: (N, h, w, 3) uint8, class after class, ``per_row`` (or fewer) of each.
    """
    return mosaic_figure(tiles if len(tiles) else None, captions, max(1, per_row), None, title, presentation, None)
