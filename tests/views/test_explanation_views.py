"""Per-run explanations: cached once per run and method, scored against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vizcore.explain.faithfulness import faithfulness
from vizcore.explain.methods import EXPLAINERS, list_explainers, upsample_maps
from vizcore.views import analysis as an
from vizcore.views import explanations as ev
from vizcore.views import report as rep  # noqa: F401  (registers the sections)
from vizcore.views import report_parts as parts


@pytest.fixture(autouse=True)
def _few_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev, "N_EXPLAIN", 40)  # the cache key holds the count: no clash with 500


def test_cam_is_read_off_the_analysis_and_other_methods_are_cached(trained_run) -> None:
    an.run_analysis(trained_run)
    before = an.FORWARD_PASSES[0]
    cam = ev.explanation(trained_run, "source", "CAM")
    a = an.run_analysis(trained_run)
    n = ev.explained_count(trained_run)
    assert n == 40
    want = an.stored_cams(a, np.arange(n), a["pred"][:n]).numpy()
    assert np.array_equal(cam["low"], want) and an.FORWARD_PASSES[0] == before
    first = ev.explanation(trained_run, "source", "XGrad-CAM", "true")
    files = set(trained_run.cache_dir.rglob("*"))
    again = ev.explanation(trained_run, "source", "XGrad-CAM", "true")
    assert set(trained_run.cache_dir.rglob("*")) == files  # read, not recomputed
    assert np.array_equal(first["low"], again["low"]) and np.array_equal(first["class_idx"], a["labels"][:n])


def test_method_scores_equal_a_direct_computation_and_reach_the_report(trained_run) -> None:
    scores = ev.method_scores(trained_run, "source", "CAM")
    n = ev.explained_count(trained_run)
    a = an.run_analysis(trained_run)
    images = an.eval_domain(trained_run.config(), "source").images[:n]
    maps = upsample_maps(an.stored_cams(a, np.arange(n), a["pred"][:n]), tuple(images.shape[-2:]))
    direct = faithfulness(trained_run.load_model(), images, maps, torch.from_numpy(a["pred"][:n]))
    for key in ("deletion", "insertion", "road_morf", "road_lerf", "avg_drop", "avg_increase"):
        assert np.isclose(scores[key], getattr(direct, key), atol=1e-6), key
    assert "CAM" in ev.scored_methods(trained_run)
    section = parts.Section("faithfulness", "")
    parts.SECTIONS.get("faithfulness")[1](parts.Context([trained_run], parts.ReportOptions()), section)
    html = "".join(b for b in section.blocks if isinstance(b, str))
    assert "deletion AUC" in html and f"{scores['deletion']:.3f}"[:4] in html
    assert "Most faithful" in html


def test_agreement_and_the_verdict() -> None:
    a = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    assert np.isclose(ev.agreement(a, 2 * a + 1), 1.0, atol=1e-6)
    rows = [{"method": "A", "deletion": 0.1, "insertion": 0.9, "road_morf": 0.2, "road_lerf": 0.8,
             "avg_drop": 10.0, "avg_increase": 30.0, "pointing_game": 50.0, "energy_in_box": 40.0},
            {"method": "B", "deletion": 0.3, "insertion": 0.5, "road_morf": 0.1, "road_lerf": 0.6,
             "avg_drop": 20.0, "avg_increase": 10.0, "pointing_game": 70.0, "energy_in_box": 60.0}]  # fmt: skip
    assert ev.best_methods(rows)["road_morf"] == "B" and ev.best_methods(rows)["deletion"] == "A"
    assert ev.verdict(rows).startswith("Most faithful: A (best in 5 of 6") and "best localised: B" in ev.verdict(rows)


def test_a_class_agnostic_method_is_not_titled_with_a_class() -> None:
    """Eigen-CAM ignores the class: its grid must not say "of the predicted class", nor its tiles name one."""
    assert not EXPLAINERS.get("Eigen-CAM").class_specific
    assert [m for m in list_explainers() if not EXPLAINERS.get(m).class_specific] == ["Eigen-CAM"]
    eigen = ev.grid_title("run", "Eigen-CAM", "predicted")
    assert "class-agnostic" in eigen and "predicted" not in eigen
    assert ev.grid_title("run", "Grad-CAM++", "predicted") == "run — Grad-CAM++ of the predicted class"
    assert ev.grid_title("run", "CAM", "3") == "run — CAM of class 3"
    assert ev.tile_caption(1, 0.9, 1, "Eigen-CAM", "3", 3) == "pred 1 (90%) · true 1"
    assert ev.tile_caption(1, 0.9, 1, "Grad-CAM", "3", 3) == "pred 1 (90%) · true 1 · Grad-CAM 3"
    assert ev.tile_caption(1, 0.9, 1, "Grad-CAM", "predicted", 1) == "pred 1 (90%) · true 1"
