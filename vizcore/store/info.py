"""What a run is before its files are opened: its id (the one gate for ids from outside), what a
run list shows of it (:class:`RunInfo`), which runs it starts from, and the store's errors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vizcore.core.config import TrainConfig
from vizcore.store.weights import CheckpointError


@runtime_checkable
class _HasConfig(Protocol):
    """A Run, without importing it: lineage reads its config."""

    def config(self) -> TrainConfig: ...


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


class RunDamaged(CheckpointError):
    """A file of a run is unreadable or not of the shape the store writes; the message names it.

    Raised by every read of a run file, so one damaged run is listed as damaged (naming the file)
    and never hides or breaks the others.
    """


def lineage(run: RunInfo | _HasConfig) -> dict[str, str]:
    """The runs ``run`` (a RunInfo, or a Run) starts from, by role: {"parent": id, "teacher": id}
    (only those it has)."""
    src = run.config() if isinstance(run, _HasConfig) else run
    parent, teacher = src.init_from, src.teacher
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
