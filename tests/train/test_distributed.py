"""Data-parallel training over processes: slicing, refusals, and two gloo processes against one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from tests.paths import ROOT
from vizcore.store.runs import RunStore
from vizcore.train import distributed
from vizcore.train.loop import train


def test_each_process_takes_every_size_th_row_of_the_global_batch() -> None:
    batch = torch.arange(8)
    parts = [distributed.World(r, 2, r).shard(batch).tolist() for r in range(2)]
    assert parts == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_world_comes_from_torchrun_environment(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.current_world() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = distributed.current_world()
    assert (w.rank, w.size, w.local_rank, w.is_main) == (3, 4, 1, False)
    assert distributed.device_for(w, torch.device("cuda")) == torch.device("cuda", 1)


def test_a_batch_the_processes_cannot_share_is_refused_before_a_run_exists(monkeypatch, store) -> None:
    with pytest.raises(ValueError, match=r"batch size 100 cannot be split evenly over 3 processes.*99 or 102"):
        distributed.check_batch(distributed.World(0, 3, 0), 100)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="cannot be split evenly"):
        list(train(TINY.replace(batch_size=100), store))
    assert store.run_ids() == []


def _torchrun(tmp_path: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIZCORE_RUNS": str(tmp_path / "ddp"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "VIZCORE_RUNS_WARMUP": "0"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *cmd],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


ARGS = ["train", "--source", "mnist", "--epochs", "1", "--train-limit", "512", "--test-limit", "128", "--batch-size",
        "64", "--lr", "0.05", "--schedule", "constant", "--no-batch-norm", "--seed", "3", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_a_rank_that_dies_leaves_no_run_that_looks_complete(tmp_path) -> None:
    out = _torchrun(tmp_path, str(ROOT / "tests" / "ddp_dying_rank.py"), *ARGS)
    assert out.returncode != 0
    store = RunStore(tmp_path / "ddp", demo_root=None)
    runs = [store.get(r) for r in store.run_ids()]
    assert len(runs) == 1  # rank 0's run; rank 1 never wrote one
    st = runs[0].status()
    assert st["status"] in ("failed", "interrupted")
    assert st["status"] == "interrupted" or "training over 2 processes broke off" in st["message"]
    assert not (runs[0].path / "model.safetensors").exists()  # no epoch ended: no weights claimed


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["digits in memory", "folder streamed"])
def test_two_gloo_processes_train_the_weights_of_one_process(tmp_path, streamed: bool) -> None:
    """torchrun with 2 CPU processes: rank 0 alone writes the run, whose weights are those of one
    process with the same global batch (a model without BatchNorm, whose statistics would be
    per process on the CPU), to float32 summation-order precision. Streamed, each process reads
    only its own slice of every batch from the files, by a worker; the one process reads the
    folder in memory."""
    args = ARGS
    if streamed:
        from tests.data.test_feeds import _digit_folder

        folder = _digit_folder(tmp_path / "digits", 64)  # 640 files: 512 for training after the 80/20 split
        args = [*ARGS, "--source", folder, "--input-shape", "1,28,28", "--data-path", "stream", "--workers", "1"]
    out = _torchrun(tmp_path, "-m", "vizcore", *args)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    ddp_store = RunStore(tmp_path / "ddp", demo_root=None)
    assert len(ddp_store.run_ids()) == 1  # the other rank never touched the store
    ddp_run = ddp_store.get(ddp_store.run_ids()[0])
    assert ddp_run.status()["status"] == "complete"
    summary = json.loads((ddp_run.path / "summary.json").read_text())
    assert summary["processes"] == 2

    one = RunStore(tmp_path / "one", demo_root=None)
    cfg = ddp_run.config()
    end = list(train(cfg.replace(input_shape=None if not streamed else cfg.input_shape, data_path="memory"), one))[-1]
    assert end.status == "complete", end.message
    a = ddp_run.load_model().state_dict()
    b = one.get(one.run_ids()[0]).load_model().state_dict()
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst


def test_a_gpu_out_of_memory_names_a_batch_size_to_try(monkeypatch, store) -> None:
    from vizcore.methods.base import Method

    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Method, "step", no_memory)
    end = list(train(TINY.replace(batch_size=64), store))[-1]
    assert end.status == "failed"
    assert "ran out of memory at batch size 64; try --batch-size 32" in end.message


@pytest.mark.slow  # torchrun in a subprocess
def test_a_port_in_use_is_a_clear_refusal_before_a_run_exists(tmp_path) -> None:
    """Rank 0 of a group started by hand (no torchrun agent holding the port) finds its meeting
    port taken: the command says what to change, exits 2, and leaves no run folder."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "VIZCORE_RUNS": str(tmp_path / "runs")}  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "vizcore", "train", "--train-limit", "64", "--test-limit", "16",
                              "--epochs", "1", "--batch-size", "16", "--quiet"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"port {port}" in out.stderr and "--standalone" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
