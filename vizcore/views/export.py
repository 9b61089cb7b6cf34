"""Figure export: interactive HTML (works offline) and static PNG/SVG through kaleido.

kaleido (v1) drives a local Chrome/Chromium; on Debian/Ubuntu ``apt-get install chromium``
is enough, it finds ``/usr/bin/chromium`` by itself. Starting that browser costs seconds, so the
first static export starts kaleido's persistent server (``kaleido.start_sync_server``) and every
later export reuses it (about 0.2 s instead of 5 s a figure on a small machine).
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Callable

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


def _server_alive(server: object) -> bool:
    """Is the persistent kaleido server running and its thread not dead?

    A server whose browser failed to start has a dead thread but still says it is running;
    a call to it would wait forever, so it is closed and the one-shot path is used instead.
    """
    if not server.is_running():  # type: ignore[attr-defined]
        return False
    thread = getattr(server, "_thread", None)
    if thread is not None and not thread.is_alive():
        server.close(silence_warnings=True)  # type: ignore[attr-defined]
        return False
    return True


def start_export_server() -> bool:
    """Start (once) kaleido's persistent browser so repeated exports are fast.

    MathJax is off: it would be fetched from a CDN, which an offline laptop cannot reach.
    Returns False where the installed kaleido has no server (exports then start a browser each).
    """
    import kaleido

    server = getattr(kaleido, "_global_server", None)
    if not hasattr(kaleido, "start_sync_server") or server is None:
        return False
    if not _server_alive(server):
        kaleido.start_sync_server(mathjax=False, silence_warnings=True)
    return server.is_running()


def _server_render(fig: go.Figure, fmt: str, scale: float) -> bytes:
    """What ``fig.to_image`` does, sent straight to the running server (plotly's own call would pass
    browser launch options, which a running server ignores with a warning)."""
    import kaleido
    import plotly.io as pio

    opts = dict(format=fmt, scale=scale, width=fig.layout.width or pio.defaults.default_width,
                height=fig.layout.height or pio.defaults.default_height)  # fmt: skip
    return kaleido.calc_fig_sync(fig.to_dict(), opts=opts)


def _via_server(render: Callable[[], bytes]) -> bytes | None:
    """Run ``render`` on the persistent server; None if the server died meanwhile.

    A server thread that dies (its browser would not start, or crashed) never answers, so the
    call runs in a helper thread watched here rather than blocking the page forever.
    """
    import kaleido

    server = kaleido._global_server
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["out"] = render()
        except Exception as e:  # noqa: BLE001 — re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=call, daemon=True, name="vizcore-export")
    worker.start()
    while worker.is_alive():
        worker.join(0.25)
        if worker.is_alive() and not _server_alive(server):
            return None  # the helper thread stays blocked on the dead server; it holds nothing
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["out"]  # type: ignore[return-value]


def stop_export_server() -> None:
    """Close the persistent browser (tests, or to free its memory)."""
    import kaleido

    if hasattr(kaleido, "stop_sync_server"):
        kaleido.stop_sync_server(silence_warnings=True)


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
            scale = scale if fmt == "png" else 1.0
            if start_export_server():
                out = _via_server(functools.partial(_server_render, fig, fmt, scale))
                if out is not None:
                    return out
            return fig.to_image(format=fmt, scale=scale)
        except Exception as e:  # kaleido raises several types; the user needs one message
            raise RuntimeError(f"static export failed ({type(e).__name__}: {e}). {INSTALL_HINT}") from e
