"""Benchmark: faithfulness scores of 500 test images, batched against an image-by-image loop,
and the per-method faithfulness table of every shipped demo run.

    OMP_NUM_THREADS=2 python bench/faithfulness.py            # timings + the demo tables
    OMP_NUM_THREADS=2 python bench/faithfulness.py --no-tables

Timings: ``vizcore.faithfulness.faithfulness`` (deletion and insertion AUC with 10 steps, ROAD
MoRF and LeRF at 10/30/50/70/90 %, average drop / increase) of the maps of each method for the
first 500 test images of ``demo-lenet-gap-mnist``, all perturbations in batches of 1,024, on
``--threads`` threads; the baseline is the same function called image by image (a Python loop
over single images, timed on ``--loop-images`` images and scaled to 500), measured in the same
run. Tables: ``vizcore.explanation_views.faithfulness_table`` of each demo run's source side
(read from the shipped caches; computed if missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vizcore.analysis import eval_domain  # noqa: E402
from vizcore.explain import explain, list_explainers  # noqa: E402
from vizcore.explanation_views import best_methods, faithfulness_table, table_columns, verdict  # noqa: E402
from vizcore.faithfulness import faithfulness  # noqa: E402
from vizcore.runs import RunStore  # noqa: E402

N = 500


def timings(threads: int, loop_images: int) -> None:
    run = RunStore().get("demo-lenet-gap-mnist")
    model = run.load_model()
    x = eval_domain(run.config(), "source").images[:N]
    print(f"\n### Faithfulness of {N} test images, demo-lenet-gap-mnist, {threads} thread(s)\n")
    print("| method | maps | faithfulness, batched | image by image | speed-up |")
    print("|---|---|---|---|---|")
    for method in list_explainers():
        t0 = time.perf_counter()
        e = explain(model, x, method=method)
        t_maps = time.perf_counter() - t0
        t0 = time.perf_counter()
        faithfulness(model, x, e.maps, e.class_idx)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(loop_images):
            faithfulness(model, x[i : i + 1], e.maps[i : i + 1], e.class_idx[i : i + 1])
        loop = (time.perf_counter() - t0) * N / loop_images
        print(f"| {method} | {t_maps:.1f} s | {batched:.1f} s | {loop:.1f} s | {loop / batched:.1f}x |")
    print(f"\n(image by image: {loop_images} images timed, scaled to {N})")


def tables() -> None:
    store = RunStore()
    cols = table_columns()
    for info in store.list():
        if not info.read_only:
            continue
        run = store.get(info.run_id)
        rows = faithfulness_table(run, "source")
        have = [c for c in cols if c in rows[0]]
        best = best_methods(rows)
        print(f"\n### {info.run_id} (source: {info.source}, first {int(rows[0]['n'])} test images)\n")
        print("| method | " + " | ".join(f"{cols[c][0]} ({'↓' if cols[c][1] == 'lower' else '↑'})" for c in have) + " |")
        print("|---|" + "---|" * len(have))
        for r in rows:
            cells = [f"**{r[c]:.3f}**" if best.get(c) == r["method"] else f"{r[c]:.3f}" for c in have]
            print(f"| {r['method']} | " + " | ".join(cells) + " |")
        print(f"\n{verdict(rows)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop-images", type=int, default=25)
    ap.add_argument("--no-tables", action="store_true")
    ap.add_argument("--no-timings", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.no_timings:
        timings(args.threads, args.loop_images)
    if not args.no_tables:
        tables()


if __name__ == "__main__":
    main()
