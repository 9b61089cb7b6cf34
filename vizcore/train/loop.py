"""One generic training loop, written as a generator of progress events.

    for event in train(config, store):   # a page updates its curves from the events
        ...                               # stopping is ``break`` (or setting ``stop``)

The loop knows no UI. With a store it writes the run: metrics as they come, the weights
after every epoch (the last good checkpoint), and the final status.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from vizcore.core.atomic import StoreWriteError
from vizcore.core.config import TrainConfig
from vizcore.core.device import resolve_device
from vizcore.data.domains import describe_splits
from vizcore.models.architecture import resolve_input_shape
from vizcore.store.info import RunDamaged
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.train import distributed
from vizcore.train.checks import check_config
from vizcore.train.lineage import _Lineage, resolve_lineage
from vizcore.train.trainer import Diverged, Progress, Trainer, as_floats


def _end_run(run: Run, flush: Callable[[], None], summary: dict[str, Any], status: str,
             message: str) -> tuple[str, str]:  # fmt: skip
    """Write a run's last metrics, its summary, then its status; the (status, message) it ends with.

    With a full disk each write may fail. The metrics are a log and may lose their tail; a summary
    that cannot be written is absent (no summary is a run with nothing to claim); a status that
    cannot be written is removed, which frees its block for one more try and, failing that, reads
    as "failed" (status.json missing) rather than "running" for ever.
    """
    with contextlib.suppress(StoreWriteError):
        flush()
    created = {}
    with contextlib.suppress(RunDamaged):
        created = {k: v for k, v in run.status().items() if k == "created"}  # kept if status.json is remade
    try:
        run.write_summary(summary)  # it names the status it was written with
    except StoreWriteError as e:
        status, message = "failed", _with_store_error(message, e)
        with contextlib.suppress(OSError):
            (run.path / "summary.json").unlink(missing_ok=True)
    for _ in range(2):
        try:
            run.set_status(status, message, **created)
            return status, message
        except StoreWriteError as e:
            status, message = "failed", _with_store_error(message, e)
            with contextlib.suppress(OSError):
                (run.path / "status.json").unlink(missing_ok=True)
    return status, message


def _with_store_error(message: str, e: StoreWriteError) -> str:
    """``message`` and, unless it already says so, that the store could not take a write."""
    return message if "the run store is" in message else f"{message}; {e}"


def completed(events: Iterator[Progress]) -> Progress:
    """Drive a training run to its end; its "end" event, or RuntimeError unless it completed."""
    end = None
    for ev in events:
        end = ev
    if end is None or end.status != "complete":
        raise RuntimeError(f"run {end.run_id if end else '?'} ended {end.status if end else 'without events'}: "
                           f"{end.message if end else ''}")  # fmt: skip
    return end


def _relay(stages: Iterator[Progress], emit: Callable[[Progress], Progress]) -> Iterator[Progress]:
    """Yield a sub-generator's events through ``emit``; return its return value."""
    while True:
        try:
            ev = next(stages)
        except StopIteration as done:
            return done.value
        yield emit(ev)


