"""Streamlit glue shared by the pages: the run store, run pickers, cached loaders, errors.

Only UI code lives here; every number comes from vizcore.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from vizcore.core.errors import DataUnavailable
from vizcore.store.info import RunInfo, RunNotFound
from vizcore.store.run import Run
from vizcore.store.runs import CheckpointError, RunStore

# Errors a user can cause (a deleted run, a bad checkpoint, missing data, bad parameters):
# each becomes a message on the page, never a traceback.
USER_ERRORS = (RunNotFound, CheckpointError, DataUnavailable, ValueError, PermissionError, KeyError)


def run_table(rows: list[dict[str, Any]], accuracies: tuple[str, ...] = ("source acc", "target acc")) -> Any:
    """A table of runs for st.dataframe: 0..1 accuracies written as "97.8%" and anything missing as
    "—" (vizcore.core.numbers). Written out as text: st.dataframe draws a missing number as "None"."""
    import pandas as pd

    from vizcore.core.numbers import MISSING, percent

    def cell(key: str, v: Any) -> Any:
        return percent(v) if key in accuracies else (MISSING if v is None else v)

    return pd.DataFrame([{k: cell(k, v) for k, v in r.items()} for r in rows])


def store() -> RunStore:
    return RunStore()


def class_map_of(source: str, target: str | None) -> dict[str, str]:
    """The class map chosen for this pair on the Your data page this session ({} if none)."""
    return st.session_state.get("_class_maps", {}).get(f"{source}|{target}", {}) if target else {}


def keep_class_map(source: str, target: str, class_map: dict[str, str]) -> None:
    """Remember the class map of a pair that passed the check, for the Train page."""
    st.session_state.setdefault("_class_maps", {})[f"{source}|{target}"] = class_map


def session_id() -> str:
    """A per-browser-session id, so two people see their own jobs first."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex[:8]
    return st.session_state["session_id"]


@contextmanager
def friendly_errors(what: str = "this view", doing: str = "show") -> Iterator[None]:
    """Show known failures as a clear message (and stop the page), not a traceback:
    "Could not <doing> <what>: <why>"."""
    try:
        yield
    except USER_ERRORS as e:
        st.error(f"Could not {doing} {what}: {e}")
        st.stop()


def run_label(r: RunInfo) -> str:
    """Short enough for a select box in presentation mode: label, then compact accuracies."""
    from vizcore.core.numbers import percent

    acc, tacc = r.summary.get("source_acc"), r.summary.get("target_acc")
    score = "" if acc is None else f" — {percent(acc)} src" + ("" if tacc is None else f", {percent(tacc)} tgt")
    tag = "demo · " if r.read_only and not r.label.lower().startswith("demo") else ""
    status = "" if r.status == "complete" else f" [{r.status}]"
    return f"{tag}{r.label}{score}{status}"


def usable_runs(predicate: Callable[[RunInfo], bool] | None = None) -> list[RunInfo]:
    """Runs that have weights to analyse (complete or stopped), newest first, demos last."""
    runs = [r for r in store().list() if r.status in ("complete", "stopped")]
    return [r for r in runs if predicate is None or predicate(r)]


def pick_run(
    label: str = "Run", key: str = "run", predicate: Callable[[RunInfo], bool] | None = None, help: str | None = None
) -> Run | None:
    """A selectbox of runs; remembers the choice across pages in session_state[key]."""
    runs = usable_runs(predicate)
    if not runs:
        st.info("No trained runs yet: train one on the **Train** page (or run `python -m vizcore train`).")
        return None
    ids = [r.run_id for r in runs]
    labels = {r.run_id: run_label(r) for r in runs}
    current = st.session_state.get(key)
    index = ids.index(current) if current in ids else 0
    rid = st.selectbox(label, ids, index=index, format_func=labels.get, key=f"_{key}_select", help=help)
    st.session_state[key] = rid
    with friendly_errors("the run"):
        return store().get(rid)


def before_is_parent(after_id: str | None, before_key: str, predicate: Callable[[RunInfo], bool] | None = None) -> None:
    """When the "after" run becomes one that started from another (``init_from``), the "before"
    picker ``before_key`` starts at that parent. Call it before the "before" picker is drawn."""
    marker = f"_{before_key}_parent_of"
    if after_id is None or st.session_state.get(marker) == after_id:
        return  # the user's own choice of "before" stands until "after" changes
    st.session_state[marker] = after_id
    infos = {r.run_id: r for r in usable_runs(predicate)}
    after = next((r for r in usable_runs() if r.run_id == after_id), None)
    if after is not None and after.init_from in infos:
        st.session_state[before_key] = after.init_from
        st.session_state[f"_{before_key}_select"] = after.init_from


@st.cache_resource(max_entries=8, show_spinner=False)
def _model(run_id: str, digest: str) -> Any:
    return store().get(run_id).load_model()


def load_model(run: Run) -> Any:
    """The run's model, cached per (run, weights) so a retrained run is reloaded."""
    return _model(run.run_id, run.weights_digest())


# Widgets whose choice is kept when one leaves a page and comes back. Streamlit drops the state of
# a widget that a run does not draw; writing a key back at the start of every run keeps it.
REMEMBERED = ("cam_", "dist_", "emb_", "report_", "train_")
NOT_INPUTS = ("_html", "_png", "_svg", "_csv", "_pcsv", "_download", "_pin")  # buttons cannot be set
CHARTS = ("cam_grid", "cam_mean", "emb_pair-")  # plotly charts (their selection is not a choice to keep)


def remember_widgets() -> None:
    """Keep every page's choices (metric, domain, class, method...) across page switches."""
    for key in list(st.session_state):
        if (isinstance(key, str) and key.startswith(REMEMBERED) and not key.endswith(NOT_INPUTS)
                and not key.startswith(CHARTS)):  # fmt: skip
            st.session_state[key] = st.session_state[key]


def relative_time(ts: float) -> str:
    dt = time.time() - ts
    for unit, sec in (("d", 86400), ("h", 3600), ("min", 60)):
        if dt >= sec:
            return f"{dt / sec:.0f} {unit} ago"
    return "just now"
