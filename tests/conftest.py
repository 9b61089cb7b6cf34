"""Shared fixtures: a tiny seeded model, a tmp run store and one tiny trained run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vizcore.core.config import TrainConfig
from vizcore.store.runs import RunStore
from vizcore.train.loop import train

ROOT = Path(__file__).resolve().parent.parent
# AppTest runs app.py in this process: no minute-long UMAP compilation in the background
os.environ["VIZCORE_UMAP_WARMUP"] = "0"
os.environ["VIZCORE_RUNS_WARMUP"] = "0"  # nor the loading of the runs' analyses at start
os.environ["VIZCORE_OFFLINE"] = "1"  # the Your data page never probes for a network in a test

# Small enough to train in a few seconds on 2 cores, large enough to learn something.
TINY = TrainConfig(
    source="mnist", epochs=1, batch_size=64, lr=0.1, schedule="constant", train_limit=2048, test_limit=256, log_every=4
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a browser is slow: the fast lane (-m "not slow") runs no browser."""
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs", demo_root=None)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """A store holding one complete tiny mnist run (trained once per test session)."""
    s = RunStore(tmp_path_factory.mktemp("trained") / "runs", demo_root=None)
    events = list(train(TINY.replace(epochs=2), s))
    assert events[-1].status == "complete", events[-1].message
    return s


@pytest.fixture(scope="session")
def trained_run(trained_store: RunStore):
    return trained_store.get(trained_store.run_ids()[0])


@pytest.fixture
def copied_run(trained_run, store: RunStore):
    """(store, run): a copy of the session's tiny trained run in a store of this test's own, so a
    test may write its caches, retrain or delete it."""
    import shutil

    store.root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(trained_run.path, store.root / trained_run.run_id)
    return store, store.get(trained_run.run_id)


@pytest.fixture(autouse=True)
def _background_queue(monkeypatch: pytest.MonkeyPatch):
    """A background queue whose worker never starts: a test sees what a page asked for (and may
    run it with ``run_next``) instead of a thread scoring methods behind its back."""
    from vizcore.store import tasks

    queue = tasks.TaskQueue(autostart=False)
    monkeypatch.setattr(tasks, "QUEUE", queue)
    return queue


@pytest.fixture
def unscored_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``make(run_id)`` copies a shipped demo run, without its faithfulness scores, into the test's
    run store ($VIZCORE_RUNS) under the same id, which then stands for the demo: a run whose
    scores a page must ask for. The demo runs themselves ship every method's scores."""
    import shutil

    from vizcore.store.runs import DEMO_ROOT

    def make(run_id: str) -> str:
        root = Path(os.environ.get("VIZCORE_RUNS") or tmp_path / "runs")
        shutil.copytree(DEMO_ROOT / run_id, root / run_id, ignore=shutil.ignore_patterns("faithfulness-*"))
        monkeypatch.setenv("VIZCORE_RUNS", str(root))
        return run_id

    return make


@pytest.fixture
def forward_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Counts every model forward pass in this process, whoever makes it."""
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    import streamlit as st

    from vizcore.models import MODELS

    st.cache_resource.clear()
    st.cache_data.clear()
    count = [0]
    for name in MODELS:
        cls = MODELS.get(name)
        original = cls.forward_features

        def counted(self, x, _original=original):  # type: ignore[no-untyped-def]
            count[0] += 1
            return _original(self, x)

        monkeypatch.setattr(cls, "forward_features", counted)
    return count
