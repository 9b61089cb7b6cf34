"""The run store as a hostile or clumsy user meets it: ids that try to leave the store,
runs that diverge, and leftovers of killed writers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from vizcore.app import cli
from vizcore.core.atomic import write_json_atomic
from vizcore.methods.source_only import SourceOnly
from vizcore.store.info import InvalidRunId, RunNotFound, check_run_id
from vizcore.store.runs import RunStore
from vizcore.train.loop import train
from vizcore.train.trainer import Trainer


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the store that looks exactly like a run."""
    v = tmp_path / "victim"
    v.mkdir()
    write_json_atomic(v / "config.json", TINY.to_dict())
    write_json_atomic(v / "status.json", {"status": "complete", "pid": -1})
    (v / "precious.txt").write_text("do not delete")
    return v


def _hostile_ids(store: RunStore, victim: Path, real_id: str) -> list[object]:
    rel = os.path.relpath(victim, store.root)
    return [
        str(victim),  # absolute
        str(victim) + "/",
        f"{real_id}/../../victim",
        f"{real_id}/../{rel}",
        rel,  # ../victim
        "..",
        ".",
        "",
        " ",
        "../" * 8 + "etc",
        "./" + real_id,
        real_id + "/",
        real_id + "/config.json",
        "a\\..\\..\\victim",
        "..%2fvictim",
        "%2e%2e%2fvictim",
        "..%252f..%252fvictim",
        real_id + "\x00",
        "\x00",
        "x" * 129,
        "x" * 5000,
        "~",
        "~/victim",
        f".{real_id}.partial",
        ".cache",
        "run\nwith-newline",
        "rún-unicode",
        "C:\\victim",
        "//victim",
        "link-out",  # a well-formed name, but a symlink in the store leading to the victim
        None,
        123,
        b"bytes-id",
        Path(victim),
    ]


def test_no_hostile_id_reads_writes_or_deletes_outside_the_store(
    store: RunStore, victim: Path, trained_run, capsys: pytest.CaptureFixture[str]
) -> None:
    real = store.create(TINY)
    (store.root / "link-out").symlink_to(victim, target_is_directory=True)
    before = _tree_digest(victim)
    ids = _hostile_ids(store, victim, real.run_id)
    assert len(ids) >= 20
    escapes = []
    for rid in ids:
        try:
            run = store.get(rid)  # type: ignore[arg-type]
        except RunNotFound:
            pass
        else:
            escapes.append(("get", rid, run.path))
        with pytest.raises(RunNotFound):
            store.delete(rid)  # type: ignore[arg-type]
        if isinstance(rid, str) and "\x00" not in rid:
            assert cli.main(["--runs", str(store.root), "show", rid]) == 2
    assert escapes == []
    assert _tree_digest(victim) == before
    assert store.get(real.run_id).path == store.root / real.run_id
    # the symlink is not listed as a run either
    assert "link-out" not in store.run_ids()
    assert "is not a run id" in capsys.readouterr().err


@pytest.mark.parametrize("rid", ["20261201-101010-dann-mnist-to-mnist-m-ab12", "demo-lenet-gap-mnist", "a", "A_b-9"])
def test_well_formed_ids_pass_the_gate(rid: str) -> None:
    assert check_run_id(rid) == rid


def test_ids_the_store_makes_always_pass_the_gate(store: RunStore) -> None:
    # a folder source with spaces, dots and non-ASCII letters in its path still gives a plain id
    run = store.create(TINY.replace(source="folder:/data/Ünïcode dir/v1.2", method="source_only"))
    assert check_run_id(run.run_id) == run.run_id
    assert run.run_id.isascii()


def test_invalid_run_id_is_both_a_lookup_and_a_value_error() -> None:
    with pytest.raises(InvalidRunId) as e:
        check_run_id("../x")
    assert isinstance(e.value, LookupError) and isinstance(e.value, ValueError)


def test_uploads_create_their_run_through_the_store(monkeypatch: pytest.MonkeyPatch, store: RunStore) -> None:
    """RunStore.create is the only code that makes run folders."""
    import inspect

    from vizcore.views import uploads

    src = inspect.getsource(uploads)
    assert ".partial" not in src and "mkdir(" not in src
    with pytest.raises(ValueError, match="without weights"):
        store.create(TINY, status="complete")


# --------------------------------------------------------------------------- divergence


def _nan_loss_from(monkeypatch: pytest.MonkeyPatch, first_bad_call: int) -> None:
    """Source-only's loss becomes NaN from its ``first_bad_call``-th call on (1-based)."""
    calls = [0]
    original = SourceOnly.loss

    def loss(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        total, logs = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] >= first_bad_call:
            total = total * float("nan")
        return total, logs

    monkeypatch.setattr(SourceOnly, "loss", loss)


