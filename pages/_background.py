"""The background queue on a page: what is being computed, how far, the time left, and Stop.

A page asks for what it needs with :func:`ready`; when everything is cached it draws the view
in the click, otherwise it shows this panel (redrawn on its own every second, the rest of the
page and its widgets untouched) and draws the view on the rerun after the work is done.
"""

from __future__ import annotations

import streamlit as st

import pages._shared as shared  # store() looked up at each call: tests replace it
from vizcore.store import tasks
from vizcore.store.tasks import Task, TaskSpec


def ready(specs: list[TaskSpec], what: str, key: str) -> bool:
    """True when every result of ``specs`` is cached; otherwise they are asked of the queue (in
    this order), their progress is shown with a Stop button, and False is returned."""
    asked = [t for spec in specs if (t := tasks.QUEUE.ask(shared.store(), spec)) is not None and t.state != "done"]
    if not asked:
        return True
    ended = [t for t in asked if not t.active]
    for t in ended:
        words = f"failed: {t.error}" if t.state == "failed" else t.stage
        (st.error if t.state == "failed" else st.info)(f"Computing {what} {words}.")
    if ended and st.button("Compute it again", key=f"{key}_again"):
        for t in ended:
            tasks.QUEUE.ask(shared.store(), t.spec, again=True)
        st.rerun()
    if len(ended) < len(asked):
        st.caption(f"Computing {what} in the background, once: it is kept with the run, the page draws it when "
                   "it is ready, and the other controls stay usable meanwhile.")  # fmt: skip
        _progress([t.spec for t in asked], key)
    return False


@st.fragment(run_every=1.0)
def _progress(specs: list[TaskSpec], key: str) -> None:
    """Each asked task's stage, progress and time left, and a Stop; the page reruns once all are over,
    or once their results are cached by other work (a new run's analysis, prepared by the task
    before them in the queue, makes the page's own request for it a read)."""
    found = [t for spec in specs if (t := tasks.QUEUE.ask(shared.store(), spec)) is not None and t.state != "done"]
    if not any(t.active for t in found):
        st.rerun()
    for i, t in enumerate(t for t in found if t.active):
        _row(t, f"{key}_stop_{i}")


def _row(t: Task, key: str) -> None:
    left, right = st.columns([6, 1])
    left.progress(t.fraction, text=f"In the background: {t.progress_text()}")
    if right.button("Stop", key=key, help="nothing of it is kept; ask again to start over"):
        tasks.QUEUE.stop(t.spec)


def task_rows(run_id: str, key: str) -> None:
    """Every active task of one run (e.g. a new run's views being prepared), each with Stop."""
    for i, t in enumerate(tasks.QUEUE.tasks(run_id)):
        _row(t, f"{key}_stop_{i}")


@st.fragment(run_every=1.0)
def run_tasks(run_id: str, key: str) -> None:
    """:func:`task_rows`, redrawn every second on its own; the page reruns once none is left."""
    if not tasks.QUEUE.tasks(run_id):
        st.rerun()
    task_rows(run_id, key)
