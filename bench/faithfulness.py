"""Benchmark: faithfulness scores of 500 test images, batched against an image-by-image loop,
and the per-method faithfulness table of every shipped demo run.

    OMP_NUM_THREADS=2 python bench/faithfulness.py            # timings + the demo tables
    OMP_NUM_THREADS=2 python bench/faithfulness.py --no-tables --methods CAM,Grad-CAM++

Timings: ``vizcore.explain.faithfulness.faithfulness`` (deletion and insertion AUC with 10 steps, ROAD
MoRF and LeRF at 10/30/50/70/90 %, average drop / increase) of the maps of each method for the
first 500 test images of ``demo-lenet-gap-mnist``, all perturbations in batches of 1,024, on
``--threads`` threads; the baseline is the same function called image by image (a Python loop
over single images, timed on ``--loop-images`` images and scaled to 500), measured in the same
run. Tables: ``vizcore.views.explanations.faithfulness_table`` of each demo run's source side,
read from the shipped caches (``--compute`` scores the methods a run does not ship).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N = 500


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """(result, wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


def _loop(model, x, maps, cls, n: int) -> None:  # type: ignore[no-untyped-def]
    """The unbatched baseline: the same scores, one image per call."""
    from vizcore.explain.faithfulness import faithfulness

    for i in range(n):
        faithfulness(model, x[i : i + 1], maps[i : i + 1], cls[i : i + 1])


def timings(threads: int, loop_images: int, methods: list[str]) -> None:
    from vizcore.explain.faithfulness import faithfulness
    from vizcore.explain.methods import explain
    from vizcore.store.runs import RunStore
    from vizcore.views.analysis import eval_domain

    run = RunStore().get("demo-lenet-gap-mnist")
    model = run.load_model()
    x = eval_domain(run.config(), "source").images[:N]
    print(f"\n### Faithfulness of {N} test images, demo-lenet-gap-mnist, {threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f} at the start\n")  # fmt: skip
    print("| method | maps (wall) | faithfulness, batched: wall / CPU | image by image: wall / CPU | speed-up (wall) |")
    print("|---|---|---|---|---|")
    for method in methods:
        e, t_maps, _ = _timed(explain, model, x, method=method)
        _, bw, bc = _timed(faithfulness, model, x, e.maps, e.class_idx)
        _, lw, lc = _timed(_loop, model, x, e.maps, e.class_idx, loop_images)
        lw, lc = lw * N / loop_images, lc * N / loop_images
        print(f"| {method} | {t_maps:.1f} s | {bw:.1f} s / {bc:.1f} s | {lw:.0f} s / {lc:.0f} s | {lw / bw:.1f}x |")
    print(f"\n(image by image: {loop_images} images timed, scaled to {N}. Every method perturbs and scores the "
          "same number of images, so the faithfulness time does not depend on the method.)")


def tables(compute: bool) -> None:
    from vizcore.explain.methods import list_explainers
    from vizcore.store.runs import RunStore
    from vizcore.views.explanations import (
        best_methods,
        faithfulness_table,
        scored_methods,
        table_columns,
        verdict,
    )

    store = RunStore()
    cols = table_columns()
    for info in store.list():
        if not info.read_only:
            continue
        run = store.get(info.run_id)
        methods = list_explainers() if compute else scored_methods(run, "source")
        if not methods:
            print(f"\n### {info.run_id}: no method scored yet (--compute scores them)")
            continue
        rows = faithfulness_table(run, "source", methods)
        have = [c for c in cols if c in rows[0]]
        best = best_methods(rows)
        print(f"\n### {info.run_id} (source: {info.source}, first {int(rows[0]['n'])} test images)\n")
        print("| method | " + " | ".join(f"{cols[c][0]} ({'↓' if cols[c][1] == 'lower' else '↑'})" for c in have) + " |")
        print("|---|" + "---|" * len(have))
        for r in rows:
            cells = [f"**{r[c]:.3f}**" if best.get(c) == r["method"] else f"{r[c]:.3f}" for c in have]
            print(f"| {r['method']} | " + " | ".join(cells) + " |")
        left = [m for m in list_explainers() if m not in methods]
        print(f"\n{verdict(rows)}" + (f" (not scored yet: {', '.join(left)})" if left else ""))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop-images", type=int, default=25)
    ap.add_argument("--no-tables", action="store_true")
    ap.add_argument("--compute", action="store_true", help="score the methods a demo run does not ship")
    ap.add_argument("--no-timings", action="store_true")
    # default (None): every registered explainer, read after parsing (it imports vizcore)
    ap.add_argument("--methods", default=None, help="comma-separated methods to time")
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    import torch

    from vizcore.explain.methods import list_explainers

    torch.set_num_threads(args.threads)
    if not args.no_timings:
        methods = args.methods if args.methods is not None else ",".join(list_explainers())
        timings(args.threads, args.loop_images, methods.split(","))
    if not args.no_tables:
        tables(args.compute)


if __name__ == "__main__":
    main()
