"""Validated reads: each JSON file of a run is checked for shape, so a damaged file marks its run
damaged (naming the file and what is wrong) and never reaches a view."""

from __future__ import annotations

from typing import Any

import numpy as np

STATUSES = ("running", "complete", "stopped", "failed", "interrupted")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _status_problem(d: dict[str, Any]) -> str | None:
    """What is wrong with a status.json object, or None."""
    if d.get("status") not in STATUSES:
        return f"'status' is {d.get('status')!r}, not one of {', '.join(STATUSES)}"
    if not isinstance(d.get("message", ""), str):
        return "'message' is not text"
    if "pid" in d and not _is_count(d["pid"]):
        return f"'pid' is {d['pid']!r}, not a process id"
    if d.get("pid_start") is not None and not _is_count(d["pid_start"]):
        return f"'pid_start' is {d['pid_start']!r}, not a start time"
    for key in ("created", "updated"):
        if key in d and not _is_number(d[key]):
            return f"{key!r} is {d[key]!r}, not a time in seconds"
    return None


def _summary_problem(d: dict[str, Any]) -> str | None:
    """What is wrong with a summary.json object, or None."""
    for key, v in d.items():
        if key.endswith("_acc") and v is not None and not (_is_number(v) and 0 <= v <= 1):
            return f"{key!r} is {v!r}, not an accuracy between 0 and 1"
        if key in ("epochs_done", "steps", "processes") and not _is_count(v):
            return f"{key!r} is {v!r}, not a count"
        if isinstance(v, float) and not np.isfinite(v):  # other keys are free-form (notes, provenance)
            return f"{key!r} is {v!r}, not a finite number"
    return None


def _object_problem(d: object) -> str | None:
    return None if isinstance(d, dict) else f"it holds a JSON {type(d).__name__}, not an object"
