"""Benchmark: the two maintained CAM libraries on a LeNet-GAP batch of 500 MNIST test images.

    OMP_NUM_THREADS=1 python bench/cam_libraries.py

For each method both libraries offer, the time to explain 500 images of the shipped
``demo-lenet-gap-mnist`` run (its predicted classes) at the last conv block, once as one batch
of 500 and once image by image; ratios are against pytorch-grad-cam's batched time measured in
the same run. A "-" means the library has no such method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    import torch

N = 500


def _gradcam(name: str):
    import pytorch_grad_cam as g

    return {"Grad-CAM": g.GradCAM, "Grad-CAM++": g.GradCAMPlusPlus, "Score-CAM": g.ScoreCAM,
            "Layer-CAM": g.LayerCAM, "XGrad-CAM": g.XGradCAM, "Eigen-CAM": g.EigenCAM}.get(name)  # fmt: skip


def _torchcam(name: str):
    import torchcam.methods as t

    return {"Grad-CAM": t.GradCAM, "Grad-CAM++": t.GradCAMpp, "Score-CAM": t.ScoreCAM,
            "Layer-CAM": t.LayerCAM, "XGrad-CAM": t.XGradCAM}.get(name)  # fmt: skip


def run_gradcam(cls, model, x: torch.Tensor) -> torch.Tensor:
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = cls(model, [model.features])
    if hasattr(cam, "batch_size"):
        cam.batch_size = 512
    with torch.no_grad():
        pred = model(x).argmax(1).tolist()
    out = cam(x, [ClassifierOutputTarget(c) for c in pred])
    cam.activations_and_grads.release()
    return torch.from_numpy(out)


def run_torchcam(cls, model, x: torch.Tensor) -> torch.Tensor:
    import torch

    kwargs = {"batch_size": 512} if cls.__name__ == "ScoreCAM" else {}
    extractor = cls(model, "features", input_shape=tuple(x.shape[1:]), **kwargs)
    with torch.set_grad_enabled(cls.__name__ != "ScoreCAM"):
        scores = model(x)
        maps = extractor(scores.argmax(1).tolist(), scores)[0]
    extractor.remove_hooks()
    return maps


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    return ap.parse_args(argv)  # no options: --help says what the bench does


def main() -> None:
    parse_args()
    import torch

    from vizcore.store.runs import RunStore
    from vizcore.views.analysis import eval_domain

    torch.set_num_threads(1)
    run = RunStore().get("demo-lenet-gap-mnist")
    model = run.load_model()
    x = eval_domain(run.config(), "source").images[:N]
    rows = []
    base: dict[str, float] = {}
    for name in ["Grad-CAM", "Grad-CAM++", "Score-CAM", "Layer-CAM", "XGrad-CAM", "Eigen-CAM"]:
        cells = [name]
        for get, fn in [(_gradcam, run_gradcam), (_torchcam, run_torchcam)]:
            cls = get(name)
            if cls is None:
                cells += ["-", "-"]
                continue
            batched = timed(fn, cls, model, x)
            per_image = sum(timed(fn, cls, model, x[i : i + 1]) for i in range(50)) * (N / 50)
            base.setdefault(name, batched)
            cells += [f"{batched:.2f} s ({batched / base[name]:.2f}x)", f"{per_image:.1f} s"]
        rows.append(cells)
    print(f"{N} images, 1 thread, demo-lenet-gap-mnist, target layer `features`\n")
    print("| method | grad-cam, batch of 500 | grad-cam, image by image | torchcam, batch of 500 "
          "| torchcam, image by image |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\n(image by image: 50 images timed, scaled to 500)")


if __name__ == "__main__":
    main()
