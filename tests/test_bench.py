"""Every benchmark script starts from a plain checkout (`python bench/x.py`), as the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_runs_from_a_checkout(script: str, tmp_path: Path) -> None:
    # from another working directory, with nothing installed: the script must find vizcore itself
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
