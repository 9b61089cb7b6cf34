"""Benchmark: the CAM page's maps of the images on screen against the whole split it used to compute.

    python bench/cam_onscreen.py [--run demo-lenet-gap-plus-cluttered] [--images 24] [--whole 500]

For Score-CAM, Grad-CAM++ and CAM: the time (wall and CPU, all threads of the process; the
fastest of ``--repeat`` for the images on screen) to
compute every class's maps of the ``--images`` first test images in one batch, as the CAM page
now does for its grid (``vizcore.explain.methods.explain_all_classes``), and the time to compute the
maps of one class (the predicted one) for the first ``--whole`` test images, as the page used
to inside a click (``vizcore.explain.methods.explain``; it now runs on the background queue). Ratios are
to CAM's time of the same column, measured in the same run. ``--whole 0`` skips the whole split
(Score-CAM's takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("Score-CAM", "Grad-CAM++", "CAM")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="demo-lenet-gap-plus-cluttered", help="a run id (the demo runs ship)")
    ap.add_argument("--images", type=int, default=24, help="images on screen (the grid's default)")
    ap.add_argument("--whole", type=int, default=500, help="images of the old whole-split computation; 0 skips it")
    ap.add_argument("--repeat", type=int, default=3, help="on-screen timings per method (the fastest is shown)")
    return ap.parse_args(argv)


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) of the fastest of ``repeat`` calls: on a
    shared machine the fastest is the one least slowed by the other processes."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main() -> None:
    args = parse_args()
    import torch

    from vizcore.explain.layers import default_layer, layer_activations
    from vizcore.explain.methods import explain, explain_all_classes
    from vizcore.store.runs import RunStore
    from vizcore.views.analysis import eval_domain, run_analysis

    run = RunStore().get(args.run)
    model = run.load_model()
    images = eval_domain(run.config(), "source").images
    layer = default_layer(model, tuple(images.shape[1:]))
    pred = torch.from_numpy(run_analysis(run, "source")["pred"])
    shown = images[: args.images]
    explain_all_classes(model, shown[:2], "CAM", layer)  # warm up: the first pass allocates
    on = {m: timed(lambda m=m: explain_all_classes(model, shown, m, layer), args.repeat) for m in METHODS}
    whole = {m: timed(lambda m=m: explain(model, images[: args.whole], pred[: args.whole], m, layer))
             for m in METHODS} if args.whole else {}  # fmt: skip
    channels = layer_activations(model, shown[:1], layer).shape[1]  # Score-CAM: one masked pass each, per image
    print(f"run {args.run}, layer {layer!r} ({channels} channels), {torch.get_num_threads()} torch threads")
    print(f"on screen: {args.images} images, every class; whole split: {args.whole} images, the predicted class\n")
    head = f"{'method':<11} | {'on screen s':>11} | {'CPU s':>7} | {'× CAM':>7}"
    if whole:
        head += f" | {'whole split s':>13} | {'CPU s':>7} | {'× CAM':>7} | {'whole / on screen':>17}"
    print(head)
    print("-" * len(head))
    for m in METHODS:
        row = f"{m:<11} | {on[m][0]:>11.2f} | {on[m][1]:>7.2f} | {on[m][0] / on['CAM'][0]:>7.1f}"
        if whole:
            row += (f" | {whole[m][0]:>13.2f} | {whole[m][1]:>7.2f} | {whole[m][0] / whole['CAM'][0]:>7.1f}"
                    f" | {whole[m][0] / on[m][0]:>17.1f}")  # fmt: skip
        print(row)


if __name__ == "__main__":
    main()
