"""The one store of a run's computed results: once per entry, per weights, swept on retrain."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from vizcore.models.architecture import build_model


def test_two_sessions_asking_at_once_compute_once(copied_run) -> None:
    _, run = copied_run
    calls: list[int] = []

    def slow() -> dict[str, np.ndarray]:
        calls.append(1)
        time.sleep(0.2)  # long enough for the second asker to arrive while the first computes
        return {"x": np.arange(3)}

    got: list[dict[str, np.ndarray]] = []
    threads = [threading.Thread(target=lambda: got.append(run.cached("probe", {"a": 1}, slow))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(np.array_equal(g["x"], [0, 1, 2]) for g in got)


def test_new_weights_sweep_the_results_of_the_old(copied_run) -> None:
    _, run = copied_run
    run.cached("probe", {"a": 1}, lambda: {"x": np.zeros(2)})
    old = run.cache_dir / run.weights_digest()
    assert run.has_cached("probe", {"a": 1}) and old.is_dir()
    torch.manual_seed(5)
    run.save_weights(build_model(run.config()))  # retrained
    assert not run.has_cached("probe", {"a": 1})  # never a stale result
    run.cached("probe", {"a": 2}, lambda: {"x": np.ones(2)})
    assert [p.name for p in run.cache_dir.iterdir()] == [run.weights_digest()]  # the old folder is gone


def test_a_damaged_entry_is_recomputed(copied_run) -> None:
    _, run = copied_run
    run.cached("probe", {"a": 1}, lambda: {"x": np.zeros(2)})
    entry = run.cache_entry("probe", {"a": 1})
    entry.write_bytes(b"not an npz")
    assert np.array_equal(run.cached("probe", {"a": 1}, lambda: {"x": np.ones(2)})["x"], np.ones(2))
