"""The Train page's live panel: the run this session watches, re-read every second while a training
job or the preparing of a new run's views is alive on the server, drawn once and left quiet when
neither is; other sessions' jobs, to re-attach to."""

from __future__ import annotations

import time

import streamlit as st

import pages._shared as shared  # store() looked up at each call: tests replace it
from pages._background import task_rows
from pages._figures import figure
from pages._pin import Pin
from pages._shared import friendly_errors, session_id
from vizcore.app.jobs import MANAGER
from vizcore.core.numbers import percent
from vizcore.figures.training import curve_label
from vizcore.methods import curves_of
from vizcore.store import tasks
from vizcore.views import builders


def _watched_run_id() -> str | None:
    """The run this session watches: the one it started or re-attached to, else its own newest job."""
    rid = st.session_state.get("watch")
    if rid is not None:
        return rid
    mine = MANAGER.jobs(owner=session_id())
    return mine[-1].run_id if mine else None


def other_jobs() -> None:
    """Jobs of other sessions (or of this user's closed tab): listed, watched only on request."""
    others = [j for j in MANAGER.jobs() if j.owner != session_id() and j.run_id != st.session_state.get("watch")]
    if not others:
        return
    st.caption(f"{len(others)} other training job(s) running on this server.")
    with st.expander("Re-attach to a running job", expanded=st.session_state.get("watch") is None):
        for j in others:
            c1, c2 = st.columns([4, 1])
            c1.write(f"{j.config.label} — started {time.strftime('%H:%M:%S', time.localtime(j.started))}")
            if c2.button("Watch", key=f"attach_{j.run_id}", help="show its live curves here (e.g. after closing a tab)"):
                st.session_state["watch"] = j.run_id
                st.rerun()


def live_panel() -> None:
    """The watched run: re-read every second while a training job or the preparing of a new
    run's views is alive on this server (both survive page switches and closed tabs), drawn once
    and left quiet when neither is."""
    if _busy():
        _live_panel()
    else:
        _panel()


def _busy() -> bool:
    rid = _watched_run_id()
    return bool(MANAGER.jobs()) or (rid is not None and bool(tasks.QUEUE.tasks(rid)))


@st.fragment(run_every=1.0)
def _live_panel() -> None:
    _panel()
    if not _busy():  # the last job just ended: one full rerun draws the quiet page
        st.rerun()


def _panel() -> None:
    other_jobs()
    rid = _watched_run_id()
    if rid is None:
        st.info("Configure a run on the left and press **Train**. Live curves appear here.")
        return
    with friendly_errors("the training run"):
        run = shared.store().get(rid)
        cfg, status, records = run.config(), run.status(), run.metrics()
    st.subheader(cfg.label)
    st.caption(f"run `{rid}`")
    steps = [r for r in records if r["kind"] in ("step", "epoch", "end", "ready")]
    last = steps[-1] if steps else None
    total = max((r["total_steps"] for r in steps), default=0)
    frac = (last["step"] / total) if last and total else 0.0
    state = status["status"]
    if state == "running":
        where = f"epoch {last['epoch']}/{cfg.epochs}, step {last['step']}/{total}" if last and total else "preparing data"
        if records and records[-1]["kind"] == "stage":  # end-of-epoch work: say which
            where += f": {records[-1]['message']}…"
        st.progress(min(frac, 1.0), text=f"Training… {where}")
        if MANAGER.find(rid) is not None and st.button("Stop", type="secondary", help="keeps what was trained so far"):
            MANAGER.stop(rid)
    else:
        msg = {"complete": st.success, "stopped": st.warning}.get(state, st.error)
        msg(f"Run {state}. {status.get('message', '')}")
        if tasks.QUEUE.tasks(rid):  # the views' analysis and default matrices, once, on the background queue
            st.caption("Its views are being prepared in the background, most used first. The pages can be opened "
                       "now: a view not ready yet says so and shows its progress.")  # fmt: skip
            task_rows(rid, "train_tasks")
    epochs = [r for r in records if r["kind"] == "epoch"]
    if epochs:
        v = epochs[-1]["values"]
        cols = st.columns(4)
        cols[0].metric("source test acc", percent(v.get("source_acc")))
        if "target_acc" in v:
            cols[1].metric("target test acc", percent(v["target_acc"]))
        if "images_per_s" in v:
            cols[2].metric(
                "training images / s", f"{v['images_per_s']:,.0f}",
                help="source images per second of training steps in the last epoch; data preparation, "
                "evaluation and the BatchNorm pass are not counted",
            )  # fmt: skip
        steps_declared, epochs_declared = curves_of(cfg.method)
        if epochs_declared and epochs_declared[0] in v:  # the method's own score (e.g. kNN accuracy)
            cols[3].metric(curve_label(epochs_declared[0]).replace(" (%)", ""), percent(v[epochs_declared[0]]))
        elif "domain_acc" in steps_declared and "domain_acc" in v:
            cols[3].metric(
                "domain acc",
                percent(v["domain_acc"]),
                help="near 50%: the classifier cannot tell source from target features (aligned as "
                "a whole, which says nothing about each class); near 100%: not aligned",
            )
    if any(r["kind"] == "step" for r in records):
        curves = builders.spec("run_curves", run_id=rid)  # the Train page's plot, re-made from the run when pinned
        figure(builders.remake(curves, shared.store()), f"training-{rid}", key="live_curves", pin=Pin(run_id=rid,
               run_name=cfg.label, spec=curves))  # fmt: skip
    if state in ("complete", "stopped"):
        st.page_link("pages/cam.py", label="See its CAM heatmaps", icon=":material/local_fire_department:")
        st.session_state["cam_run"] = rid
