"""2-D layouts: registry, determinism, guard rails, quality, alignment and cache keys."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.spatial import procrustes as scipy_procrustes
from sklearn.datasets import make_blobs

from vizcore.core.registry import UnknownNameError
from vizcore.embed import alignment as A
from vizcore.embed import keys as K
from vizcore.embed import methods as E
from vizcore.embed import registry as R
from vizcore.embed import tsne as T
from vizcore.metrics.domain import knn_class_accuracy_2d

N = 160
TSNE_SHORT = {"n_iter": 100}  # where only determinism or plumbing is tested


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """160 points, 4 well-separated Gaussian blobs in 10-d."""
    x, y = make_blobs(n_samples=N, n_features=10, centers=4, cluster_std=1.0, random_state=0)
    return x, y


@pytest.fixture(scope="module")
def tsne_ref(blobs) -> np.ndarray:
    return E.embed(blobs[0], "tsne", seed=0, **TSNE_SHORT)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", E.EMBEDDINGS.names())
def test_every_method_has_label_caption_and_sane_params(name: str) -> None:
    spec = E.EMBEDDINGS.get(name)
    assert spec.label
    caption = R.describe(name, seed=7)
    assert "seed 7" in caption
    for p in spec.params:
        assert p.low <= p.default <= p.high
        assert p.step > 0
        assert f"{R.resolve_params(name, {})[p.name]:g}" in caption  # caption shows values


def test_core_methods_registered() -> None:
    assert {"tsne", "umap", "pca"} <= set(E.EMBEDDINGS.names())


def test_unknown_method_lists_valid_names(blobs) -> None:
    with pytest.raises(UnknownNameError, match="valid names: pca, tsne, umap"):
        E.embed(blobs[0], "tsnee")


def test_unknown_param_lists_valid_params(blobs) -> None:
    with pytest.raises(ValueError, match="no parameter 'perplexty'.*perplexity"):
        E.embed(blobs[0], "tsne", perplexty=10)


# --------------------------------------------------------------------------- determinism


def test_tsne_is_deterministic(blobs, tsne_ref) -> None:
    again = E.embed(blobs[0], "tsne", seed=0, **TSNE_SHORT)
    assert again.shape == (N, 2) and again.dtype == np.float64
    np.testing.assert_array_equal(again, tsne_ref)


def test_tsne_layout_does_not_depend_on_thread_count(blobs, monkeypatch) -> None:
    # The thread count follows the machine's load, so it must not change the result.
    layouts = []
    for threads in (1, 2):
        monkeypatch.setattr(T, "_n_jobs", lambda threads=threads: threads)
        layouts.append(E.embed(blobs[0][:100], "tsne", seed=0, n_iter=50))
    np.testing.assert_array_equal(*layouts)


def test_tsne_seed_changes_layout(blobs, tsne_ref) -> None:
    assert not np.array_equal(E.embed(blobs[0], "tsne", seed=1, **TSNE_SHORT), tsne_ref)


def test_pca_is_deterministic(blobs) -> None:
    np.testing.assert_array_equal(E.embed(blobs[0], "pca", seed=3), E.embed(blobs[0], "pca", 3))


@pytest.mark.slow
def test_umap_is_deterministic_and_separates_blobs(blobs) -> None:
    x, y = blobs[0][:120], blobs[1][:120]  # exact-neighbour path: compiles least
    a = E.embed(x, "umap", seed=0, n_neighbors=10)
    b = E.embed(x, "umap", seed=0, n_neighbors=10)
    np.testing.assert_array_equal(a, b)
    assert knn_class_accuracy_2d(a, y, k=5) > 0.9
    # Started from another layout (the 'init' alignment of a pair): still a good layout.
    c = E.embed(x, "umap", seed=0, n_neighbors=10, init=a[:, ::-1])
    assert c.shape == (120, 2) and knn_class_accuracy_2d(c, y, k=5) > 0.9


# --------------------------------------------------------------------------- quality


def test_tsne_separates_gaussian_blobs(blobs) -> None:
    x, y = blobs
    xy = E.embed(x, "tsne", seed=0, perplexity=20)
    assert knn_class_accuracy_2d(xy, y, k=10) > 0.9


def test_large_tsne_fits_every_point_on_a_uniform_kernel_of_two_thirds_the_perplexity(blobs, monkeypatch) -> None:
    from openTSNE import TSNEEmbedding, affinity

    x, y = blobs
    monkeypatch.setattr(T, "TSNE_LARGE_N", 100)  # 160 points take the large path
    fitted, iterations = [], []
    real_fit, real_optimize = T._tsne_fit, TSNEEmbedding.optimize
    monkeypatch.setattr(T, "_tsne_fit", lambda x, *a: fitted.append(real_fit(x, *a)) or fitted[-1])
    monkeypatch.setattr(TSNEEmbedding, "optimize",
                        lambda self, n, *a, **k: iterations.append((len(self), n)) or real_optimize(self, n, *a, **k))  # fmt: skip
    xy = E.embed(x, "tsne", seed=0, perplexity=10, **TSNE_SHORT)
    assert iterations == [(160, 125), (160, 100)]  # every point in both phases, nothing placed afterwards
    aff = fitted[0].affinities
    assert isinstance(aff, affinity.Uniform) and T.uniform_neighbours(10) == 7
    assert aff.knn_index.k == 7  # perplexity 10 -> 7 neighbours per point, not 3 x 10
    # symmetrised uniform weights: each point keeps its 7 neighbours, the matrix sums to 1
    assert (aff.P > 0).sum(1).min() >= 7 and aff.P.sum() == pytest.approx(1.0)
    assert knn_class_accuracy_2d(xy, y, k=10) > 0.9
    np.testing.assert_array_equal(xy, E.embed(x, "tsne", seed=0, perplexity=10, **TSNE_SHORT))


def test_large_tsne_uses_cuml_on_a_gpu_when_installed(blobs, monkeypatch) -> None:
    calls: list[dict] = []

    class FakeGpuTSNE:  # stands in for cuml.manifold.TSNE, which needs a CUDA GPU
        def __init__(self, **kw) -> None:
            calls.append(kw)

        def fit_transform(self, x: np.ndarray) -> np.ndarray:
            return x[:, :2]

    monkeypatch.setattr(T, "TSNE_LARGE_N", 100)
    monkeypatch.setattr(T, "_cuml_tsne", lambda: FakeGpuTSNE)
    xy = E.embed(blobs[0], "tsne", seed=3, perplexity=10, **TSNE_SHORT)
    np.testing.assert_array_equal(xy, blobs[0][:, :2])  # every point, in one fit
    assert calls == [{"n_components": 2, "perplexity": 10.0, "n_iter": 225, "random_state": 3}]
    monkeypatch.setattr(T, "TSNE_LARGE_N", 1000)  # below the threshold the CPU path stays
    assert not np.array_equal(E.embed(blobs[0], "tsne", seed=3, perplexity=10, **TSNE_SHORT), xy)


def test_pca_matches_sklearn(blobs) -> None:
    from sklearn.decomposition import PCA

    x, _ = blobs
    np.testing.assert_allclose(E.embed(x, "pca"), PCA(2).fit_transform(x), atol=1e-9)


def test_tsne_reports_progress_up_to_one(blobs) -> None:
    calls: list[tuple[float, str]] = []
    E.embed(blobs[0], "tsne", progress=lambda f, m: calls.append((f, m)), **TSNE_SHORT)
    fractions = [f for f, _ in calls]
    assert len(calls) >= 10  # per-iteration callbacks, not just start and end
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0 and 0.0 <= fractions[0] < 0.1
    assert any("iteration" in m for _, m in calls)


# --------------------------------------------------------------------------- guard rails


def test_perplexity_too_large_states_the_rule(blobs) -> None:
    with pytest.raises(ValueError, match=r"too large for 40 points.*3 x perplexity"):
        E.embed(blobs[0][:40], "tsne", perplexity=30)
    E.embed(blobs[0][:40], "tsne", perplexity=13, n_iter=50)  # 3 * 13 = 39 = points - 1


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_too_few_points_says_how_many(method: str) -> None:
    needed = E.EMBEDDINGS.get(method).min_points
    assert needed >= R.MIN_POINTS
    with pytest.raises(ValueError, match=f"at least {needed} points"):
        E.embed(np.ones((needed - 1, 4)), method)


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_non_finite_rows_are_counted(blobs, method: str) -> None:
    x = blobs[0].copy()
    x[5, 2] = np.nan
    x[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or Inf in 2 of 160 rows \(first at row 5\)"):
        E.embed(x, method)


def test_umap_n_neighbors_must_be_below_points(blobs) -> None:
    with pytest.raises(ValueError, match=r"n_neighbors=15 must be smaller.*\(12\)"):
        E.embed(blobs[0][:12], "umap")  # raised before umap is even imported


def test_param_out_of_range_and_wrong_type(blobs) -> None:
    with pytest.raises(ValueError, match="outside its range"):
        E.embed(blobs[0], "tsne", perplexity=500)
    with pytest.raises(ValueError, match="whole number"):
        E.embed(blobs[0], "umap", n_neighbors=7.5)


def test_pca_rejects_init_and_one_feature(blobs) -> None:
    with pytest.raises(ValueError, match="no initial layout"):
        E.embed(blobs[0], "pca", init=np.zeros((N, 2)))
    with pytest.raises(ValueError, match="at least 2 feature dimensions"):
        E.embed(blobs[0][:, :1], "pca")


def test_init_shape_must_match(blobs) -> None:
    with pytest.raises(ValueError, match=r"shape \(160, 2\)"):
        E.embed(blobs[0], "tsne", init=np.zeros((10, 2)))


# --------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_undoes_rotation_reflection_scale_translation(reflect: bool) -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(80, 2)) * [3.0, 1.0]
    transform = _rotation(1.1) @ (np.diag([1.0, -1.0]) if reflect else np.eye(2))
    moving = 0.37 * reference @ transform + np.array([5.0, -2.0])
    aligned, info = A.procrustes_align(moving, reference)
    np.testing.assert_allclose(aligned, reference, atol=1e-10)
    assert info.reflection is reflect
    assert info.scale == pytest.approx(1 / 0.37)
    assert info.disparity < 1e-20 and info.rms_residual < 1e-10
    np.testing.assert_allclose(info.rotation @ info.rotation.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(
        info.scale * moving @ info.rotation + info.translation, aligned, atol=1e-12
    )


def test_procrustes_disparity_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(60, 2))
    moving = 2.0 * reference @ _rotation(0.4) + rng.normal(scale=0.3, size=(60, 2))
    aligned, info = A.procrustes_align(moving, reference)
    _, _, disparity = scipy_procrustes(reference, moving)
    assert info.disparity == pytest.approx(disparity, rel=1e-9)
    # Optimal: no other rotation does better.
    for angle in (0.05, -0.05):
        worse = (aligned - reference.mean(0)) @ _rotation(angle) + reference.mean(0)
        assert np.sum((worse - reference) ** 2) > np.sum((aligned - reference) ** 2)


def test_procrustes_guards() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        A.procrustes_align(np.zeros((5, 2)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="coincide"):
        A.procrustes_align(np.ones((5, 2)), np.arange(10.0).reshape(5, 2))


def test_embed_pair_init_aligns_and_describes(blobs, tsne_ref) -> None:
    x, y = blobs
    rng = np.random.default_rng(0)
    after = x @ np.linalg.qr(rng.normal(size=(10, 10)))[0] + rng.normal(scale=0.2, size=x.shape)
    calls: list[float] = []
    before_xy, after_xy, text = A.embed_pair(
        x, after, "tsne", seed=0, align="init", progress=lambda f, m: calls.append(f), **TSNE_SHORT
    )
    assert before_xy.shape == after_xy.shape == (N, 2)
    np.testing.assert_array_equal(before_xy, tsne_ref)
    assert "started from the 'before' layout" in text and "Procrustes" in text
    assert "perplexity 30" in text and f"{N} points" in text and "seed 0" in text
    # Already aligned: aligning again changes (almost) nothing.
    _, info = A.procrustes_align(after_xy, before_xy)
    assert info.scale == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(info.rotation, np.eye(2), atol=1e-9)
    # A rotated copy of the same data gives nearly the same picture.
    assert info.disparity < 0.1
    assert calls == sorted(calls) and calls[-1] == 1.0
    assert knn_class_accuracy_2d(after_xy, y) > 0.9


def test_embed_pair_pca_falls_back_to_procrustes(blobs) -> None:
    x, _ = blobs
    before_xy, after_xy, text = A.embed_pair(x, -3.0 * x + 1.0, "pca", align="init")
    assert "PCA takes no initial layout" in text and "Procrustes" in text
    np.testing.assert_allclose(after_xy, before_xy, atol=1e-8)


def test_embed_pair_none_says_not_aligned(blobs) -> None:
    x, _ = blobs
    _, after_xy, text = A.embed_pair(x, 2 * x, "pca", align="none")
    assert "not aligned" in text
    np.testing.assert_allclose(after_xy, E.embed(2 * x, "pca"))


def test_embed_pair_guards(blobs) -> None:
    x, _ = blobs
    with pytest.raises(ValueError, match="same points"):
        A.embed_pair(x, x[:100], "pca")
    with pytest.raises(UnknownNameError, match="valid names: init, none, procrustes"):
        A.embed_pair(x, x, "pca", align="rotate")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # the after side is checked up front
        A.embed_pair(x, bad, "tsne")


# --------------------------------------------------------------------------- cache helpers


def test_embedding_key_is_stable_and_sensitive() -> None:
    digest = K.features_digest(np.arange(12.0).reshape(6, 2))
    key = K.embedding_key("tsne", 0, {}, digest)
    assert key.startswith("tsne-") and len(key) == len("tsne-") + 16
    assert key == K.embedding_key("tsne", 0, {"perplexity": 30, "n_iter": 250.0}, digest)
    others = {
        K.embedding_key("tsne", 1, {}, digest),
        K.embedding_key("tsne", 0, {"perplexity": 31}, digest),
        K.embedding_key("tsne", 0, {}, digest + "x"),
        K.embedding_key("tsne", 0, {}, digest, init_digest="abc"),
        K.embedding_key("umap", 0, {}, digest),
    }
    assert key not in others and len(others) == 5


def test_features_digest_sees_values_dtype_and_shape() -> None:
    x = np.arange(12.0).reshape(6, 2)
    assert K.features_digest(x) == K.features_digest(x.copy())
    assert K.features_digest(x) != K.features_digest(x.reshape(4, 3))
    assert K.features_digest(x) != K.features_digest(x.astype(np.float32))
    y = x.copy()
    y[0, 0] = 0.5
    assert K.features_digest(x) != K.features_digest(y)


def test_subsample_per_group_is_seeded_and_capped() -> None:
    groups = np.array([0] * 50 + [1] * 8)
    idx = A.subsample_per_group(groups, 10, seed=2)
    assert np.array_equal(idx, A.subsample_per_group(groups, 10, seed=2))
    assert np.bincount(groups[idx]).tolist() == [10, 8]
    assert np.all(np.diff(idx) > 0)


# --------------------------------------------------------------------------- UMAP warm-up


def test_warmup_thread_starts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    gate = threading.Event()

    def fake_warm_up(n: int = 5000, seed: int = 0) -> float:
        gate.wait(5)
        calls.append(n)
        return 0.0

    monkeypatch.setattr(E, "warm_up_umap", fake_warm_up)
    monkeypatch.setattr(E, "_WARMUP_THREAD", None)
    threads: list[threading.Thread] = []
    starters = [
        threading.Thread(target=lambda: threads.append(E.start_umap_warmup_thread(1234)))
        for _ in range(8)
    ]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert len({id(t) for t in threads}) == 1 and threads[0].daemon
    assert E.start_umap_warmup_thread() is threads[0]
    gate.set()
    threads[0].join(5)
    assert calls == [1234]


def test_app_start_schedules_the_warmup_once_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from vizcore.app import warmup as W

    started: list[str] = []
    monkeypatch.setattr(E, "start_umap_warmup_thread", lambda: started.append("warm-up"))
    monkeypatch.setattr(W, "_SCHEDULED", None)
    monkeypatch.setenv(W.ENV, "0")
    assert W.schedule_warmup(0.0) is None and W._SCHEDULED is None
    monkeypatch.setenv(W.ENV, "1")
    timer = W.schedule_warmup(0.05)
    assert timer is not None and timer.daemon and started == []  # not before the delay
    assert W.schedule_warmup(0.0) is timer
    timer.join(5)
    assert started == ["warm-up"]
