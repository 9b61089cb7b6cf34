"""Headless Chromium smoke test: start the real server, open every page, fail on any exception.

Needs Debian's chromium (`apt-get install chromium`); `.ci/run` installs it. Screenshots are
saved to artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import pytest

from tests.browser_utils import (
    assert_no_exception,
    requires_chromium,
    screenshot,
    settle,
)

PAGES = {
    "overview": "",
    "train": "train",
    "compare": "compare",
    "cam": "cam",
    "distances": "distances",
    "embeddings": "embeddings",
    "report": "report",
    "upload": "upload",
    "deck": "deck",
}

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture
def server(browser_server) -> str:
    return browser_server[0]  # the server the tour uses too (tests/pages/conftest.py)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_opens_without_exception(server, browser, name) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/{PAGES[name]}")
    settle(page)
    screenshot(page, name)
    assert_no_exception(page)
    assert not errors, errors
    page.close()
