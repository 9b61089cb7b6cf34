"""A first estimate of a method's faithfulness row, with its confidence interval, in seconds.

The whole row (:func:`vizcore.views.explanations.method_scores`, 500 images) takes minutes for the
slow methods. So the page first asks for the same scores on the first ``ESTIMATE_N`` images — each
column's mean with the half-width of its 95 % confidence interval, from the per-image scores (normal
approximation: 1.96 · s / √n) — shows them as soon as they are there, and the whole row refines
them in the background. Both are tasks of the one queue, asked in that order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vizcore.core.numbers import fmt
from vizcore.explain.faithfulness import FAITHFULNESS_COLUMNS, per_image
from vizcore.explain.methods import list_explainers
from vizcore.explain.methods import upsample_maps as upsample
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.store.tasks import Computation, Report, Task, TaskQueue, TaskSpec, register
from vizcore.views.analysis import eval_domain
from vizcore.views.explanations import _method_key, _version, explanation, scored_methods

ESTIMATE_N = 100
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
ESTIMATE = "faithfulness estimate"


def _key(which: str, method: str, layer: str) -> dict[str, object]:
    return {"which": which, "method": method, "layer": layer, "n": ESTIMATE_N, "v": _version(method)}


def estimate_scores(run: Run, which: str, method: str, report: Report = lambda stage, f: None) -> dict[str, float]:
    """Each faithfulness column's mean on the first ``ESTIMATE_N`` explained images, with the
    half-width of its 95 % confidence interval under ``<column>_ci``, and ``n``; cached with the run."""
    layer = _method_key(run, method, None)

    def compute() -> dict[str, np.ndarray]:
        e = explanation(run, which, method, "predicted", layer, lambda st, f: report(st, 0.5 * f), n=ESTIMATE_N)
        n = len(e["low"])
        images = eval_domain(run.config(), which).images[:n]
        maps = upsample(torch.from_numpy(e["low"]), tuple(images.shape[-2:]))
        stage = f"first estimate of {method}'s faithfulness on {n} test images"
        scores = per_image(run.load_model(), images, maps, torch.from_numpy(e["class_idx"]),
                           progress=lambda g: report(stage, 0.5 + 0.5 * g))  # fmt: skip
        out: dict[str, np.ndarray] = {"n": np.array(n)}
        for k, v in scores.items():
            v = v.double()
            out[k] = np.array(v.mean().item())
            out[f"{k}_ci"] = np.array(Z95 * v.std().item() / math.sqrt(n) if n > 1 else math.nan)
        return out

    return {k: float(v) for k, v in run.cached("faithfulness-estimate", _key(which, method, layer), compute).items()}


def has_estimate(run: Run, which: str, method: str) -> bool:
    return run.has_cached("faithfulness-estimate", _key(which, method, _method_key(run, method, None)))


def estimate_spec(run: Run, which: str, method: str) -> TaskSpec:
    return TaskSpec.of(run, ESTIMATE, which=which, method=method)


register(ESTIMATE, Computation(
    lambda store, run, p, report: estimate_scores(run, str(p["which"]), str(p["method"]), report),
    lambda store, run, p: str(p["method"]) in scored_methods(run, str(p["which"]))
    or has_estimate(run, str(p["which"]), str(p["method"])),
))  # fmt: skip


def request_estimate(queue: TaskQueue, store: RunStore, run: Run, which: str, method: str) -> Task | None:
    """The quick estimate of ``method``'s row, asked for unless its whole row or the estimate is cached."""
    return queue.ask(store, estimate_spec(run, which, method))


def estimate_rows(run: Run, which: str) -> list[dict[str, str]]:
    """One row per method that has an estimate but not yet its whole row: "mean ± half-width" per column."""
    scored = set(scored_methods(run, which))
    rows = []
    for method in list_explainers():
        if method in scored or not has_estimate(run, which, method):
            continue
        e = estimate_scores(run, which, method)
        rows.append({"method": f"{method} (first {int(e['n'])} images)",
                     **{f"{h} {'↓' if b == 'lower' else '↑'}": f"{fmt(e[k])} ± {fmt(e[f'{k}_ci'], 2)}"
                        for k, (h, b) in FAITHFULNESS_COLUMNS.items()}})  # fmt: skip
    return rows
