"""What is on screen first: every class's maps of the shown images in one batch, equal to the
per-class methods; and the background queue that takes the whole-split work."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.paper_cams import PAPER
from vizcore.explain.layers import default_layer, layer_activations
from vizcore.explain.methods import explain, explain_all_classes
from vizcore.store import tasks
from vizcore.store.runs import RunStore
from vizcore.views import explanations as ev
from vizcore.views.analysis import eval_domain


def _score_cam_before_batching(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    """vizcore's Score-CAM as it was before its passes were batched for every class (512 masked
    images at a time, one class per call), kept verbatim as the reference."""
    a = layer_activations(model, x, layer)
    b, k = a.shape[:2]
    low = a.flatten(0, 1)[:, None]
    image = torch.arange(b).repeat_interleave(k)
    scores = torch.empty(b * k)
    with torch.no_grad():
        for s in range(0, b * k, 512):
            part = slice(s, s + 512)
            up = F.interpolate(low[part], size=x.shape[-2:], mode="bilinear", align_corners=False)
            lo, hi = up.amin(dim=(2, 3), keepdim=True), up.amax(dim=(2, 3), keepdim=True)
            masks = torch.where(hi > lo, (up - lo) / torch.where(hi > lo, hi - lo, 1.0), 0.0)
            out = model(x[image[part]] * masks.to(x.dtype))
            scores[part] = out.gather(1, cls[image[part], None])[:, 0].float()
    alpha = scores.view(b, k).softmax(dim=1)
    return F.relu(torch.einsum("bk,bkhw->bhw", alpha, a))


@pytest.fixture(scope="module")
def cluttered():
    """The cluttered demo run's model (last block: 128 channels) and a few of its test images."""
    run = RunStore().get("demo-lenet-gap-plus-cluttered")
    model = run.load_model()
    x = eval_domain(run.config(), "source").images[:3]
    return model, x, default_layer(model, tuple(x.shape[1:]))


def test_batched_score_cam_of_every_class_equals_the_per_class_implementation(cluttered) -> None:
    model, x, layer = cluttered
    every = explain_all_classes(model, x, "Score-CAM", layer)  # (3, 10, h, w)
    assert every.shape[:2] == (3, 10)
    for c in (0, 3, 7):
        cls = torch.full((len(x),), c)
        before = _score_cam_before_batching(model, x, cls, layer)
        assert (every[:, c] - before).abs().max() <= 1e-5
        assert (every[:, c] - explain(model, x, cls, "Score-CAM", layer).low).abs().max() <= 1e-5
    paper = PAPER["Score-CAM"](model, x[:1], 3, layer)  # the paper's Algorithm 1, written out apart
    assert (every[0, 3] - paper).abs().max() <= 1e-5


@pytest.mark.parametrize("method", ["Grad-CAM++", "Grad-CAM", "Eigen-CAM", "CAM"])
def test_every_class_in_one_call_equals_one_class_at_a_time(cluttered, method: str) -> None:
    model, x, layer = cluttered
    every = explain_all_classes(model, x, method, layer)
    for c in (1, 8):
        one = explain(model, x, torch.full((len(x),), c), method, layer).low
        assert (every[:, c] - one).abs().max() <= 1e-5


# --------------------------------------------------------------------------- the background queue


@pytest.fixture
def own_run(copied_run, monkeypatch: pytest.MonkeyPatch):
    """A copy of the tiny trained run in a store of its own (so it can be deleted), 40 images explained."""
    monkeypatch.setattr(ev, "N_EXPLAIN", 40)
    monkeypatch.setattr(ev, "CHUNK", 8)
    return copied_run


def test_a_tasks_result_equals_a_direct_computation_and_is_asked_for_once(own_run) -> None:
    store, run = own_run
    queue = tasks.TaskQueue(autostart=False)
    spec = ev.scoring_spec(run, "source", "Grad-CAM")
    task = queue.submit(store, spec)
    assert queue.submit(store, spec) is task and len(queue.tasks()) == 1  # deduplicated by spec
    assert "Grad-CAM" not in ev.scored_methods(run)
    queue.run_next()
    assert task.state == "done" and task.fraction == 1.0, task.error
    assert "Grad-CAM" in ev.scored_methods(run)
    queued = ev.method_scores(run, "source", "Grad-CAM")  # now a read of the task's result
    shutil.rmtree(run.cache_dir)  # ... against the same numbers computed afresh, in this thread
    direct = ev.method_scores(run, "source", "Grad-CAM")
    assert queued == pytest.approx(direct, abs=1e-6)


