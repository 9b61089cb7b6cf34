"""The per-run analysis: computed once, equal to a direct recomputation, keyed by the weights'
content, and enough for every widget change to run no forward pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import TINY
from tests.paths import APP
from vizcore.explain.cam import class_activation_maps, energy_in_box, normalize_maps, pointing_game
from vizcore.models.architecture import build_model, resolve_input_shape
from vizcore.store.runs import DEMO_ROOT, RunStore
from vizcore.views import analysis as an


def _untrained_run(store: RunStore, seed: int = 0, **changes):
    cfg = TINY.replace(seed=seed, **changes)
    cfg = cfg.replace(input_shape=resolve_input_shape(cfg))
    run = store.create(cfg)
    torch.manual_seed(seed)
    run.save_weights(build_model(cfg))
    run.set_status("complete")
    return run


def test_stored_cams_and_features_equal_a_direct_recomputation(trained_run) -> None:
    model = trained_run.load_model()
    dom = an.eval_domain(trained_run.config(), "source")
    idx = np.array([0, 7, 123, 999, len(dom) - 1])
    with torch.no_grad():
        f = model.forward_features(dom.images[idx])
    feats = an.feature_arrays(trained_run, "source", "test", "gap")
    np.testing.assert_allclose(feats["x"][idx], f.gap.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(feats["pred"][idx], f.logits.argmax(1).numpy())
    for k in (0, 3, 9):
        direct = normalize_maps(class_activation_maps(model, dom.images[idx], k).maps).numpy()
        stored = an.cam_maps(trained_run, "source", idx, np.full(len(idx), k))
        # stored maps are 8-bit a pixel at the conv resolution: within a few levels of 256
        assert np.abs(stored - direct).max() < 3 / 255
    probs = class_activation_maps(model, dom.images[idx]).probs.numpy()
    np.testing.assert_allclose(an.cam_analysis(trained_run)["probs"][idx], probs, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # every class of a whole split, both ways
def test_localisation_of_every_class_equals_the_direct_scores(store: RunStore) -> None:
    run = _untrained_run(store, source="cluttered-mnist")
    model = run.load_model()
    dom = an.eval_domain(run.config(), "source")
    for k in (1, 4):
        direct = class_activation_maps(model, dom.images, k).maps
        got = an.cam_analysis(run, "source", str(k))
        np.testing.assert_array_equal(got["pointing"], pointing_game(direct, dom.boxes).numpy())
        np.testing.assert_allclose(got["energy"], energy_in_box(direct, dom.boxes).numpy(), rtol=1e-5, atol=1e-6)
    # under "predicted" each image is scored with its own predicted class, and the true class's
    # score stays available beside it
    pred = an.cam_analysis(run, "source", "predicted")
    true = an.cam_analysis(run, "source", "true")
    np.testing.assert_array_equal(pred["true_pointing"], true["pointing"])


def test_the_analysis_is_computed_once_and_invalidated_when_the_weights_change(store: RunStore) -> None:
    run = _untrained_run(store)
    before = an.FORWARD_PASSES[0]
    first = an.feature_arrays(run)["x"].copy()
    passes = an.FORWARD_PASSES[0] - before
    assert passes > 0
    for layer in ("gap", "logits"):
        an.feature_arrays(run, layer=layer)
    an.cam_analysis(run, "source", "3")
    assert an.FORWARD_PASSES[0] - before == passes  # every later view reads the stored arrays
    torch.manual_seed(99)
    run.save_weights(build_model(run.config()))  # "retrained"
    assert an.analysis_path(run, "source") is None
    again = an.feature_arrays(run)["x"]
    assert not np.allclose(first, again)
    # one folder of results, the new weights': the stale analysis and everything else of them is gone
    assert [p.name for p in run.cache_dir.iterdir()] == [run.weights_digest()]


def test_a_cloned_demo_run_hits_its_shipped_analysis(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(DEMO_ROOT, clone)  # a fresh clone: every file gets a new modification time
    store = RunStore(tmp_path / "runs", demo_root=clone)
    before = an.FORWARD_PASSES[0]
    for rid in store.run_ids():
        run = store.get(rid)
        sides = ["source"] + (["target"] if run.config().target else [])
        for side in sides:
            assert an.analysis_path(run, side) is not None, f"{rid} ({side}) ships no analysis for its weights"
            an.cam_analysis(run, side, "true")
    assert an.FORWARD_PASSES[0] == before



def test_the_demo_runs_ship_their_default_views_under_the_current_keys() -> None:
    """Every default matrix (learned ones too) and the default embedding pair of the demo runs is
    a read: a change of a cache key (a metric's revision, EMBED_VERSION) must come with the shipped
    caches rebuilt (scripts/build_demo_analyses.py), or a fresh clone computes them."""
    from vizcore.views.distances import default_layer, layer_choices, matrix_ready
    from vizcore.views.embeddings import EmbeddingSettings, common_layers, default_pair, pair_ready
    from vizcore.views.precompute import default_distance_settings, precomputed_metrics

    store = RunStore(demo_root=DEMO_ROOT)
    missing = []
    for rid in store.run_ids():
        run = store.get(rid)
        cfg, layer = run.config(), default_layer(layer_choices(run))
        kinds = [("classes", side) for side in ["source"] + (["target"] if cfg.target else [])]
        kinds += [("cross", "source")] if cfg.target else []
        for metric in precomputed_metrics(learned=True):
            settings = default_distance_settings(metric)
            missing += [(rid, metric, kind, side) for kind, side in kinds
                        if not matrix_ready(run, kind, side, "test", layer, settings)]  # fmt: skip
    assert not missing, missing
    before, after = (store.get(r) for r in default_pair(store.list()))
    settings = EmbeddingSettings(layer=default_layer(common_layers(before, after)))
    assert pair_ready(before, after, settings)


# --------------------------------------------------------------------------- pages


def _cam_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/cam.py").run()
    assert not at.exception, at.exception
    return at


def test_cam_widgets_run_no_forward_pass(forward_count: list[int]) -> None:
    at = _cam_page()  # the default demo run ships its analysis
    explain = next(s for s in at.selectbox if s.label == "Explain class")
    show = next(s for s in at.selectbox if s.label == "Show")
    for mode in ("3", "5", "true", "3"):
        explain.set_value(mode).run()
        assert not at.exception, at.exception
    show.set_value("misclassified").run()
    assert not at.exception and not at.error
    assert forward_count[0] == 0


def test_distance_metric_change_runs_no_forward_pass(forward_count: list[int]) -> None:
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("pages/distances.py").run()
    assert not at.exception, at.exception
    metric = next(s for s in at.selectbox if s.label == "Metric")
    metric.set_value("coral").run()
    assert not at.exception, at.exception
    assert forward_count[0] == 0


def test_a_finished_training_job_prepares_its_views(tmp_path: Path) -> None:
    """After training, the job asks the background queue for the analysis and the default
    matrices; the job itself ends with training (its Stop is gone as soon as the run is usable)."""
    from vizcore.app.jobs import JobManager
    from vizcore.store.tasks import TaskQueue
    from vizcore.views.background import PREPARE
    from vizcore.views.precompute import default_distance_settings

    store = RunStore(tmp_path / "runs", demo_root=None)
    queue = TaskQueue(autostart=False)
    jobs = JobManager(queue)
    job = jobs.start(TINY.replace(train_limit=256, test_limit=128), store)
    jobs.wait(job.run_id, timeout=300)
    assert job.error is None
    run = store.get(job.run_id)
    assert an.analysis_path(run, "source") is None  # nothing computed in the job's thread
    [task] = queue.tasks(job.run_id)
    assert task.spec.name == PREPARE and task.state == "queued"
    assert queue.run_next() is task and task.state == "done", task.error
    assert an.analysis_path(run, "source") is not None
    before = an.FORWARD_PASSES[0]
    from vizcore.views.distances import class_matrix, layer_choices

    key_files = set(run.cache_dir.rglob("*"))
    class_matrix(run, "source", "test", layer_choices(run)[0], default_distance_settings())
    assert set(run.cache_dir.rglob("*")) == key_files  # the default matrix was there already
    assert an.FORWARD_PASSES[0] == before


def test_cli_analyze_prepares_a_run(trained_store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    from vizcore.app import cli

    rid = trained_store.run_ids()[0]
    assert cli.main(["--runs", str(trained_store.root), "analyze", rid]) == 0
    assert "analysing the source test split" in capsys.readouterr().out
    assert an.analysis_path(trained_store.get(rid), "source") is not None


def test_a_shared_class_scale_keeps_weak_maps_weak(trained_run) -> None:
    model = trained_run.load_model()
    dom = an.eval_domain(trained_run.config(), "source")
    k, idx = 3, np.arange(0, 2000, 97)
    every = class_activation_maps(model, dom.images, k).maps  # this class's maps over the whole split
    with torch.no_grad():  # the scale: the range of the class's maps at the conv resolution
        low = torch.einsum("c,nchw->nhw", model.cam_weights()[0][k], model.forward_features(dom.images).conv)
    lo, hi = float(low.min()), float(low.max())
    shared = an.cam_maps(trained_run, "source", idx, np.full(len(idx), k), scale="class")
    expected = ((every[idx] - lo) / (hi - lo)).numpy()
    assert np.abs(shared - expected).max() < 3 / 255
    per_image = an.cam_maps(trained_run, "source", idx, np.full(len(idx), k))
    assert per_image.max(axis=(1, 2)).min() > 0.99  # per image every map reaches 1...
    assert shared.max(axis=(1, 2)).min() < 0.9  # ...on the shared scale the weakest map does not
    with pytest.raises(ValueError, match="scale"):
        an.cam_maps(trained_run, "source", idx, idx * 0, scale="bogus")


def test_mean_cams_equal_the_class_means_of_direct_maps(trained_run) -> None:
    from vizcore.explain.cam import mean_cam_per_class

    model = trained_run.load_model()
    dom = an.eval_domain(trained_run.config(), "source")
    direct = mean_cam_per_class(class_activation_maps(model, dom.images, 4).maps, dom.labels, 10).numpy()
    assert np.abs(an.mean_cams(trained_run, "source", "4") - direct).max() < 3 / 255
