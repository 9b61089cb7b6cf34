"""Before/after embeddings as the Embeddings page shows them: same points, cached pairs, the numbers.

The glue between the run store, :mod:`vizcore.embed` and :mod:`vizcore.metrics.domain`. No UI.

Which points: the test images of the *after* run's data (its source domain, and its target
domain when the runs have one), a seeded subsample of ``n_per_domain`` per domain chosen once
(:func:`choose_points`) and fed through both models, so row i of both layouts is the same image.
A "before" run evaluated on exactly those images (same data, same data seed) reuses its cached
:func:`~vizcore.views.analysis.feature_arrays`; otherwise its model is run on the chosen images.

Caching: a pair is stored in the *after* run's folder (``analyses/embedding-<hash>.npz``) keyed by
both run ids and weights digests (retraining either run gives a new key), the data the points come
from, layer, method, resolved parameters, seed, points per domain, alignment and ``EMBED_VERSION``.
The numbers table is computed with the layouts and stored beside them, so reopening is instant and
shows identical coordinates and numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vizcore.core.config import TrainConfig
from vizcore.data.domains import Domain
from vizcore.embed.alignment import embed_pair, subsample_per_group
from vizcore.embed.methods import EMBED_VERSION
from vizcore.embed.registry import resolve_params
from vizcore.metrics.domain import (
    REPORT_COLUMNS,
    class_silhouette,
    embedding_report,
    knn_class_accuracy_2d,
    layout_trustworthiness,
)
from vizcore.store.info import RunInfo
from vizcore.store.run import Run
from vizcore.views.analysis import domain_name, eval_domain, feature_arrays

ProgressFn = Callable[[float, str], None]
PANELS = ("before", "after")
ALIGN_LABELS = {
    "init": "start from 'before', then Procrustes",
    "procrustes": "Procrustes only",
    "none": "not aligned",
}
K_LAYOUT = 10  # neighbours for trustworthiness and the 2-D kNN accuracy
MIN_PER_DOMAIN = 2 * K_LAYOUT + 1  # fewer points make the layout numbers undefined
VIEW_VERSION = "1"  # bump when what is stored with a pair changes
DOMAIN_ROWS = ("proxy_a_distance", "domain_accuracy", "knn_target_accuracy")
NO_TARGET_NOTE = (
    "These runs have no target domain, so only source points are shown and the domain numbers "
    "(proxy A-distance, domain-classifier accuracy, kNN target accuracy) are left out: each compares "
    "source with target features."
)


@dataclass(frozen=True)
class EmbeddingSettings:
    """What the page asks for; equal settings give the same cached pair."""

    layer: str = "gap"
    method: str = "tsne"
    params: Mapping[str, Any] = field(default_factory=dict)
    n_per_domain: int = 500
    seed: int = 0
    align: str = "init"
    split: str = "test"

    def key(self) -> dict[str, Any]:
        """JSON-friendly cache key; defaults are filled in, so {} and explicit defaults share it."""
        return {"layer": self.layer, "method": self.method, "params": resolve_params(self.method, self.params),
                "n_per_domain": int(self.n_per_domain), "seed": int(self.seed), "align": self.align,
                "split": self.split}  # fmt: skip


@dataclass(frozen=True, eq=False)
class EmbeddingPair:
    """Two layouts of the same points and everything the page shows with them.

    Attributes:
        before_xy, after_xy: the layouts. Shape: (N, 2).
        domain: 0 = source, 1 = target for every point. Shape: (N,).
        index: the point's row in its domain's evaluation split. Shape: (N,).
        labels: true class. Shape: (N,).
        pred_before, pred_after: each model's predicted class. Shape: (N,).
        report: the numbers of :data:`REPORT_COLUMNS`, one row per panel. Shape: (2, len(REPORT_COLUMNS)).
        description: how the pair was computed and aligned (and on which points).
        sides: ("source",) or ("source", "target").
        domain_names: the data set of each side, e.g. ("mnist", "mnist-m").
        class_names: index = class.
    """

    before_xy: np.ndarray
    after_xy: np.ndarray
    domain: np.ndarray
    index: np.ndarray
    labels: np.ndarray
    pred_before: np.ndarray
    pred_after: np.ndarray
    report: np.ndarray
    description: str
    sides: tuple[str, ...]
    domain_names: tuple[str, ...]
    class_names: tuple[str, ...]

    @property
    def has_target(self) -> bool:
        return len(self.sides) > 1

    def layout(self, panel: str) -> np.ndarray:
        return self.before_xy if panel == "before" else self.after_xy

    def predictions(self, panel: str) -> np.ndarray:
        return self.pred_before if panel == "before" else self.pred_after


# ---------------------------------------------------------------------------------- runs


def comparable_sides(before: TrainConfig, after: TrainConfig) -> tuple[str, ...]:
    """The domains both layouts show; a ValueError says why two runs cannot be compared."""
    if before.source != after.source:
        raise ValueError(
            f"the two runs were trained on different source data ({before.source} vs {after.source}); "
            "before and after must show the same images, so pick runs with the same source"
        )
    if before.target != after.target:
        raise ValueError(
            f"the two runs have different target domains (before: {before.target or 'none'}, after: "
            f"{after.target or 'none'}); the layouts must show the same target images, so pick runs adapted "
            f"to the same target (a source-only baseline trained with target {after.target or 'none'} "
            "is evaluated on it)"
        )
    return ("source", "target") if after.target else ("source",)


def common_layers(before: Run, after: Run) -> list[str]:
    """Feature layers both models have, in the after model's order (GAP, bottleneck, logits)."""
    mine = set(before.build_model().feature_layers)
    return [name for name in after.build_model().feature_layers if name in mine]


