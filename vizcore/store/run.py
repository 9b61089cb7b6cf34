"""One run folder and its files: config, status, metrics, summary, weights and cached results.

Every read checks the folder still exists and that the file has the shape the store writes (a
damaged file raises :class:`RunDamaged` naming it); every write goes through the atomic writers,
and the status says "complete" only after the weights it describes are on disk. Folders are made,
listed, deleted and restored by :class:`vizcore.store.runs.RunStore`.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vizcore.core.atomic import (
    fault_point,
    store_write_error,
    write_json_atomic,
)
from vizcore.core.config import TrainConfig
from vizcore.store import cache
from vizcore.store.files import STATUSES, _object_problem, _status_problem, _summary_problem
from vizcore.store.info import (
    RunDamaged,
    RunInfo,
    RunNotFound,
)
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
            raise RunNotFound(
                f"run {self.run_id!r} no longer exists (its folder {self.path} is gone)"
            )
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
                raise RunNotFound(
                    f"run {self.run_id!r} no longer exists (its folder {self.path} is gone)"
                ) from None
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
            st = {
                **st,
                "status": "interrupted",
                "message": "the training process ended without finishing",
            }
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
                raise self._damaged(
                    "metrics.jsonl", f"line {i + 1} is a JSON {type(rec).__name__}, not an object"
                )
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
            {
                **old,
                **extra,
                **_writer_identity(),
                "status": status,
                "message": message,
                "updated": time.time(),
            },
        )

    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Append progress records; a write that fails (a full disk) leaves the file as it was."""
        lines = "".join(json.dumps(r) + "\n" for r in records).encode()
        path = self._writable("metrics.jsonl")
        try:
            with open(
                path, "ab", buffering=0
            ) as f:  # unbuffered: nothing is left to write at close
                start = f.tell()
                try:
                    half = len(lines) // 2
                    _write_all(f, lines[:half])
                    fault_point("metrics:half-written")  # a reader must skip a torn last line
                    _write_all(f, lines[half:])
                except OSError:
                    f.truncate(
                        start
                    )  # no torn line in the middle of the file (truncating frees space)
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
            raise CheckpointError(
                f"run {self.run_id!r} has no weights yet (status: {self.status()['status']})"
            )
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
        return cache.cached(
            own, shipped if self.read_only else None, compute, compressed, in_memory
        )

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
