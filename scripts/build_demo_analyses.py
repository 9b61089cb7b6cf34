"""Compute the per-run analysis of every shipped demo run into its own folder.

    python scripts/build_demo_analyses.py

The analysis is keyed by the weights' SHA-256, so it must be rebuilt (this script) whenever
a demo run is retrained; a fresh clone then opens every demo run without a forward pass.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vizcore.analysis import run_analysis  # noqa: E402
from vizcore.runs import DEMO_ROOT, Run  # noqa: E402


def main() -> None:
    for folder in sorted(p for p in DEMO_ROOT.iterdir() if (p / "config.json").exists()):
        run = Run(folder)  # writable here, unlike the store's read-only view of demo runs
        sides = ["source"] + (["target"] if run.config().target else [])
        for side in sides:
            run_analysis(run, side)
        size = sum(f.stat().st_size for f in (folder / "analysis").rglob("*") if f.is_file())
        print(f"{folder.name}: {', '.join(sides)} analysed ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
