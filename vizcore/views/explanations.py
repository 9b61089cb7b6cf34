"""Explanations of a run as the CAM page and the report show them: maps per method, the
faithfulness table, the agreement of two maps. Computed once per run, method and class choice,
and kept with the run (``Run.cached``); no UI.

What is on screen is computed first: the grid's maps are of exactly the images shown, for every
class at once (:func:`onscreen_maps`), a few seconds at most even for Score-CAM. The faithfulness
table explains the first ``N_EXPLAIN`` test images of a side (Score-CAM costs one forward pass
per channel and image, so a fixed, documented subset keeps every method affordable on a CPU);
that whole-split work runs on the background queue (:mod:`vizcore.store.tasks`), never in a click.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vizcore.explain.cam import energy_in_box, normalize_maps, pointing_game
from vizcore.explain.faithfulness import (
    DEFAULT_STEPS,
    FAITHFULNESS_COLUMNS,
    ROAD_PERCENTS,
    faithfulness,
)
from vizcore.explain.layers import default_layer, layer_choices
from vizcore.explain.methods import (
    EXPLAINERS,
    explain,
    explain_all_classes,
    list_explainers,
    map_agreement,
)
from vizcore.explain.methods import upsample_maps as upsample
from vizcore.models.architecture import resolve_input_shape
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.store.tasks import Computation, Task, TaskQueue, TaskSpec, register
from vizcore.views.analysis import class_target, eval_domain, run_analysis, stored_cams
from vizcore.views.sanity import SANITY_COLUMNS, has_sanity, sanity_arrays, sanity_count, sanity_row

N_EXPLAIN = 500
CHUNK = 32  # images per step of a whole-split computation: a stop request waits at most one chunk
EXPLAIN_VERSION = 1  # bump when every method's cached maps or scores change meaning (one method's: its revision)
LOCALISATION_COLUMNS = {"pointing_game": ("pointing game %", "higher"), "energy_in_box": ("energy in box %", "higher")}


def class_phrase(class_mode: str) -> str:
    """What a class choice of the CAM page reads as: "the predicted class", "the true class", "class 3"."""
    return {"predicted": "the predicted class", "true": "the true class"}.get(class_mode, f"class {class_mode}")


def grid_title(run_label: str, method: str, class_mode: str) -> str:
    """The title of a grid of one method's maps: "<run> — Grad-CAM of the predicted class"; a method
    that ignores the class (Eigen-CAM) says so instead of naming one."""
    if not EXPLAINERS.get(method).class_specific:
        return f"{run_label} — {method} (class-agnostic: the same map for every class)"
    return f"{run_label} — {method} of {class_phrase(class_mode)}"


def tile_caption(
    pred: int, prob: float, label: int, method: str, class_mode: str, class_idx: int, classes: Sequence[str] = ()
) -> str:
    """The caption over one image of the grid: its prediction and true class and, when the maps
    explain another class than the predicted one, which (not for a class-agnostic method).
    Classes are written by their names when ``classes`` gives them ("pred cat"), else by index."""

    def name(k: int) -> str:
        return str(classes[k]) if len(classes) > k else str(k)

    text = f"pred {name(pred)} ({prob:.0%}) · true {name(label)}"
    if class_mode == "predicted" or (method and not EXPLAINERS.get(method).class_specific):
        return text
    return f"{text} · {method} {name(class_idx)}"


def explained_count(run: Run, which: str = "source") -> int:
    """How many test images (the first ones) the methods other than CAM explain."""
    return min(N_EXPLAIN, len(run_analysis(run, which)["labels"]))


# (run folder, weights digest) -> (default layer, every layer with 2-D maps): a model build and
# one dummy image each, so a page rerun asks only once
_LAYERS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def _input_shape(run: Run) -> tuple[int, int, int]:
    return tuple(resolve_input_shape(run.config()))  # type: ignore[return-value]


def target_layers(run: Run) -> tuple[str, list[str]]:
    """The run's default target layer (the last conv block) and every layer an expert may choose."""
    key = (str(run.path), run.weights_digest())
    if key not in _LAYERS:
        model, shape = run.build_model(), _input_shape(run)
        _LAYERS[key] = (default_layer(model, shape), tuple(layer_choices(model, shape)))
    default, choices = _LAYERS[key]
    return default, list(choices)


