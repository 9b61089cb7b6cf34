import json
import os

import numpy as np
import pytest
import torch

from vizcore.core.atomic import write_atomic, write_json_atomic
from vizcore.core.config import TrainConfig
from vizcore.models import create_model
from vizcore.store.info import RunNotFound
from vizcore.store.runs import CheckpointError, RunStore
from vizcore.store.weights import read_safetensors


def test_create_roundtrip_and_list(store: RunStore) -> None:
    cfg = TrainConfig(source="mnist", epochs=3, method_params={"a": 1}, input_shape=(1, 28, 28))
    run = store.create(cfg)
    assert run.config() == cfg
    assert run.status()["status"] == "running"
    run.append_metrics([{"kind": "step", "step": 1}])
    run.append_metrics([{"kind": "epoch", "step": 2}])
    assert [r["step"] for r in run.metrics()] == [1, 2]
    model = create_model("lenet_gap")
    run.save_weights(model)
    run.set_status("complete")
    loaded = run.load_model()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert [r.run_id for r in store.list()] == [run.run_id]
    assert not any(p.name.startswith(".") for p in store.root.iterdir())  # no leftover temp folder


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="epochz"):
        TrainConfig.from_dict({"epochz": 3})


def test_crash_mid_write_keeps_old_file(tmp_path) -> None:
    target = tmp_path / "status.json"
    write_json_atomic(target, {"status": "complete"})

    def crash(p):
        p.write_text('{"status": "runn')  # half written, then the process "dies"
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, crash)
    assert json.loads(target.read_text()) == {"status": "complete"}
    assert list(tmp_path.iterdir()) == [target]  # the temp file was cleaned up


def test_half_written_metrics_line_is_skipped(store: RunStore) -> None:
    run = store.create(TrainConfig())
    run.append_metrics([{"kind": "step", "step": 1}])
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "st')
    assert run.metrics() == [{"kind": "step", "step": 1}]


def test_running_run_of_dead_process_is_interrupted(store: RunStore) -> None:
    run = store.create(TrainConfig())
    st = json.loads((run.path / "status.json").read_text())
    st["pid"] = 2**22 + 12345  # no such process
    (run.path / "status.json").write_text(json.dumps(st))
    assert run.status()["status"] == "interrupted"
    assert run.info().status == "interrupted"


def test_corrupt_checkpoint_is_rejected_clearly(store: RunStore) -> None:
    run = store.create(TrainConfig(input_shape=(1, 28, 28)))
    (run.path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        run.load_model()


def test_truncated_checkpoint_is_rejected(store: RunStore) -> None:
    run = store.create(TrainConfig(input_shape=(1, 28, 28)))
    run.save_weights(create_model("lenet_gap"))
    data = (run.path / "model.safetensors").read_bytes()
    (run.path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        run.load_model()


def test_wrong_architecture_names_the_tensors(store: RunStore) -> None:
    run = store.create(TrainConfig(input_shape=(1, 28, 28)))
    run.save_weights(create_model("lenet_gap", in_channels=3, num_classes=5))
    with pytest.raises(CheckpointError) as e:
        run.load_model()
    msg = str(e.value)
    assert "features.0.0.weight" in msg and "(32, 3, 5, 5)" in msg and "(32, 1, 5, 5)" in msg
    assert "fc.weight" in msg


def test_nan_weights_are_rejected(store: RunStore) -> None:
    run = store.create(TrainConfig(input_shape=(1, 28, 28)))
    m = create_model("lenet_gap")
    with torch.no_grad():
        m.fc.weight[0, 0] = float("nan")
    run.save_weights(m)
    with pytest.raises(CheckpointError, match="NaN"):
        run.load_model()


def test_deleted_run_gives_clear_error(store: RunStore) -> None:
    run = store.create(TrainConfig())
    store.delete(run.run_id)
    with pytest.raises(RunNotFound, match="no longer exists"):
        run.config()
    with pytest.raises(RunNotFound):
        store.get(run.run_id)


def test_broken_run_does_not_break_the_list(store: RunStore) -> None:
    good = store.create(TrainConfig())
    bad = store.create(TrainConfig())
    (bad.path / "config.json").write_text("{not json")
    listed = {r.run_id: r for r in store.list()}
    assert listed[good.run_id].status == "running"  # the good run is untouched
    assert listed[bad.run_id].status == "damaged" and "config.json" in listed[bad.run_id].message


def test_analysis_cache_is_reused_and_keyed(store: RunStore) -> None:
    run = store.create(TrainConfig())
    run.save_weights(create_model("lenet_gap"))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(5.0)}

    a = run.cached("thing", {"p": 1}, compute)
    b = run.cached("thing", {"p": 1}, compute)
    c = run.cached("thing", {"p": 2}, compute)
    assert len(calls) == 2 and np.array_equal(a["x"], b["x"]) and np.array_equal(a["x"], c["x"])
    # the same weights with a new modification time (a copied or cloned run) keep the cache
    os.utime(run.path / "model.safetensors", ns=(1, 1))
    run.cached("thing", {"p": 1}, compute)
    assert len(calls) == 2
    # new weights invalidate it
    torch.manual_seed(1)
    run.save_weights(create_model("lenet_gap"))
    run.cached("thing", {"p": 1}, compute)
    assert len(calls) == 3


def test_read_safetensors_from_bytes() -> None:
    from safetensors.torch import save

    t = {"a": torch.arange(3.0)}
    assert torch.equal(read_safetensors(save(t))["a"], t["a"])
    with pytest.raises(CheckpointError):
        read_safetensors(b"nope")


def test_demo_runs_are_read_only(tmp_path) -> None:
    demo_root = tmp_path / "demo"
    s_demo = RunStore(demo_root, demo_root=None)
    r = s_demo.create(TrainConfig())
    s = RunStore(tmp_path / "runs", demo_root=demo_root)
    demo = s.get(r.run_id)
    assert demo.read_only
    with pytest.raises(PermissionError):
        demo.set_status("complete")
    with pytest.raises(PermissionError):
        s.delete(r.run_id)
