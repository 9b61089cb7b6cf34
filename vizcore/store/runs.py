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

import io
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vizcore.core.atomic import (
    TEMP_SUFFIX,
    fault_point,
    store_write_error,
    temp_writer_pid,
    write_json_atomic,
)
from vizcore.core.config import TrainConfig
from vizcore.store import cache
from vizcore.store.files import STATUSES, _object_problem, _status_problem, _summary_problem
from vizcore.store.liveness import _pid_alive, _writer_identity
from vizcore.store.weights import (
    CheckpointError,
    _sha256,
    _write_weights,
    load_state_checked,
    read_safetensors,
)

if TYPE_CHECKING:  # torch is imported where weights are touched: listing runs stays light
    import torch

DEMO_ROOT = Path(__file__).resolve().parents[2] / "assets" / "demo_runs"
# Deleted runs wait here, inside the store, until restored: a hidden name, so no listing of
# runs (run ids start with a letter or digit) and no sweep of temporary files reads it.
TRASH_DIR = ".trash"


class RunNotFound(LookupError):
    """The run folder is gone (deleted while the app was open) or never existed."""


class InvalidRunId(RunNotFound, ValueError):
    """A run id that is not a plain folder name of the store (a path, ``..``, a NUL...)."""


class RunExists(ValueError):
    """A run cannot come back from the trash: a run of its id is in the store again."""


