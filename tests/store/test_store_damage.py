"""A store that survives its own files and its disk: damaged run files are named and hide no
other run; a full or read-only disk is one clear line and never a run that claims weights;
a reused process id never keeps a dead run "running"."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import TINY
from tests.paths import APP
from vizcore.app import cli
from vizcore.core import atomic
from vizcore.core.atomic import StoreWriteError
from vizcore.models import create_model
from vizcore.store.info import RunDamaged
from vizcore.store.liveness import process_start
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.train.loop import train

# (file, content written over it, a word the message must name besides the file)
DAMAGE = [
    ("summary.json", '{"source_acc": 0.9,', "JSON"),  # truncated
    ("summary.json", "[1, 2]", "list"),
    ("summary.json", '{"source_acc": "high"}', "source_acc"),
    ("summary.json", '{"source_acc": 1.5}', "source_acc"),
    ("summary.json", '{"epochs_done": -1}', "epochs_done"),
    ("summary.json", '{"target_acc": NaN}', "target_acc"),
    ("summary.json", "[" * 100_000 + "]" * 100_000, "JSON"),  # nested past the parser's recursion limit
    ("status.json", '{"status": "complete", "pid": "abc"}', "pid"),
    ("status.json", '{"status": "complete", "created": "yesterday"}', "created"),
    ("status.json", '{"status": "done"}', "status"),
    ("status.json", '{"status": "running", "pid_start": "x", "pid": 1}', "pid_start"),
    ("status.json", '{"status": "complete", "message": 3}', "message"),
    ("status.json", '"complete"', "str"),
    ("status.json", "\xff\xfe garbage", "JSON"),
    ("config.json", "[1]", "list"),
    ("config.json", '{"epochs": 3, "bogus": 1}', "bogus"),
    ("config.json", '{"epochs": 3', "JSON"),
]


def _complete_run(store: RunStore) -> Run:
    return store.create(TINY, weights=create_model("lenet_gap").state_dict(), status="complete",
                        summary={"source_acc": 0.5, "epochs_done": 1, "steps": 4})  # fmt: skip


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("name", "content", "word"), DAMAGE, ids=[f"{n}:{c[:24]}" for n, c, _ in DAMAGE])
def test_a_damaged_file_is_named_and_hides_no_other_run(store: RunStore, capsys, name, content, word) -> None:
    good, bad = _complete_run(store), _complete_run(store)
    before = _digest(good.path)
    (bad.path / name).write_bytes(content.encode("utf-8", errors="surrogateescape"))

    listed = {r.run_id: r for r in store.list()}
    assert listed[good.run_id].status == "complete" and listed[good.run_id].summary["source_acc"] == 0.5
    assert listed[bad.run_id].status == "damaged"
    assert name in listed[bad.run_id].message and word in listed[bad.run_id].message

    assert cli.main(["--runs", str(store.root), "list"]) == 0
    out = capsys.readouterr().out
    assert good.run_id in out and bad.run_id in out and name in out
    assert cli.main(["--runs", str(store.root), "show", bad.run_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and name in err and len(err.strip().splitlines()) == 1
    assert cli.main(["--runs", str(store.root), "show", good.run_id]) == 0
    assert _digest(good.path) == before


@pytest.mark.parametrize("line", ["[1, 2]", "3", '"text"', "null", "{broken"])
def test_a_metrics_line_that_is_not_an_object_names_its_line(store: RunStore, line: str) -> None:
    run = store.create(TINY)
    run.append_metrics([{"kind": "start"}])
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    run.append_metrics([{"kind": "end"}])
    with pytest.raises(RunDamaged, match=r"metrics\.jsonl.*line 2"):
        run.metrics()


def test_a_torn_last_metrics_line_is_skipped(store: RunStore) -> None:
    run = store.create(TINY)
    run.append_metrics([{"kind": "start"}])
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "st')  # a crash in the middle of an append
    assert run.metrics() == [{"kind": "start"}]


def test_a_failed_metrics_append_leaves_the_file_as_it_was(store: RunStore, monkeypatch) -> None:
    run = store.create(TINY)
    run.append_metrics([{"kind": "start"}])
    before = (run.path / "metrics.jsonl").read_bytes()

    def full(label: str) -> None:
        if label == "metrics:half-written":
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "FAULT_HOOK", full)
    with pytest.raises(StoreWriteError, match="the run store is full"):
        run.append_metrics([{"kind": "step", "values": {"loss": 1.0}}])
    assert (run.path / "metrics.jsonl").read_bytes() == before


def test_every_page_shows_the_good_runs_beside_a_damaged_one(tmp_path: Path, monkeypatch) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    good = _complete_run(store)
    for name, content, _ in DAMAGE[:3] + DAMAGE[7:9]:
        (_complete_run(store).path / name).write_text(content)
    run = store.create(TINY)
    (run.path / "metrics.jsonl").write_text('[1]\n{"kind": "end"}\n')
    monkeypatch.setenv("VIZCORE_RUNS", str(store.root))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    for page in ("home", "train", "compare", "cam", "distances", "embeddings", "report", "upload"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
    at.switch_page("pages/home.py").run()
    table = at.dataframe[0].value
    status = dict(zip(table["run id"], table["status"], strict=True))
    assert list(status.values()).count("damaged") == 5 and status[good.run_id] == "complete"


# -- liveness ------------------------------------------------------------------------------
def _status(run: Run, **fields) -> str:
    (run.path / "status.json").write_text(json.dumps({"status": "running", "created": 1.0, **fields}))
    return run.status()["status"]


@pytest.mark.skipif(process_start(os.getpid()) is None, reason="no /proc: process start times are unknown")
def test_a_reused_pid_does_not_keep_a_dead_run_running(store: RunStore) -> None:
    run = store.create(TINY)
    me = os.getpid()
    assert _status(run, pid=me, pid_start=process_start(me)) == "running"
    # the same pid, but another process (as after a reboot or a wrap of the pid counter)
    assert _status(run, pid=me, pid_start=process_start(me) + 1) == "interrupted"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert _status(run, pid=int(dead.stdout)) == "interrupted"
    assert _status(run, pid=2**62) == "interrupted"  # past what the OS can hold
    assert _status(run, pid=me) == "running"  # a run written before start times were kept


def test_a_new_run_records_its_writer_start_time(store: RunStore) -> None:
    st_ = json.loads((store.create(TINY).path / "status.json").read_text())
    assert st_["pid"] == os.getpid() and st_["pid_start"] == process_start(os.getpid())


# -- a full or read-only disk ------------------------------------------------------------------
def _trace(tmp_path: Path) -> list[str]:
    labels: list[str] = []
    atomic.FAULT_HOOK = labels.append
    try:
        assert list(train(CFG, RunStore(tmp_path / "probe", demo_root=None)))[-1].status == "complete"
    finally:
        atomic.FAULT_HOOK = None
    return labels


CFG = TINY.replace(epochs=2, train_limit=128, test_limit=64, batch_size=64, log_every=1)


def _claims_are_true(run: Run) -> list[str]:
    """What the run says that its files do not back up."""
    wrong = []
    status, summary = run.status(), run.summary()
    if status["status"] == "running":
        wrong.append("still reads running")
    if status["status"] == "complete" and summary.get("epochs_done") != CFG.epochs:
        wrong.append(f"complete with {summary.get('epochs_done')} epochs")
    claims_weights = summary.get("epochs_done", 0) > 0 or "source_acc" in summary or status["status"] == "complete"
    if claims_weights:
        try:
            run.load_model()
        except Exception as e:  # noqa: BLE001
            wrong.append(f"claims weights it does not have: {e}")
    if "are kept" in status.get("message", "") and not run.has_weights():
        wrong.append("says weights are kept without weights")
    return wrong


@pytest.mark.slow
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["ENOSPC", "EROFS"])
def test_a_disk_that_fails_at_any_write_leaves_no_run_that_lies(tmp_path: Path, code: int) -> None:
    """ENOSPC at every write point of a 2-epoch run; EROFS at the first write of each file."""
    labels = [label for label in _trace(tmp_path) if not label.endswith(":renamed")]  # a rename that happened
    kinds = [label.split(":")[0] for label in labels]
    assert set(kinds) >= {"model.safetensors", "summary.json", "status.json", "metrics", "create"}
    points = range(1, len(labels) + 1)
    if code != errno.ENOSPC:
        points = [kinds.index(kind) + 1 for kind in dict.fromkeys(kinds)]
    root = tmp_path / "runs"
    store = RunStore(root, demo_root=None)
    good = _complete_run(store)
    before = _digest(good.path)
    lies = []
    for k in points:
        seen = [0]

        def fail(label: str, k: int = k, seen: list[int] = seen) -> None:
            if not label.endswith(":renamed"):
                seen[0] += 1
                if seen[0] == k:
                    raise OSError(code, os.strerror(code))

        atomic.FAULT_HOOK = fail
        try:
            events = list(train(CFG, store))
        except StoreWriteError as e:  # only the run folder's own creation may refuse, before any run exists
            assert "the run store is" in str(e)
            events = []
        finally:
            atomic.FAULT_HOOK = None
        if events:
            end = events[-1]
            assert end.kind == "end" and ("the run store is" in end.message) == (end.status == "failed")
            lies += [(labels[k - 1], why) for why in _claims_are_true(store.get(end.run_id))]
        assert _digest(good.path) == before
        assert [p for p in root.rglob(".*") if p.name != ".cache"] == [], f"leftovers after {labels[k - 1]}"
    assert lies == []


def test_a_store_that_cannot_be_written_is_one_line_on_the_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    def readonly(label: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic, "FAULT_HOOK", readonly)
    root = tmp_path / "runs"
    assert cli.main(["--runs", str(root), "train", "--epochs", "1", "--train-limit", "128", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run store is read-only") and len(err.strip().splitlines()) == 1
    assert [p for p in root.iterdir()] == []  # no run, no hidden half-made folder
