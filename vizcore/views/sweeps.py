"""A sweep's runs beside what each unsupervised validator would have picked.

The runs of a sweep are the complete runs whose folder holds a ``sweep.json`` with its name
(:mod:`vizcore.app.sweep` writes it). For each run: its parameters, its source and target test
accuracies (the target's is the oracle the validators are judged against, never an input to
them) and its validator scores (:mod:`vizcore.views.validation`, cached with the run).

Per validator: Spearman's correlation of its scores with the target accuracies, the weighted
Spearman correlation of Musgrave et al. (:func:`vizcore.metrics.validators.weighted_spearman`),
the run it would pick (its highest score), that run's target accuracy, and what the pick costs
against the oracle's (the most accurate run).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vizcore.metrics.validators import VALIDATORS, weighted_spearman
from vizcore.store.info import RunNotFound
from vizcore.store.run import Run
from vizcore.store.runs import CheckpointError, RunStore
from vizcore.views.validation import has_scores, validator_scores

SWEEP_FILE = "sweep.json"  # vizcore.app.sweep writes it into each run of a sweep


@dataclass(frozen=True)
class SweepRun:
    """One complete run of a sweep. ``scores`` is empty until its validators are computed."""

    run_id: str
    trial: int
    params: dict[str, Any]
    method: str
    trade_off: float
    seed: int
    source_acc: float
    target_acc: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """How well one validator picks: correlations over the sweep, its pick and the pick's cost."""

    name: str
    label: str
    spearman: float
    weighted_spearman: float
    pick: str
    pick_acc: float
    cost: float  # oracle accuracy minus the pick's, 0 to 1


def _tag(run: Run) -> dict[str, Any] | None:
    """A run's ``sweep.json``, or None (no tag, or one that is not the sweep's shape)."""
    try:
        tag = json.loads((run.path / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(tag, dict) and isinstance(tag.get("sweep"), str) and isinstance(tag.get("params"), dict)
    return tag if ok else None


def sweep_of(run: Run) -> str | None:
    """The name of the sweep ``run`` is a trial of, or None."""
    tag = _tag(run)
    return tag["sweep"] if tag else None


def sweep_names(store: RunStore) -> list[str]:
    """The names of the sweeps whose runs are in ``store``, sorted."""
    return sorted({t["sweep"] for rid in store.run_ids() if (t := _tag(Run(store.root / rid)))})


def _complete(store: RunStore, name: str) -> list[tuple[Run, dict[str, Any]]]:
    out = []
    for rid in store.run_ids():
        try:
            run = store.get(rid)
            if (tag := _tag(run)) and tag["sweep"] == name and run.info().status == "complete" and run.config().target:
                out.append((run, tag))
        except (RunNotFound, CheckpointError, OSError):  # deleted meanwhile, or damaged: not a trial to judge
            continue
    return sorted(out, key=lambda p: p[1].get("trial", 0))


def missing_scores(store: RunStore, name: str) -> list[str]:
    """The runs of sweep ``name`` whose validator scores are not computed yet."""
    return [run.run_id for run, _ in _complete(store, name) if not has_scores(run)]


def sweep_runs(store: RunStore, name: str, compute: bool = False,
               progress: Callable[[int, int], None] | None = None) -> list[SweepRun]:  # fmt: skip
    """The complete runs of sweep ``name``, with their scores where computed (all with ``compute``)."""
    found = _complete(store, name)
    out = []
    for i, (run, tag) in enumerate(found):
        if progress:
            progress(i, len(found))
        c, s = run.config(), run.summary()
        scores = validator_scores(run) if compute or has_scores(run) else {}
        out.append(SweepRun(run.run_id, int(tag.get("trial", i)), tag["params"], c.method, c.trade_off, c.seed,
                            float(s.get("source_acc", math.nan)), float(s.get("target_acc", math.nan)), scores))  # fmt: skip
    return out


def verdicts(runs: list[SweepRun], power: float = 2.0) -> tuple[list[Verdict], SweepRun]:
    """Each validator's verdict over the scored runs, and the oracle's run (highest target accuracy).

    Raises:
        ValueError: fewer than 2 runs with scores.
    """
    scored = [r for r in runs if r.scores]
    if len(scored) < 2:
        raise ValueError(f"{len(scored)} run{'s' if len(scored) != 1 else ''} with validator scores: "
                         "judging a validator needs at least 2")  # fmt: skip
    acc = np.array([r.target_acc for r in scored])
    oracle = scored[int(acc.argmax())]
    out = []
    for name in VALIDATORS:
        s = np.array([r.scores[name] for r in scored])
        pick = scored[int(np.nanargmax(s))]
        out.append(Verdict(name, VALIDATORS.get(name).label, weighted_spearman(s, acc, power=0),
                           weighted_spearman(s, acc, power), pick.run_id, pick.target_acc,
                           oracle.target_acc - pick.target_acc))  # fmt: skip
    return out, oracle


@dataclass(frozen=True)
class LambdaPoint:
    """The runs of one method at one λ, over their seeds."""

    method: str
    trade_off: float
    n: int
    target_acc: float
    target_std: float
    mmd: float


def by_trade_off(runs: list[SweepRun]) -> list[LambdaPoint]:
    """Target accuracy and source–target MMD² (adapted layer) of each (method, λ), mean over seeds."""
    groups: dict[tuple[str, float], list[SweepRun]] = defaultdict(list)
    for r in runs:
        groups[(r.method, r.trade_off)].append(r)
    out = []
    for (method, lam), rs in sorted(groups.items()):
        acc = np.array([r.target_acc for r in rs])
        mmd = [r.scores["mmd"] for r in rs if "mmd" in r.scores]
        out.append(LambdaPoint(method, lam, len(rs), float(acc.mean()), float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
                               float(np.mean(mmd)) if mmd else math.nan))  # fmt: skip
    return out