# A run id is one plain ASCII folder name: no separators, no dots (so no "..", no hidden
# names), no spaces or control characters. Every id the store makes matches it.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def check_run_id(run_id: object) -> str:
    """``run_id`` itself if it is a well-formed run id; InvalidRunId says why not.

    This is the one gate every id from outside (a page, the CLI, a URL, a job) passes through
    before it is joined to a folder path.
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:77] + "..."
        raise InvalidRunId(
            f"{shown} is not a run id: a run id is 1-128 letters, digits, '-' or '_' "
            "(no paths, dots or separators)"
        )
    return run_id


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


class RunDamaged(CheckpointError):
    """A file of a run is unreadable or not of the shape the store writes; the message names it.

    Raised by every read of a run file, so one damaged run is listed as damaged (naming the file)
    and never hides or breaks the others.
    """


def lineage(run: Run | RunInfo) -> dict[str, str]:
    """The runs ``run`` starts from, by role: {"parent": id, "teacher": id} (only those it has)."""
    if isinstance(run, Run):
        cfg = run.config()
        parent, teacher = cfg.init_from, cfg.teacher
    else:
        parent, teacher = run.init_from, run.teacher
    return {role: rid for role, rid in (("parent", parent), ("teacher", teacher)) if rid}


def lineage_text(info: RunInfo, known: Iterable[str] = ()) -> str:
    """Parent → child in words, for a run table: "parent X", "teacher Y" ("" for neither); an id
    not among ``known`` (when given) is marked as gone."""
    ids = set(known)

    def name(rid: str) -> str:
        return rid if not ids or rid in ids else f"{rid} (gone)"

    return ", ".join(f"{role} {name(rid)}" for role, rid in lineage(info).items())


def children(runs: Iterable[RunInfo], run_id: str) -> list[tuple[str, str]]:
    """The runs that start from ``run_id``: (child id, role) pairs, role "parent" or "teacher"."""
    return [(r.run_id, role) for r in runs for role, rid in lineage(r).items() if rid == run_id]


@dataclass(frozen=True)
class RunInfo:
    """What a run list shows, read cheaply from the folder."""

    run_id: str
    label: str
    status: str
    method: str
    model: str
    source: str
    target: str | None
    seed: int
    created: float
    read_only: bool
    summary: dict[str, Any]
    message: str
    init_from: str | None = None  # the parent run (its weights were the start)
    teacher: str | None = None  # the teacher run (distillation)
    freeze: int | list[str] = 0  # conv blocks (or layers) kept frozen
    labels_per_class: int | None = None  # labelled target images per class it trained on
    data_names: dict[str, str] | None = None  # the names its registered folders are shown by

    def shown(self, domain: str | None) -> str:
        """The name a list shows for ``domain`` (TrainConfig.shown, for a run not yet opened)."""
        return "—" if domain is None else (self.data_names or {}).get(domain, domain)


def damaged_info(run: Run, message: str) -> RunInfo:
    """What a run list shows of a run whose files cannot be trusted: its id, "damaged" and why."""
    try:
        created = run.path.stat().st_mtime
    except OSError:
        created = 0.0
    return RunInfo(run_id=run.run_id, label=run.run_id, status="damaged", method="?", model="?", source="?",
                   target=None, seed=0, created=created, read_only=run.read_only, summary={}, message=message)  # fmt: skip


class Run:
    """One run folder. Every read checks the folder still exists."""

    def __init__(self, path: Path, read_only: bool = False, cache_dir: Path | None = None) -> None:
        self.path = path
        self.run_id = path.name
        self.read_only = read_only
        self.cache_dir = cache_dir or path / cache.CACHE_DIR

    # -- reading ---------------------------------------------------------------
    def _file(self, name: str) -> Path:
        if not self.path.is_dir():
            raise RunNotFound(f"run {self.run_id!r} no longer exists (its folder {self.path} is gone)")
        return self.path / name

    def _damaged(self, name: str, why: object) -> RunDamaged:
        return RunDamaged(f"run {self.run_id!r} is damaged: its {name} {why}")

    def _read_json(self, name: str, problem: Callable[[Any], str | None]) -> Any:
        """The JSON in ``name``, checked by ``problem`` (which names what is wrong, or None).

        Raises:
            RunDamaged: unreadable, not JSON, or not of the shape the store writes.
        """
        try:
            obj = json.loads(self._file(name).read_bytes())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            if isinstance(e, FileNotFoundError) and not self.path.is_dir():
                raise RunNotFound(f"run {self.run_id!r} no longer exists (its folder {self.path} is gone)") from None
            raise self._damaged(name, f"cannot be read as JSON ({e})") from None
        if why := _object_problem(obj) or problem(obj):
            raise self._damaged(name, f"is not what the store writes: {why}")
        return obj

    def config(self) -> TrainConfig:
        d = self._read_json("config.json", lambda d: None)
        try:
            return TrainConfig.from_dict(d)
        except (TypeError, ValueError) as e:
            raise self._damaged("config.json", f"does not describe a run: {e}") from None

    def status(self) -> dict[str, Any]:
        """The run's status; RunDamaged for a status.json that is not the store's."""
        if not self._file("status.json").exists():
            return {"status": "failed", "message": "status.json is missing"}
        st = self._read_json("status.json", _status_problem)
        # A "running" run whose process is gone was cut off (crash, kill, power loss); the pid's start
        # time tells a reused pid from the writer itself.
        if st["status"] == "running" and not _pid_alive(st.get("pid", -1), st.get("pid_start")):
            st = {**st, "status": "interrupted", "message": "the training process ended without finishing"}
        return st

    def summary(self) -> dict[str, Any]:
        """Final values of the weights on disk ({} before the run ends); RunDamaged if malformed."""
        if not self._file("summary.json").exists():
            return {}
        return self._read_json("summary.json", _summary_problem)

    def metrics(self) -> list[dict[str, Any]]:
        """All progress records; a half-written last line (a crash mid-append) is skipped.

        Raises:
            RunDamaged: any other line is not a JSON object.
        """
        p = self._file("metrics.jsonl")
        if not p.exists():
            return []
        try:
            lines = p.read_bytes().decode("utf-8", errors="replace").splitlines()
        except OSError as e:
            raise self._damaged("metrics.jsonl", f"cannot be read ({e})") from None
        out = []
        for i, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                if i == len(lines) - 1:
                    continue  # torn by a crash in the middle of an append
                raise self._damaged("metrics.jsonl", f"line {i + 1} is not JSON") from None
            if not isinstance(rec, dict):
                raise self._damaged("metrics.jsonl", f"line {i + 1} is a JSON {type(rec).__name__}, not an object")
            out.append(rec)
        return out

    def has_weights(self) -> bool:
        return self._file("model.safetensors").exists()

    def info(self) -> RunInfo:
        cfg, st = self.config(), self.status()
        return RunInfo(
            run_id=self.run_id,
            label=cfg.label,
            status=st.get("status", "failed"),
            method=cfg.method,
            model=cfg.model,
            source=cfg.source,
            target=cfg.target,
            seed=cfg.seed,
            created=float(st.get("created", 0.0)),
            read_only=self.read_only,
            summary=self.summary(),
            message=st.get("message", ""),
            init_from=cfg.init_from,
            teacher=cfg.teacher,
            freeze=cfg.freeze,
            labels_per_class=cfg.target_labels_per_class,
            data_names=dict(cfg.data_names),
        )

    # -- writing ---------------------------------------------------------------
    def _writable(self, name: str) -> Path:
        if self.read_only:
            raise PermissionError(f"run {self.run_id!r} is a read-only demo run")
        return self._file(name)

    def set_status(self, status: str, message: str = "", **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        try:
            old = self.status()
        except RunDamaged:
            old = {}  # a damaged status is replaced, not kept
        write_json_atomic(
            self._writable("status.json"),
            {**old, **extra, **_writer_identity(), "status": status, "message": message, "updated": time.time()},
        )

    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Append progress records; a write that fails (a full disk) leaves the file as it was."""
        lines = "".join(json.dumps(r) + "\n" for r in records).encode()
        path = self._writable("metrics.jsonl")
        try:
            with open(path, "ab", buffering=0) as f:  # unbuffered: nothing is left to write at close
                start = f.tell()
                try:
                    half = len(lines) // 2
                    _write_all(f, lines[:half])
                    fault_point("metrics:half-written")  # a reader must skip a torn last line
                    _write_all(f, lines[half:])
                except OSError:
                    f.truncate(start)  # no torn line in the middle of the file (truncating frees space)
                    raise
        except OSError as e:
            raise store_write_error(e, path) from e

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self._writable("summary.json"), summary)

    def save_weights(self, model: torch.nn.Module | dict[str, torch.Tensor]) -> None:
        """Write a model's weights (or a state dict) as the run's checkpoint."""
        state = model if isinstance(model, dict) else model.state_dict()
        _write_weights(self._writable("model.safetensors"), state)

    # -- loading ---------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        from vizcore.models.architecture import (
            build_model,  # the model is built exactly as training did
        )

        return build_model(self.config(), pretrained=False)  # its own weights are loaded after

    def load_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained model in eval mode; CheckpointError says precisely what is wrong."""
        path = self._file("model.safetensors")
        if not path.exists():
            raise CheckpointError(f"run {self.run_id!r} has no weights yet (status: {self.status()['status']})")
        model = self.build_model()
        load_state_checked(model, read_safetensors(path), source=f"run {self.run_id!r}")
        return model.to(device).eval()

    # -- computed results (vizcore.store.cache) ------------------------------------
    def cached(
        self,
        kind: str,
        params: dict[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
        compressed: bool = False,
        in_memory: bool = False,
    ) -> dict[str, np.ndarray]:
        """Arrays computed once per (kind, params) and these weights, and kept with the run."""
        own, shipped = self._cache_paths(kind, params)
        return cache.cached(own, shipped if self.read_only else None, compute, compressed, in_memory)

    def _cache_paths(self, kind: str, params: dict[str, Any]) -> tuple[Path, Path]:
        """Where (kind, params) is written, and where a demo run would ship it."""
        digest = self.weights_digest()
        name = cache.entry_name(kind, params, digest)
        return self.cache_dir / digest / name, self.path / cache.CACHE_DIR / digest / name

    def cache_entry(self, kind: str, params: dict[str, Any]) -> Path | None:
        """The stored entry :meth:`cached` would read for (kind, params), if there is one."""
        own, shipped = self._cache_paths(kind, params)
        return next((p for p in ((shipped, own) if self.read_only else (own,)) if p.exists()), None)

    def has_cached(self, kind: str, params: dict[str, Any]) -> bool:
        """Whether :meth:`cached` would read (kind, params) rather than compute it."""
        return self.cache_entry(kind, params) is not None

    def weights_digest(self) -> str:
        """Changes whenever the weights change, so caches of a retrained run are not reused;
        a content hash, so a copied or cloned run (new modification times) keeps its caches."""
        return self.weights_sha256()[:16] if self._file("model.safetensors").exists() else "none"

    def weights_sha256(self) -> str:
        """SHA-256 of the weights file ("" when there are none); hashed once per file version."""
        p = self._file("model.safetensors")
        try:
            st = p.stat()
        except FileNotFoundError:
            return ""
        return _sha256(str(p), st.st_size, st.st_mtime_ns)


def _write_all(f: io.RawIOBase, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view) or 0 :]


def slugify(text: str, length: int = 60) -> str:
    """ASCII letters, digits, '-' and '_' of ``text`` (anything else becomes '-'), for run ids."""
    out = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in text)
    return out[:length].strip("-_") or "run"


def _slug(cfg: TrainConfig) -> str:
    # a registered folder by its name: "source_only-pets", not the folder's path
    dom = cfg.shown(cfg.source) if not cfg.target else f"{cfg.shown(cfg.source)}-to-{cfg.shown(cfg.target)}"
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
        run_id = check_run_id(f"{time.strftime('%Y%m%d-%H%M%S')}-{slug or _slug(config)}-{secrets.token_hex(2)}")
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
        except OSError as e:  # a full or read-only store: no run, and no half-made folder left behind
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
                if RUN_ID_PATTERN.fullmatch(p.name) and not p.is_symlink() and (p / "config.json").exists()
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
            raise RunExists(f"the trash already holds a run {run.run_id!r}; remove {dest} to delete this one")
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
            raise PermissionError(f"{trash} is not a folder of the run store (a link or a file): the trash cannot be used")
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
            if p.name.startswith(".") and p.name.endswith(".partial") and p.is_dir() and not p.is_symlink():
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
