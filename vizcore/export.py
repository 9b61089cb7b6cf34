"""Figure export: interactive HTML (works offline) and static PNG/SVG through kaleido.

kaleido (v1) drives a local Chrome/Chromium; on Debian/Ubuntu ``apt-get install chromium``
is enough, it finds ``/usr/bin/chromium`` by itself.
"""

from __future__ import annotations

import functools
import shutil
import threading

import plotly.graph_objects as go

STATIC_FORMATS = ("png", "svg")
INSTALL_HINT = (
    "Static PNG/SVG export needs Chrome or Chromium for kaleido: install it with "
    "`apt-get install chromium` (Debian/Ubuntu), `brew install --cask chromium` (macOS), "
    "or `plotly_get_chrome`; interactive HTML export always works."
)
_lock = threading.Lock()  # kaleido's browser is shared; one render at a time


@functools.cache
def static_export_available() -> bool:
    """Is there a browser kaleido can use? (checked once per process)"""
    if any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        return True
    try:
        import choreographer.utils._which as which  # kaleido's own browser lookup

        return bool(which.browser_which())
    except Exception:  # noqa: BLE001 — any failure simply means "not available"
        return False


def figure_html(fig: go.Figure) -> str:
    """A self-contained HTML file: plotly.js is inlined, so it opens with no network."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def figure_static(fig: go.Figure, fmt: str = "png", scale: float = 2.0) -> bytes:
    """PNG or SVG bytes; RuntimeError with install instructions when no browser is available."""
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose {', '.join(STATIC_FORMATS)}")
    if not static_export_available():
        raise RuntimeError(INSTALL_HINT)
    with _lock:
        try:
            return fig.to_image(format=fmt, scale=scale if fmt == "png" else 1.0)
        except Exception as e:  # kaleido raises several types; the user needs one message
            raise RuntimeError(f"static export failed ({type(e).__name__}: {e}). {INSTALL_HINT}") from e
