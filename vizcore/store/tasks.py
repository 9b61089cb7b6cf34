"""A per-server background queue for whole-split computations (e.g. a method's faithfulness
scores on 500 test images), so that no click waits for them.

One daemon worker thread runs one task at a time, in the order asked. A task is named by its
spec (run, weights digest, computation, parameters); asking twice for the same spec while it is
queued or running gives the same task. The task reports a stage and the fraction done between
chunks of its work; the page shows them with the time left, and may ask it to stop, which it
does at its next report. A computation writes its result to the run's cache (``Run.cached``)
only when it returns, so a stopped task leaves nothing behind. A task whose run was deleted, or
whose weights changed since it was asked for, is dropped. No UI here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vizcore.store.info import RunNotFound
from vizcore.store.run import Run
from vizcore.store.runs import RunStore

# (stage, fraction done in [0, 1]) -> None; raises to end the task between chunks
Report = Callable[[str, float], None]
KEPT_FINISHED = 50  # finished tasks remembered, so a page can say "stopped" or why one failed


def lower_priority(niceness: int = 10) -> None:
    """Run this thread below the server's others, so a click on a page is served before a step
    of a background job (Linux schedules threads one by one; elsewhere this does nothing)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


@dataclass(frozen=True)
class Computation:
    """A whole-split computation the queue can run: ``run`` does the work (and caches it),
    ``done`` says whether its result is already cached. Both are given the store too, for a
    computation that reads a second run (e.g. an embedding pair's "before")."""

    run: Callable[[RunStore, Run, dict[str, Any], Report], None]
    done: Callable[[RunStore, Run, dict[str, Any]], bool]


COMPUTATIONS: dict[str, Computation] = {}


def register(name: str, computation: Computation) -> None:
    COMPUTATIONS[name] = computation


@dataclass(frozen=True)
class TaskSpec:
    """What a task computes; equal specs are the same task."""

    run_id: str
    digest: str  # the run's weights digest when the task was asked for
    name: str  # a registered computation
    params: str  # its parameters, as canonical JSON (hashable, order-free)

    @classmethod
    def of(cls, run: Run, name: str, **params: Any) -> TaskSpec:
        return cls(run.run_id, run.weights_digest(), name, json.dumps(params, sort_keys=True))

    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.params)


class Stopped(Exception):
    """A task asked to stop, raised at its next report."""


class Dropped(Exception):
    """A task whose run is gone or whose weights changed."""


@dataclass
class Task:
    spec: TaskSpec
    store: RunStore
    state: str = "queued"  # queued, running, done, stopped, dropped, failed
    stage: str = "waiting for the tasks before it"
    fraction: float = 0.0
    started: float | None = None
    error: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def eta_s(self) -> float | None:
        """Seconds left, from the time so far and the fraction done (None before any progress)."""
        if self.started is None or self.fraction <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed * (1 - self.fraction) / self.fraction

    def progress_text(self) -> str:
        """The stage and the time left in words: "scoring Grad-CAM — about 40 s left"; a queued
        task's stage alone (it already says that it waits)."""
        if self.state == "queued":
            return self.stage
        eta = self.eta_s()
        if eta is None:
            left = "estimating the time left"
        else:
            left = f"about {eta / 60:.0f} min left" if eta >= 90 else f"about {max(eta, 1):.0f} s left"
        return f"{self.stage} — {left}"


