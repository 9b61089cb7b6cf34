"""Sweeps: bad specifications refused before anything exists, resume after a kill, two workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.paths import ROOT
from vizcore.app.cli import main
from vizcore.app.sweep import SWEEP_FILE, default_storage, open_storage, run_sweep
from vizcore.app.sweep_spec import SweepError, check_spec, parse_spec
from vizcore.store.runs import RunStore

# the smallest training the suite runs: a second or so a trial on 2 cores
SETS = ["epochs=1", "batch_size=32", "train_limit=128", "test_limit=32", "schedule=constant", "log_every=2"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--grid", "lrr=0.1,0.2"], "unknown sweep parameter 'lrr'"),
        (["--grid", "lr="], "the grid of lr is empty"),
        (["--grid", "bottleneck_dim=32.5,64"], "bottleneck_dim must be a whole number"),
        (["--grid", "lr=fast"], "lr must be a finite number"),
        (["--grid", "method=ddc"], "target"),  # DDC needs a target: refused by the training checks
        (["--search", "lr=0.1:0.01", "--trials", "4"], "low < high"),
        (["--search", "lr=0.01:0.1"], "--trials"),
        (["--grid", "lr=0.1", "--objective", "accuracy"], "unknown objective"),
        (["--grid", "lr=0.1", "--set", "lr=0.2"], "both set and swept"),
        ([], "nothing to sweep"),
    ],
)
def test_bad_specs_are_refused_before_any_run_or_study_exists(tmp_path, capsys, args, words):
    root = tmp_path / "runs"
    rc = main(["--runs", str(root), "sweep", "bad", *[f"--set={s}" for s in SETS], *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert words in err and err.count("\n") == 1, err
    assert not root.exists()  # no run folder, no study file


def test_a_spec_names_every_grid_point_and_checks_a_searched_range_at_both_ends():
    spec = parse_spec("g", SETS, ["seed=0,1", "lr=0.05,0.1,0.2"], [])
    assert len(spec.points()) == 6 and {"seed": 1, "lr": 0.2} in spec.points()
    with pytest.raises(SweepError, match="batch_size"):
        check_spec(parse_spec("s", SETS[:1], [], ["batch_size=1:64"], trials=4))  # 1 is refused


def _trials(store: RunStore, name: str):
    import optuna

    study = optuna.load_study(study_name=name, storage=open_storage(default_storage(store)))
    return study.get_trials(deepcopy=False)


def _tagged(store: RunStore, name: str) -> dict[str, dict]:
    out = {}
    for rid in store.run_ids():
        f = store.root / rid / SWEEP_FILE
        if f.exists() and (tag := json.loads(f.read_text()))["sweep"] == name:
            out[rid] = tag | {"status": store.get(rid).status()["status"]}
    return out


WORKER = textwrap.dedent("""
    import os, signal, sys
    from vizcore.app.sweep import run_sweep
    from vizcore.app.sweep_spec import parse_spec
    from vizcore.core import atomic
    from vizcore.store.runs import RunStore
    kill_at = os.environ.get("KILL_AT")
    if kill_at:
        def hook(label):
            if label == "sweep:trial-started:" + kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.FAULT_HOOK = hook
    grid = sys.argv[3].split(" ")
    run_sweep(parse_spec(sys.argv[2], SETS_HERE, grid, []), RunStore(sys.argv[1], demo_root=None))
""").replace("SETS_HERE", repr(SETS))


def _worker(root: Path, name: str, grid: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), name, grid], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})  # fmt: skip


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_resumes_without_rerunning_finished_trials(tmp_path):
    root = tmp_path / "runs"
    killed = _worker(root, "k", "seed=0,1,2", KILL_AT="1")
    assert killed.wait(120) == -9
    store = RunStore(root, demo_root=None)
    before = _tagged(store, "k")
    assert sorted(t["status"] for t in before.values()) == ["complete", "interrupted"]
    first = next(rid for rid, t in before.items() if t["status"] == "complete")

    again = run_sweep(parse_spec("k", SETS, ["seed=0,1,2"], []), store)
    assert len(again) == 2  # the killed point again and the one never started; not the finished one
    after = _tagged(store, "k")
    assert first in after and after[first] == before[first]
    complete = [t["params"]["seed"] for t in after.values() if t["status"] == "complete"]
    assert sorted(complete) == [0, 1, 2]
    states = sorted(t.state.name for t in _trials(store, "k"))
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]  # the killed trial, failed once


@pytest.mark.slow
def test_two_workers_on_one_sqlite_study_never_run_the_same_point(tmp_path):
    root = tmp_path / "runs"
    grid = "seed=0,1 lr=0.05,0.1,0.2"
    workers = [_worker(root, "two", grid) for _ in range(2)]
    assert [w.wait(240) for w in workers] == [0, 0]
    store = RunStore(root, demo_root=None)
    tags = _tagged(store, "two")
    points = [json.dumps(t["params"], sort_keys=True) for t in tags.values()]
    assert len(points) == 6 and len(set(points)) == 6  # every point trained once, none twice
    trials = _trials(store, "two")
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 6
    workers_seen = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers_seen) == 2  # both did work


def test_a_study_whose_creator_died_before_queueing_the_grid_is_finished_by_the_next_worker(tmp_path):
    import optuna

    from vizcore.app.sweep import open_study

    spec = parse_spec("half", SETS, ["seed=0,1,2"], [])
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(study_name="half", storage=storage, direction="maximize")
    study.set_user_attr("spec", spec.to_json())
    study.enqueue_trial({"seed": 0})  # the creator died here
    again = open_study(spec, storage, wait_s=0)
    queued = [t.system_attrs["fixed_params"] for t in again.get_trials(deepcopy=False)]
    assert sorted(q["seed"] for q in queued) == [0, 1, 2]
    other = parse_spec("half", SETS, ["seed=0,1"], [])
    with pytest.raises(SweepError, match="another specification"):
        open_study(other, storage, wait_s=0)