def _method_key(run: Run, method: str, layer: str | None) -> str:
    """The layer a method explains at, checked: CAM only at the default layer."""
    EXPLAINERS.get(method)  # an unknown method is refused with the valid names
    default, choices = target_layers(run)
    name = layer or default
    if name not in choices:
        raise ValueError(f"this model has no layer {name!r} with 2-D feature maps; "
                         f"the last ones are: {', '.join(choices[-8:])}")  # fmt: skip
    if EXPLAINERS.get(method).fixed_layer and name != default:
        raise ValueError(f"{method} is defined only at the layer before global pooling ({default!r}), not {name!r}")
    return name


# (stage, fraction done in [0, 1]) -> None; may raise to stop the work between chunks
Report = Callable[[str, float], None]


def _ignore(_stage: str, _fraction: float) -> None:
    pass


def explanation(
    run: Run,
    which: str,
    method: str,
    class_mode: str = "predicted",
    layer: str | None = None,
    report: Report = _ignore,
    n: int | None = None,
) -> dict[str, np.ndarray]:
    """Raw low-resolution maps of the first ``n`` explained images (default: all of them):
    low (n, h, w), class_idx (n,), layer.

    CAM at the default layer is read off the per-run analysis (no forward pass); every other
    method and layer is computed once, ``CHUNK`` images at a time (``report`` is told after
    each, and may raise to stop: then nothing is cached), and cached with the run.
    """
    name = _method_key(run, method, layer)
    a = run_analysis(run, which)
    n = explained_count(run, which) if n is None else min(n, explained_count(run, which))
    cls = class_target(class_mode, a)[:n]
    if method == "CAM":
        return {"low": stored_cams(a, np.arange(n), cls).numpy(), "class_idx": cls, "layer": np.array(name)}

    def compute() -> dict[str, np.ndarray]:
        images, model, parts = eval_domain(run.config(), which).images[:n], run.load_model(), []
        for s in range(0, n, CHUNK):
            report(f"{method} maps of {n:,} test images", s / n)
            parts.append(explain(model, images[s : s + CHUNK], torch.from_numpy(cls[s : s + CHUNK]), method, name).low)
        report(f"{method} maps of {n:,} test images", 1.0)
        low = torch.cat(parts).numpy().astype(np.float16)
        return {"low": low, "class_idx": cls, "layer": np.array(name)}

    key = {"which": which, "method": method, "class_mode": class_mode, "layer": name, "n": n, "v": _version(method)}
    return run.cached("explanation", key, compute)


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Mean per-image Pearson correlation of two sets of maps of the same images (M, H, W)."""
    if first.shape != second.shape:
        raise ValueError(f"the two sets of maps differ in shape: {first.shape} and {second.shape}")
    return float(map_agreement(torch.from_numpy(first), torch.from_numpy(second)).mean())


def method_scores(
    run: Run, which: str, method: str, layer: str | None = None, report: Report = _ignore
) -> dict[str, float]:
    """Faithfulness (and, where the data has boxes, localisation) of one method's maps of the
    predicted class on the explained images; cached with the run. ``report`` hears the maps'
    progress (the first half: the two take about as long for Score-CAM) and then the scoring's."""
    name = _method_key(run, method, layer)

    def compute() -> dict[str, np.ndarray]:
        e = explanation(run, which, method, "predicted", name, lambda st, f: report(st, 0.5 * f))
        n = len(e["low"])
        dom = eval_domain(run.config(), which)
        images = dom.images[:n]
        maps = upsample(torch.from_numpy(e["low"]), tuple(images.shape[-2:]))
        cls = torch.from_numpy(e["class_idx"])
        # one call for all images (ROAD's imputation iterates each chunk of perturbed images to
        # one tolerance, so chunking the images would move its score); it reports between chunks
        stage = f"faithfulness scores of {method} on {n:,} test images"
        f = faithfulness(run.load_model(), images, maps, cls, progress=lambda g: report(stage, 0.5 + 0.5 * g))
        out = {k: np.array(getattr(f, k)) for k in FAITHFULNESS_COLUMNS} | {"n": np.array(n)}
        if dom.boxes is not None:
            boxes = dom.boxes[:n]
            out["pointing_game"] = np.array(100 * pointing_game(maps, boxes).float().mean().item())
            out["energy_in_box"] = np.array(100 * energy_in_box(maps, boxes).mean().item())
        report(stage, 1.0)
        return out

    cached = run.cached("faithfulness", _scores_key(run, which, method, name), compute)
    return {k: float(v) for k, v in cached.items()}


def table_columns() -> dict[str, tuple[str, str]]:
    """Column key -> (heading, which way is better) of the faithfulness table."""
    return FAITHFULNESS_COLUMNS | LOCALISATION_COLUMNS | SANITY_COLUMNS


