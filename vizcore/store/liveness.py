"""Whether the process that wrote a run still runs: a pid with its start time, since the system
reuses pids; a run whose writer is gone reads as "interrupted", not "running" for ever."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); None where unknown.

    A pid alone does not identify a process: the system reuses it. The pair (pid, start time) does.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) may hold spaces and ')': the fields after the last ')' are 3, 4, ...
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` runs and, when ``started`` is known, is the one that started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    now = process_start(pid) if started is not None else None
    return now is None or now == started


def _writer_identity() -> dict[str, Any]:
    """What status.json records of the process writing a run: its pid and that pid's start time."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid)}
