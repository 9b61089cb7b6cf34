"""Background training jobs owned by the server process.

Training must outlive a page switch or a closed tab, so it runs in a worker thread that
writes its events to the run store; a page only reads the store (and may ask a job to
stop). PyTorch releases the GIL in its kernels, so the UI stays responsive.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from vizcore.core.config import TrainConfig
from vizcore.store import tasks
from vizcore.store.runs import RunStore
from vizcore.store.tasks import TaskQueue, lower_priority
from vizcore.train.loop import train
from vizcore.train.trainer import Progress
from vizcore.views.background import prepare_spec


@dataclass
class Job:
    config: TrainConfig
    owner: str
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str | None = None
    last: Progress | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    _has_id: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class JobManager:
    """Starts, lists and stops training jobs; safe to call from many sessions at once."""

    def __init__(self, queue: TaskQueue | None = None) -> None:
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self.queue = queue  # where a finished run's views are prepared (None: the server's one queue)

    def start(self, config: TrainConfig, store: RunStore, owner: str = "", wait_s: float = 30.0) -> Job:
        """Start training in a daemon thread; returns once the run folder exists."""
        job = Job(config=config, owner=owner)
        job.thread = threading.Thread(target=self._work, args=(job, store, self.queue or tasks.QUEUE), daemon=True, name="vizcore-train")
        with self._lock:
            self._jobs.append(job)
        job.thread.start()
        job._has_id.wait(wait_s)
        return job

    @staticmethod
    def _work(job: Job, store: RunStore, queue: TaskQueue) -> None:
        lower_priority()
        try:
            for ev in train(job.config, store, job.stop):
                job.last = ev
                if job.run_id is None:
                    job.run_id = ev.run_id
                    job._has_id.set()
            run = store.get(job.run_id) if job.run_id else None
            if run is not None and job.last is not None and job.last.status in ("complete", "stopped") and run.has_weights():
                # the views' analysis and default matrices on the one background queue, below the
                # pages' priority: the job (and its Stop) ends with training, the run is usable at once
                queue.submit(store, prepare_spec(run))
        except Exception as e:  # noqa: BLE001 — e.g. the runs folder is not writable
            job.error = f"{type(e).__name__}: {e}"
        finally:
            job._has_id.set()

    def jobs(self, owner: str | None = None, alive_only: bool = True) -> list[Job]:
        with self._lock:
            jobs = list(self._jobs)
        return [j for j in jobs if (owner is None or j.owner == owner) and (j.alive or not alive_only)]

    def find(self, run_id: str) -> Job | None:
        return next((j for j in self.jobs(alive_only=False) if j.run_id == run_id), None)

    def stop(self, run_id: str) -> bool:
        job = self.find(run_id)
        if job is None or not job.alive:
            return False
        job.stop.set()
        return True

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        job = self.find(run_id)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)


MANAGER = JobManager()  # one per server process: module state survives Streamlit reruns
