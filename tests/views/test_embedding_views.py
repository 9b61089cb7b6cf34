"""The Embeddings page's glue and figure: same points, cached pairs, the numbers table, colours and filters.

The runs here are freshly initialised (seeded) networks saved as complete runs: the glue only needs
weights to push images through, and skipping training keeps the file fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from vizcore.core.config import TrainConfig
from vizcore.figures import CLASS_COLORS, DOMAIN_SYMBOLS
from vizcore.figures.scatter import embedding_scatter, pair_figure
from vizcore.metrics import domain as D
from vizcore.models.architecture import build_model, resolve_input_shape
from vizcore.store.info import RunInfo
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.views import embedding_reading as er
from vizcore.views import embeddings as ev
from vizcore.views.analysis import feature_arrays

PCA = ev.EmbeddingSettings(layer="gap", method="pca", n_per_domain=30, seed=0)
DA = TINY.replace(target="mnist-m")


def _untrained_run(store: RunStore, cfg: TrainConfig) -> Run:
    """A complete run holding a seeded, untrained network of the config's architecture."""
    cfg = cfg.replace(input_shape=resolve_input_shape(cfg))
    run = store.create(cfg)
    torch.manual_seed(cfg.seed)
    run.save_weights(build_model(cfg))
    run.set_status("complete")
    return run


@pytest.fixture(scope="module")
def da_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """(before, after): source only and DANN on mnist → mnist-m, same data seed."""
    store = RunStore(tmp_path_factory.mktemp("emb") / "runs", demo_root=None)
    before = _untrained_run(store, DA.replace(method="source_only"))
    after = _untrained_run(store, DA.replace(method="dann", bottleneck_dim=16))
    return before, after


@pytest.fixture(scope="module")
def da_pair(da_runs: tuple[Run, Run]) -> ev.EmbeddingPair:
    return ev.embedding_pair(*da_runs, PCA)


def _pair(domain: list[int], labels: list[int]) -> ev.EmbeddingPair:
    n = len(labels)
    xy = np.arange(2 * n, dtype=float).reshape(n, 2)
    return ev.EmbeddingPair(xy, xy, np.array(domain), np.arange(n), np.array(labels), np.array(labels),
                            np.array(labels), np.zeros((2, 6)), "", ("source", "target"), ("a", "b"),
                            tuple(map(str, range(10))))  # fmt: skip


# ---------------------------------------------------------------------------------- points


def test_points_are_chosen_once_seeded_and_per_domain() -> None:
    domain, index = ev.choose_points([50, 80], 20, seed=3)
    again = ev.choose_points([50, 80], 20, seed=3)
    assert np.array_equal(domain, again[0]) and np.array_equal(index, again[1])
    assert (np.bincount(domain) == [20, 20]).all() and (np.diff(domain) >= 0).all(), "source points first"
    assert index[domain == 0].max() < 50 and index[domain == 1].max() < 80
    assert len(set(zip(domain.tolist(), index.tolist(), strict=True))) == 40, "no point twice"
    assert not np.array_equal(index, ev.choose_points([50, 80], 20, seed=4)[1])
    small, _ = ev.choose_points([5, 80], 20)
    assert np.bincount(small).tolist() == [5, 20], "a small domain gives all it has"


def test_before_and_after_show_the_same_points(da_runs: tuple[Run, Run], da_pair: ev.EmbeddingPair) -> None:
    before, after = da_runs
    assert da_pair.sides == ("source", "target") and da_pair.domain_names == ("mnist", "mnist-m")
    assert np.bincount(da_pair.domain).tolist() == [30, 30]
    assert da_pair.before_xy.shape == da_pair.after_xy.shape == (60, 2)
    for d, side in enumerate(da_pair.sides):
        rows = da_pair.domain == d
        idx = da_pair.index[rows]
        fb, fa = feature_arrays(before, side, "test", "gap"), feature_arrays(after, side, "test", "gap")
        assert np.array_equal(da_pair.labels[rows], fa["y"][idx]) and np.array_equal(fa["y"][idx], fb["y"][idx])
        assert np.array_equal(da_pair.pred_before[rows], fb["pred"][idx])
        assert np.array_equal(da_pair.pred_after[rows], fa["pred"][idx])
    assert "same images fed through both models" in da_pair.description
    assert "Procrustes" in da_pair.description


