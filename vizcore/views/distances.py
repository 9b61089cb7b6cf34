"""Distance matrices as the Distances page shows them: per run, cached, labelled, reordered, exported.

The glue between the run store and :mod:`vizcore.metrics`: ask for the class matrix (or the
source-vs-target matrix) of one layer of a run and get a :class:`MatrixView` with class names,
p-values and a description; reorder it by clustering, subtract another run's matrix, write it as
CSV. Every matrix is cached in the run folder, so a page reopened later shows it instantly. No UI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vizcore.core.config import TrainConfig
from vizcore.core.params import Param, validate
from vizcore.metrics import DistanceResult, class_distance_matrix, cross_domain_matrix, metric_info
from vizcore.metrics.mmd import ESTIMATORS, SEED_MODE
from vizcore.metrics.params import described
from vizcore.metrics.sampling import PAIRINGS
from vizcore.store.run import Run
from vizcore.views.analysis import analysis_path, domain_name, eval_domain, feature_arrays

LAYER_LABELS = {  # short: a select box in presentation mode shows about 25 characters
    "gap": "GAP (last conv, averaged)",
    "bottleneck": "bottleneck (adaptation)",
    "logits": "logits",
}


def default_layer(layers: Sequence[str]) -> str:
    """The layer every view opens with: the adaptation features (what a DA method aligns) where
    the model has them, else the GAP vector. One rule, so the pages and the report agree."""
    return "bottleneck" if "bottleneck" in layers else ("gap" if "gap" in layers else layers[0])


CLUSTER_NOTE = (
    "Classes reordered by average-linkage hierarchical clustering (scipy.cluster.hierarchy, optimal leaf "
    "order) of the symmetrised matrix (M + Mᵀ)/2, so classes that sit close together are neighbours."
)
# permutations are one matrix product for MMD but a Python loop for the other measures; Grassmann's
# loop recomputes two SVDs per entry and permutation, so p-values are opt-in there
DEFAULT_PERMUTATIONS = {"mmd": 200, "grassmann": 0}
FALLBACK_PERMUTATIONS = 50
# samples per class unless the smallest class has fewer: enough for stable MMD entries, and a
# folder with 40 test images per class still gets a matrix rather than an error
DEFAULT_N_PER_CLASS = 100


# ---------------------------------------------------------------------------------- settings


# Choosing the value on the left fixes other parameters (the seed estimator reproduces one exact setup).
FIXED_BY: dict[tuple[str, Any], dict[str, Any]] = {
    ("estimator", "seed"): {**SEED_MODE, "bandwidth_scope": "pair"},
}


def all_metric_params(metric: str) -> list[Param]:
    """Every parameter of a measure, described (the default from the measure's signature)."""
    return [described(name, default) for name, default in metric_info(metric).params.items()]


def metric_params(metric: str) -> list[Param]:
    """The parameters a page should offer for a measure; choices with a single option are left out."""
    return [p for p in all_metric_params(metric) if not (p.kind == "choice" and len(p.choices) <= 1)]


def fixed_params(chosen: dict[str, Any]) -> dict[str, Any]:
    """Parameters that the values chosen so far fix (a page shows them disabled)."""
    out: dict[str, Any] = {}
    for (name, value), fixed in FIXED_BY.items():
        if chosen.get(name) == value:
            out.update(fixed)
    return out


def grouped_label(metric: str) -> str:
    """A measure as a select box lists it: its label, then its family (the list is in family
    order, so the families read as groups; the label comes first, as a narrow box cuts the end)."""
    info = metric_info(metric)
    return f"{info.label} · {info.family}"


# the second measure the "two metrics" view opens with: a question a meeting asks of the first
SECOND_METRIC = {"mmd": "c2st", "c2st": "mmd", "critic_w1": "wasserstein_exact", "wasserstein_exact": "critic_w1",
                 "sliced_wasserstein": "wasserstein_exact", "js_neural": "mutual_info", "mutual_info": "js_neural"}  # fmt: skip


def second_metric_default(metric: str) -> str:
    return SECOND_METRIC.get(metric, "mmd" if metric != "mmd" else "c2st")


def waiting_text(metric: str, n_perm: int) -> str:
    """What a page says while a matrix is computed: a learned measure trains models, which takes a while."""
    perms = " and its permutation p-values" if n_perm else ""
    if metric_info(metric).family == "learned":
        return (f"Training one small {metric_info(metric).label} model per class pair and fold, all at once{perms} "
                "(10–40 s on a laptop CPU; then cached in the run folder)…")  # fmt: skip
    return f"Computing the matrix{perms} (cached in the run folder)…"


def default_permutations(metric: str) -> int:
    # a learned measure would train a model per permutation (c2st has a binomial p-value without them)
    if metric_info(metric).family == "learned":
        return 0
    return DEFAULT_PERMUTATIONS.get(metric, FALLBACK_PERMUTATIONS)


def pairings() -> list[str]:
    return PAIRINGS.names()


def default_n_per_class(smallest: int) -> int:
    """Samples per class when none is asked for: ``min(DEFAULT_N_PER_CLASS, smallest)``."""
    return min(DEFAULT_N_PER_CLASS, int(smallest))


def _smallest(*labels: np.ndarray) -> int:
    """Size of the smallest class present in any of the label arrays (0 when one is empty)."""
    return min((int(np.unique(y, return_counts=True)[1].min()) if len(y) else 0) for y in labels)


@dataclass(frozen=True)
class DistanceSettings:
    """Everything about a matrix except which run, side, split and layer it is computed on.

    Attributes:
        metric: a name from :func:`vizcore.metrics.list_metrics`.
        params: the measure's own parameters (:func:`metric_params`).
        n_per_class: samples per class (None: ``min(100, smallest class)`` of the data the
            matrix is computed on, see :func:`default_n_per_class`).
        n_perm: permutations for p-values (0: none).
        seed: seeds the subsample, the halves and the permutations.
        pairing: "halves" or "full" (class matrices only; see vizcore.metrics.sampling).
    """

    metric: str = "mmd"
    params: dict[str, Any] = field(default_factory=dict)
    n_per_class: int | None = None
    n_perm: int = 200
    seed: int = 0
    pairing: str = "halves"

    def __post_init__(self) -> None:
        # a bad parameter fails here, before any features are computed, naming the valid values
        validate(all_metric_params(self.metric), self.params, owner=metric_info(self.metric).label)

    def key(self) -> dict[str, Any]:
        """JSON-friendly cache key; unset parameters count as their defaults, so the report's
        default settings and the page's explicit ones share one cached matrix."""
        info = metric_info(self.metric)
        params = {**info.params, **self.params}
        key = {"metric": self.metric, "params": dict(sorted(params.items())), "n_per_class": self.n_per_class,
               "n_perm": int(self.n_perm), "seed": int(self.seed), "pairing": self.pairing}  # fmt: skip
        return key if info.revision == 0 else {**key, "revision": info.revision}  # earlier caches stay valid

    def for_labels(self, *labels: np.ndarray) -> DistanceSettings:
        """These settings with ``n_per_class`` fixed for data with these labels (the default
        resolved, so it shares a cache entry with the same number asked for explicitly)."""
        if self.n_per_class is not None:
            return self
        return replace(self, n_per_class=default_n_per_class(_smallest(*labels)))


# ---------------------------------------------------------------------------------- the view


@dataclass(frozen=True, eq=False)
class MatrixView:
    """A distance matrix with everything a figure, a caption and a CSV need.

    Attributes:
        values: Shape (R, C).
        p_values: Shape (R, C), or None when no permutations were run.
        row_labels: class names of the rows.
        col_labels: class names of the columns.
        metric: registry name of the measure ("difference" for a difference of two matrices).
        params: the effective parameters (bandwidth used, estimator, seed, n_perm, pairing, ...).
        description: how the matrix was computed, one or two sentences.
        n_per_class: samples per class used.
    """

    values: np.ndarray
    p_values: np.ndarray | None
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    metric: str
    params: dict[str, Any]
    description: str
    n_per_class: int

    @property
    def value_label(self) -> str:
        """Colour-bar title: the estimator for MMD, the measure's label otherwise."""
        if self.metric == "mmd":
            return ESTIMATORS.get(self.params["estimator"]).label
        return self.params.get("value_label") or metric_info(self.metric).label.split(" (")[0]


def _names(config: TrainConfig, which: str, split: str) -> tuple[str, ...]:
    return tuple(eval_domain(config, which, split).classes)


def to_arrays(result: DistanceResult, row_names: tuple[str, ...], col_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """What the run cache stores: arrays plus the description and parameters as JSON in a 0-d str array."""
    meta = {"metric": result.metric, "params": result.params, "description": result.description,
            "n_per_class": result.n_per_class}  # fmt: skip
    return {
        "values": np.asarray(result.values, dtype=np.float64),
        "p_values": np.empty(0) if result.p_values is None else np.asarray(result.p_values, dtype=np.float64),
        "row_labels": np.asarray([row_names[c] for c in result.classes], dtype=str),
        "col_labels": np.asarray([col_names[c] for c in result.col_classes], dtype=str),
        "meta": np.asarray(json.dumps(meta, default=float), dtype=str),
    }


def from_arrays(arrays: dict[str, np.ndarray]) -> MatrixView:
    meta = json.loads(str(arrays["meta"]))
    p = arrays["p_values"]
    return MatrixView(
        values=np.asarray(arrays["values"]),
        p_values=None if p.size == 0 else np.asarray(p),
        row_labels=tuple(str(s) for s in arrays["row_labels"]),
        col_labels=tuple(str(s) for s in arrays["col_labels"]),
        metric=meta["metric"],
        params=meta["params"],
        description=meta["description"],
        n_per_class=int(meta["n_per_class"]),
    )


def _class_key(run: Run, which: str, split: str, layer: str, settings: DistanceSettings) -> tuple[DistanceSettings, dict[str, Any]]:
    if settings.n_per_class is None:  # the default depends on the class sizes
        settings = settings.for_labels(feature_arrays(run, which, split, layer)["y"])
    return settings, {"matrix": "classes", "which": which, "split": split, "layer": layer, **settings.key()}


def _cross_key(run: Run, split: str, layer: str, settings: DistanceSettings) -> tuple[DistanceSettings, dict[str, Any]]:
    domain_name(run.config(), "target")  # a clear error for a run without a target domain
    if settings.n_per_class is None:  # the default depends on both domains' class sizes
        labels = (feature_arrays(run, side, split, layer)["y"] for side in ("source", "target"))
        settings = settings.for_labels(*labels)
    return settings, {"matrix": "cross-domain", "split": split, "layer": layer, **settings.key(), "pairing": None}


def class_matrix(run: Run, which: str, split: str, layer: str, settings: DistanceSettings) -> MatrixView:
    """Distances between every pair of classes of one layer's features (cached in the run folder).

    Raises:
        ValueError: too few samples in a class, NaN features, a bad parameter (the message says which).
    """
    settings, key = _class_key(run, which, split, layer, settings)

    def compute() -> dict[str, np.ndarray]:
        f = feature_arrays(run, which, split, layer)
        r = class_distance_matrix(f["x"], f["y"], settings.metric, n_per_class=settings.n_per_class,
                                  seed=settings.seed, n_perm=settings.n_perm, pairing=settings.pairing,
                                  **settings.params)  # fmt: skip
        names = _names(run.config(), which, split)
        return to_arrays(r, names, names)

    return from_arrays(run.cached("distance", key, compute))


def cross_matrix(run: Run, split: str, layer: str, settings: DistanceSettings) -> MatrixView:
    """Source class i (rows) against target class j (columns) for a domain-adaptation run (cached).

    Raises:
        ValueError: the run has no target domain, or the measure rejects the samples.
    """
    settings, key = _cross_key(run, split, layer, settings)

    def compute() -> dict[str, np.ndarray]:
        fs, ft = feature_arrays(run, "source", split, layer), feature_arrays(run, "target", split, layer)
        r = cross_domain_matrix(fs["x"], fs["y"], ft["x"], ft["y"], settings.metric,
                                n_per_class=settings.n_per_class, seed=settings.seed, n_perm=settings.n_perm,
                                **settings.params)  # fmt: skip
        cfg = run.config()
        return to_arrays(r, _names(cfg, "source", split), _names(cfg, "target", split))

    return from_arrays(run.cached("distance", key, compute))


MATRIX_KINDS = ("classes", "cross")  # one side's classes against each other; source against target classes


def matrix(run: Run, kind: str, which: str, split: str, layer: str, settings: DistanceSettings) -> MatrixView:
    """The class matrix of side ``which`` (kind "classes") or the source-vs-target matrix ("cross")."""
    if kind == "cross":
        return cross_matrix(run, split, layer, settings)
    return class_matrix(run, which, split, layer, settings)


def matrix_ready(run: Run, kind: str, which: str, split: str, layer: str, settings: DistanceSettings) -> bool:
    """Whether :func:`matrix` is a read (its features analysed and the matrix cached), so a page
    can draw it in the click rather than ask the background queue for it."""
    sides = ("source", "target") if kind == "cross" else (which,)
    if any(analysis_path(run, side, split) is None for side in sides):
        return False
    _, key = _cross_key(run, split, layer, settings) if kind == "cross" else _class_key(run, which, split, layer, settings)
    return run.has_cached("distance", key)


def layer_choices(run: Run) -> list[str]:
    """The feature layers of the run's model (GAP, bottleneck for DA models, logits)."""
    return list(run.build_model().feature_layers)


def side_choices(config: TrainConfig) -> list[str]:
    return ["source"] + (["target"] if config.target else [])


def smallest_class(run: Run, which: str, split: str, layer: str) -> tuple[int, int]:
    """(number of samples, size of the smallest class) of a split, from the cached features."""
    y = feature_arrays(run, which, split, layer)["y"]
    return len(y), _smallest(y)
