"""GPU check: every CUDA path of vizcore against the same work on the CPU, in one run.

    python bench/gpu_check.py              # on a CUDA machine: CUDA against CPU, asserts, one table
    python bench/gpu_check.py --cpu-only   # anywhere: the same checks on the CPU alone (a smoke run)

Checks, each on both devices with the same seed:

- ``train <method>``: one short epoch of every registered method (AMP on CUDA, bf16 autocast),
  on MNIST (→ MNIST-M-style for the methods that use a target); a method that needs a parent or
  a teacher starts from the source-only run trained on that device. Asserts: the run completes
  and every logged loss is finite. Throughput: training images per second.
- ``CAM``: the CUDA-trained source-only run's CAMs for 512 test images computed on CUDA and on the
  CPU from the same weights. Asserts equal maps within bf16 tolerance (max |Δ| ≤ 2e-2 of the
  largest |map|) and identical shapes.
- ``MMD matrix`` and ``critic_w1 matrix``: 10×10 class matrices of the same features; the critic
  trains on the GPU when there is one. Asserts equal shapes and finite values; MMD equal to 1e-6.
- ``streamed photo folder``: MobileNetV3-Small at 224 px, one epoch over 192 JPEGs read by
  DataLoader workers (pinned memory on CUDA) with the per-image crop and flip. Asserts: the run
  completes, every logged loss is finite, and the run says it streamed.
- ``t-SNE 60k``: 60,000 points of 64-d features; cuML when installed on a GPU, else openTSNE on
  the CPU (then the CUDA column repeats the CPU path).

Exits non-zero if any assertion fails, after printing the table. Paste the table into the README.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other bench scripts

if TYPE_CHECKING:
    from vizcore.core.config import TrainConfig
    from vizcore.store.runs import RunStore

FAILURES: list[str] = []


def check(ok: bool, what: str) -> str:
    if not ok:
        FAILURES.append(what)
    return "ok" if ok else f"FAILED: {what}"


@contextmanager
def visible(dev: str):
    """Hide the GPU from code that picks its device itself (the distances, t-SNE) for a CPU column."""
    import torch

    real = torch.cuda.is_available
    if dev == "cpu":
        torch.cuda.is_available = lambda: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.cuda.is_available = real  # type: ignore[method-assign]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def method_config(method: str, device: str, limit: int, parent: str | None) -> TrainConfig:
    """One short epoch of ``method`` from its recommended recipe; a target where it uses one (or
    draws labelled target images), the source-only run of the same device where it needs a parent
    or a teacher."""
    from vizcore.methods import METHODS
    from vizcore.methods.recipes import recommended_config

    cls = METHODS.get(method)
    needs = set(getattr(cls, "requires", ()))
    # source-only on the adaptation recipe: the parent of ADDA and fine-tuning shares their architecture
    wants_target = getattr(cls, "uses_target", False) or bool(needs & {"init_from", "target_labels_per_class"}) \
        or method == "source_only"
    short = dict(epochs=1, seed=0, device=device, amp=True, train_limit=limit, test_limit=512, log_every=5)
    cfg = recommended_config(method, "mnist", "mnist-m" if wants_target else None, **short)
    given = {"init_from": parent, "teacher": parent, "target_labels_per_class": 10}
    return cfg.replace(**{name: given[name] for name in needs if name in given})


def train_one(cfg: TrainConfig, store: RunStore) -> tuple[float, str, str, bool]:
    """Seconds, final status, run id, whether every logged loss was finite."""
    import numpy as np

    from vizcore.train.loop import train

    finite = True
    t = time.perf_counter()
    events = []
    for ev in train(cfg, store):
        events.append(ev)
        finite &= all(np.isfinite(v) for k, v in ev.values.items() if "loss" in k)
    end = events[-1]
    return time.perf_counter() - t, f"{end.status} ({end.message})" if end.status != "complete" else end.status, end.run_id or "", finite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-only", action="store_true", help="run every check on the CPU alone (no GPU here)")
    p.add_argument("--limit", type=int, default=2048, help="training images per run")
    p.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    p.add_argument("--tsne-points", type=int, default=60_000)
    return p.parse_args(argv)


def main() -> None:
    a = parse_args()
    import torch

    from vizcore.methods import METHODS
    from vizcore.store.runs import RunStore

    if not a.cpu_only and not torch.cuda.is_available():
        sys.exit("no CUDA GPU is visible to PyTorch: run this on a CUDA machine, or with --cpu-only here")
    devices = ["cpu"] if a.cpu_only else ["cpu", "cuda"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not a.cpu_only else "none"
    print(f"# torch {torch.__version__}, GPU: {gpu}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    print("| check | " + " | ".join(f"{d} s" for d in devices) + " | CPU / CUDA | result |")
    print("|---|" + "---|" * len(devices) + "---|---|")
    methods = a.methods or ["source_only", *(m for m in METHODS.names() if m != "source_only")]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {d: RunStore(Path(tmp) / d, demo_root=None) for d in devices}
        parents: dict[str, str] = {}
        for method in methods:
            seconds, verdicts = [], []
            for dev in devices:
                cfg = method_config(method, dev, a.limit, parents.get(dev))
                try:
                    s, status, run_id, finite = train_one(cfg, stores[dev])
                except Exception as e:  # a method that cannot run here says why, the check goes on
                    seconds.append(float("nan"))
                    verdicts.append(check(False, f"{method} on {dev}: {type(e).__name__}: {e}"))
                    continue
                if method == "source_only":
                    parents[dev] = run_id
                seconds.append(s)
                verdicts.append(check(status == "complete" and finite, f"{method} on {dev}: {status}, finite={finite}"))
            _row(f"train {method} ({a.limit / max(min(seconds), 1e-9):,.0f} img/s best)", seconds, verdicts)
        if "source_only" in methods:
            _cam_row(stores[devices[-1]].get(parents[devices[-1]]), devices)
        _matrix_rows(devices)
        _stream_row(devices, Path(tmp))
        _tsne_row(a.tsne_points, devices)
    if FAILURES:
        print("\nFailures:\n- " + "\n- ".join(FAILURES))
        sys.exit(1)
    print("\nAll checks passed.")


def _row(name: str, seconds: list[float], verdicts: list[str]) -> None:
    ratio = f"{seconds[0] / seconds[1]:.1f}×" if len(seconds) == 2 and seconds[1] > 0 else "—"
    cells = " | ".join(f"{s:.2f}" for s in seconds)
    print(f"| {name} | {cells} | {ratio} | {'; '.join(dict.fromkeys(verdicts))} |", flush=True)


def _cam_row(run, devices: list[str]) -> None:
    from vizcore.explain.cam import class_activation_maps
    from vizcore.views.analysis import eval_domain

    dom = eval_domain(run.config(), "source", "test", limit=512)
    maps, seconds = {}, []
    for dev in devices:
        model = run.load_model(dev)
        s, r = timed(lambda model=model, dev=dev: class_activation_maps(model, dom.images, device=dev))
        maps[dev], seconds = r.maps, [*seconds, s]
    ref = maps["cpu"]
    worst = max(float((m - ref).abs().max() / ref.abs().max().clamp_min(1e-12)) for m in maps.values())
    same = all(m.shape == ref.shape for m in maps.values())
    _row("CAM, 512 images", seconds, [check(same and worst <= 2e-2, f"CAM max |Δ| {worst:.2e} of max |map|")])


def _matrix_rows(devices: list[str]) -> None:
    import numpy as np

    from vizcore.metrics import class_distance_matrix

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 200)
    x = rng.normal(size=(2000, 64)) + rng.normal(size=(10, 64))[y] * 0.3
    for metric in ("mmd", "critic_w1"):
        seconds, values = [], []
        for dev in devices:
            with visible(dev):
                s, r = timed(lambda metric=metric: class_distance_matrix(x, y, metric, seed=0))
            seconds.append(s)
            values.append(r.values)
        ok = all(v.shape == (10, 10) and np.isfinite(v).all() for v in values)
        if metric == "mmd":
            ok &= all(np.allclose(v, values[0], atol=1e-6) for v in values)
        _row(f"{metric} matrix 10×10, d = 64", seconds, [check(ok, f"{metric} matrix")])


def _stream_row(devices: list[str], tmp: Path) -> None:
    import numpy as np
    from data_paths import write_photos

    from vizcore.core.config import TrainConfig
    from vizcore.train.loop import train

    name = write_photos(tmp / "photos", 4, 48)
    seconds, verdicts = [], []
    for dev in devices:
        cfg = TrainConfig(source=name, model="mobilenet_v3_small", input_shape=(3, 224, 224), batch_size=32,
                          epochs=1, lr=0.01, schedule="constant", device=dev, data_path="stream", augment_crop=True)  # fmt: skip
        events = list(train(cfg))
        end = events[-1]
        finite = all(np.isfinite(v) for ev in events for k, v in ev.values.items() if "loss" in k)
        streamed = any(ev.kind == "ready" and "streaming" in ev.message for ev in events)
        seconds.append(end.time - events[0].time)
        ok = end.status == "complete" and finite and streamed
        verdicts.append(check(ok, f"streamed on {dev}: {end.status} {end.message}".strip()))
    _row("streamed photo folder, 224 px, MobileNetV3-Small", seconds, verdicts)


def _tsne_row(n: int, devices: list[str]) -> None:
    import numpy as np

    from vizcore.embed.methods import embed

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 64)) + rng.normal(size=(10, 64))[rng.integers(0, 10, n)] * 2
    seconds, ok = [], True
    for dev in devices:
        with visible(dev):
            s, xy = timed(lambda: embed(x, "tsne", 0))
        seconds.append(s)
        ok &= xy.shape == (n, 2) and bool(np.isfinite(xy).all())
    _row(f"t-SNE {n:,} points", seconds, [check(ok, "t-SNE layout")])


if __name__ == "__main__":
    main()