def train(
    config: TrainConfig, store: RunStore | None = None, stop: threading.Event | None = None
) -> Iterator[Progress]:
    """Train ``config``; yields Progress events and, with a store, writes a run.

    The run ends as "complete", "stopped" (``stop`` set or the generator closed: the weights
    trained so far are kept), or "failed" (diverged or crashed: the last good epoch's
    weights are kept, if any).
    """
    check_config(config)
    world = distributed.current_world()
    distributed.check_batch(world, config.batch_size)
    if world is not None:  # joined before a run folder exists: a port in use leaves no failed run behind
        distributed.start(world, distributed.device_for(world, resolve_device(config.device)))
    if world is not None and not world.is_main:
        store = None  # rank 0 alone writes the run; the others train alongside it
    config, lineage = resolve_lineage(config, store) if config.init_from or config.teacher else (
        config.replace(input_shape=resolve_input_shape(config)), _Lineage())
    run = store.create(config) if store is not None else None
    rid = run.run_id if run else None
    trainer: Trainer | None = None
    pending: list[dict[str, Any]] = []
    last_flush = [time.monotonic()]

    def emit(ev: Progress, flush: bool = True) -> Progress:
        ev.run_id = rid
        pending.append(ev.to_record())
        # step events are batched to about one write a second; the live view polls at that rate
        if flush and (ev.kind != "step" or time.monotonic() - last_flush[0] > 1.0):
            _flush()
        return ev

    def _flush() -> None:
        if run is not None and pending:
            run.append_metrics(pending)
        pending.clear()
        last_flush[0] = time.monotonic()

    def finish(status: str, message: str, diverged: bool = False) -> Iterator[Progress]:
        """End the run; the summary describes exactly the weights on disk (if any), and is written
        after them; the status is written last. A store that cannot take these writes (a full disk)
        turns the run "failed" with what is true of its weights, never a run claiming weights."""
        values, epochs_done, steps = {}, 0, 0
        partial = trainer is not None and trainer.step > trainer.kept_step
        saved_partial = False
        if status == "stopped" and partial and not trainer.non_finite():
            partial_values = yield from _relay(trainer.evaluate_all(), emit)  # the weights trained so far
            try:
                if run is not None:
                    run.save_weights(trainer.model)
                saved_partial = True
            except StoreWriteError as e:
                status, message = "failed", f"{message}; {e}"
            if saved_partial:
                values, epochs_done, steps = partial_values, trainer.epoch - 1, trainer.step  # epoch in progress is partial
        if not saved_partial and trainer is not None and trainer.kept is not None:
            values, epochs_done, steps = trainer.kept_eval, trainer.kept_epoch, trainer.kept_step
        if status == "failed":
            kept = "the run has no weights"
            if trainer is not None and trainer.kept is not None:
                why = "the last with finite values" if diverged else "the last written"
                kept = f"the weights of epoch {trainer.kept_epoch}, {why}, are kept"
            elif trainer is not None and trainer.epoch > 0 and diverged:  # training had begun
                kept = "no epoch ended with finite weights, so the run has no weights"
            message = f"{message}; {kept}"
        ev = emit(Progress("end", trainer.epoch if trainer else 0, trainer.step if trainer else 0,
                           trainer.total_steps if trainer else 0, values, status, message), flush=False)  # fmt: skip
        if run is not None:
            summary = {**values, "status": status, "epochs_done": epochs_done, "steps": steps,
                       "processes": world.size if world else 1,
                       **({"data": describe_splits(vars(trainer.data))} if trainer is not None else {})}  # fmt: skip
            ev.status, ev.message = _end_run(run, _flush, summary, status, message)
        yield ev
    try:
        # announced before the (possibly slow) data preparation, so a caller learns the run id at once
        yield emit(Progress("start", message="preparing data and model"))
        trainer = Trainer(config, run, stop, lineage)
        yield emit(Progress("ready", 0, 0, trainer.total_steps, message=f"training on {trainer.device}, {trainer.describe_data()}"))
        acc_logs: dict[str, float] = {}
        for epoch in range(config.epochs):
            trainer.start_epoch(epoch + 1)  # 1-based, as in the step events
            # throughput counts training images over training time: end-of-epoch work is excluded
            epoch_t, epoch_n = time.perf_counter(), 0
            window_t, window_n = epoch_t, 0
            for n, (xs, ys) in trainer.epoch_batches():
                if stop is not None and stop.is_set():
                    yield from finish("stopped", f"stopped by the user at epoch {epoch + 1}, step {trainer.step}")
                    return
                logs = trainer.train_step(xs, ys)
                window_n += n
                epoch_n += n
                if trainer.step % config.log_every == 0 or trainer.step == trainer.total_steps:
                    acc_logs = as_floats(logs)  # .item() syncs the GPU: only every log_every steps
                    now = time.perf_counter()
                    acc_logs["images_per_s"] = window_n / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    yield emit(Progress("step", epoch + 1, trainer.step, trainer.total_steps, acc_logs))
            train_rate = epoch_n / max(time.perf_counter() - epoch_t, 1e-9)
            if (epoch + 1) % config.eval_every and epoch + 1 < config.epochs:
                continue  # no evaluation and no checkpoint this epoch (the last epoch always has both)
            accs = yield from _relay(trainer.end_epoch(), emit)
            # the last step of this epoch, not the last logged one: with fewer steps an epoch than
            # log_every (a few labelled images) that one would be an earlier epoch's
            values = {**acc_logs, **as_floats(logs), **accs, "images_per_s": train_rate}
            yield emit(Progress("epoch", epoch + 1, trainer.step, trainer.total_steps, values))
        trainer.epoch = config.epochs
        yield from finish("complete", "")
    except GeneratorExit:
        # the consumer is gone, so finish without handing it events (a closed generator may not yield)
        for _ in finish("stopped", "stopped: the consumer closed the training loop"):
            pass
        raise
    except Diverged as e:
        yield from finish("failed", str(e), diverged=True)
    except StoreWriteError as e:  # the disk filled up or became read-only: said in one line
        yield from finish("failed", str(e))
    except torch.cuda.OutOfMemoryError:
        smaller = max(1, config.batch_size // 2)
        yield from finish("failed", f"the GPU ran out of memory at batch size {config.batch_size}; try "
                                    f"--batch-size {smaller} (or a smaller --test-limit, a smaller model)")  # fmt: skip
    except Exception as e:  # noqa: BLE001 — a run must end with a status, whatever went wrong
        why = f"{type(e).__name__}: {e}"
        if world is not None:  # say where to look first: a peer's own log
            why = (f"training over {world.size} processes broke off (another process failed or stopped "
                   f"answering; see its log above): {why}")  # fmt: skip
        yield from finish("failed", why)
