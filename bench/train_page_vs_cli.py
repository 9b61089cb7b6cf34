"""Benchmark: a training run started as the Train page starts it, against the same CLI command,
and how long after training its views are ready.

    python bench/train_page_vs_cli.py               # 1-epoch LeNet-GAP on the bundled MNIST, 3 repeats
    python bench/train_page_vs_cli.py --repeats 1 --epochs 2

CLI: ``python -m vizcore train --data mnist --epochs E --quiet`` in a subprocess, wall time to exit.
Page: the server's JobManager (what the Train page's button calls), started in this process on
the same config, wall time until the job has ended; then the time until the background queue has
prepared the run's views (analysis of each side, the default distance matrices), i.e. until every
page opens the run without waiting. The first repeat of each pays its imports; the median of the
repeats is printed, with the page's time as a ratio to the CLI's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--data", default="mnist")
    return p.parse_args()


def _cli(root: Path, args: argparse.Namespace) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vizcore", "train", "--data", args.data, "--epochs", str(args.epochs),
                    "--quiet"], cwd=ROOT, env={**os.environ, "VIZCORE_RUNS": str(root)}, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - t0


def _page(root: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds until the job ended, seconds more until its views were prepared)."""
    from vizcore.app.jobs import JobManager
    from vizcore.core.config import TrainConfig
    from vizcore.store import tasks
    from vizcore.store.runs import RunStore

    store = RunStore(root)
    jobs = JobManager()
    t0 = time.perf_counter()
    job = jobs.start(TrainConfig(source=args.data, epochs=args.epochs), store)
    jobs.wait(job.run_id)
    trained = time.perf_counter()
    while tasks.QUEUE.tasks(job.run_id):
        time.sleep(0.05)
    assert job.error is None, job.error
    return trained - t0, time.perf_counter() - trained


def main() -> None:
    args = _args()
    load0 = os.getloadavg()[0]
    cli, page, views = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            cli.append(_cli(Path(d) / "cli", args))
            p, v = _page(Path(d) / "page", args)
            page.append(p)
            views.append(v)
    c, p, v = (statistics.median(x) for x in (cli, page, views))
    print(f"{args.epochs}-epoch LeNet-GAP on {args.data}, median of {args.repeats}; load average "
          f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; {os.cpu_count()} cores\n")  # fmt: skip
    print("| what | seconds | ratio |\n|---|---|---|")
    print(f"| CLI: python -m vizcore train (process start to exit) | {c:.1f} | 1.00 |")
    print(f"| Train page's job (start to end of training) | {p:.1f} | {p / c:.2f}× the CLI |")
    print(f"| its views prepared after training (background queue) | {v:.1f} | |")


if __name__ == "__main__":
    main()