@pytest.mark.parametrize("where", ["maps", "scoring"])
def test_a_stopped_task_leaves_no_cache_entry(own_run, where: str) -> None:
    store, run = own_run
    queue = tasks.TaskQueue(autostart=False)
    spec = ev.scoring_spec(run, "source", "Layer-CAM")
    task = queue.submit(store, spec)
    seen: list[float] = []
    original = queue._report

    def stop_midway(t: tasks.Task, stage: str, fraction: float) -> None:
        seen.append(fraction)
        # between two chunks of the maps (the first half), or of the perturbed images (the second)
        if (where == "maps" and len(seen) == 3) or (where == "scoring" and 0.55 < fraction < 1):
            queue.stop(spec)
        original(t, stage, fraction)

    queue._report = stop_midway  # type: ignore[method-assign]

    def entries(kind: str) -> set[str]:
        return {p.name for p in run.cache_dir.rglob(f"{kind}-*")} if run.cache_dir.exists() else set()

    scores, maps = entries("faithfulness"), entries("explanation")
    queue.run_next()
    assert task.state == "stopped"
    assert 0 < seen[-1] < 0.5 if where == "maps" else 0.55 < seen[-1] < 1
    assert entries("faithfulness") == scores and "Layer-CAM" not in ev.scored_methods(run)
    if where == "maps":  # not even the maps of the first chunks are kept
        assert entries("explanation") == maps


def test_a_queued_task_stopped_never_starts(own_run) -> None:
    store, run = own_run
    queue = tasks.TaskQueue(autostart=False)
    spec = ev.scoring_spec(run, "source", "XGrad-CAM")
    task = queue.submit(store, spec)
    assert queue.stop(spec) and task.state == "stopped"
    assert queue.run_next() is None and "XGrad-CAM" not in ev.scored_methods(run)


def test_a_task_whose_run_was_deleted_or_retrained_is_dropped(own_run) -> None:
    store, run = own_run
    queue = tasks.TaskQueue(autostart=False)
    gone = queue.submit(store, ev.scoring_spec(run, "source", "Grad-CAM"))
    stale = queue.submit(store, tasks.TaskSpec(run.run_id, "0123456789abcdef", ev.SCORING,
                                               ev.scoring_spec(run, "source", "Eigen-CAM").params))  # fmt: skip
    queue.run_next()
    assert stale.state == "queued" and gone.state == "done"
    queue.run_next()
    assert stale.state == "dropped" and "weights changed" in stale.stage
    again = queue.submit(store, ev.scoring_spec(run, "source", "Score-CAM"))
    store.delete(run.run_id)
    queue.run_next()
    assert again.state == "dropped" and "deleted" in again.stage


def test_the_time_left_comes_from_the_time_so_far() -> None:
    task = tasks.Task(tasks.TaskSpec("r", "d", "x", "{}"), store=None)  # type: ignore[arg-type]
    assert task.eta_s() is None
    task.started, task.fraction = 0.0, 0.25
    import time

    task.started = time.monotonic() - 10
    assert task.eta_s() == pytest.approx(30, abs=1)



def test_a_task_says_its_stage_and_time_left_once() -> None:
    import time

    task = tasks.Task(tasks.TaskSpec("r", "d", "x", "{}"), store=None)  # type: ignore[arg-type]
    assert task.progress_text() == "waiting for the tasks before it"  # queued: not said twice
    task.state, task.stage, task.fraction = "running", "scoring Grad-CAM", 0.5
    task.started = time.monotonic() - 40
    assert task.progress_text() == "scoring Grad-CAM — about 40 s left"

def test_tasks_are_refused_for_an_unknown_computation(store: RunStore) -> None:
    with pytest.raises(ValueError, match="no background computation"):
        tasks.TaskQueue(autostart=False).submit(store, tasks.TaskSpec("r", "d", "no such", "{}"))


def test_onscreen_maps_are_of_any_image_and_remembered(own_run) -> None:
    _, run = own_run
    index = np.array([3, 45, 100])  # beyond the first N_EXPLAIN images too
    first = ev.onscreen_maps(run, "source", "Grad-CAM++", index, np.array([1, 2, 3]))
    images = eval_domain(run.config(), "source").images[index]
    direct = explain(run.load_model(), images, torch.tensor([1, 2, 3]), "Grad-CAM++").low
    want = ev.normalize_maps(ev.upsample(direct, tuple(images.shape[-2:]))).numpy()
    assert np.abs(first - want).max() <= 1e-5
    low = ev.onscreen_low(run, "source", "Grad-CAM++", index)
    assert ev.onscreen_low(run, "source", "Grad-CAM++", index) is low  # a class switch is an index
