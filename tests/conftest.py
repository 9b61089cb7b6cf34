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
