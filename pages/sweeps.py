"""Sweeps: which run each unsupervised validator would pick, beside the one target labels would."""

from __future__ import annotations

import streamlit as st

from pages._access import guard
from pages._figures import figure, presentation
from pages._shared import friendly_errors, store
from vizcore.core.numbers import MISSING, fmt, percent
from vizcore.figures.sweeps import lambda_figure, validator_scatter
from vizcore.metrics.validators import VALIDATORS
from vizcore.views.sweeps import by_trade_off, missing_scores, sweep_names, sweep_runs, verdicts

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Sweeps")
names = sweep_names(store())
if not names:
    st.info("No sweeps in this store yet. Start one from a terminal, e.g. "
            "`python -m vizcore sweep ddc-lambda --set target=mnist-m --set method=ddc "
            "--grid trade_off=0.1,0.25,0.5,1 --grid seed=0,1,2 --validators` (see the README).")  # fmt: skip
    st.stop()
name = st.selectbox("Sweep", names)

missing = missing_scores(store(), name)
if missing:
    st.warning(f"{len(missing)} run{'s' if len(missing) != 1 else ''} of this sweep have no validator scores yet "
               "(`sweep --validators` computes them as each trial ends).")  # fmt: skip
    if st.button(f"Compute the scores of {len(missing)} run{'s' if len(missing) != 1 else ''}", key="score_sweep"):
        bar = st.progress(0.0, text="scoring runs")
        with friendly_errors("the validator scores"):
            sweep_runs(store(), name, compute=True,
                       progress=lambda i, n: bar.progress(i / max(n, 1), text=f"scoring run {i + 1} of {n}"))  # fmt: skip
        st.rerun()

with friendly_errors("this sweep"):
    runs = sweep_runs(store(), name)
    if not runs:
        st.info("This sweep has no complete adaptation runs yet.")
        st.stop()
    judged, oracle = verdicts(runs)
    point = {r.run_id: " · ".join(f"{k} {v}" for k, v in r.params.items()) for r in runs}  # what a pick varied
    st.subheader("Which run would each validator pick?")
    st.dataframe(
        [{"validator": v.label, "paper": VALIDATORS.get(v.name).paper, "Spearman ρ": fmt(v.spearman),
          "weighted ρ": fmt(v.weighted_spearman), "its pick": point[v.pick], "pick's target acc": percent(v.pick_acc),
          "cost vs oracle (points)": fmt(100 * v.cost)} for v in judged]
        + [{"validator": "oracle (target labels)", "paper": MISSING, "Spearman ρ": MISSING, "weighted ρ": MISSING,
            "its pick": point[oracle.run_id], "pick's target acc": percent(oracle.target_acc), "cost vs oracle (points)": "0"}],
        hide_index=True, width="stretch",
    )  # fmt: skip
    st.caption(f"{sum(bool(r.scores) for r in runs)} scored runs. Every score is oriented so that higher is a "
               "better pick and reads no target label; the target test accuracy judges them. Weighted ρ weighs "
               "each run by the square of its accuracy rank (Musgrave et al. 2022): the top runs count most.")  # fmt: skip
    figure(validator_scatter(runs, judged, oracle.run_id, presentation()), f"sweep-{name}-validators",
           key="sweep_scatter")  # fmt: skip
    if len({r.trade_off for r in runs}) > 1:
        st.subheader("Accuracy and MMD² as λ varies")
        figure(lambda_figure(by_trade_off(runs), presentation()), f"sweep-{name}-lambda", key="sweep_lambda")
