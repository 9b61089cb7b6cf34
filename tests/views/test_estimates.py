"""The first estimate of a faithfulness row: the per-image scores' mean and 95 % interval on the
first images, asked of the queue before the whole row, shown until the row replaces it."""

from __future__ import annotations

import math

import numpy as np
import torch

from vizcore.explain.faithfulness import FAITHFULNESS_COLUMNS, faithfulness, per_image
from vizcore.explain.methods import upsample_maps
from vizcore.store import tasks
from vizcore.views import estimates as es
from vizcore.views import explanations as ev
from vizcore.views.analysis import eval_domain


def test_per_image_scores_average_to_the_faithfulness_row(trained_run) -> None:
    model = trained_run.load_model()
    images = eval_domain(trained_run.config(), "source").images[:12]
    maps = torch.rand(12, *images.shape[-2:], generator=torch.Generator().manual_seed(0))
    cls = torch.arange(12) % 10
    each, mean = per_image(model, images, maps, cls), faithfulness(model, images, maps, cls)
    for k in FAITHFULNESS_COLUMNS:
        assert each[k].shape == (12,) and math.isclose(each[k].mean().item(), getattr(mean, k), rel_tol=1e-6)


def test_the_estimate_is_the_mean_and_interval_of_the_first_images(copied_run, monkeypatch) -> None:
    store, run = copied_run
    monkeypatch.setattr(es, "ESTIMATE_N", 16)
    got = es.estimate_scores(run, "source", "Grad-CAM")
    e = ev.explanation(run, "source", "Grad-CAM", n=16)  # the same maps, read back
    images = eval_domain(run.config(), "source").images[:16]
    maps = upsample_maps(torch.from_numpy(e["low"]), tuple(images.shape[-2:]))
    direct = per_image(run.load_model(), images, maps, torch.from_numpy(e["class_idx"]))
    assert got["n"] == 16
    for k, v in direct.items():
        v = v.double().numpy()
        assert math.isclose(got[k], v.mean(), rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(got[f"{k}_ci"], 1.959963984540054 * v.std(ddof=1) / 4, rel_tol=1e-9, abs_tol=1e-12)
    assert [r["method"] for r in es.estimate_rows(run, "source")] == ["Grad-CAM (first 16 images)"]


def test_the_estimate_is_asked_before_the_whole_row_and_gives_way_to_it(copied_run, monkeypatch) -> None:
    store, run = copied_run
    monkeypatch.setattr(es, "ESTIMATE_N", 8)
    monkeypatch.setattr(ev, "N_EXPLAIN", 24)
    queue = tasks.TaskQueue(autostart=False)
    es.request_estimate(queue, store, run, "source", "XGrad-CAM")
    ev.request_scores(queue, store, run, "source", "XGrad-CAM")
    assert [t.spec.name for t in queue.tasks()] == [es.ESTIMATE, ev.SCORING]  # the quick one first
    assert queue.run_next().state == "done" and es.estimate_rows(run, "source")
    assert queue.run_next().state == "done"
    assert es.estimate_rows(run, "source") == []  # the whole row replaces the estimate
    assert es.request_estimate(queue, store, run, "source", "XGrad-CAM") is None
    assert np.isfinite(ev.method_scores(run, "source", "XGrad-CAM")["deletion"])
