"""Sanity checks of a run's explanation methods as the CAM page and the faithfulness table show
them: the cascading parameter randomisation and random-logit tests
(:mod:`vizcore.explain.sanity`) of one method on the first ``N_SANITY`` explained test images,
cached with the run beside its faithfulness scores (computed by the same background task:
:mod:`vizcore.views.explanations`). No UI.
"""

from __future__ import annotations

import numpy as np
import torch

from vizcore.core.numbers import fmt
from vizcore.explain.methods import EXPLAINERS
from vizcore.explain.sanity import FLAG_THRESHOLD, SEED, sanity_check
from vizcore.store.run import Run
from vizcore.views.analysis import class_target, eval_domain, run_analysis

N_SANITY = 64  # images per method: every stage recomputes the maps, so fewer than the 500 scored
SANITY_VERSION = 1  # bump when the cached checks change meaning
KEEP = 2  # images whose maps at every stage are kept for the figure
FIGURE_STAGES = 8  # at most this many randomised stages drawn (a ResNet has dozens), evenly spaced, the last included
SANITY_COLUMNS = {
    "randomised_rank": ("rank corr. after full randomisation", "lower"),
    "randomised_ssim": ("SSIM after full randomisation", "lower"),
    "logit_ssim": ("random-logit SSIM", "lower"),
}


def _key(which: str, method: str, layer: str, n: int) -> dict[str, object]:
    return {"which": which, "method": method, "layer": layer, "n": n, "seed": SEED, "keep": KEEP,
            "v": SANITY_VERSION, "revision": EXPLAINERS.get(method).revision}  # fmt: skip


def sanity_count(explained: int) -> int:
    """How many of the ``explained`` images (the first ones) the sanity checks use."""
    return min(N_SANITY, explained)


def has_sanity(run: Run, which: str, method: str, layer: str, n: int) -> bool:
    """Whether the checks of ``method`` on the first ``n`` images are cached (a read)."""
    return run.has_cached("sanity", _key(which, method, layer, n))


def sanity_arrays(run: Run, which: str, method: str, layer: str, n: int, report=None) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The checks of ``method`` at ``layer`` on the first ``n`` test images of side ``which``, for
    the trained model's predicted class: per stage and image, the rank correlations and SSIM
    with the trained model's maps (``rank_abs``, ``rank_signed``, ``ssim``: (S, n)), the
    random-logit similarities (``logit_rank_abs``, ``logit_ssim``: (n,)), the stages' names and
    the maps of the first KEEP images at every stage (``maps``: (S + 1, KEEP, H, W), float16).
    Computed once (``report`` hears after each stage, and may raise to stop: nothing is cached)."""

    def compute() -> dict[str, np.ndarray]:
        images = eval_domain(run.config(), which).images[:n]
        cls = torch.from_numpy(np.asarray(class_target("predicted", run_analysis(run, which))[:n]))
        r = sanity_check(run.load_model(), images, cls, method, layer, keep=KEEP, progress=report)
        return {"stages": np.array(r.stages), "rank_abs": r.rank_abs, "rank_signed": r.rank_signed,
                "ssim": r.ssim, "logit_rank_abs": r.logit_rank_abs, "logit_ssim": r.logit_ssim,
                "maps": r.maps.astype(np.float16), "n": np.array(n)}  # fmt: skip

    return run.cached("sanity", _key(which, method, layer, n), compute)


def checked(run: Run, which: str, layer: str, n: int, methods: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The cached sanity checks of those of ``methods`` that have them (reads only), by method."""
    return {m: sanity_arrays(run, which, m, layer, n) for m in methods if has_sanity(run, which, m, layer, n)}


def sanity_row(arrays: dict[str, np.ndarray]) -> dict[str, float | str]:
    """The faithfulness table's sanity columns of one method (SANITY_COLUMNS), and ``sanity``:
    "fails" when the maps barely change once the whole network is randomised, else "passes"."""
    rank = float(arrays["rank_abs"][-1].mean())
    return {"randomised_rank": rank, "randomised_ssim": float(arrays["ssim"][-1].mean()),
            "logit_ssim": float(arrays["logit_ssim"].mean()),
            "sanity": "fails" if rank > FLAG_THRESHOLD else "passes"}  # fmt: skip


def sanity_caption(n: int) -> str:
    """What the sanity columns and figure measure, in a sentence or three."""
    return (f"Sanity checks on the first {n:,} of these images (Adebayo et al. 2018, cascading from the logits; "
            "random logit, Sixt et al. 2020): per image, the Spearman rank correlation of |map| and the SSIM "
            "(11×11 Gaussian window, σ 1.5, maps min-max normalised) between the trained model's map and the "
            "map once every layer is re-initialised, and between the predicted class's map and a random other "
            f"class's. ↓ lower is better: a method whose mean rank correlation stays above {FLAG_THRESHOLD} "
            "after full randomisation does not depend on what the model learned and fails.")  # fmt: skip


FIGURE_CAPTION = (
    "Each row: one method's map of the same test image (its predicted class), first for the trained model, then "
    "with every layer from the logits down to the one named re-initialised (PyTorch's default initialisation, "
    "seed 43), with |ρ| the mean rank correlation of |map| with the trained model's over the checked images. "
    "Look for maps that dissolve as more layers are randomised: a method that depends on the model "
    "changes within the first columns and is unrecognisable in the last. A row that keeps the image's outline to "
    "the end is drawing the image (edges, intensity), not what the network learned. Batch norm layers reset to "
    "the identity, so a column after one may look like the one before.")


def figure_tiles(per_method: dict[str, dict[str, np.ndarray]], image: int = 0) -> tuple[np.ndarray, list[str], int]:
    """The randomisation figure's maps: one row per method, one column per stage (the trained
    model first, then at most FIGURE_STAGES stages, evenly spaced, ending with the whole network
    randomised), of kept image ``image``; with each tile's caption (the method over its trained
    map, then "|ρ| 0.12 · down to layer": the mean over the checked images of the rank correlation
    of |map| with the trained model's; kept short, as a tile is 120 px wide) and the number of columns.

    Shape:
        Returns maps (methods * columns, H, W) float32 in [0, 1], row by row.
    """
    if not per_method:
        raise ValueError("no method has been sanity-checked yet")
    stages = [str(s) for s in next(iter(per_method.values()))["stages"]]
    picked = np.unique(np.linspace(0, len(stages) - 1, min(FIGURE_STAGES, len(stages))).round().astype(int))
    columns = [0, *(picked + 1)]  # row 0 of the kept maps is the trained model's
    maps = np.concatenate([arrays["maps"][columns, image].astype(np.float32) for arrays in per_method.values()])
    titles = [t for m, arrays in per_method.items() for t in
              [f"{m} · trained", *(f"|ρ| {fmt(arrays['rank_abs'][i].mean(), 2)} · down to {stages[i]}" for i in picked)]]  # fmt: skip
    return maps, titles, len(columns)
