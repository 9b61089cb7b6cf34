"""Imports in two threads at once: the start-up warm-up and a page must not import scikit-learn (or
torch, or any package whose modules import each other) at the same time.

Python's import locks do not keep apart a thread still running a package's ``__init__`` and a thread
importing a module inside that package: the second finds the package in ``sys.modules``, imports the
inner module, and the two wait on each other until Python breaks the deadlock by handing one of them
a half-initialised module. Opening the Compare page while the warm-up imported scikit-learn raised
``ImportError: cannot import name 'clone' from partially initialized module 'sklearn.base'``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from tests.paths import ROOT

# Runs in a fresh interpreter (nothing imported yet). The warm-up thread is held inside
# scikit-learn's package __init__, just before it imports sklearn.base, until the page imports
# sklearn.base itself (or 5 s pass): the exact interleaving of the failure, made to happen every time.
RACE = r"""
import importlib.abc, importlib.machinery, json, os, sys, tempfile, threading

os.environ.update(VIZCORE_RUNS=tempfile.mkdtemp(), VIZCORE_RUNS_WARMUP="1", VIZCORE_UMAP_WARMUP="0")
import vizcore.app.warmup as warmup

warmup.RUNS_DELAY_S = 0.0  # the warm-up starts with the first page
held, page_importing = threading.Event(), threading.Event()


class Held(importlib.abc.Loader):
    # runs a module only once the page imports sklearn.base (or 3 s have passed); not in find_spec,
    # which Python calls under its global import lock: waiting there would stop every import
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sklearn.append(sys.modules["sklearn"])  # the package the warm-up is initialising
        held.set()
        page_importing.wait(3)
        self.loader.exec_module(module)


class Interleave(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        warm_up = threading.current_thread().name == "vizcore-warmup"
        if name == "sklearn.base" and not warm_up:
            page_importing.set()
        if name != "sklearn.__check_build" or not warm_up:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        spec.loader = Held(spec.loader)
        return spec


sklearn = []
sys.meta_path.insert(0, Interleave())
from streamlit.testing.v1 import AppTest

at = AppTest.from_file("app.py", default_timeout=120).run()  # the Overview; app.py schedules the warm-up
held.wait(60)
at.switch_page("pages/compare.py").run()
warmup._SCHEDULED.join(120)  # the warm-up done (a daemon thread still in torch at exit aborts the process)
whole = bool(sklearn) and sys.modules.get("sklearn") is sklearn[0] and hasattr(sklearn[0], "clone")
print(json.dumps({"warm-up held": held.is_set(), "page imported beside it": page_importing.is_set(),
                  "exceptions": [e.value for e in at.exception], "errors": [e.value for e in at.error],
                  "scikit-learn imported once, whole": whole}))
"""


@pytest.mark.slow  # a fresh interpreter imports torch and scikit-learn
def test_a_page_opened_while_the_warm_up_imports_scikit_learn_waits_for_it() -> None:
    out = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["warm-up held"], "the warm-up reached scikit-learn's import"
    # the hazard itself, whichever of the two threads then gets the half-made module (the page, as
    # above, or the warm-up, which swallows its error and leaves scikit-learn to be imported again)
    assert not result["page imported beside it"], "it imported scikit-learn beside the warm-up"
    assert result["exceptions"] == [] and result["errors"] == [], result
    assert result["scikit-learn imported once, whole"], result


# What the pages import at their top, after the warm-up's imports: nothing new but the pages' own
# modules, so a page never imports a package beside the warm-up (or beside another page).
PAGE_IMPORTS = r"""
import ast, importlib, json, sys
from pathlib import Path

import streamlit  # the server's own
import vizcore.app.warmup as warmup

warmup.import_shared()
before = set(sys.modules)
for source in [Path("app.py"), *sorted(Path("pages").glob("*.py"))]:
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            importlib.import_module(node.module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.slow  # a fresh interpreter imports torch and scikit-learn
def test_the_warm_up_imports_everything_the_pages_import() -> None:
    out = subprocess.run([sys.executable, "-c", PAGE_IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    new = json.loads(out.stdout.strip().splitlines()[-1])
    assert [m for m in new if not m.startswith("pages")] == [], "import these in vizcore.app.warmup too"


def _held() -> bool:
    """Is IMPORT_LOCK held? (asked from a thread of its own, without waiting)"""
    from vizcore.app.warmup import IMPORT_LOCK

    free: list[bool] = []

    def probe() -> None:
        got = IMPORT_LOCK.acquire(blocking=False)
        free.append(got)
        if got:
            IMPORT_LOCK.release()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return not free[0]


def test_pages_take_turns_only_until_the_shared_modules_are_in(monkeypatch) -> None:
    from vizcore.app import warmup

    monkeypatch.setattr(warmup, "_IMPORTED", threading.Event())
    monkeypatch.setattr(warmup, "shared_modules", lambda: ("json", "vizcore.not_a_module"))
    with warmup.imports_in_turn():
        assert _held()  # a page run holds the lock while modules are missing
    assert not warmup._IMPORTED.is_set()
    monkeypatch.setattr(warmup, "shared_modules", lambda: ("json",))
    with warmup.imports_in_turn():  # this page run finds everything imported...
        pass
    with warmup.imports_in_turn():
        assert not _held()  # ...and from then on pages run without the lock


def test_the_warm_up_imports_under_the_lock(monkeypatch) -> None:
    from vizcore.app import warmup

    monkeypatch.setattr(warmup, "_IMPORTED", threading.Event())
    monkeypatch.setattr(warmup, "shared_modules", lambda: ("json",))
    held: list[bool] = []
    monkeypatch.setattr(
        warmup, "importlib", SimpleNamespace(import_module=lambda name: held.append(_held()))
    )
    warmup.import_shared()
    assert held == [True] and warmup._IMPORTED.is_set()


def test_a_page_starts_umaps_warm_up_only_once_the_shared_modules_are_in(monkeypatch) -> None:
    from vizcore.app import warmup
    from vizcore.embed import methods as embed

    started: list[str] = []
    monkeypatch.setattr(embed, "start_umap_warmup_thread", lambda: started.append("umap"))
    monkeypatch.setattr(warmup, "_IMPORTED", threading.Event())
    warmup.start_umap_warmup()  # umap-learn's import would run beside the warm-up's
    assert started == []
    warmup._IMPORTED.set()
    warmup.start_umap_warmup()
    assert started == ["umap"]