def parent_in(runs: Sequence[RunInfo], after: RunInfo) -> str | None:
    """``after``'s parent run (``init_from``) if it is among ``runs``, else None: the natural
    "before" of a run that started from another."""
    return after.init_from if after.init_from in {r.run_id for r in runs} else None


def default_pair(runs: Sequence[RunInfo]) -> tuple[str | None, str | None]:
    """A sensible first (before, after): the newest adaptation run and a source-only run on its data.

    ``runs`` newest first (as the run picker lists them). Either id may be None.
    """
    if not runs:
        return None, None
    adapted = [r for r in runs if r.method != "source_only" and r.target]
    after = adapted[0] if adapted else runs[0]
    if (parent := parent_in(runs, after)) is not None:  # a run from a run: its parent is "before"
        return parent, after.run_id
    others = [r for r in runs if r.run_id != after.run_id]
    same_data = [r for r in others if (r.source, r.target) == (after.source, after.target)]
    baseline = [r for r in same_data if r.method == "source_only"]
    before = (baseline or same_data or others or [None])[0]
    return (before.run_id if before else None), after.run_id


# ---------------------------------------------------------------------------------- points


def choose_points(sizes: Sequence[int], n_per_domain: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subsample of at most ``n_per_domain`` rows of every domain, chosen once for both layouts.

    Args:
        sizes: how many evaluation images each domain has (source first).

    Returns:
        ``(domain, index)``: the domain of every chosen point and its row in that domain's
        split, source points first. Shape: (M,), (M,).
    """
    groups = np.repeat(np.arange(len(sizes)), sizes)  # (sum(sizes),)
    rows = subsample_per_group(groups, n_per_domain, seed)
    offsets = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    domain = groups[rows]
    return domain, rows - offsets[domain]


def _data_key(cfg: TrainConfig, which: str) -> tuple[Any, ...]:
    """What decides the images of one side of a run's evaluation (the input shape only resizes them)."""
    return domain_name(cfg, which), cfg.seed, cfg.data_root


def _input_shape(cfg: TrainConfig) -> tuple[int, int, int]:
    from vizcore.models.architecture import (
        resolve_input_shape,  # heavy import, only needed off the cached path
    )

    return resolve_input_shape(cfg)


def images_for(run: Run, points: TrainConfig, which: str, split: str) -> Domain:
    """The points' evaluation images, in the shape ``run``'s model takes."""
    return eval_domain(points.replace(input_shape=_input_shape(run.config())), which, split)


def same_images(run: Run, points: TrainConfig, which: str) -> bool:
    return _data_key(run.config(), which) == _data_key(points, which)


@torch.no_grad()
def _forward(run: Run, images: torch.Tensor, layer: str) -> tuple[np.ndarray, np.ndarray]:
    model = run.load_model()
    xs, preds = [], []
    for i in range(0, len(images), 1024):
        f = model.forward_features(images[i : i + 1024])
        xs.append(f.layer(layer).float())
        preds.append(f.logits.argmax(1))
    return torch.cat(xs).numpy(), torch.cat(preds).numpy()


def _features(
    run: Run, points: TrainConfig, which: str, split: str, layer: str, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (M, D), labels (M,), predictions (M,)) of ``run`` on rows ``index`` of the points' split."""
    if same_images(run, points, which):
        f = feature_arrays(run, which, split, layer)
        return f["x"][index], f["y"][index], f["pred"][index]
    dom = images_for(run, points, which, split)
    x, pred = _forward(run, dom.images[index], layer)
    return x, dom.labels.numpy()[index], pred


def _check_finite(x: np.ndarray, panel: str, layer: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"the {panel} run's {layer} features contain NaN or Inf for {int(bad.sum())} of {len(x)} points "
            "(its training probably diverged); pick another run or layer"
        )


# ---------------------------------------------------------------------------------- the pair


def _feature_numbers(x: np.ndarray, y: np.ndarray, n_source: int, seed: int) -> np.ndarray:
    """The numbers of the table measured on the features alone (layout rows NaN); domain numbers
    are NaN without target points. Shape: (len(REPORT_COLUMNS),)."""
    if n_source < len(x):
        r = embedding_report(x[:n_source], y[:n_source], x[n_source:], y[n_source:], None, seed=seed)
    else:
        r = dict.fromkeys(REPORT_COLUMNS, float("nan"))
        r["class_silhouette"] = class_silhouette(x, y)
    return np.array([r[k] for k in REPORT_COLUMNS], dtype=np.float64)


def _report(features_row: np.ndarray, x: np.ndarray, y: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """One row of the numbers table: the feature numbers plus this layout's two numbers."""
    row = features_row.copy()
    keys = list(REPORT_COLUMNS)
    row[keys.index("trustworthiness")] = layout_trustworthiness(x, xy, k=K_LAYOUT)
    row[keys.index("knn_class_accuracy_2d")] = knn_class_accuracy_2d(xy, y, k=K_LAYOUT)
    return row


def _stage(progress: ProgressFn, low: float, high: float) -> ProgressFn:
    return lambda f, msg: progress(low + (high - low) * f, msg)


def _compute(before: Run, after: Run, settings: EmbeddingSettings, sides: tuple[str, ...],
             progress: ProgressFn) -> dict[str, np.ndarray]:  # fmt: skip
    points, split, layer = after.config(), settings.split, settings.layer
    progress(0.0, "Reading the features of both runs…")
    sizes = [len(feature_arrays(after, which, split, layer)["y"]) for which in sides]
    progress(0.05, "Features of the chosen points…")
    domain, index = choose_points(sizes, settings.n_per_domain, settings.seed)
    feats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for panel, run in zip(PANELS, (before, after), strict=True):
        parts = [_features(run, points, s, split, layer, index[domain == d]) for d, s in enumerate(sides)]
        feats[panel] = tuple(np.concatenate(a) for a in zip(*parts, strict=True))  # type: ignore[assignment]
        _check_finite(feats[panel][0], panel, layer)
    if not np.array_equal(feats["before"][1], feats["after"][1]):
        raise ValueError("the two runs label the chosen images differently; their data sets do not match")
    xb, y, pred_b = feats["before"]
    xa, _, pred_a = feats["after"]
    before_xy, after_xy, description = embed_pair(
        xb, xa, settings.method, settings.seed, settings.align, progress=_stage(progress, 0.1, 0.9),
        **settings.params,
    )  # fmt: skip
    progress(0.9, "Computing the numbers table…")
    n_source = int((domain == 0).sum())
    # the feature numbers (A-distance, kNN, silhouette) do not depend on the layout method: kept
    # once per pair of runs and points, so another method only measures its own layout
    points_key = {k: v for k, v in cache_key(before, after, settings).items() if k not in ("method", "params", "align")}
    numbers = after.cached("embedding-numbers", points_key, lambda: {
        "before": _feature_numbers(xb, y, n_source, settings.seed),
        "after": _feature_numbers(xa, y, n_source, settings.seed)})  # fmt: skip
    report = np.stack([_report(numbers[p], x, y, xy) for p, x, xy in (("before", xb, before_xy), ("after", xa, after_xy))])
    names = ", ".join(points.shown(domain_name(points, s)) for s in sides)
    description += (f" Points: a random sample (seed {settings.seed}) of up to {settings.n_per_domain} {split} "
                    f"images per domain ({names}; {len(y):,} in all), the same images fed through both models.")  # fmt: skip
    classes = eval_domain(points, "source", split).classes
    return {
        "before_xy": before_xy, "after_xy": after_xy, "domain": domain.astype(np.int64), "index": index,
        "labels": y, "pred_before": pred_b, "pred_after": pred_a, "report": report,
        "description": np.asarray(description, dtype=str), "class_names": np.asarray(classes, dtype=str),
    }  # fmt: skip


def cache_key(before: Run, after: Run, settings: EmbeddingSettings) -> dict[str, Any]:
    """What a pair is cached under in the after run's folder (its own weights digest is added there)."""
    points = after.config()
    sides = comparable_sides(before.config(), points)
    return {"view": VIEW_VERSION, "embed": EMBED_VERSION, "before": before.run_id,
            "before_weights": before.weights_digest(), "after": after.run_id,
            "data": [list(map(str, _data_key(points, s))) for s in sides], **settings.key()}  # fmt: skip


def check_pair(before: Run, after: Run, settings: EmbeddingSettings) -> tuple[str, ...]:
    """The sides both runs share, once the settings are known to fit them (before any work).

    Raises:
        ValueError: runs on different data, a layer one model lacks, too few points, a bad parameter.
    """
    sides = comparable_sides(before.config(), after.config())
    if settings.layer not in (layers := common_layers(before, after)):
        raise ValueError(f"not both models have the {settings.layer!r} layer; pick one of {', '.join(layers)}")
    if settings.n_per_domain < MIN_PER_DOMAIN:
        raise ValueError(f"{settings.n_per_domain} points per domain are too few; use at least {MIN_PER_DOMAIN}")
    resolve_params(settings.method, settings.params)  # a bad parameter fails before any work
    return sides


def pair_ready(before: Run, after: Run, settings: EmbeddingSettings) -> bool:
    """Whether :func:`embedding_pair` is a read of the after run's cache."""
    return after.has_cached("embedding", cache_key(before, after, settings))


def embedding_pair(
    before: Run, after: Run, settings: EmbeddingSettings, progress: ProgressFn | None = None
) -> EmbeddingPair:
    """Layouts of the same points before and after (cached in the after run's folder).

    ``progress(fraction, message)`` is called only when the pair is computed, not when it is read.

    Raises:
        ValueError: runs on different data, a layer one model lacks, too few points, a parameter
            that does not fit the data (perplexity, n_neighbors), NaN features. The message says which.
    """
    cfg = after.config()
    sides = check_pair(before, after, settings)
    report = progress or (lambda f, m: None)
    arrays = after.cached("embedding", cache_key(before, after, settings),
                          lambda: _compute(before, after, settings, sides, report))  # fmt: skip
    return EmbeddingPair(
        before_xy=arrays["before_xy"], after_xy=arrays["after_xy"], domain=arrays["domain"], index=arrays["index"],
        labels=arrays["labels"], pred_before=arrays["pred_before"], pred_after=arrays["pred_after"],
        report=arrays["report"], description=str(arrays["description"]), sides=sides,
        domain_names=tuple(cfg.shown(domain_name(cfg, s)) for s in sides),
        class_names=tuple(str(s) for s in arrays["class_names"]),
    )  # fmt: skip
