"""Sweeps: many ordinary runs over typed parameters, scheduled by Optuna.

A sweep is an Optuna study. Every trial is an ordinary run written by the one training loop
(:func:`vizcore.train.loop.train`) into the run store, tagged with a ``sweep.json`` in its folder
(the sweep's name, the trial's number and parameters), so the views group a sweep's runs without
reading the study.

Storage: by default an embedded SQLite file in the store (``<store>/.sweeps/optuna.db``). With a
database URL (PostgreSQL, MySQL), workers started on several machines with the same command share
one study; each writes its runs to its own store (the run folder is the unit that moves).

Grid: the study's creator enqueues every point once (creating a study is atomic in the database:
a second creator gets "duplicated study"), and a worker claims a waiting point by moving it to
RUNNING in one database update, which only one worker can win. So two workers never train the same
point. Search: Optuna's TPE sampler proposes points until the number of trials is reached.

Resume: a trial whose worker is gone (the same machine and a dead pid, or no heartbeat for
``stale_after`` seconds) is marked failed, once, and its point is enqueued again; finished trials
are never run again. Pruning (optional) reads the source test accuracy of each epoch, never a
target label.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vizcore.app.sweep_spec import SweepError, SweepSpec, check_spec
from vizcore.core.atomic import fault_point, write_json_atomic
from vizcore.store.liveness import _pid_alive, process_start
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.views.sweeps import SWEEP_FILE

SWEEP_DIR = ".sweeps"  # in the store: the default SQLite study file
HEARTBEAT_S = 60.0  # a running trial says it is alive at least this often (and at every epoch)
# --------------------------------------------------------------------------- storage and study


def default_storage(store: RunStore) -> str:
    return f"sqlite:///{(store.root / SWEEP_DIR / 'optuna.db').resolve()}"


def open_storage(url: str) -> Any:
    """Optuna's database storage; SQLite waits for a lock instead of failing (several local workers)."""
    import optuna

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path.with_suffix(".lock")):  # one process creates the tables
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def open_study(spec: SweepSpec, storage: Any, wait_s: float = 60.0) -> Any:
    """The sweep's study, created (and its grid enqueued) by the first worker, loaded by the rest.

    Raises:
        SweepError: a study of this name exists with another specification.
    """
    import optuna

    sampler = optuna.samplers.TPESampler(seed=spec.seed) if not spec.is_grid else None
    pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if spec.prune else optuna.pruners.NopPruner()
    kw = {"study_name": spec.name, "storage": storage, "sampler": sampler, "pruner": pruner}
    try:
        study = optuna.create_study(direction="maximize", load_if_exists=False, **kw)
        study.set_user_attr("spec", spec.to_json())
        _enqueue(study, spec)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kw)
    deadline = time.monotonic() + wait_s
    while (attrs := study.user_attrs).get("spec") is None or (spec.is_grid and not attrs.get("enqueued")):
        if time.monotonic() > deadline:  # its creator died before it finished: finish for it
            study.set_user_attr("spec", spec.to_json())
            _enqueue(study, spec)
            break
        time.sleep(0.2)
    if (got := study.user_attrs["spec"]) != spec.to_json():
        raise SweepError(f"sweep {spec.name!r} exists with another specification: {got}; choose another name")
    return study


def _enqueue(study: Any, spec: SweepSpec) -> None:
    """Every grid point not yet in the study, as a waiting trial."""
    if spec.is_grid:
        have = [t.params or t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False)]
        for point in spec.points():
            if point not in have:
                study.enqueue_trial(point)
        study.set_user_attr("enqueued", True)


def _worker() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}


def reclaim(study: Any, stale_after: float) -> list[int]:
    """Fail the trials whose worker is gone and enqueue their points again; their numbers.

    Failing a trial is one database update that only one worker wins, so a point is enqueued once.
    """
    import optuna
    from optuna.trial import TrialState

    host, out = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker", {})
        beat = t.user_attrs.get("heartbeat", t.datetime_start.timestamp() if t.datetime_start else 0)
        local_dead = w.get("host") == host and not _pid_alive(w.get("pid", -1), w.get("pid_start"))
        if not (local_dead or time.time() - beat > stale_after):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker reclaimed it first
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        out.append(t.number)
    return out


def _claim(study: Any) -> Any | None:
    """A waiting trial moved to RUNNING by this worker (one database update; None when none is left).
    The same as Optuna's own queue pop inside ``Study.ask``, without ``ask`` making a new trial
    when the queue is empty."""
    import optuna
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _suggest(trial: Any, spec: SweepSpec) -> dict[str, Any]:
    """The trial's point: a grid's fixed values, or TPE's proposal for a search."""
    if spec.is_grid:
        return {k: trial.suggest_categorical(k, list(v)) for k, v in spec.grid.items()}
    out: dict[str, Any] = {}
    for k, r in spec.ranges.items():
        if r.kind == "int":
            out[k] = trial.suggest_int(k, int(r.low), int(r.high), log=r.log)
        else:
            out[k] = trial.suggest_float(k, r.low, r.high, log=r.log)
    return out | {k: trial.suggest_categorical(k, list(v)) for k, v in spec.choices.items()}


