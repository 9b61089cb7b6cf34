"""Two people training at once: each gets their own run, and sees only their own job in full."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import TINY
from tests.paths import APP
from vizcore.app.jobs import MANAGER, JobManager
from vizcore.store.runs import RunStore

QUICK = TINY.replace(train_limit=256, test_limit=64, log_every=2)


@pytest.mark.slow
def test_two_owners_train_at_the_same_time(store: RunStore) -> None:
    jobs = JobManager()
    barrier = threading.Barrier(2)
    started = {}

    def start(owner: str, seed: int) -> None:
        barrier.wait()  # both start together, so their training overlaps
        started[owner] = jobs.start(QUICK.replace(seed=seed, name=owner), store, owner=owner)

    threads = [threading.Thread(target=start, args=(o, s)) for o, s in (("alice", 1), ("bob", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = started["alice"], started["bob"]
    assert a.run_id and b.run_id and a.run_id != b.run_id
    assert jobs.jobs(owner="alice", alive_only=False) == [a] and jobs.jobs(owner="bob", alive_only=False) == [b]
    for job in (a, b):
        jobs.wait(job.run_id, timeout=120)
        assert job.error is None
    runs = {r.run_id: r for r in store.list()}
    assert {runs[a.run_id].status, runs[b.run_id].status} == {"complete"}
    assert (runs[a.run_id].label, runs[b.run_id].label) == ("alice", "bob")
    assert runs[a.run_id].seed == 1 and runs[b.run_id].seed == 2


def _session() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def _start_training(at: AppTest, name: str) -> str:
    at.number_input[0].set_value(1)  # epochs
    [n for n in at.number_input if "Training images" in n.label][0].set_value(500)
    [t for t in at.text_input if "Run name" in t.label][0].set_value(name)
    at.button[0].click().run()  # the form's Train button
    assert not at.exception, at.exception
    return at.session_state["watch"]


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


@pytest.fixture
def shared_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    import pages._shared as shared

    s = RunStore(tmp_path / "runs", demo_root=None)
    monkeypatch.setattr(shared, "store", lambda: s)
    st.cache_resource.clear()
    return s


@pytest.fixture
def cleanup_jobs():
    """Stop and join every job a test started: a training thread alive at exit aborts the process."""
    before = set(map(id, MANAGER.jobs(alive_only=False)))
    yield
    for job in MANAGER.jobs(alive_only=False):
        if id(job) not in before and job.run_id:
            MANAGER.stop(job.run_id)
            MANAGER.wait(job.run_id, timeout=120)


def _wait_complete(s: RunStore, rids: list[str]) -> None:
    for rid in rids:
        MANAGER.wait(rid, timeout=150)
    deadline = time.time() + 10  # the status file is written just after the thread's last event
    while {s.get(r).status()["status"] for r in rids} != {"complete"} and time.time() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_two_browser_sessions_train_and_watch_their_own_runs(shared_store: RunStore, cleanup_jobs) -> None:
    alice, bob = _session(), _session()
    assert alice.session_state["session_id"] != bob.session_state["session_id"]
    rid_a = _start_training(alice, "alice's run")
    rid_b = _start_training(bob, "bob's run")
    assert rid_a != rid_b
    assert [j.run_id for j in MANAGER.jobs(owner=alice.session_state["session_id"], alive_only=False)] == [rid_a]
    assert [j.run_id for j in MANAGER.jobs(owner=bob.session_state["session_id"], alive_only=False)] == [rid_b]
    _wait_complete(shared_store, [rid_a, rid_b])
    for at, rid, name in ((alice, rid_a, "alice's run"), (bob, rid_b, "bob's run")):
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["watch"] == rid
        assert f"run `{rid}`" in _captions(at)
        assert [h.value for h in at.subheader] == [name]
        assert any("complete" in s.value for s in at.success)
        assert shared_store.get(rid).status()["status"] == "complete"


def test_a_session_that_started_nothing_sees_other_jobs_only_as_a_count(shared_store: RunStore, cleanup_jobs) -> None:
    job = MANAGER.start(TINY.replace(epochs=5, name="someone else's run"), shared_store, owner="someone-else")
    carol = _session()
    assert MANAGER.find(job.run_id).alive, "the other job must still be training for this check"
    assert "1 other training job(s)" in _captions(carol)
    assert job.run_id not in _captions(carol), "carol's live panel shows someone else's run"
    assert not [b for b in carol.button if b.label == "Stop"], "a Stop button for someone else's job"


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="thread priorities are a Linux feature")
def test_a_job_runs_below_the_server_threads(store: RunStore) -> None:
    import os

    jobs = JobManager()
    job = jobs.start(TINY.replace(epochs=50), store)
    try:
        assert job.thread is not None and job.thread.is_alive()
        assert os.getpriority(os.PRIO_PROCESS, job.thread.native_id) == 10
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # the caller keeps its own
    finally:
        jobs.stop(job.run_id)
        jobs.wait(job.run_id, timeout=120)
