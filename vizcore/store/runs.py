"""The run store: one folder per run, the hand-off between the Train page and every view.

    runs/<run_id>/config.json       TrainConfig as a dict
                  status.json       running | complete | stopped | failed (+ message, pid, times)
                  metrics.jsonl     one JSON object per progress event
                  model.safetensors weights (last good checkpoint)
                  summary.json      final accuracies
                  analyses/         computed results, per weights digest (vizcore.store.cache)

A run is created under a hidden temporary name and renamed into place, files are replaced
atomically, and the status says "complete" only after the weights it describes are on
disk, so a crash or a Stop never leaves a run that looks complete and never touches
another run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vizcore.core.atomic import (
    TEMP_SUFFIX,
    fault_point,
    store_write_error,
    temp_writer_pid,
    write_json_atomic,
)
from vizcore.core.config import TrainConfig
from vizcore.store.files import STATUSES
from vizcore.store.info import (
    RUN_ID_PATTERN,
    RunExists,
    RunInfo,
    RunNotFound,
    check_run_id,
)
from vizcore.store.liveness import _pid_alive, _writer_identity
from vizcore.store.run import Run, damaged_info
from vizcore.store.weights import (
    CheckpointError,
    _write_weights,
)

if TYPE_CHECKING:  # torch is imported where weights are touched: listing runs stays light
    import torch

DEMO_ROOT = Path(__file__).resolve().parents[2] / "assets" / "demo_runs"
# Deleted runs wait here, inside the store, until restored: a hidden name, so no listing of
# runs (run ids start with a letter or digit) and no sweep of temporary files reads it.
TRASH_DIR = ".trash"


def _inside(root: Path, run_id: str) -> Path | None:
    """``root/run_id`` if it is a real folder directly inside ``root`` (no link leading out)."""
    path = root / check_run_id(run_id)
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        if path.resolve(strict=True).parent != root.resolve(strict=True):
            return None
    except OSError:
        return None
    return path


def slugify(text: str, length: int = 60) -> str:
    """ASCII letters, digits, '-' and '_' of ``text`` (anything else becomes '-'), for run ids."""
    out = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in text)
    return out[:length].strip("-_") or "run"


def _slug(cfg: TrainConfig) -> str:
    # a registered folder by its name: "source_only-pets", not the folder's path
    dom = (
        cfg.shown(cfg.source)
        if not cfg.target
        else f"{cfg.shown(cfg.source)}-to-{cfg.shown(cfg.target)}"
    )
    return slugify(f"{cfg.method}-{dom}")


_SWEPT: set[str] = set()


class RunStore:
    """Runs under a writable root, plus read-only demo runs shipped in assets/."""

    def __init__(self, root: Path | str | None = None, demo_root: Path | None = DEMO_ROOT) -> None:
        # read at construction, not import, so a test or a second server can point elsewhere
        self.root = Path(root if root is not None else os.environ.get("VIZCORE_RUNS", "runs"))
        self.demo_root = demo_root
        key = str(self.root.resolve())
        if key not in _SWEPT:  # once per process and root: pages open the store on every rerun
            _SWEPT.add(key)
            self.sweep_temp_files()

    def create(
        self,
        config: TrainConfig,
        *,
        slug: str | None = None,
        weights: dict[str, torch.Tensor] | None = None,
        summary: dict[str, Any] | None = None,
        status: str = "running",
        message: str = "",
    ) -> Run:
        """A new run folder, filled under a hidden name and made visible in one rename.

        This is the only code that makes run folders. A run starts "running" (training fills
        it); a run that arrives whole (an upload) brings its weights and summary and may start
        "complete", but never without weights.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if status == "complete" and weights is None:
            raise ValueError("a run cannot be complete without weights")
        run_id = check_run_id(
            f"{time.strftime('%Y%m%d-%H%M%S')}-{slug or _slug(config)}-{secrets.token_hex(2)}"
        )
        # the hidden name carries the writer's pid, so a folder whose writer died can be swept
        tmp = self.root / f".{run_id}.{os.getpid()}.partial"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            now = time.time()
            write_json_atomic(tmp / "status.json",
                              {"status": status, "message": message, **_writer_identity(), "created": now, "updated": now})  # fmt: skip
            if weights is not None:
                _write_weights(tmp / "model.safetensors", weights)
            if summary is not None:  # after the weights it describes
                write_json_atomic(tmp / "summary.json", summary)
            write_json_atomic(tmp / "config.json", config.to_dict())
            fault_point("create:before-rename")
            final = self.root / run_id
            os.replace(tmp, final)
        except (
            OSError
        ) as e:  # a full or read-only store: no run, and no half-made folder left behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise store_write_error(e, self.root) from e
        return Run(final)

    def _demo(self, run_id: str) -> Run | None:
        path = None if self.demo_root is None else _inside(self.demo_root, run_id)
        if path is None:
            return None
        return Run(path, read_only=True, cache_dir=self.root / ".cache" / run_id)

    def get(self, run_id: str) -> Run:
        """The run ``run_id``; InvalidRunId for anything but a plain id, RunNotFound if absent."""
        path = _inside(self.root, run_id)
        if path is not None:
            return Run(path)
        demo = self._demo(run_id)
        if demo is None:
            raise RunNotFound(f"no run named {run_id!r} in {self.root} or the demo runs")
        return demo

    def run_ids(self) -> list[str]:
        ids = [p.name for p in self._dirs(self.root)]
        if self.demo_root is not None:
            ids += [p.name for p in self._dirs(self.demo_root) if p.name not in ids]
        return ids

    @staticmethod
    def _dirs(root: Path) -> list[Path]:
        if not root.is_dir():
            return []
        return sorted(
            (
                p
                for p in root.iterdir()
                if RUN_ID_PATTERN.fullmatch(p.name)
                and not p.is_symlink()
                and (p / "config.json").exists()
            ),
            key=lambda p: p.name,
            reverse=True,
        )

    def list(self) -> list[RunInfo]:
        """Newest first, demo runs last. A run with a damaged file is listed as "damaged", with the
        file named in its message; one deleted meanwhile is left out. No run hides another."""
        out = []
        for rid in self.run_ids():
            try:
                run = self.get(rid)
                out.append(run.info())
            except RunNotFound:
                continue
            except (CheckpointError, OSError) as e:
                out.append(damaged_info(run, str(e)))
        return sorted(out, key=lambda r: (r.read_only, -r.created))

    def delete(self, run_id: str) -> Path:
        """Move run ``run_id`` into the store's trash (``<root>/.trash/<run_id>``) in one rename,
        so it leaves the run lists whole and :meth:`restore` can bring it back; where it went.

        Raises:
            InvalidRunId, RunNotFound: not a plain run id, or no such run in the store.
            PermissionError: a demo run (read-only), or a trash folder that is a link or a file.
            RunExists: the trash holds a run of this id already.
            StoreWriteError: the store cannot take the move (full, read-only).
        """
        run = self.get(run_id)
        if run.read_only:
            raise PermissionError("demo runs cannot be deleted")
        dest = self._trash_dir(make=True) / run.run_id
        if os.path.lexists(dest):  # os.replace would put a folder over an empty one of that name
            raise RunExists(
                f"the trash already holds a run {run.run_id!r}; remove {dest} to delete this one"
            )
        try:
            os.replace(run.path, dest)
        except OSError as e:
            raise store_write_error(e, run.path) from e
        return dest

    def restore(self, run_id: str) -> Run:
        """Move run ``run_id`` back from the trash into the store, in one rename.

        Raises:
            InvalidRunId, RunNotFound: not a plain run id, or no such run in the trash.
            RunExists: a run of this id is in the store (or among the demo runs) again.
            PermissionError: a trash folder that is a link or a file.
            StoreWriteError: the store cannot take the move (full, read-only).
        """
        check_run_id(run_id)
        trash = self._trash_dir()
        src = None if trash is None else _inside(trash, run_id)
        if src is None:
            raise RunNotFound(f"no run named {run_id!r} in the trash of {self.root}")
        dest = self.root / run_id
        if os.path.lexists(dest) or self._demo(run_id) is not None:
            raise RunExists(f"run {run_id!r} exists in {self.root} again; it stays in the trash")
        try:
            os.replace(src, dest)
        except OSError as e:
            raise store_write_error(e, src) from e
        return Run(dest)

    def trash(self) -> list[RunInfo]:
        """The runs in the trash, newest first; a damaged one is listed as "damaged" (as in :meth:`list`)."""
        trash = self._trash_dir()
        out = []
        for path in [] if trash is None else self._dirs(trash):
            run = Run(path)
            try:
                out.append(run.info())
            except RunNotFound:
                continue  # restored meanwhile
            except (CheckpointError, OSError) as e:
                out.append(damaged_info(run, str(e)))
        return sorted(out, key=lambda r: -r.created)

    def _trash_dir(self, make: bool = False) -> Path | None:
        """The trash folder (made when ``make``; None when it is absent).

        Raises:
            PermissionError: ``.trash`` is a link or a file: a run moved there could leave the store.
            StoreWriteError: it cannot be made.
        """
        trash = self.root / TRASH_DIR
        if trash.is_symlink() or (trash.exists() and not trash.is_dir()):
            raise PermissionError(
                f"{trash} is not a folder of the run store (a link or a file): the trash cannot be used"
            )
        if make:
            try:
                trash.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise store_write_error(e, trash) from e
        return trash if trash.is_dir() else None

    def sweep_temp_files(self) -> list[Path]:
        """Remove what writers that are gone left behind: ``.*.tmp`` files in run folders and
        ``.<id>.partial`` folders. A writer still alive keeps its files. Returns what went."""
        if not self.root.is_dir():
            return []
        gone: list[Path] = []
        for p in self.root.iterdir():
            if (
                p.name.startswith(".")
                and p.name.endswith(".partial")
                and p.is_dir()
                and not p.is_symlink()
            ):
                pid = p.name.split(".")[-2]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(p, ignore_errors=True)
                    gone.append(p)
            elif RUN_ID_PATTERN.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
                for f in p.glob(f".*{TEMP_SUFFIX}"):
                    pid = temp_writer_pid(f)
                    if pid is not None and not _pid_alive(pid):
                        f.unlink(missing_ok=True)
                        gone.append(f)
        return gone
