"""Diagnostic: target accuracy of MNIST -> MNIST-M-style runs, split by the polarity of the digit.

    python bench/mnistm_polarity.py                       # the shipped demo runs
    python bench/mnistm_polarity.py --runs ~/.vizcore/runs RUN_ID [RUN_ID ...]

The MNIST-M blend ``|patch - digit|`` draws the stroke as the inverted photo colour: on a dark
crop the digit is brighter than its background, as in MNIST; on a bright crop (sky, petals) it
is *darker* than its background, a contrast the source never shows. Per-image standardisation
removes colour and contrast but not this sign. Each target test image is put in one group from
the real MNIST digit it was built from: "inverted" when the mean luminance of its stroke pixels
(digit >= 0.5) is below that of its background pixels.

Prints, for each run, the target test accuracy overall and in each group, so one can see where a
method's gain comes from (and where none comes). Evaluation only; nothing is trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    import torch

DEMO_IDS = ["demo-source_only-mnist-to-mnist-m", "demo-dann-mnist-to-mnist-m"]


def inverted_polarity(blended: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """True where the stroke is darker than the background.

    Shape:
        blended: (N, 3, H, W) MNIST-M images in [0, 1]; digits: (N, C, H, W) their MNIST digits
        in [0, 1] at the same size. Returns (N,) bool.
    """
    lum = blended.mean(dim=1)  # (N, H, W)
    stroke = (digits[:, 0] >= 0.5).float()  # (N, H, W)
    back = 1.0 - stroke
    mean_stroke = (lum * stroke).sum((1, 2)) / stroke.sum((1, 2)).clamp_min(1)
    mean_back = (lum * back).sum((1, 2)) / back.sum((1, 2)).clamp_min(1)
    return mean_stroke < mean_back


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_ids", nargs="*", default=DEMO_IDS, help="runs to evaluate (default: the demo runs)")
    ap.add_argument("--runs", default=None, help="run store folder (default: vizcore's)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from vizcore.store.runs import DEMO_ROOT, RunStore
    from vizcore.views.analysis import eval_domain, feature_arrays

    store = RunStore(a.runs, demo_root=DEMO_ROOT)
    print("| run | method | target acc % | normal polarity % (n) | inverted polarity % (n) |")
    print("|---|---|---|---|---|")
    for rid in a.run_ids:
        run = store.get(rid)
        cfg = run.config()
        if cfg.target != "mnist-m":
            print(f"| {rid} | {cfg.method} | not an MNIST-M-style run | | |")
            continue
        target, digits = eval_domain(cfg, "target"), eval_domain(cfg, "source")
        if not torch.equal(digits.labels, target.labels):
            raise SystemExit(f"{rid}: the target test split is not in the order of the MNIST test split")
        inv = inverted_polarity(target.images.float(), digits.images.float())
        # the target predictions the Embeddings page computes and caches with the run
        features = feature_arrays(run, "target", "test")
        ok = torch.from_numpy(features["pred"] == features["y"])
        cells = [f"{100 * ok[g].float().mean():.1f} ({int(g.sum())})" for g in (~inv, inv)]
        print(f"| {rid} | {cfg.method} | {100 * ok.float().mean():.1f} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
