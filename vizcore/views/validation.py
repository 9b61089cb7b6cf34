"""The validators of one run: what they read of it, computed once per weights and kept with the run.

Only adaptation runs (with a target) have validator scores. Nothing here runs when a run's pages
open: the scores are computed when a sweep asks for them (at the end of each trial with
``sweep --validators``, or when the sweep view first reads a run), then read from the run's
cache, keyed by the weights' hash like every other analysis.

The target sample is drawn from the run's target *training* split (the images it adapted to),
uniformly with the run's seed, without looking at its labels; the source side is the source test
split (labelled, held out) and a sample of the source training split for DEV.
"""

from __future__ import annotations

import numpy as np
import torch

from vizcore.core.config import TrainConfig
from vizcore.data.domains import Domain
from vizcore.methods.ddc import adapted_features
from vizcore.metrics.mmd import mmd2
from vizcore.metrics.validators import ValidationData, default_params, score_all
from vizcore.store.run import Run
from vizcore.views.analysis import BATCH, FORWARD_PASSES, eval_domain

#: images of each side the validators read: enough for stable scores, a second or two on a CPU
SAMPLE = 2000
VERSION = 1  # bump when the cached arrays change meaning


def _sample(dom: Domain, limit: int, seed: int) -> Domain:
    """Up to ``limit`` images of ``dom`` drawn uniformly with ``seed`` (no use of the labels)."""
    if len(dom) <= limit:
        return dom
    idx = np.sort(np.random.default_rng(seed).permutation(len(dom))[:limit])
    return dom.subset(torch.from_numpy(idx), f"{limit} images drawn with seed {seed}")


@torch.no_grad()
def _outputs(model: torch.nn.Module, dom: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Softmax (N, K) and adapted-layer features (N, D) of every image of ``dom``."""
    dev = next(model.parameters()).device
    probs, feats = [], []
    for i in range(0, len(dom), BATCH):
        f = model.forward_features(dom.images[i : i + BATCH].to(dev))
        FORWARD_PASSES[0] += 1
        probs.append(f.logits.float().softmax(1).cpu())
        feats.append(adapted_features(f).float().cpu())
    return torch.cat(probs).numpy(), torch.cat(feats).numpy()


def _compute(run: Run, config: TrainConfig, limit: int) -> dict[str, np.ndarray]:
    model = run.load_model()
    seed = config.seed
    target = _sample(eval_domain(config, "target", "train", limit=config.train_limit), limit, seed)
    source = _sample(eval_domain(config, "source", "test", limit=config.test_limit), limit, seed + 1)
    source_train = _sample(eval_domain(config, "source", "train", limit=config.train_limit), limit, seed + 2)
    tp, tf = _outputs(model, target)
    sp, sf = _outputs(model, source)
    _, stf = _outputs(model, source_train)
    return {"target_probs": tp, "target_feat": tf, "source_probs": sp, "source_labels": source.labels.numpy(),
            "source_feat": sf, "source_train_feat": stf}  # fmt: skip


def validation_data(run: Run, limit: int = SAMPLE) -> ValidationData:
    """What the validators read of ``run`` (computed once per weights, then read from its cache).

    Raises:
        ValueError: the run has no target domain.
    """
    config = run.config()
    if not config.target:
        raise ValueError(f"run {run.run_id} has no target domain: validators score adaptation runs")
    arrays = run.cached("validation", {"limit": limit, "v": VERSION}, lambda: _compute(run, config, limit))
    return ValidationData(**{k: arrays[k] for k in ValidationData.__dataclass_fields__})


def has_scores(run: Run, limit: int = SAMPLE) -> bool:
    """Whether :func:`validator_scores` would read rather than compute."""
    return run.has_cached("validation", {"limit": limit, "v": VERSION})


def validator_scores(run: Run, limit: int = SAMPLE) -> dict[str, float]:
    """Every validator's score of ``run`` (higher: a better pick), plus ``mmd``, the MMD² between
    its source held-out and target training features (the adapted layer), for the λ plot."""
    key = (str(run.path), run.weights_digest(), limit)
    if key not in _SCORES:
        d = validation_data(run, limit)
        _SCORES[key] = {**score_all(d, default_params()),
                        "mmd": mmd2(d.source_feat, d.target_feat, estimator="unbiased")}  # fmt: skip
    return dict(_SCORES[key])


# (run folder, weights digest, sample size) -> scores, for this process: a page rerun reads no file
_SCORES: dict[tuple[str, str, int], dict[str, float]] = {}
