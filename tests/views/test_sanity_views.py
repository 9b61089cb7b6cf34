"""The sanity checks as the CAM page reads them: computed by the faithfulness scoring task, cached
with the run, a column of the faithfulness table, a verdict, and the randomisation figure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.views.test_onscreen import own_run  # noqa: F401  (a fixture)
from vizcore.core.numbers import fmt
from vizcore.explain.methods import EXPLAINERS
from vizcore.explain.sanity import randomisable_layers
from vizcore.figures.cam import randomisation_figure
from vizcore.store import tasks
from vizcore.views import explanations as ev
from vizcore.views import sanity as sv


@pytest.fixture
def small_run(own_run, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """test_onscreen's copy of the tiny trained run (40 images explained), 6 of them sanity-checked."""
    monkeypatch.setattr(sv, "N_SANITY", 6)
    return own_run


@pytest.mark.slow
def test_the_scoring_task_caches_the_sanity_checks_and_the_table_shows_them(small_run) -> None:
    store, run = small_run
    queue = tasks.TaskQueue(autostart=False)
    task = queue.submit(store, ev.scoring_spec(run, "source", "Grad-CAM"))
    seen: list[tuple[str, float]] = []
    original = queue._report
    queue._report = lambda t, st, f: (seen.append((st, f)), original(t, st, f))  # type: ignore[method-assign]
    queue.run_next()
    assert task.state == "done", task.error
    assert "Grad-CAM" not in ev.unscored_methods(run, "source")
    assert ev.request_scores(queue, store, run, "source", "Grad-CAM") is None  # nothing left to ask for
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(st.startswith("sanity checks") and f >= 0.8 for st, f in seen)
    layer, n = ev.sanity_target(run, "source")
    assert n == 6 and layer == ev.target_layers(run)[0]
    arrays = sv.sanity_arrays(run, "source", "Grad-CAM", layer, n)
    stages = len(randomisable_layers(run.load_model()))
    assert arrays["rank_abs"].shape == arrays["ssim"].shape == (stages, 6)
    assert arrays["maps"].shape == (stages + 1, sv.KEEP, 28, 28)
    (row,) = ev.faithfulness_table(run, "source", ["Grad-CAM"])
    assert row["randomised_rank"] == pytest.approx(float(arrays["rank_abs"][-1].mean()))
    assert row["logit_ssim"] == pytest.approx(float(arrays["logit_ssim"].mean()))
    assert row["sanity"] == "passes" and set(sv.SANITY_COLUMNS) <= set(ev.table_columns())
    maps, titles, cols = sv.figure_tiles(sv.checked(run, "source", layer, n, ["Grad-CAM", "CAM"]))
    assert cols == stages + 1 and len(maps) == len(titles) == cols  # only Grad-CAM has been checked
    assert titles[0] == "Grad-CAM · trained" and titles[-1] == (
        f"|ρ| {fmt(arrays['rank_abs'][-1].mean(), 2)} · down to {randomisable_layers(run.load_model())[0]}")
    fig = randomisation_figure(np.zeros((1, 28, 28), np.float32), maps, titles, cols)
    assert len(fig.layout.annotations) == len(titles)


@pytest.mark.slow
def test_a_method_that_ignores_the_weights_is_named_in_the_verdict(small_run, monkeypatch: pytest.MonkeyPatch) -> None:
    _, run = small_run

    def fixed(_m, images, _c, _l):  # type: ignore[no-untyped-def]
        return images[:, 0, ::4, ::4].float()  # the image itself: no weight involved

    monkeypatch.setitem(EXPLAINERS._items, "Grad-CAM", replace(EXPLAINERS.get("Grad-CAM"), maps=fixed))
    layer, n = ev.sanity_target(run, "source")
    row = sv.sanity_row(sv.sanity_arrays(run, "source", "Grad-CAM", layer, n))
    assert row["sanity"] == "fails" and row["randomised_rank"] == pytest.approx(1.0)
    rows = [{"method": "Grad-CAM", "deletion": 0.1, **row}]
    assert "Fails the randomisation sanity check (maps barely change): Grad-CAM" in ev.verdict(rows)


def test_the_figure_keeps_at_most_figure_stages_columns_ending_with_the_whole_network() -> None:
    stages = np.array([f"l{i}" for i in range(30)])
    maps = np.random.default_rng(0).random((31, 2, 5, 5)).astype(np.float16)
    rank = np.linspace(1, 0.1, 30)[:, None].repeat(4, axis=1)  # (stages, images)
    tiles, titles, cols = sv.figure_tiles({"A": {"stages": stages, "maps": maps, "rank_abs": rank}}, image=1)
    assert cols == sv.FIGURE_STAGES + 1 and titles[0] == "A · trained" and titles[-1] == "|ρ| 0.10 · down to l29"
    assert np.array_equal(tiles[0], maps[0, 1].astype(np.float32)) and np.array_equal(tiles[-1], maps[30, 1].astype(np.float32))
    with pytest.raises(ValueError, match="no method"):
        sv.figure_tiles({})
