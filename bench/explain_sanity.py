"""Benchmark: the sanity checks of every explanation method on a run (by default the MNIST demo).

    OMP_NUM_THREADS=1 python bench/explain_sanity.py                 # the README's table
    OMP_NUM_THREADS=1 python bench/explain_sanity.py --stages        # and the mean per stage

For each method, ``vizcore.views.sanity.sanity_arrays`` (what the faithfulness table shows): the
cascading model-parameter randomisation (Adebayo et al. 2018) from the logits down, and the
random-logit test, on the first ``N_SANITY`` (64) test images of the source side, maps of the
trained model's predicted class at the default layer. Printed: the mean over the images of the
Spearman rank correlation of |maps| and of the signed maps, and of the SSIM (11x11 Gaussian,
sigma 1.5, maps min-max normalised), between the trained model's map and the map once every
layer is re-initialised; the random-logit rank correlation and SSIM; the verdict; the time.
Read from the run's cache when there (a demo run may ship it), computed otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="demo-lenet-gap-mnist")
    ap.add_argument("--which", default="source", choices=["source", "target"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stages", action="store_true", help="also print the mean |rank corr.| at every stage")
    # default (None): every registered explainer, read after parsing (it imports vizcore)
    ap.add_argument("--methods", default=None, help="comma-separated methods")
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    import torch

    from vizcore.explain.methods import list_explainers
    from vizcore.explain.sanity import FLAG_THRESHOLD
    from vizcore.store.runs import RunStore
    from vizcore.views.explanations import sanity_target
    from vizcore.views.sanity import has_sanity, sanity_arrays, sanity_row

    torch.set_num_threads(args.threads)
    run = RunStore().get(args.run)
    layer, n = sanity_target(run, args.which)
    methods = args.methods.split(",") if args.methods else list_explainers()
    print(f"\n### Sanity checks, {args.run} ({args.which}: first {n} test images, layer `{layer}`, "
          f"{args.threads} thread(s))\n")  # fmt: skip
    print("| method | rank corr. of \\|map\\|, fully randomised ↓ | signed rank corr. ↓ | SSIM, fully randomised ↓ "
          "| random-logit rank corr. ↓ | random-logit SSIM ↓ | verdict | time |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    per_stage = {}
    for method in methods:
        t, cached = time.perf_counter(), has_sanity(run, args.which, method, layer, n)
        a = sanity_arrays(run, args.which, method, layer, n)
        took = "cached" if cached else f"{time.perf_counter() - t:.1f} s"
        row = sanity_row(a)
        per_stage[method] = (list(a["stages"]), a["rank_abs"].mean(1))
        print(f"| {method} | {row['randomised_rank']:.3f} | {a['rank_signed'][-1].mean():.3f} | "
              f"{row['randomised_ssim']:.3f} | {a['logit_rank_abs'].mean():.3f} | {row['logit_ssim']:.3f} | "
              f"{row['sanity']} | {took} |")  # fmt: skip
    print(f"\nfails: mean rank corr. of |map| with the fully randomised model above {FLAG_THRESHOLD}.")
    if args.stages:
        stages = next(iter(per_stage.values()))[0]
        print("\n| method | " + " | ".join(f"down to {s}" for s in stages) + " |")
        print("|---|" + "---|" * len(stages))
        for method, (_, means) in per_stage.items():
            print(f"| {method} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
