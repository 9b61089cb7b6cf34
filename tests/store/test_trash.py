"""Deleting a run moves it to the store's trash in one rename; restoring moves it back. Demo runs
and hostile ids are refused, and a restore never puts one run over another."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import TINY
from tests.paths import APP
from vizcore.app import cli
from vizcore.store.info import InvalidRunId, RunExists, RunNotFound
from vizcore.store.runs import TRASH_DIR, RunStore


def _digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def full_run(store: RunStore):  # type: ignore[no-untyped-def]
    """A complete run with weights, a summary, metrics and a cached analysis."""
    run = store.create(TINY.replace(name="kept"), weights={"w": torch.arange(6.0)}, summary={"source_acc": 0.5},
                       status="complete")  # fmt: skip
    run.append_metrics([{"kind": "step", "step": 1}])
    run.cached("probe", {"k": 1}, lambda: {"x": torch.ones(3).numpy()})
    return run


def test_delete_and_restore_round_trip_bit_identical(store: RunStore, full_run) -> None:  # type: ignore[no-untyped-def]
    rid, before = full_run.run_id, _digest(full_run.path)
    assert len(before) == 6  # config, status, summary, weights, metrics, the analysis
    where = store.delete(rid)
    assert where == store.root / TRASH_DIR / rid and _digest(where) == before
    assert store.run_ids() == [] and store.list() == []
    with pytest.raises(RunNotFound):
        store.get(rid)
    assert [(r.run_id, r.label, r.status, r.summary) for r in store.trash()] == [(rid, "kept", "complete",
                                                                                 {"source_acc": 0.5})]  # fmt: skip
    assert store.sweep_temp_files() == []  # the trash is no run and holds no temporary file to sweep
    back = store.restore(rid)
    assert back.path == store.root / rid and _digest(back.path) == before
    assert store.run_ids() == [rid] and store.trash() == []
    assert store.get(rid).summary() == {"source_acc": 0.5}


def test_restore_is_refused_when_the_id_exists_again(store: RunStore, full_run) -> None:  # type: ignore[no-untyped-def]
    rid = full_run.run_id
    store.delete(rid)
    shutil.copytree(store.root / TRASH_DIR / rid, store.root / rid)
    (store.root / rid / "summary.json").write_text(json.dumps({"source_acc": 0.9}))
    with pytest.raises(RunExists, match=f"run '{rid}' exists in .* again; it stays in the trash"):
        store.restore(rid)
    assert store.get(rid).summary() == {"source_acc": 0.9}  # the run in the store is untouched
    assert [r.run_id for r in store.trash()] == [rid]  # and the trashed one stays
    with pytest.raises(RunExists, match="the trash already holds a run"):
        store.delete(rid)  # a second run of that id is not put over the trashed one
    assert store.get(rid).summary() == {"source_acc": 0.9}


def test_an_empty_folder_of_the_id_is_not_replaced(store: RunStore, full_run) -> None:  # type: ignore[no-untyped-def]
    """os.replace puts a folder over an empty one: a restore checks for the name first."""
    rid = full_run.run_id
    store.delete(rid)
    (store.root / rid).mkdir()
    with pytest.raises(RunExists):
        store.restore(rid)
    assert list((store.root / rid).iterdir()) == []


@pytest.mark.parametrize("rid", ["..", ".", "../x", "a/b", TRASH_DIR, f"{TRASH_DIR}/x", "", "x\x00", "/etc", 5, None])
def test_hostile_ids_are_refused(store: RunStore, full_run, rid: object) -> None:  # type: ignore[no-untyped-def]
    before = _digest(store.root)
    for act in (store.delete, store.restore):
        with pytest.raises(InvalidRunId):
            act(rid)  # type: ignore[arg-type]
    assert _digest(store.root) == before


def test_links_never_take_a_run_out_of_the_store(store: RunStore, full_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    (victim / "elsewhere").mkdir(parents=True)
    (victim / "elsewhere" / "config.json").write_text("{}")
    outside = _digest(victim)
    trash = store.root / TRASH_DIR
    trash.mkdir()
    (trash / "elsewhere").symlink_to(victim / "elsewhere", target_is_directory=True)
    with pytest.raises(RunNotFound, match="in the trash"):
        store.restore("elsewhere")  # a link in the trash is no trashed run
    assert store.trash() == [] and not (store.root / "elsewhere").exists()
    (trash / "elsewhere").unlink()
    trash.rmdir()
    (store.root / TRASH_DIR).symlink_to(victim, target_is_directory=True)
    with pytest.raises(PermissionError, match="is not a folder of the run store"):
        store.delete(full_run.run_id)  # a trash that is a link would move the run out
    assert store.run_ids() == [full_run.run_id] and _digest(victim) == outside


def test_demo_runs_cannot_be_deleted(tmp_path: Path) -> None:
    demo = RunStore(tmp_path / "demo", demo_root=None).create(TINY)
    store = RunStore(tmp_path / "runs", demo_root=tmp_path / "demo")
    before = _digest(demo.path)
    with pytest.raises(PermissionError, match="demo runs cannot be deleted"):
        store.delete(demo.run_id)
    assert _digest(demo.path) == before and store.trash() == []
    with pytest.raises(RunNotFound):
        store.restore(demo.run_id)  # a demo run is never in the trash


def test_the_cli_deletes_lists_the_trash_and_restores(store: RunStore, full_run,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    rid, runs = full_run.run_id, ["--runs", str(store.root)]
    assert cli.main([*runs, "trash"]) == 0
    assert capsys.readouterr().out == "the trash is empty\n"
    assert cli.main([*runs, "delete", rid]) == 0
    assert capsys.readouterr().out == (f"moved run {rid} to the trash ({store.root / TRASH_DIR / rid}); bring it back "
                                       f"with: python -m vizcore restore {rid}\n")  # fmt: skip
    assert cli.main([*runs, "list", "--json"]) == 0
    assert rid not in [r["run_id"] for r in json.loads(capsys.readouterr().out)]
    assert cli.main([*runs, "trash", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [rid]
    assert cli.main([*runs, "trash"]) == 0
    assert rid in capsys.readouterr().out.splitlines()[1]
    assert cli.main([*runs, "restore", rid]) == 0
    assert capsys.readouterr().out == f"restored run {rid} ({store.root / rid})\n"
    assert cli.main([*runs, "restore", rid]) == 2
    assert capsys.readouterr().err == f"error: no run named '{rid}' in the trash of {store.root}\n"
    assert cli.main([*runs, "delete", "../etc"]) == 2
    assert "is not a run id" in capsys.readouterr().err
    assert store.run_ids() == [rid]


def test_a_demo_run_is_refused_by_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from vizcore.store.runs import DEMO_ROOT

    demo_id = sorted(p.name for p in DEMO_ROOT.iterdir() if (p / "config.json").exists())[0]
    assert cli.main(["--runs", str(tmp_path / "runs"), "delete", demo_id]) == 2
    assert capsys.readouterr().err == "error: demo runs cannot be deleted\n"
    assert (DEMO_ROOT / demo_id / "config.json").exists()


def test_the_overview_page_deletes_then_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIZCORE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()
    store = RunStore(tmp_path / "runs")
    other = store.create(TINY.replace(name="stays"))
    run = store.create(TINY.replace(name="to trash"), weights={"w": torch.zeros(2)}, status="complete")
    before = _digest(run.path)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    assert [e.label for e in at.expander] == ["Manage runs"]
    assert sorted(at.selectbox(key="manage_run").options) == sorted([run.run_id, other.run_id])  # no demo run
    at.selectbox(key="manage_run").set_value(run.run_id).run()
    assert at.button(key="manage_delete").disabled  # not before the confirmation
    at.checkbox(key="manage_confirm").check().run()
    at.button(key="manage_delete").click().run()
    assert not at.exception, at.exception
    assert run.run_id not in store.run_ids() and other.run_id in store.run_ids()
    assert [r.run_id for r in store.trash()] == [run.run_id]
    assert [s.value for s in at.success] == [f"Moved to the trash: `{run.run_id}`."]
    assert at.checkbox(key="manage_confirm").value is False  # the next deletion asks again
    assert at.button(key="manage_delete").disabled
    at.button(key=f"manage_restore_{run.run_id}").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == [f"Restored `{run.run_id}`."]
    assert store.trash() == [] and _digest(store.get(run.run_id).path) == before
    assert sorted(at.selectbox(key="manage_run").options) == sorted([run.run_id, other.run_id])
