"""Shared helpers of the headless-Chromium tests: the real Streamlit server and the browser.

Needs Debian's chromium (`apt-get install chromium`; `.ci/run` installs it) and the playwright
Python package; never `playwright install`. The recipe is in the README's test section.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "artifacts" / "screenshots"
CHROME_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    runs: Path,
    log: Path,
    timeout_s: float = 90,
    app: str | Path = "app.py",
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[str]:
    """Run ``streamlit run <app>`` on a free local port with its own run store; yields the URL.

    ``cwd`` is the checkout served (its own ``vizcore`` and ``pages`` are imported: a benchmark
    serves an older commit this way). The server's output goes to ``log`` (a pipe nobody reads
    would fill up and stall the server); its tail is shown if the server does not come up.
    """
    port = free_port()
    # no start-up UMAP warm-up: a minute of numba compilation would only slow the tests down
    env = {**os.environ, "VIZCORE_RUNS": str(runs), "VIZCORE_UMAP_WARMUP": "0", "PYTHONPATH": str(cwd), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("streamlit did not start: " + log.read_text(errors="replace")[-2000:])
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Debian's) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def settle(page, timeout_ms: int = 120_000, draw_ms: int = 800) -> None:
    """Wait until the script has finished running, then give plotly a moment to draw."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(draw_ms)


def assert_no_exception(page) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
