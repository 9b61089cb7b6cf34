"""Benchmark: how soon a freshly started dashboard is usable, against a one-line Streamlit app.

    python bench/first_page.py               # 3 repeats
    python bench/first_page.py --repeats 5

Each repeat starts a new headless Chromium, then a new server (``streamlit run``, headless, its
own empty run store, so the Overview lists the shipped demo runs), and times:

- ``server healthy``: from launching the server process to ``/_stcore/health`` answering;
- ``first page interactive``: from launching the server process to the first page's script having
  finished (Streamlit's ``notRunning`` state) with its content drawn: the runs table on the
  Overview, the text on the baseline;
- ``CAM page drawn``: after that, a click on "CAM heatmaps" until its first figure is drawn
  (computes the CAMs of the default demo run's test split, or reads them from the cache).

The baseline is ``st.write("hello")`` served the same way in the same run, so the ratio says
what vizcore adds to Streamlit's own start-up. The start-up UMAP warm-up is on, as for a user.
Needs Debian's chromium and playwright (the browser tests' requirements).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE_APP = 'import streamlit as st\n\nst.write("hello")\n'


def measure(app: Path, ready_selector: str, tmp: Path, cam: bool) -> dict[str, float]:
    """One cold start: seconds to a healthy server, to the first page drawn, to the CAM figure.

    The browser is started first: a user's browser is already open when they type the command.
    """
    from tests.browser_utils import IDLE, chromium, streamlit_server

    out: dict[str, float] = {}
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        t0 = time.perf_counter()
        with streamlit_server(tmp / "runs", tmp / "server.log", app=app, env={"VIZCORE_UMAP_WARMUP": "1"}) as url:
            out["server healthy"] = time.perf_counter() - t0
            page.goto(url)
            page.wait_for_selector(ready_selector, timeout=120_000)
            page.wait_for_selector(IDLE, timeout=120_000)
            out["first page interactive"] = time.perf_counter() - t0
            if cam:
                t1 = time.perf_counter()
                nav = page.locator('[data-testid="stSidebarNav"]')
                nav.get_by_role("link", name="CAM heatmaps", exact=True).click()
                page.locator("h1", has_text="CAM").first.wait_for(timeout=180_000)
                page.wait_for_selector(".js-plotly-plot", timeout=180_000)
                page.wait_for_selector(IDLE, timeout=180_000)
                out["CAM page drawn"] = time.perf_counter() - t1
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    return ap.parse_args(argv)


def main() -> None:
    a = parse_args()
    load0 = os.getloadavg()[0]
    rows: dict[str, dict[str, list[float]]] = {"baseline": {}, "vizcore": {}}
    with tempfile.TemporaryDirectory() as td:
        base_app = Path(td) / "hello.py"
        base_app.write_text(BASELINE_APP)
        for r in range(a.repeats):  # interleaved, so drifting load hits both alike
            for name, app, sel, cam in (
                ("baseline", base_app, '[data-testid="stMarkdown"]', False),
                ("vizcore", ROOT / "app.py", '[data-testid="stDataFrame"]', True),
            ):
                tmp = Path(td) / f"{name}-{r}"
                tmp.mkdir()
                for k, v in measure(app, sel, tmp, cam).items():
                    rows[name].setdefault(k, []).append(v)
    print(f"# first page: median of {a.repeats} cold starts; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'measure':<24} | {'baseline s':>10} | {'vizcore s':>9} | {'ratio':>6}")
    print("-" * 60)
    for k in rows["vizcore"]:
        v = statistics.median(rows["vizcore"][k])
        b = rows["baseline"].get(k)
        bm = statistics.median(b) if b else None
        ratio = f"{v / bm:6.2f}" if bm else "     -"
        print(f"{k:<24} | {'-' if bm is None else f'{bm:10.2f}':>10} | {v:9.2f} | {ratio}")


if __name__ == "__main__":
    main()
