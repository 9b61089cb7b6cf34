"""The two data paths side by side: neither slows the other.

    python bench/data_paths.py                 # ~5 minutes on 2 cores
    python bench/data_paths.py --quick         # smoke run

1. The in-memory fast path (the digit domains): vizcore's loop against the bare PyTorch loop of
   bench/train_throughput.py on the same MNIST batches held in memory (ratio >= 0.9 means the
   feeds cost the digit runs nothing worth naming).
2. A photo folder at 224 px (JPEG files written here, 256 px and larger, one sub-folder per
   class): the same run read in memory (every image decoded before the first step) and
   streamed by DataLoader workers with per-image augmentation (random resized crop and flip),
   MobileNetV3-Small. Columns: training images/s (training time only, as the Train page shows
   it), the time before the first step (decoding everything, for the in-memory path), and the
   float32 image bytes the path holds. The ratio column is against the in-memory run.

Each figure is a ratio within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from vizcore.core.config import TrainConfig


def write_photos(root: Path, classes: int, per_class: int, seed: int = 0) -> str:
    """JPEG "photos" (smooth colour fields with a class-coloured disc) of 256-320 px a side."""
    import numpy as np
    from PIL import Image

    from vizcore.data.sources.folders import FOLDER_PREFIX

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
        hue = np.array([np.cos(c), np.sin(c), np.cos(2 * c)]) * 0.5 + 0.5
        for i in range(per_class):
            h, w = rng.integers(256, 321, size=2)
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
            field = 0.5 + 0.5 * np.sin(rng.uniform(2, 9) * xx[..., None] + rng.uniform(2, 9) * yy[..., None]
                                       + rng.uniform(0, 6, 3))  # fmt: skip
            cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)[..., None]
            img = np.where(disc, hue, field) * 255
            Image.fromarray(img.astype(np.uint8)).save(root / f"class_{c}" / f"{i}.jpg", quality=90)
    return f"{FOLDER_PREFIX}{root}"


def timed_run(cfg: TrainConfig) -> tuple[float, float]:
    """(training images/s of the last epoch, seconds from the call to the first step event)."""
    from vizcore.train.loop import train

    t0, first, rate = time.perf_counter(), None, None
    for ev in train(cfg):
        if ev.kind == "step" and first is None:
            first = time.perf_counter() - t0
        elif ev.kind == "epoch":
            rate = ev.values["images_per_s"]
        elif ev.kind == "end" and ev.status != "complete":
            raise RuntimeError(ev.message)
    assert rate is not None and first is not None
    return rate, first


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--per-class", type=int, default=48, help="photos per class (4 classes)")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the digit rows")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch
    from train_throughput import bare_loop, vizcore_loop

    from vizcore.core.config import TrainConfig
    from vizcore.data.feeds import default_workers

    per_class, size, repeats, steps = a.per_class, a.size, a.repeats, 40
    if a.quick:
        per_class, size, repeats, steps = 8, 96, 1, 10

    digits = TrainConfig(source="mnist", batch_size=128, epochs=1, schedule="constant", lr=0.05,
                         weight_decay=0.0, device="cpu")  # fmt: skip
    bare, viz = [], []
    for _ in range(repeats):
        bare.append(bare_loop(digits, steps))
        viz.append(vizcore_loop(digits, steps))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        name = write_photos(Path(tmp) / "photos", 4, per_class)
        base = TrainConfig(source=name, model="mobilenet_v3_small", input_shape=(3, size, size), batch_size=16,
                           epochs=2, lr=0.01, schedule="constant", device="cpu", log_every=1, augment_crop=True)  # fmt: skip
        n_train = int(round(4 * per_class * 0.8))
        held = n_train * 3 * size * size * 4
        for label, changes, bytes_held in (
            ("in memory", {"data_path": "memory"}, held),
            ("streamed, 0 workers (decoded in the training process)", {"data_path": "stream", "workers": 0}, 0),
            ("streamed, 1 worker", {"data_path": "stream", "workers": 1}, 0),
            ("streamed, 2 workers", {"data_path": "stream", "workers": 2}, 0),
        ):
            rate, first = timed_run(base.replace(**changes))
            rows.append((label, rate, first, bytes_held))

    b, v = statistics.median(bare), statistics.median(viz)
    print(f"\n# data paths ({torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} cores; default loader workers: {default_workers('cpu')} on the CPU, "
          f"{default_workers('cuda')} on CUDA)\n")  # fmt: skip
    print(f"In-memory fast path, LeNet-GAP on MNIST, batch 128, {steps} timed steps, median of {repeats}:\n")
    print("| loop | images/s | ratio vs bare |")
    print("|---|---|---|")
    print(f"| bare PyTorch | {b:,.0f} | 1.00 |")
    print(f"| vizcore.train.loop (memory feed) | {v:,.0f} | {v / b:.2f} |")
    print(f"\nPhoto folder, {4 * per_class} JPEGs of 256-320 px (4 classes, {n_train} for training), "
          f"MobileNetV3-Small at {size} px, batch 16, random resized crop + flip, epoch 2:\n")  # fmt: skip
    print("| path | training images/s | × in memory | s before the first step | float32 images held |")
    print("|---|---|---|---|---|")
    ref = rows[0][1]
    for label, rate, first, held_b in rows:
        print(f"| {label} | {rate:,.1f} | {rate / ref:.2f} | {first:.1f} | {held_b / 2**20:,.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