def _next_trial(study: Any, spec: SweepSpec) -> Any | None:
    """This worker's next trial, or None when the sweep has nothing left to start."""
    from optuna.trial import TrialState

    trial = _claim(study)
    if trial is not None or spec.is_grid:
        return trial
    counted = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.FAIL]
    if len(counted) >= spec.trials:
        return None
    trial = study.ask()  # a search: TPE proposes a point
    # two workers may ask at once: trial numbers are unique in the database, so the budget is
    # counted over the trials numbered before this one, and only the later one steps back
    before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and t.state != TrialState.FAIL]
    if len(before) >= spec.trials:
        trial.set_user_attr("note", "over the sweep's number of trials: not run")
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


def tag_run(run: Run, spec: SweepSpec, number: int, point: dict[str, Any]) -> None:
    """Mark ``run`` as trial ``number`` of sweep ``spec.name``: its ``sweep.json``."""
    write_json_atomic(run.path / SWEEP_FILE, {"sweep": spec.name, "trial": number, "params": point,
                                              "objective": spec.objective})  # fmt: skip


@dataclass
class TrialResult:
    number: int
    run_id: str | None
    status: str  # complete, pruned, failed
    value: float | None
    point: dict[str, Any]


def run_trial(study: Any, trial: Any, spec: SweepSpec, store: RunStore) -> TrialResult:
    """Train one trial's run and tell the study how it went."""
    from optuna.trial import TrialState

    from vizcore.train.loop import train

    point = _suggest(trial, spec)
    trial.set_user_attr("worker", _worker())
    beat = time.time()
    trial.set_user_attr("heartbeat", beat)
    events = train(spec.config(point), store)
    run_id, end, pruned = None, None, False
    for ev in events:
        if ev.kind == "start" and ev.run_id:
            run_id = ev.run_id
            trial.set_user_attr("run_id", run_id)
            tag_run(store.get(run_id), spec, trial.number, point)
            fault_point(f"sweep:trial-started:{trial.number}")
        elif ev.kind in ("step", "stage") and time.time() - beat > HEARTBEAT_S:
            beat = time.time()
            trial.set_user_attr("heartbeat", beat)
        elif ev.kind == "epoch":
            beat = time.time()
            trial.set_user_attr("heartbeat", beat)
            if spec.prune and "source_acc" in ev.values:  # source labels only
                trial.report(ev.values["source_acc"], ev.epoch)
                if trial.should_prune():
                    pruned = True
                    events.close()  # the run ends "stopped" with the weights trained so far
                    break
        elif ev.kind == "end":
            end = ev
    if pruned:
        study.tell(trial, state=TrialState.PRUNED)
        return TrialResult(trial.number, run_id, "pruned", None, point)
    if end is None or end.status != "complete":
        trial.set_user_attr("note", end.message if end else "no end event")
        study.tell(trial, state=TrialState.FAIL)
        return TrialResult(trial.number, run_id, "failed", None, point)
    value = objective_value(store.get(run_id), spec)
    study.tell(trial, value)
    return TrialResult(trial.number, run_id, "complete", value, point)


def objective_value(run: Run, spec: SweepSpec) -> float:
    """The trial's value: the source test accuracy from the summary, or a validator's score
    (computed now and cached with the run; with ``validators`` every score is)."""
    if spec.validators or spec.objective != "source_acc":
        from vizcore.views.validation import validator_scores

        scores = validator_scores(run)
        if spec.objective != "source_acc":
            return scores[spec.objective]
    return float(run.summary()["source_acc"])


def run_sweep(spec: SweepSpec, store: RunStore, storage_url: str | None = None, *, max_trials: int | None = None,
              stale_after: float = 1800.0, report: Callable[[TrialResult], None] | None = None) -> list[TrialResult]:  # fmt: skip
    """Run trials of ``spec`` until none is left (or this worker has run ``max_trials``).

    Any number of workers may call this at once with the same specification and storage.

    Raises:
        SweepError: a bad specification, before any run or study exists.
    """
    import optuna

    check_spec(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, open_storage(storage_url or default_storage(store)))
    done: list[TrialResult] = []
    while max_trials is None or len(done) < max_trials:
        reclaim(study, stale_after)  # a worker that died meanwhile leaves its point to the others
        trial = _next_trial(study, spec)
        if trial is None:
            break
        done.append(run_trial(study, trial, spec, store))
        if report:
            report(done[-1])
    return done
