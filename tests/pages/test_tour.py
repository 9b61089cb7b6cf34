"""A user's tour in headless Chromium: train, look at every page, bring a checkpoint and an image,
download a PNG and a report, and open that report with the network cut off.

Fails on any Streamlit exception box and on any browser console error. Screenshots of every step
go to artifacts/screenshots/tour-*.png (the README's come from here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError

from tests.browser_utils import (
    assert_no_exception,
    requires_chromium,
    screenshot,
    settle,
)
from vizcore.data.domains import load_domain

pytestmark = [pytest.mark.browser, pytest.mark.slow, requires_chromium]
VIEWPORT = {"width": 1400, "height": 2000}  # Streamlit scrolls inside the page: a tall window shows it all
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _digit_photo(path: Path) -> Path:
    """A real MNIST digit as a photo would show it: dark ink on light grey paper, off-centre, JPEG."""
    digit = load_domain("mnist", "test", limit=1).images[0, 0].numpy()
    ink = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((120, 120)), dtype=np.float32) / 255
    paper = np.full((200, 260, 3), (210, 205, 195), dtype=np.float32)
    paper[40:160, 110:230] *= 1 - 0.85 * ink[..., None]
    Image.fromarray(paper.astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


class Tour:
    """One browser tab on the app, with the steps a user takes; collects console errors and every
    request that leaves the machine (an offline laptop cannot make them)."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else self.external.append(r.url))

    def _console(self, msg) -> None:
        # a failed outside fetch is reported once, as an outside request (checked at the end)
        if msg.type == "error" and not msg.location.get("url", "").startswith(tuple(self.external) or ("\0",)):
            self.errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    def go(self, link: str, title: str, shot: str | None = None, timeout_ms: int = 180_000) -> None:
        """Open a page through the sidebar, as a user does (a typed deep URL makes Streamlit probe paths)."""
        self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link, exact=True).click()
        self.page.locator("h1", has_text=title).first.wait_for(timeout=timeout_ms)
        self.check(shot, timeout_ms)

    def check(self, shot: str | None = None, timeout_ms: int = 180_000) -> None:
        settle(self.page, timeout_ms)
        if shot:
            screenshot(self.page, f"tour-{shot}")
        assert_no_exception(self.page)
        assert not self.errors, self.errors

    def choose(self, label: str, option: str) -> None:
        """Pick the option containing ``option`` in the selectbox labelled ``label``."""
        box = self.page.locator('[data-testid="stSelectbox"]').filter(
            has=self.page.get_by_text(label, exact=True))  # fmt: skip
        combo = box.locator('[role="combobox"]').first
        for _ in range(3):  # a rerun that lands just after the click closes the list again
            combo.click()
            choice = self.page.get_by_role("option").filter(has_text=option).first
            try:
                choice.click(timeout=10_000)
                break
            except TimeoutError:
                settle(self.page)
        settle(self.page)

    def upload(self, index: int, path: Path) -> None:
        self.page.locator('[data-testid="stFileUploaderDropzoneInput"]').nth(index).set_input_files(str(path))
        self.page.wait_for_timeout(500)  # the rerun starts after the upload finishes
        settle(self.page)

    def download(self, button, timeout_ms: int = 120_000) -> bytes:
        with self.page.expect_download(timeout=timeout_ms) as info:
            button.click()
        return Path(info.value.path()).read_bytes()


@pytest.fixture(scope="module")
def app(browser_server, browser):
    url, tmp = browser_server  # the smoke test's server (tests/pages/conftest.py): one start for both
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield Tour(context.new_page(), url), tmp, browser
    context.close()


def test_tour(app) -> None:
    tour, tmp, browser = app
    page = tour.page
    page.goto(tour.url)
    tour.check("overview")

    # Train a tiny run: 1 epoch on 256 images (the Advanced expander holds the limit).
    tour.go("Train", "Train")
    page.get_by_label("Epochs").fill("1")
    page.get_by_text("Advanced").click()
    page.get_by_label("Training images (0 = all)").fill("256")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Run complete").wait_for(timeout=240_000)
    tour.check("train")
    trained_acc = page.locator('[data-testid="stMetric"]', has_text="source test acc").locator(
        '[data-testid="stMetricValue"]').inner_text()  # fmt: skip

    tour.go("Compare runs", "Compare runs", "compare")
    tour.go("CAM heatmaps", "CAM heatmaps", "cam")
    png = tour.download(page.get_by_role("button", name="⬇ PNG").first)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    tour.go("Class distances", "Class distances", "distances")

    # Bring the trained weights back as an outside checkpoint and keep them as a run.
    tour.go("Your checkpoints & images", "Your checkpoints & images")
    (weights,) = (tmp / "runs").glob("*/model.safetensors")
    tour.upload(0, weights)
    assert page.get_by_text("Recognised from the tensors' shapes").is_visible()
    # the supervised recipe does not standardise inputs, so the weights load as they are
    page.get_by_role("button", name="Save as run").click()
    page.get_by_text("Saved as run").wait_for(timeout=120_000)
    tour.check("upload-checkpoint")
    assert page.get_by_text(f"mnist test accuracy {float(trained_acc.rstrip('%')):.1f}%").is_visible(), trained_acc
    page.get_by_role("tab", name="Images").click()
    tour.upload(1, _digit_photo(tmp / "my digit.jpg"))
    page.get_by_text("inverted the image").first.wait_for(timeout=60_000)
    tour.check("upload-images")

    tour.go("Embeddings", "Embeddings", "embeddings", timeout_ms=240_000)

    # Presentation mode, then a report of the run, downloaded and opened with no network.
    tour.go("Report", "Report")
    page.get_by_text("Presentation mode").click()
    settle(page)
    tour.choose("Run", "source_only")  # the trained run, not the uploaded copy (that has no curves)
    page.get_by_test_id("stExpander").get_by_text("Options", exact=True).click()
    tour.choose("Embedding", "PCA")  # quick; t-SNE was drawn on the Embeddings page
    page.get_by_role("button", name="Build report").click()
    button = page.get_by_role("button", name="⬇ Download report (HTML)")
    button.wait_for(timeout=240_000)
    tour.check("report")
    report = tour.download(button)
    assert b"--fs:20px" in report  # built in presentation mode
    assert b"source_only" in report[:2000] and b"PCA (scikit-learn)" in report  # the choices made above
    _open_offline(browser, report, tmp / "report.html")
    outside = sorted(set(tour.external))
    assert not outside, f"the dashboard fetches from the internet, which an offline laptop cannot: {outside}"


def _open_offline(browser, report: bytes, path: Path) -> None:
    """The downloaded report draws every figure with every network request refused."""
    path.write_bytes(report)
    figures = len(re.findall(rb"Plotly\.newPlot\(", report))
    assert figures >= 5  # curves, CAM grid, mean CAM, class matrix, embedding
    context = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
    refused: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}",
                           timeout=60_000)  # fmt: skip
    screenshot(page, "tour-report-file")
    assert not refused and not errors, (refused, errors)
    context.close()