STEPS_PER_EPOCH = TINY.train_limit // TINY.batch_size  # 32


def test_nan_at_the_first_step_fails_with_no_weights(monkeypatch: pytest.MonkeyPatch, store: RunStore) -> None:
    _nan_loss_from(monkeypatch, 1)
    end = list(train(TINY.replace(epochs=2), store))[-1]
    run = store.get(end.run_id)
    assert end.status == "failed" and run.status()["status"] == "failed"
    assert "step 1" in end.message and "no epoch ended with finite weights" in end.message
    assert not run.has_weights()
    assert run.summary()["epochs_done"] == 0 and run.summary()["steps"] == 0
    with pytest.raises(Exception, match="no weights"):
        run.load_model()


def test_nan_in_the_middle_of_epoch_two_keeps_epoch_one(monkeypatch: pytest.MonkeyPatch, store: RunStore) -> None:
    bad_step = STEPS_PER_EPOCH + STEPS_PER_EPOCH // 2
    _nan_loss_from(monkeypatch, bad_step)
    events = list(train(TINY.replace(epochs=3), store))
    end, run = events[-1], store.get(events[-1].run_id)
    assert end.status == "failed" and f"step {bad_step}" in end.message
    assert "weights of epoch 1" in end.message
    summary = run.summary()
    assert summary["epochs_done"] == 1 and summary["steps"] == STEPS_PER_EPOCH
    epoch1 = next(e for e in events if e.kind == "epoch")
    assert summary["source_acc"] == epoch1.values["source_acc"]  # the summary describes the kept weights
    model = run.load_model()
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_finite_loss_but_non_finite_weights_is_caught(monkeypatch: pytest.MonkeyPatch, store: RunStore) -> None:
    """An optimiser blow-up at the last step of epoch 2: its loss was finite, its weights are not."""
    original = Trainer.train_step

    def step(self, *batch):  # type: ignore[no-untyped-def]
        logs = original(self, *batch)
        if self.step == 2 * STEPS_PER_EPOCH:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return logs

    monkeypatch.setattr(Trainer, "train_step", step)
    events = list(train(TINY.replace(epochs=3), store))
    end, run = events[-1], store.get(events[-1].run_id)
    assert end.status == "failed" and "became NaN/Inf" in end.message
    assert [e.epoch for e in events if e.kind == "epoch"] == [1]
    assert run.summary()["epochs_done"] == 1
    run.load_model()  # finite: epoch 1's weights


def test_a_huge_learning_rate_never_leaves_nan_weights(store: RunStore) -> None:
    end = list(train(TINY.replace(epochs=2, lr=1e6), store))[-1]
    run = store.get(end.run_id)
    assert end.status == "failed"
    if run.has_weights():  # whatever was kept must load
        run.load_model()
    else:
        assert "no weights" in end.message


def test_zero_epochs_is_refused_before_a_run_exists(store: RunStore) -> None:
    with pytest.raises(ValueError, match="epochs"):
        list(train(TINY.replace(epochs=0), store))
    assert store.run_ids() == []


# --------------------------------------------------------------------------- leftovers


def test_leftovers_of_dead_writers_are_swept_when_the_store_opens(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = RunStore(root, demo_root=None).create(TINY)
    dead = 2**22 + 12345  # beyond the default pid_max: no such process
    mine = os.getpid()
    (run.path / f".model.safetensors.{dead}.abc123.tmp").write_bytes(b"half")
    (run.path / f".summary.json.{dead}.x_y.tmp").write_text("{")
    (run.path / f".status.json.{mine}.live.tmp").write_text("{")  # a writer still at work
    (run.path / "notes.tmp").write_text("a user's file")  # not a name the store makes
    partial = root / f".20261201-000000-x-dead.{dead}.partial"
    partial.mkdir()
    write_json_atomic(partial / "status.json", {"status": "running", "pid": dead})
    (root / f".20261201-000000-x-live.{mine}.partial").mkdir()  # being filled right now
    gone = RunStore(root, demo_root=None).sweep_temp_files()
    assert sorted(p.name for p in gone) == sorted(
        [f".model.safetensors.{dead}.abc123.tmp", f".summary.json.{dead}.x_y.tmp", partial.name]
    )
    assert (run.path / f".status.json.{mine}.live.tmp").exists()
    assert (run.path / "notes.tmp").exists()
    assert not partial.exists() and (root / f".20261201-000000-x-live.{mine}.partial").exists()