def test_the_cached_pair_comes_back_identical_without_recomputing(
    da_runs: tuple[Run, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, progress = [], []
    real = ev.embed_pair

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "embed_pair", counting)
    settings = ev.EmbeddingSettings(layer="gap", method="pca", n_per_domain=25, seed=7)
    first = ev.embedding_pair(*da_runs, settings, progress=lambda f, m: progress.append(f))
    assert progress and progress[-1] <= 1.0
    progress.clear()
    before, after = da_runs
    store = RunStore(after.path.parent, demo_root=None)  # a fresh Run object reads the same folder
    second = ev.embedding_pair(store.get(before.run_id), store.get(after.run_id), settings,
                               progress=lambda f, m: progress.append(f))  # fmt: skip
    assert len(calls) == 1 and not progress, "read from the run folder, not recomputed"
    for name in ("before_xy", "after_xy", "domain", "index", "labels", "pred_before", "pred_after", "report"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert first.description == second.description
    ev.embedding_pair(*da_runs, ev.EmbeddingSettings(layer="gap", method="pca", n_per_domain=25, seed=8))
    assert len(calls) == 2, "another seed is another cache entry"
    assert any(Path(after.path, "analyses").rglob("embedding-*.npz")), "cached under the after run"


def test_table_matches_direct_metric_calls(da_runs: tuple[Run, Run], da_pair: ev.EmbeddingPair) -> None:
    table = er.report_table(da_pair)
    assert list(table.columns[:2]) == ["before", "after"]
    labels = {key: er.row_label(key) for key in D.REPORT_COLUMNS}
    assert labels["proxy_a_distance"] == "Proxy A-distance ↓"
    s = da_pair.domain == 0
    for run, panel, xy in ((da_runs[0], "before", da_pair.before_xy), (da_runs[1], "after", da_pair.after_xy)):
        x = np.concatenate([feature_arrays(run, side, "test", "gap")["x"][da_pair.index[da_pair.domain == d]]
                            for d, side in enumerate(da_pair.sides)])  # fmt: skip
        y = da_pair.labels
        a_dist, dom_acc = D.proxy_a_distance(x[s], x[~s], seed=0)
        direct = {
            "proxy_a_distance": a_dist,
            "domain_accuracy": dom_acc,
            "knn_target_accuracy": D.knn_target_accuracy(x[s], y[s], x[~s], y[~s], k=5),
            "class_silhouette": D.class_silhouette(x, y),
            "trustworthiness": D.layout_trustworthiness(x, xy, k=ev.K_LAYOUT),
        }
        for key, value in direct.items():
            assert table.loc[labels[key], panel] == pytest.approx(value, abs=1e-12), (panel, key)
    change = table["after"] - table["before"]
    assert np.allclose(table["change"], change)
    assert set(table["better"]) == {"lower", "higher"}


# ---------------------------------------------------------------------------------- guard rails


def test_runs_with_different_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="different target domains"):
        ev.comparable_sides(TINY, DA)
    with pytest.raises(ValueError, match="different source"):
        ev.comparable_sides(DA.replace(source="uci-digits"), DA)
    assert ev.comparable_sides(TINY, TINY.replace(seed=3)) == ("source",)


def test_bad_settings_give_clear_messages(da_runs: tuple[Run, Run], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="perplexity 100 is too large"):
        ev.embedding_pair(*da_runs, ev.EmbeddingSettings(method="tsne", params={"perplexity": 100}, n_per_domain=21))
    with pytest.raises(ValueError, match="too few"):
        ev.embedding_pair(*da_runs, ev.EmbeddingSettings(method="pca", n_per_domain=3))
    with pytest.raises(ValueError, match="'conv'"):
        ev.embedding_pair(*da_runs, ev.EmbeddingSettings(layer="conv", method="pca"))
    real = ev.feature_arrays

    def with_nan(run: Run, which: str, split: str, layer: str) -> dict[str, np.ndarray]:
        f = dict(real(run, which, split, layer))
        if run.run_id == da_runs[0].run_id:
            f["x"] = f["x"].copy()
            f["x"][f["x"].shape[0] // 2 :] = np.nan
        return f

    monkeypatch.setattr(ev, "feature_arrays", with_nan)
    with pytest.raises(ValueError, match="before run's gap features contain NaN"):
        ev.embedding_pair(*da_runs, ev.EmbeddingSettings(method="pca", n_per_domain=40, seed=11))


def test_runs_without_a_target_embed_the_source_only(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    # another data seed: the before model is run on the after run's chosen images (mnist's test split is fixed)
    before, after = _untrained_run(store, TINY.replace(seed=1)), _untrained_run(store, TINY)
    pair = ev.embedding_pair(before, after, PCA)
    assert pair.sides == ("source",) and not pair.has_target and set(pair.domain) == {0}
    table = er.report_table(pair)
    assert er.row_label("proxy_a_distance") not in table.index
    assert er.row_label("class_silhouette") in table.index
    own = feature_arrays(before, "source", "test", "gap")
    assert np.array_equal(pair.pred_before, own["pred"][pair.index])
    silhouette = D.class_silhouette(own["x"][pair.index], pair.labels)
    assert table.loc[er.row_label("class_silhouette"), "before"] == pytest.approx(silhouette, rel=1e-5)
    pv = er.point_view(pair, 3, before, after)
    assert pv.label == pair.class_names[pair.labels[3]] and pv.index == pair.index[3]
    assert pv.image.shape == pv.overlays["after"].shape and pv.image.shape[0] >= 100
    assert pv.predictions["after"][0] == pair.class_names[pair.pred_after[3]]
    assert pv.predictions["before"][0] == pair.class_names[pair.pred_before[3]]


# ---------------------------------------------------------------------------------- figure, filters


def test_scatter_colours_by_class_and_marks_domains_by_symbol() -> None:
    rng = np.random.default_rng(0)
    classes, domains = np.array([0, 1, 2, 0, 1, 2, 9]), np.array([0, 0, 0, 1, 1, 1, 1])
    fig = embedding_scatter(rng.normal(size=(7, 2)), classes, domains, "t", domain_names=["src", "tgt"])
    points = [t for t in fig.data if t.x is not None and t.x[0] is not None]
    assert sorted(t.marker.color for t in points) == sorted(CLASS_COLORS[k] for k in (0, 1, 2, 9))
    for t in points:
        k = CLASS_COLORS.index(t.marker.color)
        rows = [int(r) for r, _ in t.customdata]
        assert (classes[rows] == k).all(), "one colour per class"
        assert list(t.marker.symbol) == [DOMAIN_SYMBOLS[d] for d in domains[rows]], "one symbol per domain"
    legend = {t.name: t.marker.symbol for t in fig.data if t.legend == "legend2"}
    assert legend == {"src": DOMAIN_SYMBOLS[0], "tgt": DOMAIN_SYMBOLS[1]}


def test_pair_figure_shares_one_legend_and_rings_the_selected_point() -> None:
    xy = np.random.default_rng(1).normal(size=(6, 2))
    fig = pair_figure([xy, xy * 2], np.array([0, 1, 0, 1, 0, 1]), np.zeros(6, int), ["before", "after"],
                      predictions=[np.zeros(6, int), np.ones(6, int)], highlight=2)  # fmt: skip
    panels = {t.xaxis for t in fig.data if t.customdata is not None}
    assert panels == {"x", "x2"}
    shown = [t.name for t in fig.data if t.showlegend is not False and t.legend != "legend2"]
    assert shown == ["0", "1"], "each class once in the legend"
    after_class_1 = next(t for t in fig.data if t.xaxis == "x2" and t.name == "1")
    assert "prediction: 1 ✓" in after_class_1.text[0], "hover: class, domain and that panel's prediction"
    rings = [t for t in fig.data if t.name == "selected"]
    assert [(t.x[0], t.y[0]) for t in rings] == [tuple(xy[2]), tuple(xy[2] * 2)]


def test_filters_keep_the_right_points() -> None:
    pair = _pair([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2])
    assert er.visible_mask(pair, ["source", "target"], range(10)).all()
    assert er.visible_mask(pair, ["target"], range(10)).tolist() == [False] * 3 + [True] * 3
    assert er.visible_mask(pair, ["source", "target"], [1]).tolist() == [False, True, False, False, True, False]
    assert not er.visible_mask(pair, [], range(10)).any()
    fig = pair_figure([pair.before_xy, pair.after_xy], pair.labels, pair.domain, ["b", "a"],
                      mask=er.visible_mask(pair, ["source"], [0, 2]))  # fmt: skip
    drawn = sorted({int(r) for t in fig.data if t.customdata is not None for r, _ in t.customdata})
    assert drawn == [0, 2]
    assert list(fig.layout.xaxis.range) == list(pair_figure([pair.before_xy, pair.after_xy], pair.labels,
                                                            pair.domain, ["b", "a"]).layout.xaxis.range), \
        "a filter does not move the axes"  # fmt: skip


def test_a_click_names_row_and_panel() -> None:
    event = {"points": [{"curve_number": 3, "point_index": 0, "customdata": [17, 1]}]}
    assert er.selected_point(event, 20) == (17, "after")
    assert er.selected_point({"points": [{"customdata": [4, 0]}]}, 20) == (4, "before")
    assert er.selected_point({"points": [{"customdata": {"0": 5, "1": 1}}]}, 20) == (5, "after"), "typed array"
    assert er.selected_point(event, 10) is None, "a stale selection from other settings is ignored"
    assert er.selected_point(None, 10) is None and er.selected_point({"points": []}, 10) is None


def test_default_pair_prefers_a_source_only_baseline_for_the_newest_adaptation_run() -> None:
    def info(rid: str, method: str, target: str | None) -> RunInfo:
        return RunInfo(rid, rid, "complete", method, "lenet_gap", "mnist", target, 0, 0.0, False, {}, "")

    runs = [info("dann", "dann", "mnist-m"), info("other", "source_only", "usps"), info("base", "source_only", "mnist-m")]
    assert ev.default_pair(runs) == ("base", "dann")
    assert ev.default_pair(runs[:1]) == (None, "dann")
    assert ev.default_pair([]) == (None, None)


def test_another_layout_method_reuses_the_feature_numbers(
    da_runs: tuple[Run, Run], da_pair: ev.EmbeddingPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A-distance, kNN and silhouette depend on the features, not on the layout: measured once."""
    from dataclasses import replace

    calls = []
    real = ev.embedding_report
    monkeypatch.setattr(ev, "embedding_report", lambda *a, **k: calls.append(1) or real(*a, **k))
    other = ev.embedding_pair(*da_runs, replace(PCA, align="none"))  # a new layout, the same points
    assert calls == []
    keys = list(ev.REPORT_COLUMNS)
    same = [keys.index(k) for k in keys if k not in ("trustworthiness", "knn_class_accuracy_2d")]
    np.testing.assert_array_equal(other.report[:, same], da_pair.report[:, same])