class TaskQueue:
    """The queue and its one worker thread; safe to call from many sessions at once."""

    def __init__(self, autostart: bool = True, inline: bool = False) -> None:
        """``inline``: run each task in the thread that submits it, before ``submit`` returns
        (a test that tours the pages' views computes them as a click once did)."""
        self._inline = inline
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tasks: list[Task] = []
        self._autostart = autostart
        self._worker: threading.Thread | None = None

    # -- asking ---------------------------------------------------------------------------
    def submit(self, store: RunStore, spec: TaskSpec) -> Task:
        """The active task of ``spec``, or a new one at the end of the queue."""
        if spec.name not in COMPUTATIONS:
            raise ValueError(f"no background computation named {spec.name!r}")
        with self._lock:
            task = next((t for t in self._tasks if t.spec == spec and t.active), None)
            if task is None:
                task = Task(spec, store)
                finished = [t for t in self._tasks if not t.active]
                if len(finished) > KEPT_FINISHED:  # forget the oldest finished ones
                    old = set(map(id, finished[: len(finished) - KEPT_FINISHED]))
                    self._tasks = [t for t in self._tasks if id(t) not in old]
                self._tasks.append(task)
                self._wake.notify()
            if self._autostart and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(target=self._loop, daemon=True, name="vizcore-tasks")
                self._worker.start()
        if self._inline:
            self.run_next()
        return task

    def ask(self, store: RunStore, spec: TaskSpec, again: bool = False) -> Task | None:
        """None when the result of ``spec`` is already cached; otherwise its task, asked for.

        A task that was stopped or failed is returned as it ended, not asked for again, unless
        ``again`` (a page's "try again" button): a failure would otherwise repeat on every rerun.
        """
        if COMPUTATIONS[spec.name].done(store, store.get(spec.run_id), spec.kwargs()):
            return None
        last = self.find(spec)
        if last is not None and last.state in ("stopped", "failed") and not again:
            return last
        return self.submit(store, spec)

    def find(self, spec: TaskSpec) -> Task | None:
        """The latest task of ``spec`` (active or finished), or None."""
        with self._lock:
            return next((t for t in reversed(self._tasks) if t.spec == spec), None)

    def tasks(self, run_id: str | None = None, active_only: bool = True) -> list[Task]:
        with self._lock:
            return [t for t in self._tasks
                    if (run_id is None or t.spec.run_id == run_id) and (t.active or not active_only)]  # fmt: skip

    def stop(self, spec: TaskSpec) -> bool:
        """Ask the active task of ``spec`` to stop (a queued one never starts)."""
        with self._lock:
            task = next((t for t in self._tasks if t.spec == spec and t.active), None)
            if task is None:
                return False
            task.stop.set()
            if task.state == "queued":
                task.state, task.stage = "stopped", "stopped before it started"
            return True

    # -- working --------------------------------------------------------------------------
    def run_next(self) -> Task | None:
        """Run the oldest queued task to its end in this thread (the worker's step; tests call it)."""
        with self._lock:
            task = next((t for t in self._tasks if t.state == "queued"), None)
            if task is None:
                return None
            # "starting" until the computation names its first stage (the queued wording would stay)
            task.state, task.started, task.stage = "running", time.monotonic(), "starting"
        try:
            run = self._current_run(task)
            comp = COMPUTATIONS[task.spec.name]
            if not comp.done(task.store, run, task.spec.kwargs()):
                comp.run(task.store, run, task.spec.kwargs(), lambda stage, f: self._report(task, stage, f))
            task.state, task.fraction, task.stage = "done", 1.0, "done"
        except Stopped:
            task.state, task.stage = "stopped", "stopped"
        except Dropped as e:
            task.state, task.stage = "dropped", str(e)
        except Exception as e:  # noqa: BLE001 — shown on the page, never kills the worker
            task.state, task.error = "failed", f"{type(e).__name__}: {e}"
        return task

    def _loop(self) -> None:
        lower_priority()
        while True:
            with self._lock:
                while not any(t.state == "queued" for t in self._tasks):
                    self._wake.wait()
            self.run_next()

    @staticmethod
    def _current_run(task: Task) -> Run:
        """The task's run as it is now; Dropped if it was deleted or retrained."""
        try:
            run = task.store.get(task.spec.run_id)
            digest = run.weights_digest()
        except RunNotFound as e:
            raise Dropped(f"the run was deleted ({e})") from None
        if digest != task.spec.digest:
            raise Dropped("the run's weights changed since this was asked for")
        return run

    def _report(self, task: Task, stage: str, fraction: float) -> None:
        if task.stop.is_set():
            raise Stopped
        self._current_run(task)  # between chunks: a deleted or retrained run ends the task
        task.stage, task.fraction = stage, min(max(fraction, 0.0), 1.0)


QUEUE = TaskQueue()  # one per server process: module state survives Streamlit reruns
