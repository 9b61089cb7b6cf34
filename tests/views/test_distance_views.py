"""The Distances page's glue and figures: caching, clustering order, CSV, significance marks, differences."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY
from vizcore.core.params import KINDS
from vizcore.figures.matrix import NS_TEXT, difference_heatmap, matrix_heatmap
from vizcore.metrics import class_distance_matrix, list_metrics
from vizcore.store.runs import RunStore
from vizcore.views import distances as dv
from vizcore.views import matrices as mx

DIGITS = tuple(str(k) for k in range(10))


def _features(k: int = 4, n: int = 12, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well separated Gaussian classes, n samples each. Shape: (k·n, d), (k·n,)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n)
    return rng.normal(size=(k * n, d)) + 4.0 * y[:, None], y


def _view(values: np.ndarray, p: np.ndarray | None = None, labels: tuple[str, ...] | None = None) -> dv.MatrixView:
    labels = labels or tuple(f"c{i}" for i in range(len(values)))
    return dv.MatrixView(values, p, labels, labels, "mmd", {"estimator": "unbiased"}, "test matrix", 10)


def test_cluster_order_groups_two_obvious_blocks() -> None:
    block = np.array([0, 1, 0, 1, 0, 1])  # classes 0, 2, 4 close together; 1, 3, 5 close together
    rng = np.random.default_rng(0)
    v = np.where(block[:, None] == block[None, :], 0.1, 5.0) + 0.01 * rng.random((6, 6))
    order = mx.cluster_order(v)
    assert sorted(order.tolist()) == list(range(6))
    assert len(set(block[order[:3]])) == 1 and len(set(block[order[3:]])) == 1
    r = mx.reorder(_view(v), order)
    assert r.values[1, 2] == v[order[1], order[2]]
    assert r.row_labels == tuple(f"c{i}" for i in order) == r.col_labels


def test_cluster_order_accepts_negative_unbiased_entries() -> None:
    v = np.array([[-0.02, 3.0, 0.1], [3.0, -0.01, 2.9], [0.1, 2.9, 0.0]])
    order = mx.cluster_order(v).tolist()
    assert abs(order.index(0) - order.index(2)) == 1  # 0 and 2 are neighbours


def test_csv_round_trips_values_and_class_labels() -> None:
    f, y = _features()
    r = class_distance_matrix(f, y, "mmd", n_perm=9)
    view = dv.from_arrays(dv.to_arrays(r, DIGITS, DIGITS))
    values, rows, cols = mx.from_csv(mx.to_csv(view))
    assert np.array_equal(values, r.values)
    assert rows == cols == ("0", "1", "2", "3")  # digit names stay strings
    p, _, _ = mx.from_csv(mx.to_csv(view, "p_values"))
    assert np.array_equal(p, r.p_values)
    with pytest.raises(ValueError, match="no p-values"):
        mx.to_csv(dv.from_arrays(dv.to_arrays(class_distance_matrix(f, y), DIGITS, DIGITS)), "p_values")


def test_cached_matrix_is_returned_without_recomputing(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run = store.create(TINY)  # a config is all class_matrix needs besides the features
    f, y = _features(k=10, n=10)
    calls = {"features": 0, "matrix": 0}

    def fake_features(*args: object) -> dict[str, np.ndarray]:  # stands in for the model's features
        calls["features"] += 1
        return {"x": f.astype(np.float32), "y": y, "pred": y}

    def counted(*args: object, **kwargs: object) -> object:
        calls["matrix"] += 1
        return class_distance_matrix(*args, **kwargs)

    monkeypatch.setattr(dv, "feature_arrays", fake_features)
    monkeypatch.setattr(dv, "class_distance_matrix", counted)
    settings = dv.DistanceSettings(n_per_class=8, n_perm=19)
    first = dv.class_matrix(run, "source", "test", "gap", settings)
    again = dv.class_matrix(run, "source", "test", "gap", settings)
    assert calls == {"features": 1, "matrix": 1}
    assert np.array_equal(first.values, again.values) and np.array_equal(first.p_values, again.p_values)
    assert (first.description, first.params, first.row_labels) == (again.description, again.params, again.row_labels)
    assert first.values.shape == (10, 10) and first.row_labels == DIGITS
    assert "19 permutations" in again.description
    dv.class_matrix(run, "source", "test", "gap", dv.DistanceSettings(n_per_class=8, n_perm=0))
    assert calls["matrix"] == 2  # other parameters, another cache entry
    # the page passes every parameter explicitly; at their defaults it is the same matrix
    from vizcore.metrics import metric_info

    explicit = dv.DistanceSettings(params=dict(metric_info("mmd").params), n_per_class=8, n_perm=19)
    dv.class_matrix(run, "source", "test", "gap", explicit)
    assert calls["matrix"] == 2


def test_default_samples_per_class_fit_the_smallest_class(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    f, y = _features(k=10, n=40)
    keep = (y != 3) | (np.arange(len(y)) % 40 < 26)  # class 3 has 26 samples, the others 40
    big_f, big_y = _features(k=10, n=150)
    sides = {"source": (f[keep], y[keep]), "target": _features(k=10, n=30)}

    def fake_features(run: object, which: str, *args: object) -> dict[str, np.ndarray]:
        x, labels = (big_f, big_y) if run is big else sides[which]
        return {"x": x.astype(np.float32), "y": labels, "pred": labels}

    monkeypatch.setattr(dv, "feature_arrays", fake_features)
    assert dv.DistanceSettings().n_per_class is None
    assert (dv.default_n_per_class(26), dv.default_n_per_class(150)) == (26, 100)
    run, big = store.create(TINY.replace(target="mnist-m")), store.create(TINY.replace(seed=1))
    quick = dv.DistanceSettings(n_perm=0)
    # 26, an even number: the diagonal compares two halves of 13
    assert dv.class_matrix(run, "source", "test", "gap", quick).n_per_class == 26
    assert dv.class_matrix(big, "source", "test", "gap", quick).n_per_class == 100
    assert dv.cross_matrix(run, "test", "gap", quick).n_per_class == 26  # the smaller of 26 and 30
    assert dv.class_matrix(run, "target", "test", "gap", quick).n_per_class == 30
    asked = dv.DistanceSettings(n_per_class=100, n_perm=0)  # an explicit number is kept
    with pytest.raises(ValueError, match="n_per_class=100 but class 0 has only 40"):
        dv.class_matrix(run, "source", "test", "gap", asked)


def test_cross_matrix_needs_a_target_domain(store: RunStore) -> None:
    with pytest.raises(ValueError, match="no target"):
        dv.cross_matrix(store.create(TINY), "test", "gap", dv.DistanceSettings())


def test_heatmap_marks_exactly_the_entries_with_p_at_least_alpha() -> None:
    v = np.arange(16, dtype=float).reshape(4, 4)
    p = np.full((4, 4), 0.01)
    p[0, 0], p[1, 2], p[3, 1], p[2, 2] = 0.05, 0.5, 1.0, 0.0499  # α itself counts as not significant
    labels = ["a", "b", "c", "d"]
    fig = matrix_heatmap(v, p, labels, labels, "t", "info", alpha=0.05)
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == 1 and set(marks[0].text) == {NS_TEXT}
    marked = {(int(round(r - 0.3)), int(c)) for r, c in zip(marks[0].y, marks[0].x, strict=True)}
    assert marked == {(0, 0), (1, 2), (3, 1)}
    assert "not significant" in marks[0].name and "0.05" in marks[0].name
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (4, 4)
    assert list(heat.text[1]) == ["4.0", "5.0", "6.0", "7.0"]  # every value written, 3 digits for the largest (15.0)
    assert "p = 0.5" in heat.hovertext[1][2] and "info" in heat.hovertext[1][2]
    unmarked = matrix_heatmap(v, None, labels, labels, "t", None)
    assert all(len(t.x) == 0 for t in unmarked.data if t.type == "scatter")


def test_difference_is_after_minus_before_on_a_centred_scale() -> None:
    rng = np.random.default_rng(1)
    before, after = _view(rng.random((3, 3))), _view(rng.random((3, 3)))
    d = mx.difference(after, before)
    assert np.array_equal(d.values, after.values - before.values) and d.p_values is None
    fig = difference_heatmap(d.values, d.row_labels, d.col_labels, "diff")
    axis = fig.layout.coloraxis
    assert axis.cmid == 0 and axis.cmin == -axis.cmax
    with pytest.raises(ValueError, match="different classes"):
        mx.difference(after, _view(rng.random((3, 3)), labels=("x", "y", "z")))


@pytest.mark.parametrize("metric", list_metrics())
def test_every_measure_offers_its_parameters(metric: str) -> None:
    specs = dv.metric_params(metric)
    assert {s.kind for s in specs} <= set(KINDS)
    f, y = _features()
    r = class_distance_matrix(f, y, metric, **{s.name: s.default for s in specs})
    view = dv.from_arrays(dv.to_arrays(r, DIGITS, DIGITS))
    assert mx.hover_info(view).shape == (4, 4) and view.value_label


def test_settings_refuse_a_bad_parameter_naming_the_valid_values() -> None:
    with pytest.raises(ValueError, match="estimator='bogus' is not a valid choice; valid values: unbiased, biased"):
        dv.DistanceSettings("mmd", {"estimator": "bogus"})
    with pytest.raises(ValueError, match="kernel_num=0 is outside its range; valid range: 1 to 20"):
        dv.DistanceSettings("mmd", {"kernel_num": 0})
    with pytest.raises(ValueError, match="has no parameter 'bandwidth'; valid parameters: none"):
        dv.DistanceSettings("coral", {"bandwidth": "mean"})
    assert dv.DistanceSettings("mmd", {"estimator": "seed", **dv.fixed_params({"estimator": "seed"})})


def test_seed_estimator_fixes_its_kernel() -> None:
    fixed = dv.fixed_params({"estimator": "seed"})
    f, y = _features()
    r = class_distance_matrix(f, y, "mmd", estimator="seed", **fixed)
    assert r.params["bandwidth_scope"] == "pair"
    assert dv.fixed_params({"estimator": "unbiased"}) == {}


def test_rank_agreement_ranks_pairs_and_takes_spearman_over_distinct_classes() -> None:
    a = _view(np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]]))
    b = _view(np.array([[9.0, 3.0, 2.0], [3.0, 9.0, 1.0], [2.0, 1.0, 9.0]]))  # the diagonal is ignored
    agr = mx.rank_agreement(a, b)
    assert agr.pairs == ("c0 – c1", "c0 – c2", "c1 – c2")
    np.testing.assert_array_equal(agr.rank_first, [1, 2, 3])
    np.testing.assert_array_equal(agr.rank_second, [3, 2, 1])
    assert agr.rho == pytest.approx(-1.0)
    assert list(agr.closest(1).iloc[0]) == ["c0 – c1", "c1 – c2"]
    assert mx.rank_agreement(a, a).rho == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3 class pairs"):
        mx.rank_agreement(_view(np.eye(2)), _view(np.eye(2)))
    with pytest.raises(ValueError, match="different classes"):
        mx.rank_agreement(a, _view(np.eye(3), labels=("x", "y", "z")))


def test_metrics_are_listed_by_family() -> None:
    from vizcore.metrics import FAMILIES, metric_info

    families = [metric_info(m).family for m in list_metrics()]
    assert families == sorted(families, key=FAMILIES.index) and set(families) == set(FAMILIES)
    assert dv.grouped_label("c2st") == "Classifier two-sample test · learned"


def test_rank_agreement_says_when_a_measure_saturates() -> None:
    v = np.ones((4, 4)) - np.eye(4)
    v[0, 1] = v[1, 0] = 0.5  # five of the six pairs tie at 1
    graded = _view(np.arange(16.0).reshape(4, 4) + np.arange(16.0).reshape(4, 4).T)
    agr = mx.rank_agreement(_view(v), graded)
    assert agr.saturation_note().startswith("5 of 6 pairs tie at the largest value")
    assert mx.rank_agreement(graded, graded).saturation_note() == ""


def test_learned_measures_are_left_out_of_the_background_precompute_but_not_the_demo_build() -> None:
    from vizcore.views.precompute import precomputed_metrics

    after_training = precomputed_metrics()
    assert after_training[0] == "mmd" and "wasserstein_exact" in after_training and "mutual_info" in after_training
    assert not {"c2st", "js_neural", "critic_w1"} & set(after_training)
    assert set(precomputed_metrics(learned=True)) == set(list_metrics())
    assert dv.waiting_text("critic_w1", 0).startswith("Training one small")
