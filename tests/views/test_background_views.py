"""Long work of the views goes to the background queue: a click asks for it and returns; the
queue's result equals a direct computation; a stopped task keeps nothing."""

from __future__ import annotations

import shutil

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.metrics import class_distance_matrix
from vizcore.store import tasks
from vizcore.store.runs import RunStore
from vizcore.views import background as bg
from vizcore.views import distances as dv
from vizcore.views.analysis import analysis_path, feature_arrays
from vizcore.views.embeddings import EmbeddingSettings, pair_ready


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def _asked(queue: tasks.TaskQueue, name: str) -> list[dict]:
    return [t.spec.kwargs() for t in queue.tasks() if t.spec.name == name]


def test_the_train_split_is_asked_of_the_queue_not_computed_in_the_click(forward_count, _background_queue) -> None:
    at = _page("pages/distances.py")
    before = forward_count[0]
    next(r for r in at.radio if r.label == "Split").set_value("train").run()
    assert not at.exception, at.exception
    assert forward_count[0] == before  # no forward pass over the training split inside the click
    [asked] = _asked(_background_queue, bg.ANALYSIS)
    assert asked["split"] == "train"
    assert any("In the background" in p.proto.text for p in at.get("progress"))
    assert _background_queue.run_next().state == "done"
    assert forward_count[0] > before
    at.run()  # the features are there: the matrix itself is the next task, still not in the click
    assert not at.exception, at.exception
    assert [a["split"] for a in _asked(_background_queue, bg.MATRIX)] == ["train"]
    assert _background_queue.run_next().state == "done"
    at.run()
    assert not at.exception and not at.get("progress"), at.exception
    assert at.get("plotly_chart")  # the matrix, drawn from the cache


def test_a_new_embedding_is_asked_of_the_queue(forward_count, _background_queue) -> None:
    at = _page("pages/embeddings.py")
    cached = len(at.get("plotly_chart"))
    next(n for n in at.number_input if n.label == "Seed").set_value(7).run()
    assert not at.exception, at.exception
    assert forward_count[0] == 0
    [asked] = _asked(_background_queue, bg.EMBEDDING)
    assert asked["seed"] == 7
    assert len(at.get("plotly_chart")) < max(cached, 1)  # no layout drawn until it is computed


def test_a_queued_matrix_equals_a_direct_computation(copied_run) -> None:
    store, run = copied_run
    queue = tasks.TaskQueue(autostart=False)
    settings = dv.DistanceSettings("mmd", {}, 20, 50, seed=3)
    spec = bg.matrix_spec(run, "classes", "source", "test", "gap", settings)
    assert queue.ask(store, spec) is not None and not dv.matrix_ready(run, "classes", "source", "test", "gap", settings)
    assert queue.run_next().state == "done"
    assert queue.ask(store, spec) is None  # cached: the page draws it in the click
    view = dv.class_matrix(run, "source", "test", "gap", settings)
    f = feature_arrays(run, "source", "test", "gap")
    direct = class_distance_matrix(f["x"], f["y"], "mmd", n_per_class=20, seed=3, n_perm=50, pairing="halves")
    np.testing.assert_allclose(view.values, direct.values, rtol=1e-6)
    np.testing.assert_allclose(view.p_values, direct.p_values)


def test_a_stopped_matrix_task_keeps_nothing(copied_run) -> None:
    store, run = copied_run
    shutil.rmtree(run.cache_dir, ignore_errors=True)
    queue = tasks.TaskQueue(autostart=False)
    spec = bg.matrix_spec(run, "classes", "source", "test", "gap", dv.DistanceSettings("coral", {}, 20, 0))
    task = queue.submit(store, spec)
    original = queue._report
    fractions: list[float] = []

    def stop_in_the_forward_pass(t: tasks.Task, stage: str, fraction: float) -> None:
        fractions.append(fraction)
        if len(fractions) == 2:
            queue.stop(spec)
        original(t, stage, fraction)

    queue._report = stop_in_the_forward_pass  # type: ignore[method-assign]
    cache = set(run.cache_dir.rglob("*")) if run.cache_dir.exists() else set()
    queue.run_next()
    assert task.state == "stopped" and fractions[-1] < 0.6
    assert analysis_path(run, "source") is None  # not even the features of the part done
    assert (set(run.cache_dir.rglob("*")) if run.cache_dir.exists() else set()) == cache


def test_an_embedding_task_leaves_the_pair_the_page_reads(copied_run, trained_store: RunStore) -> None:
    store, after = copied_run
    from tests.conftest import TINY
    from vizcore.train.loop import train

    [*_, end] = train(TINY.replace(seed=1, train_limit=256), store)
    before = store.get(end.run_id)
    settings = EmbeddingSettings(method="pca", n_per_domain=60)
    queue = tasks.TaskQueue(autostart=False)
    assert queue.ask(store, bg.embedding_spec(before, after, settings)) is not None
    assert queue.run_next().state == "done"
    assert pair_ready(before, after, settings)
