"""Benchmark: how long each interaction of a user's tour takes to settle, against a one-widget app.

    python bench/interaction_latency.py                          # 3 tours of this checkout
    python bench/interaction_latency.py --ref /work/wt-before    # an older checkout (its app.py, its cwd)
    python bench/interaction_latency.py --tours 1 --only "CAM:"  # a subset of rows, for development
    python bench/interaction_latency.py --out latency.md         # also write the table as markdown

Each tour starts a new server (``streamlit run app.py``, headless, cwd = the checkout, its own
empty run store in a temporary folder, so the shipped demo runs are what is shown and every cache
is cold) and a new browser context on one headless Chromium, then takes a fixed tour of clicks:

- CAM heatmaps: first visit, switch run, explain class x3 (class 3, class 7, true), back to
  class 3 (the cached rerun of the same page), the misclassified filter, the mean-CAM tab;
- Class distances: first visit, switch run, metric, domain, order by clustering;
- Embeddings: first visit, switch method (PCA), click a target-domain point (its image and CAMs);
- Compare runs: first visit; Report: first visit, build (default options);
- Your checkpoints & images: first visit, one image uploaded on the Images tab;
- Train: first visit, a tiny run (1 epoch on 256 images, the Advanced expander's limit) until
  the page shows "Run complete".

The settle time of an interaction runs from the browser's own pointerdown / change event (caught
in the capture phase, so Playwright's actionability checks are not counted) until, in the same
``performance.now()`` clock: a rerun has started after the event (a MutationObserver on
``data-test-script-state`` records every transition, and the server's "script finished" messages
are read off the websocket, since under load React can draw "running" and "notRunning" in one
commit; so no fixed wait is added and a fast rerun is not missed), the state is ``notRunning``
again, no spinner is shown, every
visible plotly chart has drawn its SVG, and the row's expected content is there (the new figure
title, the page's heading, "Run complete", ...). The expected content also tells a rerun of the
interaction from a fragment's periodic rerun (the Train page's live panel reruns every second).
A tab switch reruns nothing: it settles when the tab's figure is drawn.

The baseline is a one-widget app (a selectbox whose value is written below it) served the same
way in the same run, on its own fresh server before each tour; five changes of its selectbox per
tour are timed the same way. Every row is the median over the tours (the baseline over all its
changes) and its ratio to the baseline. "first visit" rows open the page through the sidebar on
a fresh server, i.e. cold caches. The start-up UMAP warm-up is off (VIZCORE_UMAP_WARMUP=0, as in
the browser tests); the Embeddings page still starts its own after it has drawn.

A row whose widget or content is not found (labels may change between versions) is reported by
name and shows "n/a"; the tour goes on with the next row. Exceptions shown by the app and browser
errors are listed after the table. Needs Debian's chromium and playwright (the browser tests'
requirements). The machine is shared and noisy: the load average at start and end is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE_APP = (
    "import streamlit as st\n\n"
    'value = st.selectbox("Value", ["alpha", "bravo", "charlie", "delta", "echo"])\n'
    'st.write(f"Selected: {value}")\n'
)
BASELINE_CHANGES = ["bravo", "charlie", "delta", "echo", "alpha"]
BASELINE = "baseline: one-widget app, selectbox change"
CACHED = "CAM: class switch, cached (back to class 3)"
DROPDOWN = '[data-testid="stSelectboxVirtualDropdown"]'
VIEWPORT = {"width": 1400, "height": 2000}  # Streamlit scrolls inside the page: a tall window shows it all

# Installed before any page script: records the first input event after arm(), every script-state
# transition and every "script finished" message from the server, in the page's performance.now()
# clock. The messages matter: under load React may draw "running" and "notRunning" in one commit,
# so a trivial rerun can leave no trace in the attribute.
OBSERVER_JS = """
window.__vz = {armed: false, t0: null, states: [], finished: [], baseSince: null};
for (const ev of ['pointerdown', 'mousedown', 'keydown', 'input', 'change', 'click']) {
  document.addEventListener(ev, () => {
    const vz = window.__vz;
    if (vz.armed && vz.t0 === null) vz.t0 = performance.now();
  }, true);
}
new MutationObserver((muts) => {
  for (const m of muts) {
    window.__vz.states.push([performance.now(), m.target.getAttribute('data-test-script-state')]);
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
// ForwardMsg.script_finished is field 6, a varint (0 done, 1 compile error, 2 stopped for a rerun,
// 3 fragment run done): walk the top-level protobuf fields of each message to find it.
const scriptFinished = (buf) => {
  const b = new Uint8Array(buf);
  let i = 0;
  const varint = () => { let x = 0, s = 0, c; do { c = b[i++]; x += (c & 0x7f) * 2 ** s; s += 7; } while (c & 0x80 && i < b.length); return x; };
  while (i < b.length) {
    const tag = varint(), f = Math.floor(tag / 8), w = tag & 7;
    if (w === 0) { const v = varint(); if (f === 6) return v; }
    else if (w === 2) { const n = varint(); i += n; }  // (not i += varint(): i would be read first)
    else if (w === 1) i += 8;
    else if (w === 5) i += 4;
    else return null;
  }
  return null;
};
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (e) => {
      const t = performance.now();
      const note = (buf) => { const v = scriptFinished(buf); if (v !== null && v !== 2) window.__vz.finished.push(t); };
      if (e.data instanceof ArrayBuffer) note(e.data);
      else if (e.data instanceof Blob) e.data.arrayBuffer().then(note);
    });
  }
};
"""

STARTED_JS = """() => { const vz = window.__vz;
  return vz.states.some(([t, s]) => t >= vz.t0 && s !== 'notRunning') || vz.finished.some((t) => t >= vz.t0); }"""

POINTS = '[data-testid="stPlotlyChart"] .scatterlayer .trace .points path.point'
# The screen position of the most isolated target-domain point of panel 0 (plotly keeps each point's
# trace and index on its SVG node); else of the most isolated point of all.
PICK_POINT_JS = """
(sel) => {
  const pts = [...document.querySelectorAll(sel)].map((el) => {
    const r = el.getBoundingClientRect(), d = el.__data__, tr = el.closest('.trace')?.__data__?.[0]?.trace;
    const i = d?.i, text = tr && Array.isArray(tr.text) ? String(tr.text[i] ?? '') : '';
    const panel = tr?.customdata?.[i]?.[1];
    return {x: r.x + r.width / 2, y: r.y + r.height / 2, ok: r.width > 0,
            target: panel === 0 && text.toLowerCase().includes('target')};
  }).filter((p) => p.ok);
  if (!pts.length) return null;
  const pool = pts.some((p) => p.target) ? pts.filter((p) => p.target) : pts;
  let best = null, far = -1;
  for (const p of pool) {
    let near = Infinity;
    for (const q of pts) if (q !== p) near = Math.min(near, Math.hypot(p.x - q.x, p.y - q.y));
    if (near > far) { far = near; best = p; }
  }
  return [best.x, best.y];
}
"""

# Polled on every animation frame until the interaction has settled (or clearly failed).
SETTLED_JS = """
(a) => {
  const vz = window.__vz, now = performance.now();
  if (vz.t0 === null) return false;
  const vis = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const app = document.querySelector('[data-testid="stApp"]');
  const idle = !!app && app.getAttribute('data-test-script-state') === 'notRunning';
  const sawRun = vz.states.some(([t, s]) => t >= vz.t0 && s !== 'notRunning') || vz.finished.some((t) => t >= vz.t0);
  const spinner = [...document.querySelectorAll('[data-testid="stSpinner"]')].some(vis);
  const drawn = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].filter(vis)
    .every((c) => c.querySelector('.main-svg'));
  const expect = (a.expect || []).every((e) => {
    const els = [...document.querySelectorAll(e.sel)].filter(vis)
      .filter((el) => !e.text || el.textContent.toLowerCase().includes(e.text.toLowerCase()));
    return els.length >= (e.min || 1);
  });
  const base = idle && !spinner && drawn && (!a.rerun || sawRun);
  if (base && expect) return {ok: true, s: (now - vz.t0) / 1000, sawRun};
  if (base && a.grace_s) {
    if (vz.baseSince === null) vz.baseSince = now;
    if (now - vz.baseSince > a.grace_s * 1000)
      return {ok: false, why: 'settled, but the expected content is missing: ' + JSON.stringify(a.expect)};
  } else vz.baseSince = null;
  return false;
}
"""


class RowFailed(Exception):
    """A widget or the expected content of a row was not found."""


class NoRerun(RowFailed):
    """The action started no rerun (e.g. a click on a list that was still opening was lost)."""


def serve(app: Path, cwd: Path, runs: Path, log: Path, timeout_s: float = 120) -> contextlib.AbstractContextManager[str]:
    """``streamlit run <app>`` with ``cwd`` (a checkout's root) on a free port; yields the URL."""
    from tests.browser_utils import streamlit_server

    return streamlit_server(runs, log, timeout_s, app=app, cwd=cwd)


def digit_photo(path: Path) -> Path:
    """A hand-drawn 7 as a phone photo shows it: dark ink on light grey paper, off-centre, JPEG."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (260, 200), (210, 205, 195))
    draw = ImageDraw.Draw(img)
    draw.line([(120, 50), (215, 50), (160, 165)], fill=(40, 40, 45), width=14, joint="curve")
    img.save(path, "JPEG", quality=90)
    return path


def has(sel: str, text: str | None = None, min: int = 1) -> dict:  # noqa: A002 - mirrors the JS field
    return {"sel": sel, "text": text, "min": min}


def chart_title(text: str) -> dict:
    return has('[data-testid="stPlotlyChart"] .gtitle', text)


def heading(text: str) -> dict:
    return has("h1", text)


def main_text(text: str) -> dict:
    return has('[data-testid="stMain"]', text)


CHART = has('[data-testid="stPlotlyChart"] .main-svg')


class Tour:
    """One browser tab on one server: helpers that find widgets by their visible label and time
    one interaction each."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

    # -- finding widgets ----------------------------------------------------------------------
    def _one(self, locator, what: str, timeout_ms: int = 15_000):
        try:
            locator.first.wait_for(state="visible", timeout=timeout_ms)
        except Exception as e:  # playwright's TimeoutError
            raise RowFailed(f"{what} not found") from e
        return locator.first

    def widget(self, testid: str, label: str):
        """The widget of this kind whose label is ``label`` (exactly, else as a substring)."""
        boxes = self.page.locator(f'[data-testid="{testid}"]')
        labels = self.page.locator('[data-testid="stWidgetLabel"]')
        exact = boxes.filter(has=labels.get_by_text(label, exact=True))
        if exact.count():
            return exact.first
        return self._one(boxes.filter(has=labels.filter(has_text=label)), f"{testid} labelled {label!r}")

    def idle(self, timeout_ms: int = 180_000) -> None:
        from tests.browser_utils import IDLE

        self.page.wait_for_selector(IDLE, timeout=timeout_ms)

    # -- timing -------------------------------------------------------------------------------
    def timed(self, act: Callable[[], None], expect: list[dict] | None = None, rerun: bool = True,
              timeout_s: float = 120, grace_s: float | None = 15) -> float:  # fmt: skip
        """Seconds from the action's first input event until the app has settled (see the docstring)."""
        self.page.evaluate("window.__vz.baseSince = null; window.__vz.t0 = null; window.__vz.armed = true;"
                           "window.__vz.tPy = performance.now()")  # fmt: skip
        act()
        # an action without a DOM input event (none so far) counts from just before it
        self.page.evaluate("if (window.__vz.t0 === null) window.__vz.t0 = window.__vz.tPy; window.__vz.armed = false")
        arg = {"expect": expect or [], "rerun": rerun, "grace_s": grace_s}
        if rerun:
            try:
                self.page.wait_for_function(STARTED_JS, polling="raf", timeout=10_000)
            except Exception as e:
                seen = self.page.evaluate("JSON.stringify([window.__vz.t0, window.__vz.states.slice(-3), "
                                          "window.__vz.finished.slice(-3)])")  # fmt: skip
                raise NoRerun(f"the action started no rerun within 10 s (t0, last states, finished: {seen})") from e
        try:
            res = self.page.wait_for_function(SETTLED_JS, arg=arg, polling="raf", timeout=timeout_s * 1000).json_value()
        except Exception as e:
            raise RowFailed(f"did not settle within {timeout_s:.0f} s (expected {expect or 'idle'})") from e
        if not res["ok"]:
            raise RowFailed(res["why"])
        return float(res["s"])

    # -- interactions: each returns the settle time ---------------------------------------------
    def visit(self, link: str, title: str, expect: list[dict] | None = None, timeout_s: float = 180) -> float:
        nav = self.page.locator('[data-testid="stSidebarNav"]')
        exact = nav.get_by_role("link", name=link, exact=True)
        target = exact.first if exact.count() else self._one(nav.locator("a").filter(has_text=link), f"sidebar link {link!r}")
        return self.timed(target.click, [heading(title), *(expect or [])], timeout_s=timeout_s)

    def select(self, label: str, option: str, expect: list[dict] | None = None, timeout_s: float = 120,
               retry: bool = True) -> float:  # fmt: skip
        """Pick the option containing ``option`` in the selectbox labelled ``label``."""
        combo = self.widget("stSelectbox", label).locator('[role="combobox"]').first
        choice = self.page.get_by_role("option").filter(has_text=option).first
        for _ in range(3):  # a rerun that lands just after the click closes the list again
            # a list still closing from the last pick would take the click and lose it
            self.page.wait_for_selector(DROPDOWN, state="hidden", timeout=10_000)
            combo.click()
            try:
                choice.wait_for(state="visible", timeout=3_000)
                break
            except Exception:
                try:  # a long (virtual) list shows only some options: type to filter it
                    self.page.keyboard.type(option)
                    choice.wait_for(state="visible", timeout=3_000)
                    break
                except Exception:
                    self.page.keyboard.press("Escape")
                    self.idle()
        else:
            raise RowFailed(f"option {option!r} of selectbox {label!r} not found")
        try:
            return self.timed(choice.click, expect, timeout_s=timeout_s)
        except NoRerun:
            if retry:  # the click was lost: pick again
                self.page.keyboard.press("Escape")
                return self.select(label, option, expect, timeout_s, retry=False)
            raise

    def radio(self, label: str, option: str, expect: list[dict] | None = None) -> float:
        box = self.widget("stRadio", label)
        target = self._one(box.locator("label").filter(has_text=option), f"option {option!r} of radio {label!r}")
        return self.timed(target.click, expect)

    def toggle(self, label: str, expect: list[dict] | None = None) -> float:
        box = self._one(self.page.locator('[data-testid="stCheckbox"]').filter(has_text=label), f"toggle {label!r}")
        return self.timed(box.locator("label").first.click, expect)

    def tab(self, name: str, expect: list[dict]) -> float:
        tab = self._one(self.page.get_by_role("tab").filter(has_text=name), f"tab {name!r}")
        return self.timed(tab.click, expect, rerun=False)

    def button(self, name: str, expect: list[dict], timeout_s: float = 120, grace_s: float | None = 15) -> float:
        btn = self._one(self.page.get_by_role("button").filter(has_text=name), f"button {name!r}")
        return self.timed(btn.click, expect, timeout_s=timeout_s, grace_s=grace_s)

    def click_point(self, expect: list[dict]) -> float:
        """Click a target-domain point of the left panel, the one farthest from any other point (so the
        hover picks it and no other), hovered first as a mouse does; any point if none is found."""
        self._one(self.page.locator(f"{POINTS}"), "a point of the scatter plot")
        xy = self.page.evaluate(PICK_POINT_JS, POINTS)
        if xy is None:
            raise RowFailed("no visible point in the scatter plot")
        self.page.mouse.move(*xy)
        self.page.wait_for_timeout(300)
        return self.timed(lambda: self.page.mouse.click(*xy), expect)

    def upload(self, label: str, path: Path, expect: list[dict]) -> float:
        box = self._one(self.page.locator('[data-testid="stFileUploader"]').filter(has_text=label), f"uploader {label!r}")
        inp = box.locator('input[type="file"]').first
        return self.timed(lambda: inp.set_input_files(str(path)), expect, timeout_s=180)

    def fill(self, label: str, value: str) -> None:
        self._one(self.page.get_by_label(label), f"input {label!r}").fill(value)

    def open_expander(self, label: str) -> None:
        self._one(self.page.locator('[data-testid="stExpander"] summary').filter(has_text=label),
                  f"expander {label!r}").click()  # fmt: skip


@dataclass
class Step:
    row: str
    run: Callable[[Tour], float | None]
    needs: list[str] = field(default_factory=list)  # rows that must run first (as setup) under --only


def tour_steps(image: Path) -> list[Step]:
    def train(t: Tour) -> float:
        t.fill("Epochs", "1")
        t.open_expander("Advanced")
        t.fill("Training images", "256")
        return t.button("Train", [main_text("Run complete")], timeout_s=600, grace_s=None)

    def upload_image(t: Tour) -> float:
        t.tab("Images", [])  # client-side, not timed
        t.idle()
        visible_panel = '[data-testid="stTabPanel"]:not([hidden])'
        return t.upload("Images", image, [has(f'{visible_panel} [data-testid="stImage"]', min=2),
                                          has(f"{visible_panel} [data-testid='stPlotlyChart'] .main-svg")])  # fmt: skip

    cam = [
        Step("CAM: first visit", lambda t: t.visit("CAM heatmaps", "CAM", [chart_title("CAM of the")])),
        Step("CAM: switch run (DANN)", lambda t: t.select("Run", "dann", [chart_title("dann")])),
        Step("CAM: explain class → class 3", lambda t: t.select("Explain class", "class 3", [chart_title("class 3")])),
        Step("CAM: explain class → class 7", lambda t: t.select("Explain class", "class 7", [chart_title("class 7")])),
        Step("CAM: explain class → true", lambda t: t.select("Explain class", "true", [chart_title("true class")])),
        Step(CACHED, lambda t: t.select("Explain class", "class 3", [chart_title("class 3")]),
             needs=["CAM: explain class → class 3"]),  # fmt: skip
        Step("CAM: show misclassified", lambda t: t.select("Show", "misclassified", [CHART])),
        Step("CAM: mean-CAM tab", lambda t: t.tab("Mean CAM", [has('[role="tab"][aria-selected="true"]', "Mean"),
                                                              has('[data-testid="stTabPanel"] .main-svg')])),
    ]
    distances = [
        Step("Distances: first visit", lambda t: t.visit("Class distances", "distances", [CHART])),
        Step("Distances: switch run (DANN)", lambda t: t.select("Run", "dann", [chart_title("dann")])),
        Step("Distances: metric → cosine", lambda t: t.select("Metric", "Cosine", [main_text("Parameters of Cosine"), CHART])),
        Step("Distances: domain → target", lambda t: t.radio("Domain", "target", [chart_title("target")])),
        Step("Distances: order by clustering", lambda t: t.toggle("clustering", [CHART])),
    ]
    embeddings = [
        Step("Embeddings: first visit", lambda t: t.visit("Embeddings", "Embeddings", [CHART, has('[data-testid="stTable"]')],
                                                          timeout_s=600)),  # fmt: skip
        Step("Embeddings: method → PCA", lambda t: t.select("Method", "PCA", [chart_title("PCA")])),
        Step("Embeddings: click a point (target image)", lambda t: t.click_point([has('[data-testid="stImage"]', min=3)])),
    ]
    return [
        *cam, *distances, *embeddings,
        Step("Compare runs: first visit", lambda t: t.visit("Compare runs", "Compare", [CHART, has('[data-testid="stDataFrame"]')])),
        Step("Report: first visit", lambda t: t.visit("Report", "Report", [has("button", "Build report")])),
        Step("Report: build (default options)", lambda t: t.button("Build report", [has("button", "Download report")],
                                                                   timeout_s=600, grace_s=None)),  # fmt: skip
        Step("Upload: first visit", lambda t: t.visit("Your checkpoints", "checkpoints", [has('[data-testid="stFileUploader"]')])),
        Step("Upload: one image", upload_image),
        Step("Train: first visit", lambda t: t.visit("Train", "Train", [has("button", "Train")])),
        Step("Train: tiny run until complete", train),
    ]  # fmt: skip


def page_of(row: str) -> str:
    return row.split(":")[0]


def plan(steps: list[Step], only: list[str]) -> list[tuple[Step, bool]]:
    """The steps to take and whether each is measured. Under ``--only``, a page's first visit and
    the rows a chosen row needs run as setup."""
    if not only:
        return [(s, True) for s in steps]
    chosen = {s.row for s in steps if any(s.row.lower().startswith(p.lower()) for p in only)}
    setup = {n for s in steps if s.row in chosen for n in s.needs}
    pages = {page_of(r) for r in chosen}
    setup |= {s.row for s in steps if s.row.endswith("first visit") and page_of(s.row) in pages}
    return [(s, s.row in chosen) for s in steps if s.row in chosen | setup]


@dataclass
class Results:
    times: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tour_s: list[float] = field(default_factory=list)

    def add(self, row: str, s: float) -> None:
        self.times.setdefault(row, []).append(s)

    def fail(self, row: str, why: str) -> None:
        self.failures.setdefault(row, []).append(why)
        self.times.setdefault(row, [])


def new_tour(browser, url: str) -> Tour:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(OBSERVER_JS)
    tour = Tour(context.new_page(), url)
    tour.page.goto(url)
    tour.idle()
    return tour


def baseline_tour(browser, url: str, res: Results) -> None:
    tour = new_tour(browser, url)
    tour.page.wait_for_selector('[data-testid="stMarkdown"]', timeout=60_000)
    for value in BASELINE_CHANGES:
        try:
            res.add(BASELINE, tour.select("Value", value, [has('[data-testid="stMarkdown"]', f"Selected: {value}")]))
        except RowFailed as e:
            res.fail(BASELINE, str(e))
    tour.page.context.close()


def vizcore_tour(browser, url: str, steps: list[tuple[Step, bool]], res: Results, shots: Path | None, n: int) -> None:
    tour = new_tour(browser, url)
    tour.page.wait_for_selector('[data-testid="stDataFrame"]', timeout=120_000)  # the Overview's runs table
    for i, (step, measured) in enumerate(steps):
        t0 = time.perf_counter()
        try:
            tour.idle()
            s = step.run(tour)
            if measured and s is not None:
                res.add(step.row, s)
            status = f"{s:7.2f} s" if s is not None else "   done"
        except Exception as e:  # RowFailed, or playwright's errors: name the row, go on with the next
            why = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            if measured:
                res.fail(step.row, why)
            status = f"FAILED ({why})"
            try:
                tour.page.keyboard.press("Escape")
                tour.idle(60_000)
            except Exception:
                pass
        print(f"  tour {n + 1} | {step.row:<42} | {status} | {time.perf_counter() - t0:5.1f} s wall", flush=True)
        shown = tour.page.locator('[data-testid="stException"]')
        if shown.count():
            res.problems.append(f"tour {n + 1}, {step.row}: exception shown: {shown.first.inner_text()[:300]!r}")
        if shots:
            tour.page.screenshot(path=str(shots / f"tour{n + 1}-{i:02d}-{step.row.split(':')[0]}.png"),
                                 full_page=True)  # fmt: skip
    res.problems += [f"tour {n + 1}: {e[:300]}" for e in dict.fromkeys(tour.errors)]
    tour.page.context.close()


def table(res: Results, rows: list[str]) -> list[list[str]]:
    base = statistics.median(res.times[BASELINE]) if res.times.get(BASELINE) else None
    out = []
    for row in rows:
        t = res.times.get(row, [])
        if not t:
            out.append([row, "n/a", "n/a", "n/a", "n/a"])
            continue
        med = statistics.median(t)
        ratio = f"{med / base:.1f}" if base else "n/a"
        out.append([row, f"{med:.2f}", f"{min(t):.2f}", f"{max(t):.2f}", ratio])
    return out


def git_rev(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"  # fmt: skip
    except OSError:
        return "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tours", type=int, default=3, help="tours, each on a fresh server (default 3)")
    ap.add_argument("--ref", type=Path, default=ROOT, help="checkout to measure: its app.py, run with it as cwd")
    ap.add_argument("--out", type=Path, help="also write the table as markdown to this file")
    ap.add_argument("--only", action="append", default=[],
                    help="measure only rows starting with this prefix (repeatable), e.g. 'CAM:'")  # fmt: skip
    ap.add_argument("--shots", type=Path, help="save a screenshot after every step into this folder")
    a = ap.parse_args(argv)
    if not (a.ref.resolve() / "app.py").is_file():
        ap.error(f"{a.ref.resolve()} has no app.py")
    return a


def main() -> None:
    a = parse_args()
    from tests.browser_utils import chromium

    ref = a.ref.resolve()
    if a.shots:
        a.shots.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    res = Results()
    with tempfile.TemporaryDirectory() as td, chromium() as browser:
        tmp = Path(td)
        (tmp / "baseline").mkdir()
        base_app = tmp / "baseline" / "one_widget.py"
        base_app.write_text(BASELINE_APP)
        steps = plan(tour_steps(digit_photo(tmp / "my digit.jpg")), a.only)
        for n in range(a.tours):  # baseline and tour interleaved, so drifting load hits both alike
            with serve(base_app, base_app.parent, tmp / f"base-runs-{n}", tmp / f"base-{n}.log") as url:
                baseline_tour(browser, url, res)
            t0 = time.perf_counter()
            log = tmp / f"vizcore-{n}.log"
            with serve(ref / "app.py", ref, tmp / f"runs-{n}", log) as url:
                vizcore_tour(browser, url, steps, res, a.shots, n)
            res.tour_s.append(time.perf_counter() - t0)
            if "Traceback" in log.read_text(errors="replace"):
                res.problems.append(f"tour {n + 1}: server log has a traceback: ...{log.read_text(errors='replace')[-1500:]}")
    load1 = os.getloadavg()

    rows = [BASELINE] + [s.row for s, measured in steps if measured]
    body = table(res, rows)
    cached = res.times.get(CACHED)
    head = (f"interaction latency of {ref} ({git_rev(ref)}): median of {a.tours} tour(s), each on a fresh server "
            f"with an empty run store")  # fmt: skip
    machine = (f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average (1/5/15 min) at start "
               f"{' '.join(f'{x:.2f}' for x in load0)}, at end {' '.join(f'{x:.2f}' for x in load1)}; one tour "
               f"(server start to last row) took {statistics.median(res.tour_s):.0f} s (median)")  # fmt: skip
    names = ["row", "median s", "min s", "max s", "× baseline"]
    width = max(len(r[0]) for r in body)
    print(f"\n# {head}\n# {machine}")
    print(f"{names[0]:<{width}} | {names[1]:>8} | {names[2]:>6} | {names[3]:>6} | {names[4]:>10}")
    print("-" * (width + 44))
    for r in body:
        print(f"{r[0]:<{width}} | {r[1]:>8} | {r[2]:>6} | {r[3]:>6} | {r[4]:>10}")
    notes = []
    if cached:
        c = statistics.median(cached)
        for row in rows:
            if row.startswith("CAM: explain class") and res.times.get(row):
                notes.append(f"{row} / cached class switch: {statistics.median(res.times[row]) / c:.1f}× "
                             f"(goal ≤ 2×)")  # fmt: skip
    over = [r[0] for r in body[1:] if r[1] != "n/a" and float(r[1]) > 1.0]
    notes.append(f"rows over 1 s: {len(over)} of {len(body) - 1}" + (f" ({', '.join(over)})" if over else ""))
    for row, whys in res.failures.items():
        notes.append(f"{row}: failed {len(whys)}× — {whys[0]}")
    notes += res.problems
    print("\n" + "\n".join(notes))
    if a.out:
        md = [f"{head}; {machine}.", "", "| " + " | ".join(names) + " |", "|" + "---|" + "---:|" * 4]
        md += ["| " + " | ".join(r) + " |" for r in body]
        md += [""] + [f"- {n}" for n in notes]
        a.out.write_text("\n".join(md) + "\n")
        print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
