"""Benchmark: how close each explanation method is to its paper's equation and to pytorch-grad-cam.

    OMP_NUM_THREADS=2 python bench/explain_references.py [--images 100] [--resnet-images 4]

For every registered method, per image: the Pearson r and the largest |difference| between
vizcore's map and

- the paper's equation (``tests/paper_cams.py``: one image at a time, plain autograd, float64);
- pytorch-grad-cam as it ships (needs ``pip install grad-cam``, see requirements-dev.txt);
- pytorch-grad-cam with vizcore's map put in its conventions (ReLU for CAM, 1e-6 in Grad-CAM++'s
  denominator, ``align_corners=True`` in Score-CAM, the SVD's sign for Eigen-CAM).

Both maps are compared at the layer's resolution, each min-max normalised per image as the page
draws it, so |difference| is in units of a map's range; r is 1 where both maps are constant and
equal, 0 where one is constant. Cases: the first ``--images`` test images of the shipped
``demo-lenet-gap-mnist`` run at its last block (``features``) and at an inner block
(``features.0``), and ``--resnet-images`` seeded noise images (3x64x64) through a seeded random
ResNet-18 at its last block; each map explains the image's predicted class. Rows in italics are
torchcam 0.5.0's GradCAMpp and ScoreCAM, which vizcore no longer uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:  # the arguments are parsed before torch is imported
    import torch
    from torch import nn

    # (model, images (B, C, H, W), classes (B,), layer) -> raw maps (B, h, w)
    Maps = Callable[[nn.Module, torch.Tensor, torch.Tensor, str], torch.Tensor]


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: Pearson r and max |difference| of the two maps, each min-max normalised.

    Shape:
        ours, theirs: (B, h, w). Returns r (B,) and max |difference| (B,).
    """
    import torch

    from tests.paper_cams import library_normalise
    from vizcore.explain.methods import map_agreement

    a, b = library_normalise(ours), library_normalise(theirs)
    gap = (a - b).abs().amax(dim=(1, 2))
    flat = [m.flatten(1) for m in (a, b)]
    constant = [(f.amax(1) - f.amin(1)) == 0 for f in flat]
    r = map_agreement(a, b)
    return torch.where(constant[0] & constant[1], (gap == 0).float(), r), gap


def torchcam_maps(name: str) -> Maps:
    """torchcam 0.5.0's own extractor (GradCAMpp or ScoreCAM), unnormalised."""

    def maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
        import torch
        import torchcam.methods

        extractor = getattr(torchcam.methods, name)(model, layer, input_shape=tuple(x.shape[1:]))
        try:
            with torch.enable_grad():
                out = extractor(cls.tolist(), model(x), normalized=False)[0]
        finally:
            extractor.remove_hooks()
        return out.detach().float()

    return maps


def rows_for(model: nn.Module, x: torch.Tensor, layer: str) -> list[list[str]]:
    """One table row per method (and per replaced torchcam method) at ``layer``."""
    import torch

    from tests.paper_cams import (
        eigen_in_library_sign,
        library_maps,
        ours_in_library_convention,
        paper_map,
    )
    from vizcore.explain.layers import layer_activations
    from vizcore.explain.methods import EXPLAINERS, eigen_projection, explain, list_explainers

    with torch.no_grad():
        cls = model(x).argmax(1)
    methods: list[tuple[str, str, Maps]] = [
        (m, m, lambda mo, xx, c, la, m=m: explain(mo, xx, c, m, la).low) for m in list_explainers()
    ]
    methods += [("*Grad-CAM++ (torchcam 0.5.0)*", "Grad-CAM++", torchcam_maps("GradCAMpp")),
                ("*Score-CAM (torchcam 0.5.0)*", "Score-CAM", torchcam_maps("ScoreCAM"))]  # fmt: skip
    rows = []
    for label, method, fn in methods:
        if EXPLAINERS.get(method).fixed_layer and layer != "features":
            continue
        ours = fn(model, x, cls, layer)
        paper = paper_map(method, model, x, cls, layer).float()
        library = library_maps(method, model, x, cls, layer)
        if label != method:  # a torchcam row: no convention of vizcore's to apply
            convention = None
        elif method == "Eigen-CAM":
            convention = eigen_in_library_sign(
                eigen_projection(layer_activations(model, x, layer)), library
            )
        else:
            convention = ours_in_library_convention(method, model, x, cls, layer)
        cells = [label]
        for theirs in (paper, library):
            r, gap = agreement(ours, theirs)
            cells += [f"{r.mean():.4f}", f"{r.min():.4f}", f"{gap.max():.1e}"]
        cells.append(
            "-" if convention is None else f"{agreement(convention, library)[1].max():.1e}"
        )
        rows.append(cells)
    return rows


def print_table(title: str, rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print("| method | paper: mean r | paper: min r | paper: max abs diff | grad-cam: mean r | grad-cam: min r "
          "| grad-cam: max abs diff | grad-cam, its conventions: max abs diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100, help="MNIST test images of the demo run")
    ap.add_argument(
        "--resnet-images", type=int, default=4, help="noise images through the random ResNet-18"
    )
    args = ap.parse_args()
    import torch

    from vizcore.models import create_model
    from vizcore.store.runs import RunStore
    from vizcore.views.analysis import eval_domain

    run = RunStore().get("demo-lenet-gap-mnist")
    lenet = run.load_model()
    x = eval_domain(run.config(), "source").images[: args.images]
    torch.manual_seed(0)
    resnet = create_model("resnet18", num_classes=10, in_channels=3, input_size=64).eval()
    noise = torch.rand(args.resnet_images, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    print(f"grad-cam {version('grad-cam')}, torchcam {version('torchcam')}; each map min-max normalised per image; "
          "the predicted class")  # fmt: skip
    for title, model, images, layer in [
        (f"LeNet-GAP, demo-lenet-gap-mnist, {len(x)} test images, last block `features`", lenet, x, "features"),
        (f"LeNet-GAP, demo-lenet-gap-mnist, {len(x)} test images, inner block `features.0`", lenet, x,
         "features.0"),
        (f"ResNet-18, random weights (seed 0), {len(noise)} noise images 3x64x64, last block `features`", resnet,
         noise, "features"),
    ]:  # fmt: skip
        print_table(title, rows_for(model, images, layer))


if __name__ == "__main__":
    main()
