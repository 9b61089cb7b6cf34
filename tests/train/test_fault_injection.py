"""A training process killed at every kind of write: no run ever looks complete without
weights that load, and no other run changes.

Each training process is forked from a forkserver that has imported vizcore but run no torch
op (so its children start in well under a second and inherit no thread pool). A child counts
the fault points it passes (vizcore.core.atomic.fault_point: every atomic write's stages, the
metrics append, the run folder's rename) and SIGKILLs itself at the k-th.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import TINY
from vizcore.store.runs import RunStore

CFG = TINY.replace(epochs=2, train_limit=128, test_limit=64, batch_size=64, log_every=1, precise_bn=True)
MIN_POINTS = 20
MAX_POINTS = 24  # spread over the run's writes; every one of them costs a training process
CHILD_TIMEOUT_S = 120


def _child(root: str, kill_at: int, trace: str | None) -> None:
    import torch

    from vizcore.core import atomic
    from vizcore.train.loop import train

    torch.set_num_threads(1)
    passed: list[str] = []

    def hook(label: str) -> None:
        passed.append(label)
        if trace is not None:
            with open(trace, "a") as f:
                f.write(label + "\n")
        if len(passed) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    atomic.FAULT_HOOK = hook
    for _ in train(CFG, RunStore(root, demo_root=None)):
        pass


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _runs(root: Path) -> dict[str, dict[str, str]]:
    return {p.name: _digest(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def ctx() -> mp.context.BaseContext:
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(["vizcore.train.loop", __name__])
    return c


def _run_child(ctx: mp.context.BaseContext, root: Path, kill_at: int, trace: Path | None = None) -> int:
    p = ctx.Process(target=_child, args=(str(root), kill_at, None if trace is None else str(trace)))
    p.start()
    p.join(CHILD_TIMEOUT_S)
    if p.is_alive():
        p.kill()
        pytest.fail(f"the training child (kill point {kill_at}) did not end within {CHILD_TIMEOUT_S} s")
    return p.exitcode


@pytest.mark.slow
def test_a_kill_at_any_write_never_leaves_a_run_that_looks_complete(
    ctx: mp.context.BaseContext, tmp_path: Path, trained_run
) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained_run.path, root / trained_run.run_id)  # a good run that must not change

    # one clean run lists the fault points a training run passes
    trace = tmp_path / "trace.txt"
    assert _run_child(ctx, tmp_path / "probe", 0, trace) == 0
    labels = trace.read_text().splitlines()
    kinds = {label.split(":")[0] for label in labels}
    assert {"model.safetensors", "summary.json", "status.json", "metrics", "create"} <= kinds
    points = list(range(1, len(labels) + 1))
    if len(points) > MAX_POINTS:  # spread evenly, the first and the last included
        points = sorted({round(1 + i * (len(labels) - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)})
    assert len(points) >= MIN_POINTS

    wrongly_complete = []
    for k in points:
        others = _runs(root)
        code = _run_child(ctx, root, k)
        assert code == -signal.SIGKILL, f"kill point {k} ({labels[k - 1]}) was not reached"
        store = RunStore(root, demo_root=None)
        store.sweep_temp_files()
        after = _runs(root)
        for rid, files in others.items():  # no other run changed
            assert after[rid] == files, f"kill at {labels[k - 1]} changed run {rid}"
        leftovers = [p for p in root.rglob(".*") if p.name != ".cache"]
        assert leftovers == [], f"kill at {labels[k - 1]} left {leftovers}"
        for info in store.list():
            if info.status == "complete":
                try:
                    store.get(info.run_id).load_model()
                except Exception as e:  # noqa: BLE001
                    wrongly_complete.append((labels[k - 1], info.run_id, str(e)))
            new = [r for r in after if r not in others]
            for rid in new:
                assert store.get(rid).status()["status"] != "running", f"killed run {rid} still reads running"
    assert wrongly_complete == []
