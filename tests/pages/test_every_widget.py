"""Every choice on every page, tried: each option of each select box, radio, segmented control,
pill row and toggle, with the shipped demo runs and one freshly trained tiny run.

The widgets are discovered from the page as AppTest sees it after each run, never listed here, so
a new widget or option is tried the day it ships. Each option is tried against the defaults of
the other widgets, then the widget goes back to its default. A choice that reveals widgets (the
"Compare two runs" view's "Before" picker, a metric's parameters) has all of theirs tried at once,
and a toggle switched on has the widgets after it in its block tried again under it (the CAM
page's "Compare" switch gates the comparison), down to ``MAX_DEPTH`` levels.

Runs: a page with a run picker is toured with every run chosen in turn, the fresh run first, and
the options are shared out among the runs (a seeded spread), so each run tries its share; a second
pass tries what no run's share reached (an option only some runs offer: a target domain, a
bottleneck layer). Every option is tried once per page; ``VIZCORE_TOUR=full`` tries every option
with every run (about three times as long: for a release, not for every push).

What is made smaller, replaced or left out here, and why: ``SMALL``, ``SMALL_DATA``, ``ON_FRESH_RUN``,
``TRIED_ELSEWHERE``, ``STAND_INS`` and ``NOT_CHOICES`` below.

A view that no test chose once shipped a NameError; this test chooses every view.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Widget

from pages._shared import run_label
from tests.paths import APP
from vizcore.metrics import list_metrics, metric_info
from vizcore.store.runs import DEMO_ROOT, RunStore
from vizcore.views import distances as dv

PAGES = sorted(
    str(p.relative_to(Path(APP).parent)) for p in Path(APP).parent.glob("pages/[!_]*.py")
)
CHOICES = ("selectbox", "radio", "button_group", "toggle")  # the widgets whose options are tried
MAX_DEPTH = 2  # choices revealed by a choice are tried, and the ones those reveal; no deeper
TRACEBACK = "Traceback (most recent call last)"
FULL = os.environ.get("VIZCORE_TOUR") == "full"

# Shown settings that keep every computation small, set wherever a page shows them (by label). They
# shrink samples only: every view is still drawn in full.
SMALL = {
    "Samples per class": 20,  # Class distances: 20 per class, not min(100, smallest class)
    "Permutations (p-values)": 0,  # no permutation tests (tests/metrics/test_distances.py has them)
    "Points per domain": 100,  # Embeddings: 100 per domain, not 500 (t-SNE needs 91 at least)
}
# Data sizes no widget shows, made small for this test (fixture ``small_data``).
SMALL_DATA = {
    "explained test images": 12,  # CAM page, methods other than CAM: the first 12, not 500
    "train split images": 400,  # Class distances, train split: 400 of the 8,000 bundled digits
}

LEARNED = frozenset(
    dv.grouped_label(m) for m in list_metrics() if metric_info(m).family == "learned"
)
# (page, widget label) -> options tried on the fresh run only, even with VIZCORE_TOUR=full: seconds
# each (the widgets are drawn on every page's first view, so the fresh run always offers them)
ON_FRESH_RUN: dict[tuple[str, str], frozenset[str]] = {
    # one forward pass per channel and image: longest on the wider cluttered-MNIST network
    ("pages/cam.py", "Method"): frozenset({"Score-CAM"}),
    # a learned measure trains a small model per class pair and fold, even at 20 per class
    ("pages/distances.py", "Metric"): LEARNED,
}
# (page, widget label) -> options not tried here; where their computation is tried instead
TRIED_ELSEWHERE: dict[tuple[str, str], frozenset[str]] = {
    # the same dv.class_matrix call as the "Metric" choice, which tries every learned measure; the
    # page's code after it does not depend on which measure is second
    ("pages/distances.py", "Second metric"): LEARNED,
}
# Computations this test replaces by cheap ones (fixture ``stand_ins``); the pages' code runs as is.
STAND_INS = {
    "pages/embeddings.py, Method = UMAP": "PCA's layout: importing umap-learn compiles numba code "
    "for 15-30 s (tests/embed/test_embed.py runs UMAP itself)",
    "pages/cam.py, Faithfulness, Score ...": "scores made from the maps' means: ROAD's imputation "
    "takes seconds per method even on a few images (tests/views/test_explanation_views.py checks them)",
}
# Buttons that compute, pressed on the fresh run (other buttons: NOT_CHOICES).
PRESS = {"pages/cam.py": ("Score ",)}  # scores every explanation method not yet scored
# What is not tried here, and where it is.
NOT_CHOICES = {
    "the Train form's widgets": "act on submit only, which trains (tests/pages/test_app.py, each method)",
    "Build report": "builds every section (tests/views/test_report.py, tests/pages/test_tour.py)",
    "file uploaders, Save as run": "need a file (tests/views/test_uploads.py, tests/pages/test_tour.py)",
    "number inputs, sliders, multiselects": "values rather than views (set to SMALL where it counts)",
}


@dataclass(frozen=True)
class Choice:
    """One widget as the page drew it: its identity, options (as labels) and current choice."""

    ident: str  # the widget's key, or its kind and label when it has none
    kind: str
    label: str
    options: tuple[Any, ...]  # labels as the browser shows them; (False, True) for a toggle
    current: Any  # the chosen label; a tuple of labels for a multi-select pill row
    multi: bool
    widget_id: str


def _label(w: Any) -> str:
    return str(getattr(w, "label", "") or "")


def _choice(w: Any) -> Choice:
    ident = w.key or f"{w.type}:{_label(w)}"
    if w.type == "toggle":
        return Choice(ident, w.type, _label(w), (False, True), bool(w.value), False, w.id)
    if w.type == "button_group":
        multi, chosen = not w._is_single_select, tuple(w.formatted_values)
        current = chosen if multi else (chosen or (None,))[0]
        return Choice(ident, w.type, _label(w), tuple(w.options), current, multi, w.id)
    options = tuple(w.options)
    # AppTest gives no index for the value None, which may be an option ("—": no second domain)
    current = options[w.index] if w.value is not None else _format_none(w)
    return Choice(
        ident, w.type, _label(w), options, current if current in options else None, False, w.id
    )


def _format_none(w: Any) -> str | None:
    try:
        return w.format_func(None)
    except Exception:  # noqa: BLE001 — a format function made for real options only
        return None


def _choosable(node: Any) -> bool:
    """A widget the tour chooses for: a choice, not in a form, not disabled."""
    return isinstance(node, Widget) and node.type in CHOICES and not (node.form_id or node.disabled)


def _choices(at: AppTest) -> dict[str, Choice]:
    """The choices a user can make now, in page order (sidebar first)."""
    out: dict[str, Choice] = {}
    for block in (at.sidebar, at.main):
        for node in block:
            if _choosable(node):
                out.setdefault(_choice(node).ident, _choice(node))
    return out


def _after(at: AppTest, widget_id: str) -> set[str]:
    """The choices drawn after widget ``widget_id`` in the block that holds it."""
    for block in (at.sidebar, at.main):
        for node in block:
            children = list(node.children.values()) if isinstance(node, Block) else []
            ids = [getattr(c, "id", None) for c in children]
            if widget_id in ids:
                later = children[ids.index(widget_id) + 1 :]
                return {_choice(n).ident for c in later for n in c if _choosable(n)}
    return set()


def _problems(at: AppTest) -> list[str]:
    """Exceptions, and traceback text anywhere on the page."""
    found = [f"exception: {e.value}" for e in at.exception]
    for block in (at.sidebar, at.main):
        found += [f"traceback in {n.type}: {n.value[:300]}" for n in block
                  if isinstance(getattr(n, "value", None), str) and TRACEBACK in n.value]  # fmt: skip
    return found


def _apply(at: AppTest, changes: list[tuple[Choice, Any]]) -> None:
    """Rerun the page as the browser does after a click: every widget's state, with each choice of
    ``changes`` set to its option by label (what the frontend sends: Streamlit reads a choice back
    by its label, so no option's value needs to be known here), and SMALL wherever it is shown."""
    for node in at.main:
        small = SMALL.get(_label(node))
        if isinstance(node, Widget) and small is not None and node.value != small:
            node.set_value(small)
    states: WidgetStates = at._tree.get_widget_states()
    for choice, option in changes:
        state = next((s for s in states.widgets if s.id == choice.widget_id), None)
        if state is None:
            state = states.widgets.add()
            state.id = choice.widget_id
        if choice.kind == "toggle":
            state.bool_value = bool(option)
        elif choice.kind != "button_group":
            state.string_value = option
        elif choice.multi:
            state.string_array_value.data[:] = list(option)
        else:
            state.string_array_value.data[:] = [] if option is None else [option]
    at._run(states)


def _options(choice: Choice) -> list[Any]:
    """Every option other than the current one (for a pill row: each option alone, and none)."""
    options = [(o,) for o in choice.options] + [()] if choice.multi else list(choice.options)
    return [o for o in options if o != choice.current]


@dataclass
class Tour:
    """The tour of one page: what was tried on which run, and what went wrong."""

    page: str
    at: AppTest
    fresh: str  # the fresh run's label
    picker: str = ""  # the page's run picker (chosen by tour_page, not by visit)
    runs: int = 1  # how many runs it offers
    run: str = ""  # the run chosen now ("" on a page without a picker)
    turn: int | None = None  # in the first pass, this run's place: it tries only its share
    tried: set[tuple[str, ...]] = field(default_factory=set)  # (run or "", context, widget, option)
    log: list[tuple[str, ...]] = field(default_factory=list)  # (run, context, label, option)
    restore: tuple[str, Any] | None = None  # a widget to put back to its default, and that default
    problems: list[str] = field(default_factory=list)

    def check(self, what: str) -> None:
        self.problems += [f"{self.page} [{self.run}] {what}: {p}" for p in _problems(self.at)]

    def _fresh_only(self, choice: Choice, option: Any) -> bool:
        return option in ON_FRESH_RUN.get((self.page, choice.label), ())

    def _key(self, context: str, choice: Choice, option: Any) -> tuple[str, ...]:
        every_run = FULL and not self._fresh_only(choice, option)
        return (self.run if every_run else "", context, choice.ident, str(option))

    def _wanted(self, context: str, choice: Choice, option: Any, depth: int) -> bool:
        elsewhere = option in TRIED_ELSEWHERE.get((self.page, choice.label), ())
        if elsewhere or self._key(context, choice, option) in self.tried:
            return False
        if self._fresh_only(choice, option):
            return self.run in ("", self.fresh)
        # a choice's revealed widgets are tried in full where revealed: the reveal is not repeated
        share = zlib.crc32(f"{choice.ident}\0{option}".encode()) % self.runs
        return FULL or self.turn is None or depth > 0 or share == self.turn

    def choose(self, choice: Choice, option: Any, context: str = "") -> None:
        """Choose ``option``; a widget waiting to go back to its default goes back in the same run."""
        changes = [(choice, option)]
        if self.restore is not None:
            back = _choices(self.at).get(self.restore[0])
            changes += [] if back is None else [(back, self.restore[1])]
            self.restore = None
        _apply(self.at, changes)
        self.tried.add(self._key(context, choice, option))
        self.log.append((self.run, context, choice.label or choice.ident, str(option)))
        self.check(f"{context}{choice.label or choice.ident} = {option!r}")

    def flush(self) -> None:
        """Put the widget waiting to go back to its default back now."""
        ident, default = self.restore or ("", None)
        self.restore = None
        now = _choices(self.at).get(ident)
        if now is not None and now.current != default:
            _apply(self.at, [(now, default)])
            self.check(f"{now.label or ident} back to {default!r}")

    def _now(self, ident: str, first: Choice) -> Choice | None:
        """The choice ``ident`` as drawn now. Going back to a default rides on the next click only when
        that click's widget is the one drawn with the defaults (same id), else it is done first."""
        now = _choices(self.at).get(ident)
        if self.restore is not None and (now is None or now.widget_id != first.widget_id):
            self.flush()
            now = _choices(self.at).get(ident)
        return now

    def visit(self, only: set[str] | None = None, depth: int = 0, context: str = "") -> None:
        """Try the options of every choice on the page (or of the choices ``only``), each from the
        defaults of the others; then put the choice back."""
        before = _choices(self.at)
        for ident, first in before.items():
            if ident == self.picker or (only is not None and ident not in only):
                continue
            chosen = False
            for option in _options(first):
                if not self._wanted(context, first, option, depth):
                    continue
                now = self._now(ident, first)
                if now is None:  # gone: an earlier option hid it
                    break
                self.choose(now, option, context)
                chosen = True
                if depth < MAX_DEPTH:
                    self._revealed(before, now, option, depth, context)
            if chosen and first.current is not None:
                self.restore = (ident, first.current)  # back to the default with the next click
        self.flush()

    def _revealed(
        self, before: dict, choice: Choice, option: Any, depth: int, context: str
    ) -> None:
        """Try what a choice revealed: new widgets, and under a toggle switched on, the ones after it."""
        new = set(_choices(self.at)) - set(before)
        if choice.kind == "toggle" and option:
            context += f"{choice.label} on: "
            new |= _after(self.at, choice.widget_id)
        if new:
            self.visit(new, depth + 1, context)


def _run_picker(at: AppTest, runs: list[str]) -> Choice | None:
    """The page's first run picker: a select box whose options are runs."""
    return next((c for c in _choices(at).values() if c.kind == "selectbox" and c.options
                 and set(c.options) <= set(runs)), None)  # fmt: skip


def _press(tour: Tour) -> None:
    for text in PRESS.get(tour.page, ()):
        for button in [b for b in tour.at.button if b.label.startswith(text)]:
            button.click().run()
            tour.log.append((tour.run, "", "button", button.label))
            tour.check(f"pressed {button.label!r}")


def tour_page(page: str, runs: list[str], fresh: str) -> Tour:
    """Open ``page`` and try its choices with each of ``runs`` (labels; the fresh run's is ``fresh``)."""
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page(page).run()
    tour = Tour(page, at, fresh)
    tour.check("opened")
    picker = _run_picker(at, runs)
    if picker is None:
        tour.visit()
        return tour
    offered = [r for r in runs if r in picker.options]
    tour.picker, tour.runs = picker.ident, len(offered)
    shares = [False] if FULL else [True, False]  # each run's share, then what no share reached
    for share in shares:
        for i, run in enumerate(offered):
            tour.run, tour.turn = run, (i if share else None)
            tour.choose(_choices(at)[picker.ident], run)
            tour.visit()  # ends with every widget back at its default
            if run == fresh and share == shares[0]:
                _press(tour)
    return tour


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def fresh_store(trained_run, tmp_path) -> Iterator[RunStore]:
    """The demo runs and a copy of the session's tiny trained run, in a store of this test's own
    (the views' caches are written here, not into the session's store)."""
    root = tmp_path / "runs"  # where tests/pages/conftest.py points VIZCORE_RUNS
    shutil.copytree(trained_run.path, root / trained_run.run_id)
    yield RunStore(root)


@pytest.fixture
def small_data(monkeypatch) -> None:
    """SMALL_DATA: fewer explained images, a shorter train split."""
    import vizcore.views.analysis
    import vizcore.views.explanations

    monkeypatch.setattr(vizcore.views.explanations, "N_EXPLAIN", SMALL_DATA["explained test images"])
    eval_domain = vizcore.views.analysis.eval_domain

    def shorter(config, which="source", split="test", limit=None):  # type: ignore[no-untyped-def]
        return eval_domain(
            config, which, split, SMALL_DATA["train split images"] if split == "train" else limit
        )

    monkeypatch.setattr(vizcore.views.analysis, "eval_domain", shorter)


@pytest.fixture
def stand_ins(monkeypatch) -> None:
    """STAND_INS: UMAP's layout is PCA's (and no UMAP warm-up thread); faithfulness from the maps' means."""
    from vizcore.embed.registry import EMBEDDINGS as METHODS
    from vizcore.explain.faithfulness import Faithfulness

    pca = METHODS.get("pca").run

    def layout(x, seed, init, progress, **params):  # type: ignore[no-untyped-def]
        return pca(x, seed, None, progress)

    monkeypatch.setitem(METHODS._items, "umap", replace(METHODS.get("umap"), run=layout))
    monkeypatch.setattr("vizcore.embed.methods.start_umap_warmup_thread", lambda *a, **k: None)

    def scores(model, images, maps, class_idx, **kwargs):  # type: ignore[no-untyped-def]
        m = float(maps.mean())
        return Faithfulness(m, 1 - m, m, 1 - m, 50 * m, 50 * (1 - m), len(images))

    monkeypatch.setattr("vizcore.views.explanations.faithfulness", scores)


@pytest.fixture
def in_the_click(monkeypatch) -> None:
    """The background queue runs each task as it is asked for, so every view a choice reveals is
    drawn in the same page run and its drawing code is tried too (a queued view is not drawn)."""
    from vizcore.store import tasks

    monkeypatch.setattr(tasks, "QUEUE", tasks.TaskQueue(autostart=False, inline=True))


@pytest.fixture
def compiled_once(monkeypatch) -> None:
    """One script cache for all runs, as a server keeps: AppTest makes a new one per run, so it
    compiled app.py and the page again on every click (a tenth of a second, hundreds of times)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    for module in (app_test, local_script_runner):
        monkeypatch.setattr(module, "ScriptCache", lambda: shared)


# ---------------------------------------------------------------------------------------- test


@pytest.mark.slow
def test_every_option_of_every_widget_on_every_page(
    fresh_store, small_data, stand_ins, in_the_click, compiled_once
):
    infos = [r for r in fresh_store.list() if r.status in ("complete", "stopped")]
    assert sum(r.read_only for r in infos) == len([d for d in DEMO_ROOT.iterdir() if d.is_dir()])
    fresh = next(run_label(r) for r in infos if not r.read_only)
    # the fresh run first: on a page whose default run it is, it is already chosen
    runs = [fresh] + [run_label(r) for r in infos if r.read_only]
    tours = [tour_page(page, runs, fresh) for page in PAGES]

    problems = [p for t in tours for p in t.problems]
    assert not problems, "\n".join(problems)
    for t in tours:  # every run was chosen on every page with a run picker
        assert not t.picker or {run for run, *_ in t.log} == set(runs), t.page
    pressed = [option for t in tours for _, _, label, option in t.log if label == "button"]
    assert pressed and all(o.startswith(PRESS["pages/cam.py"]) for o in pressed), pressed
    # (page, context, widget, option), and with the run chosen
    combos = {(t.page, *entry[1:]) for t in tours for entry in t.log}
    with_runs = {(t.page, *entry) for t in tours for entry in t.log}
    print(f"{len(combos)} (page, widget, option) tried, {len(with_runs)} counting the run, in "
          f"{sum(len(t.log) for t in tours)} runs of a page" + (" (VIZCORE_TOUR=full)" if FULL else ""))  # fmt: skip
