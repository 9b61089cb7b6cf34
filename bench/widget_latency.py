"""Benchmark: a generated tour of every option of every choice widget on every page, each click
timed as the page's script run, against a one-widget app's rerun.

    python bench/widget_latency.py                       # every page, demo runs + one fresh run
    python bench/widget_latency.py --pages pages/cam.py  # one page
    python bench/widget_latency.py --out widgets.md      # also write the table as markdown

The tour is the one of tests/pages/test_every_widget.py (widgets discovered from the page as drawn, each
option of each select box, radio, segmented control, pill row and toggle tried from the defaults of
the others, with every run chosen in turn), run here at the pages' real sizes: the test's
shrinking of samples and data and its stand-ins are off, and the background queue runs as in a
server (a view whose result is not cached is asked of the queue and the click returns). A click's
time is its script run in this process (streamlit.testing's AppTest): what the server spends
before the browser can draw; the browser's own drawing is measured by bench/interaction_latency.py.
The runs: the shipped demo runs and one freshly trained 1-epoch LeNet-GAP run (its views are
prepared on the queue while the tour goes on, as after a training on the Train page).

Printed: per page, the number of clicks, median, p95 and worst, each also as a ratio to the median
rerun of a one-widget app measured in the same process; then the same over all pages, the slowest
clicks by name, and how many background tasks the tour asked for. The machine's load average is
printed at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interaction_latency import BASELINE_APP, BASELINE_CHANGES  # noqa: E402  (the same one-widget app)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", nargs="*", default=None, help="pages to tour (default: every page)")
    p.add_argument("--slowest", type=int, default=10, help="how many of the slowest clicks to name")
    p.add_argument("--out", default=None, help="also write the tables as markdown to this file")
    return p.parse_args()


def _baseline(n: int = 20) -> float:
    """Median seconds of a one-widget app's rerun after a selectbox change."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(BASELINE_APP).run()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        at.selectbox[0].set_value(BASELINE_CHANGES[i % len(BASELINE_CHANGES)]).run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fresh_run(root: Path) -> str:
    """Train the fresh run of the tour; its views go to the background queue, as from the Train page."""
    from vizcore.core.config import TrainConfig
    from vizcore.store import tasks
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import train
    from vizcore.views.background import prepare_spec

    store = RunStore(root)
    cfg = TrainConfig(source="mnist", epochs=1, batch_size=64, train_limit=1024, test_limit=1000)
    *_, end = train(cfg, store)
    tasks.QUEUE.submit(store, prepare_spec(store.get(end.run_id)))
    return end.run_id


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def main() -> None:
    args = _args()
    root = Path(tempfile.mkdtemp(prefix="vizcore-widgets-")) / "runs"
    os.environ["VIZCORE_RUNS"] = str(root)
    os.environ.setdefault("VIZCORE_UMAP_WARMUP", "0")
    load0 = os.getloadavg()
    base = _baseline()

    import tests.pages.test_every_widget as tour
    from pages._shared import run_label
    from vizcore.store import tasks
    from vizcore.store.runs import RunStore

    fresh_id = _fresh_run(root)
    tour.SMALL = {}  # the pages' own defaults: a user's clicks, not the test's smaller ones
    clicks: list[tuple[str, str, float]] = []  # (page, what, seconds)
    page_now = [""]
    apply = tour._apply

    def timed(at, changes):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        apply(at, changes)
        what = ", ".join(f"{c.label or c.ident} = {o}" for c, o in changes[:1])
        clicks.append((page_now[0], what, time.perf_counter() - t0))

    tour._apply = timed
    asked: set = set()
    submit = tasks.QUEUE.submit

    def counted(store, spec):  # type: ignore[no-untyped-def]
        asked.add(spec)
        return submit(store, spec)

    tasks.QUEUE.submit = counted  # type: ignore[method-assign]
    infos = [r for r in RunStore(root).list() if r.status in ("complete", "stopped")]
    fresh = next(run_label(r) for r in infos if r.run_id == fresh_id)
    runs = [fresh] + [run_label(r) for r in infos if r.run_id != fresh_id]
    problems = []
    for page in args.pages or tour.PAGES:
        page_now[0] = page
        problems += tour.tour_page(page, runs, fresh).problems

    rows = [("page", "clicks", "median s", "p95 s", "worst s", "p95 / baseline")]
    for page in dict.fromkeys(p for p, _, _ in clicks):
        ts = [t for p, _, t in clicks if p == page]
        rows.append((page, str(len(ts)), f"{statistics.median(ts):.2f}", f"{_p95(ts):.2f}", f"{max(ts):.2f}",
                     f"{_p95(ts) / base:,.0f}×"))  # fmt: skip
    ts = [t for _, _, t in clicks]
    rows.append(("all pages", str(len(ts)), f"{statistics.median(ts):.2f}", f"{_p95(ts):.2f}", f"{max(ts):.2f}",
                 f"{_p95(ts) / base:,.0f}×"))  # fmt: skip
    lines = [f"baseline: one-widget app rerun, median {base * 1000:.1f} ms; load average at start "
             f"{load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores", ""]  # fmt: skip
    lines += ["| " + " | ".join(r) + " |" for r in rows[:1]] + ["|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += ["", f"slowest {args.slowest} clicks:"]
    lines += [f"- {t:.2f} s  {p}: {w}" for p, w, t in sorted(clicks, key=lambda c: -c[2])[: args.slowest]]
    done = sum(1 for spec in asked if (t := tasks.QUEUE.find(spec)) is not None and t.state == "done")
    lines += ["", f"background tasks asked for by the tour: {len(asked)} ({done} done by its end)"]
    lines += [f"problem: {p}" for p in problems]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
    # the queue's worker may still be inside torch: leave without tearing its thread down
    sys.stdout.flush()
    os._exit(0)
