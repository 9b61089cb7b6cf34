"""Compare runs: a table of every run's method, domains, seed and final accuracies, and their curves."""

from __future__ import annotations

import streamlit as st

from pages._access import guard
from pages._figures import figure
from pages._figures import table as show_table
from pages._pin import Pin
from pages._shared import friendly_errors, run_label, run_table, store
from vizcore.figures.training import curve_label, transferability_figure
from vizcore.methods import curves_of
from vizcore.store.info import lineage_text
from vizcore.views import builders
from vizcore.views.transfer import transfer_tables

guard(__file__)  # the token and the viewer, even for a page Streamlit runs on its own
st.title("Compare runs")
runs = [r for r in store().list() if r.status in ("complete", "stopped", "failed", "interrupted")]
if not runs:
    st.info("No finished runs yet: train some on the Train page.")
    st.stop()

by_known = {r.run_id for r in store().list()}
rows = [
    {
        "name": r.label,
        "method": r.method,
        "source": r.shown(r.source),
        "target": r.target and r.shown(r.target),
        "seed": r.seed,
        "status": r.status,
        "source acc": r.summary.get("source_acc"),
        "target acc": r.summary.get("target_acc"),
        "epochs": r.summary.get("epochs_done"),
        "starts from": lineage_text(r, by_known),
        "run id": r.run_id,
    }
    for r in runs
]
show_table(run_table(rows), "Runs compared", "compare_runs_table", hide_index=True, width="stretch")
st.caption("Accuracies are on each domain's held-out test split after the last epoch; target labels are never used in training.")

by_id = {r.run_id: r for r in runs}
default = [r.run_id for r in runs if r.target][:4] or [runs[0].run_id]
chosen = st.multiselect("Runs to plot", list(by_id), default=default, format_func=lambda i: run_label(by_id[i]))
# the accuracies, then every curve the chosen runs' methods declare (vizcore.methods.curves_of)
declared = [k for i in chosen for part in reversed(curves_of(by_id[i].method)) for k in part]
metrics = list(dict.fromkeys(["target_acc", "source_acc", *declared, "cls_loss"]))
key = st.radio("Curve", metrics, horizontal=True, format_func=curve_label)
if chosen:
    curves = builders.spec("training_curves", run_ids=chosen, key=key)
    with friendly_errors("the curves"):
        fig = builders.remake(curves, store())
    figure(fig, f"compare-{key}", key="compare_fig",
           pin=Pin(settings={"runs": ", ".join(by_id[i].label for i in chosen), "curve": curve_label(key)}, spec=curves))

# fine-tuning on a few target labels, from whatever grid of such runs the store holds
if tables := transfer_tables(runs):
    st.subheader("Transferability: fine-tuning on a few target labels")
    pair = st.selectbox("Domains", [t.pair for t in tables]) if len(tables) > 1 else tables[0].pair
    table = next(t for t in tables if t.pair == pair)
    show_table(table.records(), f"Fine-tuning {pair}: target test accuracy %", "transfer_table", hide_index=True,
               width="stretch")
    st.caption("Target test accuracy % (mean ± sample std over the runs of a cell, their number in brackets). "
               "Rows: what was frozen of the parent run; \"from scratch\" trains the same network on the same "
               "K labelled target images per class without a parent. `python bench/transferability.py --store "
               "DIR` trains a full grid into a run store.")  # fmt: skip
    figure(transferability_figure(f"Fine-tuning {pair}", table.ks, table.series()), "transferability",
           key="transfer_fig")  # fmt: skip