def sanity_target(run: Run, which: str) -> tuple[str, int]:
    """The layer (the default one) and how many of the explained images the sanity checks use."""
    return target_layers(run)[0], sanity_count(explained_count(run, which))


def _sane(run: Run, which: str, method: str) -> bool:
    return has_sanity(run, which, method, *sanity_target(run, which))


def faithfulness_table(run: Run, which: str = "source", methods: list[str] | None = None) -> list[dict[str, float | str]]:
    """One row per method (all registered ones by default): its scores (see table_columns), with
    its sanity columns once they are cached."""
    return [{"method": m, **method_scores(run, which, m),
             **(sanity_row(sanity_arrays(run, which, m, *sanity_target(run, which))) if _sane(run, which, m) else {})}
            for m in (methods or list_explainers())]  # fmt: skip


def best_methods(rows: list[dict[str, float | str]]) -> dict[str, str]:
    """Column -> the method that scores best in it (lower or higher, as the column says)."""
    best = {}
    for col, (_, better) in table_columns().items():
        have = [r for r in rows if col in r]
        if have:
            pick = min if better == "lower" else max
            best[col] = str(pick(have, key=lambda r: float(r[col]))["method"])
    return best


def verdict(rows: list[dict[str, float | str]]) -> str:
    """One sentence: which method is most faithful (wins the most faithfulness columns) and best localised."""
    best = best_methods(rows)
    wins: dict[str, int] = {}
    for col in FAITHFULNESS_COLUMNS:
        if col in best:
            wins[best[col]] = wins.get(best[col], 0) + 1
    if not wins:
        return "No method has been scored yet."
    top = max(wins, key=lambda m: wins[m])
    text = f"Most faithful: {top} (best in {wins[top]} of {len(FAITHFULNESS_COLUMNS)} faithfulness scores)"
    if "pointing_game" in best:
        text += f"; best localised: {best['pointing_game']} (pointing game), {best['energy_in_box']} (energy in box)"
    failed = [str(r["method"]) for r in rows if r.get("sanity") == "fails"]
    if failed:
        text += f". Fails the randomisation sanity check (maps barely change): {', '.join(failed)}"
    return text + "."


def _scores_key(run: Run, which: str, method: str, layer: str) -> dict[str, object]:
    return {"which": which, "method": method, "layer": layer, "n": explained_count(run, which),
            "steps": DEFAULT_STEPS, "road": list(ROAD_PERCENTS), "v": _version(method)}  # fmt: skip


def _version(method: str) -> int | str:
    """The cache version of a method's maps and scores: EXPLAIN_VERSION, then ".<revision>" once the
    method has been revised, so only the revised method's cached (and shipped) entries are recomputed."""
    revision = EXPLAINERS.get(method).revision
    return EXPLAIN_VERSION if revision == 0 else f"{EXPLAIN_VERSION}.{revision}"


def scored_methods(run: Run, which: str = "source") -> list[str]:
    """The methods whose scores at the default layer are already cached for this run (a read)."""
    default, _ = target_layers(run)
    return [m for m in list_explainers() if run.has_cached("faithfulness", _scores_key(run, which, m, default))]


# (run folder, weights digest, side, method, layer, image indices) -> every class's raw maps of
# those images (M, classes, h, w): a class switch or a colour change on the same grid is an index
_ONSCREEN: OrderedDict[tuple[str, str, str, str, str, bytes], torch.Tensor] = OrderedDict()
_ONSCREEN_LOCK = threading.Lock()
ONSCREEN_KEPT = 32  # grids remembered per server process (a few MB at most)


def onscreen_low(run: Run, which: str, method: str, index: np.ndarray, layer: str | None = None) -> torch.Tensor:
    """Raw maps of exactly the images ``index`` for every class, computed in one batch and
    remembered for the process (see :func:`vizcore.explain.methods.explain_all_classes`).

    Shape:
        index: (M,). Returns (M, classes, h, w) float32.
    """
    name = _method_key(run, method, layer)
    index = np.asarray(index, dtype=np.int64)
    key = (str(run.path), run.weights_digest(), which, method, name, index.tobytes())
    with _ONSCREEN_LOCK:
        if key in _ONSCREEN:
            _ONSCREEN.move_to_end(key)
            return _ONSCREEN[key]
    images = eval_domain(run.config(), which).images[index]
    low = explain_all_classes(run.load_model(), images, method, name)
    with _ONSCREEN_LOCK:
        _ONSCREEN[key] = low
        while len(_ONSCREEN) > ONSCREEN_KEPT:
            _ONSCREEN.popitem(last=False)
    return low


