"""Sweep overhead: a grid of LeNet-GAP runs through `python -m vizcore sweep`, against the time of its trials.

    python bench/sweep_overhead.py [--trials 16] [--workers 2] [--train-limit 2048] [--epochs 1]

Starts ``--workers`` worker processes on one SQLite study in a temporary store (one thread each,
as on a 2-core machine), each the plain command a user runs, and waits for the grid to finish.
A trial's time is its run's own, from the run's "start" event to its "end" event (both in the
run's metrics). The table compares:

* the sweep's wall time with the trials' time shared out over the workers (sum / workers): every
  cost of the sweep, the interpreters' start (importing PyTorch) included;
* each worker's span from its first trial's start to its last trial's end with the sum of its
  trials: what the scheduler adds between trials (claiming a point in the database, tagging the
  run, telling the study);

the goal being at most 1.05. The machines are shared: the workers may also wait for neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16, help="grid points (seeds 0..N-1)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes on one SQLite study")
    ap.add_argument("--train-limit", type=int, default=2048, help="training images per trial")
    ap.add_argument("--test-limit", type=int, default=512, help="test images per trial")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--store", default=None, help="run store to write (default: a temporary folder)")
    return ap.parse_args(argv)


def run_times(root: Path) -> dict[int, list[tuple[float, float]]]:
    """(start, end) of every run in ``root``, by the pid of the worker that wrote it."""
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for run in root.iterdir():
        if not (run / "metrics.jsonl").exists():
            continue
        events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        t = {e["kind"]: e["time"] for e in events if e["kind"] in ("start", "end")}
        pid = json.loads((run / "status.json").read_text())["pid"]
        out[pid].append((t["start"], t["end"]))
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    root = Path(a.store or tempfile.mkdtemp(prefix="sweep-overhead-")) / "runs"
    sets = {"epochs": a.epochs, "batch_size": 64, "train_limit": a.train_limit, "test_limit": a.test_limit}
    cmd = [sys.executable, "-m", "vizcore", "--runs", str(root), "sweep", "overhead", "--grid",
           "seed=" + ",".join(map(str, range(a.trials))), *[f"--set={k}={v}" for k, v in sets.items()]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.time()
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL) for _ in range(a.workers)]
    codes = [p.wait() for p in procs]
    wall = time.time() - t0
    if any(codes):
        print(f"a worker failed (exit codes {codes})", file=sys.stderr)
        return 1
    by_worker = run_times(root)
    trials = [e - s for spans in by_worker.values() for s, e in spans]
    span = sum(max(e for _, e in v) - min(s for s, _ in v) for v in by_worker.values())
    start = [min(s for s, _ in v) - t0 for v in by_worker.values()]
    print(f"{len(trials)} trials on {len(by_worker)} workers ({a.workers} started), "
          f"LeNet-GAP source-only, {a.train_limit} images, {a.epochs} epoch(s); store {root}\n")  # fmt: skip
    print("| measure | seconds | × trials' time |")
    print("|---|---|---|")
    print(f"| trials' own time, sum | {sum(trials):.1f} | |")
    print(f"| sweep wall time (2 workers) vs sum / workers | {wall:.1f} | {wall / (sum(trials) / a.workers):.3f} |")
    print(f"| workers' spans, first trial start to last trial end, sum | {span:.1f} | {span / sum(trials):.3f} |")
    print(f"| interpreter start to first trial, mean over workers | {sum(start) / len(start):.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
