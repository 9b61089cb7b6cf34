"""The sweep view: each validator's pick beside the oracle's, and the page that shows it."""

from __future__ import annotations

import json

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import TINY
from tests.paths import ROOT
from vizcore.metrics.validators import VALIDATORS
from vizcore.views import sweeps
from vizcore.views.sweeps import SweepRun, by_trade_off, sweep_names, sweep_runs, verdicts

ACC = {0: 0.60, 1: 0.80, 2: 0.70}  # target accuracy of each trial


def scores_of(trial: int) -> dict[str, float]:
    """Entropy ranks the runs as their accuracy does; BNM exactly backwards; the rest constant but one."""
    out = {name: float(trial == 0) for name in VALIDATORS}
    return out | {"entropy": ACC[trial], "bnm": -ACC[trial], "mmd": 0.1 * trial}


def run(trial: int, lam: float, seed: int = 0) -> SweepRun:
    return SweepRun(f"r{trial}", trial, {"trade_off": lam}, "ddc", lam, seed, 0.9, ACC[trial], scores_of(trial))


def test_each_validator_picks_its_best_run_and_the_cost_is_read_against_the_oracle():
    judged, oracle = verdicts([run(0, 0.1), run(1, 0.5), run(2, 1.0)])
    v = {x.name: x for x in judged}
    assert oracle.run_id == "r1"
    assert v["entropy"].spearman == pytest.approx(1.0) and v["entropy"].cost == 0
    assert v["bnm"].spearman == pytest.approx(-1.0) and v["bnm"].pick == "r0"
    assert v["bnm"].cost == pytest.approx(0.2)  # 80 % for the oracle, 60 % for BNM's pick
    with pytest.raises(ValueError, match="at least 2"):
        verdicts([run(0, 0.1)])


def test_accuracy_and_mmd_by_lambda_average_over_seeds():
    pts = by_trade_off([run(0, 0.1, 0), run(2, 0.1, 1), run(1, 0.5)])
    assert [(p.trade_off, p.n) for p in pts] == [(0.1, 2), (0.5, 1)]
    assert pts[0].target_acc == pytest.approx(0.65) and pts[0].mmd == pytest.approx(0.1)


@pytest.fixture
def swept(store, monkeypatch):
    """Three complete DDC runs tagged as trials of sweep "lam", with stand-in scores."""
    for trial, lam in enumerate((0.1, 0.5, 1.0)):
        cfg = TINY.replace(method="ddc", target="uci-digits", trade_off=lam)
        r = store.create(cfg, weights={"w": torch.full((1,), float(trial))}, status="complete",
                         summary={"source_acc": 0.9, "target_acc": ACC[trial]})  # fmt: skip
        (r.path / sweeps.SWEEP_FILE).write_text(json.dumps({"sweep": "lam", "trial": trial, "params": {"trade_off": lam}}))
    store.create(TINY, weights={"w": torch.zeros(1)}, status="complete", summary={})  # not in a sweep
    by_lam = {0.1: 0, 0.5: 1, 1.0: 2}
    monkeypatch.setattr(sweeps, "has_scores", lambda r: True)
    monkeypatch.setattr(sweeps, "validator_scores", lambda r: scores_of(by_lam[r.config().trade_off]))
    return store


def test_a_sweep_is_the_runs_tagged_with_its_name(swept):
    assert sweep_names(swept) == ["lam"]
    got = sweep_runs(swept, "lam")
    assert [r.trial for r in got] == [0, 1, 2] and [r.target_acc for r in got] == [0.6, 0.8, 0.7]


def test_the_sweeps_page_shows_the_picks_and_both_figures(swept, monkeypatch):
    monkeypatch.setenv("VIZCORE_RUNS", str(swept.root))
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "sweeps.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["validator"])[-1] == "oracle (target labels)"
    assert len(table) == len(VALIDATORS) + 1
    assert len(at.get("plotly_chart")) == 2  # the validators' scatter and the λ figure


def test_the_report_of_a_trial_shows_its_sweeps_picks(swept):
    import vizcore.views.report  # noqa: F401  (registers the sections)
    from vizcore.views import report_parts as rep

    runs = [swept.get(rid) for rid in swept.run_ids()]
    trial = next(r for r in runs if r.config().target)
    sec = rep.Section("validators", "Choosing without target labels")
    rep.SECTIONS.get("validators")[1](rep.Context([trial], rep.ReportOptions()), sec)
    assert len(sec.figures) == 1 and "sweep lam" in "".join(b for b in sec.blocks if isinstance(b, str))
    plain = rep.Section("validators", "")
    rep.SECTIONS.get("validators")[1](rep.Context([next(r for r in runs if not r.config().target)], rep.ReportOptions()), plain)
    assert "not an adaptation run" in plain.blocks[0]