def onscreen_maps(
    run: Run, which: str, method: str, index: np.ndarray, class_idx: np.ndarray, layer: str | None = None
) -> np.ndarray:
    """Full-size maps of the images ``index`` (any test image) for ``class_idx``, min-max
    normalised per image: (M, H, W)."""
    low = onscreen_low(run, which, method, index, layer)
    picked = low[torch.arange(len(low)), torch.as_tensor(np.asarray(class_idx, dtype=np.int64))]
    return normalize_maps(upsample(picked, tuple(run_analysis(run, which)["size"]))).numpy()


def method_maps(
    run: Run,
    which: str,
    method: str,
    index: np.ndarray,
    class_mode: str,
    class_idx: np.ndarray,
    layer: str | None = None,
    scale: str = "image",
) -> np.ndarray:
    """Full-size maps in [0, 1] of images ``index`` by ``method``, as the CAM page draws them.

    CAM at the default layer is the per-run analysis's (any image, either colour scale); every
    other method computes the maps of exactly these images (:func:`onscreen_maps`), each map
    stretched to its own range.

    Shape:
        index, class_idx: (M,). Returns (M, H, W) float32.
    """
    from vizcore.views.analysis import cam_maps

    default, _ = target_layers(run)
    if method == "CAM" and (layer or default) == default:
        return cam_maps(run, which, index, class_idx, scale=scale)
    return onscreen_maps(run, which, method, index, class_idx, layer)


def comparable(first: Run, second: Run, which: str) -> str | None:
    """Why two runs' maps cannot be compared on the same images (None when they can)."""
    a, b = first.config(), second.config()
    da, db = domain_name_of(a, which), domain_name_of(b, which)
    if db is None:
        return f"the second run has no {which} side"
    if da != db:
        return f"the runs' {which} images differ ({da} and {db}): the maps are not of the same images"
    if resolve_input_shape(a)[1:] != resolve_input_shape(b)[1:] or a.seed != b.seed:
        return "the runs see their test images at different sizes or in a different seeded order"
    return None


def domain_name_of(config, which: str) -> str | None:  # type: ignore[no-untyped-def]
    """The data set of one side of a run's config, or None if it has no such side."""
    return config.source if which == "source" else config.target


# --------------------------------------------------------------------------- in the background

SCORING = "faithfulness scores"  # the whole-split computation of one method's faithfulness table row


def scoring_spec(run: Run, which: str, method: str) -> TaskSpec:
    """The background task that scores ``method`` on the explained images of side ``which``."""
    return TaskSpec.of(run, SCORING, which=which, method=method)


def _score(store: RunStore, run: Run, params: dict[str, object], report: Report) -> None:
    """Faithfulness, then the sanity checks (the last fifth of the progress, all of it once the
    faithfulness scores are cached)."""
    which, method = str(params["which"]), str(params["method"])
    split = 0.0 if method in scored_methods(run, which) else 0.8
    method_scores(run, which, method, report=lambda st, f: report(st, split * f))
    sanity_arrays(run, which, method, *sanity_target(run, which),
                  report=lambda st, f: report(f"sanity checks: {st}", split + (1 - split) * f))  # fmt: skip


def _scored(store: RunStore | None, run: Run, params: dict[str, object]) -> bool:
    which, method = str(params["which"]), str(params["method"])
    return method in scored_methods(run, which) and _sane(run, which, method)


def unscored_methods(run: Run, which: str) -> list[str]:
    """The methods whose faithfulness scores or sanity checks are not cached yet."""
    return [m for m in list_explainers() if not _scored(None, run, {"which": which, "method": m})]


register(SCORING, Computation(_score, _scored))


def request_scores(queue: TaskQueue, store: RunStore, run: Run, which: str, method: str, again: bool = False) -> Task | None:
    """The background task scoring ``method`` on side ``which`` (see :meth:`TaskQueue.ask`);
    None once its scores and sanity checks are cached."""
    return queue.ask(store, scoring_spec(run, which, method), again)


def scoring_problems(queue: TaskQueue, run: Run, which: str) -> list[str]:
    """Why the last background scoring of each still unscored method failed, one line each."""
    problems = []
    for method in list_explainers():
        last = queue.find(scoring_spec(run, which, method))
        if last is not None and last.state == "failed" and not _scored(None, run, {"which": which, "method": method}):
            problems.append(f"scoring {method} failed: {last.error}")
    return problems
