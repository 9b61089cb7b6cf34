"""Sanity checks (vizcore.explain.sanity) against direct formulas and against Quantus.

SSIM against a numpy computation of Wang et al.'s formula written out window by window;
Spearman against scipy.stats.spearmanr; the cascade against the layers it names (every other
parameter bit-identical, the original model untouched) and against Quantus's randomised models;
and the verdicts: a map that ignores the weights is flagged, Grad-CAM on the tiny trained model
is not.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from vizcore.explain import sanity
from vizcore.explain.methods import EXPLAINERS
from vizcore.explain.sanity import (
    FLAG_THRESHOLD,
    cascade,
    other_classes,
    randomisable_layers,
    sanity_check,
    spearman,
    ssim,
)
from vizcore.views.analysis import eval_domain


def _ssim_by_hand(a: np.ndarray, b: np.ndarray, size: int, sigma: float = 1.5, L: float = 1.0) -> float:
    """Wang et al. 2004, eq. 13, at every position where the size x size window fits, averaged:
    the window's weights w, the weighted means, variances and covariance, written out."""
    r = np.arange(size) - (size - 1) / 2
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    out = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            x, y = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            out.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(out))


def test_ssim_of_a_map_with_itself_is_one_and_a_fixed_pair_equals_the_formula() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((13, 14)), rng.random((13, 14))
    b[:7] = a[:7]  # half the same: an SSIM well between 0 and 1
    got = ssim(torch.from_numpy(np.stack([a, a])), torch.from_numpy(np.stack([a, b])))
    assert got[0].item() == pytest.approx(1.0, abs=1e-12)
    assert got[1].item() == pytest.approx(_ssim_by_hand(a, b, 11), abs=1e-12)
    assert 0.1 < got[1].item() < 0.9
    small = ssim(torch.from_numpy(a[None, :8, :8]), torch.from_numpy(b[None, :8, :8]))  # window cut to 7
    assert small.item() == pytest.approx(_ssim_by_hand(a[:8, :8], b[:8, :8], 7), abs=1e-12)


def test_ssim_equals_scikit_image_with_wang_et_al_s_settings() -> None:
    metrics = pytest.importorskip("skimage.metrics")  # comes with quantus (requirements-dev.txt)
    rng = np.random.default_rng(4)
    a, b = rng.random((28, 28)), rng.random((28, 28))
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0)  # fmt: skip
    assert ssim(torch.from_numpy(a[None]), torch.from_numpy(b[None])).item() == pytest.approx(ref, abs=1e-12)


def test_spearman_equals_scipy_with_ties_and_is_zero_for_a_constant_map() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, (4, 50)).astype(float)  # many ties, as ReLU'd maps have
    b = a + rng.integers(0, 4, (4, 50))
    got = spearman(a, b)
    for i in range(4):
        assert got[i] == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-12)
    assert spearman(np.zeros((1, 9)), rng.random((1, 9)))[0] == 0.0


def test_a_nan_in_a_map_counts_as_zero() -> None:
    from vizcore.explain.sanity import map_similarities

    a = torch.rand(2, 12, 12)
    b = a.clone()
    b[:, 0, 0] = float("nan")
    c = a.clone()
    c[:, 0, 0] = 0.0
    got, want = map_similarities(a, b), map_similarities(a, c)
    assert all(np.isfinite(got[k]).all() and np.allclose(got[k], want[k]) for k in want)


def test_spearman_equals_quantus_correlation_spearman() -> None:
    sim = pytest.importorskip("quantus.functions.similarity_func")
    rng = np.random.default_rng(6)
    a, b = rng.random((5, 40)), rng.random((5, 40))
    assert spearman(a, b) == pytest.approx(sim.correlation_spearman(a, b, batched=True), abs=1e-12)


def _lenet() -> torch.nn.Module:
    from vizcore.models import create_model

    return create_model("lenet_gap", num_classes=10, in_channels=1).eval()


def test_the_cascade_reinitialises_exactly_the_layers_it_names_top_down() -> None:
    model = _lenet()
    with torch.no_grad():  # away from the initial values (a batch norm's reset is to 1 and 0, not random)
        for v in model.state_dict().values():
            if v.dtype.is_floating_point:
                v.add_(torch.rand_like(v) + 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = randomisable_layers(model)
    assert layers[-1] == "fc" and all(n.startswith("features") for n in layers[:-1])
    state = torch.get_rng_state()
    seen = []
    for i, (name, randomised) in enumerate(cascade(model, seed=7)):
        seen.append(name)
        done = set(layers[len(layers) - 1 - i :])  # this layer and every one above it
        for key, value in randomised.state_dict().items():
            owner = key.rsplit(".", 1)[0]
            if owner in done and value.dtype.is_floating_point and value.numel() > 1:
                assert not torch.equal(value, before[key]), key
            elif owner not in done:
                assert torch.equal(value, before[key]), key  # bit-identical
    assert seen == layers[::-1]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the original untouched
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state too


def test_the_randomised_models_equal_quantus_s() -> None:
    pytest.importorskip("quantus")
    from quantus.helpers.model.pytorch_model import PyTorchModel

    model = _lenet()
    ours = [(n, {k: v.clone() for k, v in m.state_dict().items()}) for n, m in cascade(model, seed=42)]
    # Quantus randomises one copy further at each step: each stage is compared as it is yielded
    q = PyTorchModel(model, channel_first=True).get_random_layer_generator("top_down", seed=42)
    for (name, state), (qname, qmodel) in zip(ours, q, strict=True):
        assert name == qname
        assert all(torch.equal(state[k], v) for k, v in qmodel.state_dict().items())


def test_other_classes_never_draws_the_explained_class_and_covers_the_others() -> None:
    cls = torch.tensor([3] * 2000)
    other = other_classes(cls, 10, seed=1)
    assert (other != 3).all() and set(other.tolist()) == set(range(10)) - {3}
    assert torch.equal(other, other_classes(cls, 10, seed=1))


@pytest.fixture(scope="module")
def tiny(trained_run):
    model = trained_run.load_model()
    x = eval_domain(trained_run.config(), "source").images[:24]
    with torch.no_grad():
        cls = model(x).argmax(1)
    return model, x, cls


def test_a_map_that_ignores_the_weights_is_flagged(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, cls = tiny
    fixed = torch.rand(7, 7)

    def same_map(_m, images, _cls, _layer):  # type: ignore[no-untyped-def]
        return (fixed + images[:, 0, ::4, ::4]).float()  # depends on the image only

    monkeypatch.setitem(EXPLAINERS._items, "Fixed", replace(EXPLAINERS.get("Grad-CAM"), label="Fixed", maps=same_map))
    r = sanity_check(model, x, cls, "Fixed")
    assert r.flagged and r.randomised_rank == pytest.approx(1.0)
    assert np.allclose(r.ssim, 1.0) and np.allclose(r.logit_ssim, 1.0)
    assert r.stages == tuple(randomisable_layers(model)[::-1])


def test_grad_cam_on_the_trained_model_is_not_flagged(tiny) -> None:
    model, x, cls = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = sanity_check(model, x, cls, "Grad-CAM")
    assert not r.flagged and r.randomised_rank < FLAG_THRESHOLD
    assert r.rank_abs.shape == r.ssim.shape == (len(r.stages), len(x))
    assert r.maps.shape == (len(r.stages) + 1, 2, 28, 28)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert r.logit_rank_abs.mean() < 0.9  # another class draws another map


def test_the_progress_is_told_after_every_stage(tiny) -> None:
    model, x, cls = tiny
    seen: list[float] = []
    sanity_check(model, x[:4], cls[:4], "CAM", progress=lambda _s, f: seen.append(f))
    assert len(seen) == len(randomisable_layers(model)) + 1 and seen[-1] == 1.0 and seen == sorted(seen)
    assert sanity.SEED == 42


def test_the_rank_correlations_equal_quantus_mprt(tiny) -> None:
    """Quantus's MPRT (top-down cascade, |maps|, Spearman) on the same model, images and maps."""
    quantus = pytest.importorskip("quantus")
    from vizcore.explain.methods import explain

    model, x, cls = tiny
    x, cls = x[:8], cls[:8]

    def maps(model, inputs, targets, **_kw):  # type: ignore[no-untyped-def]  # Quantus passes keywords
        return explain(model, torch.as_tensor(inputs), torch.as_tensor(targets), "Grad-CAM").maps[:, None].numpy()

    metric = quantus.MPRT(layer_order="top_down", seed=42, abs=True, disable_warnings=True, display_progressbar=False)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=cls.numpy(), a_batch=maps(model, x.numpy(), cls.numpy()),
                    explain_func=maps, batch_size=64, device="cpu")  # fmt: skip
    ours = sanity_check(model, x, cls, "Grad-CAM")
    for i, stage in enumerate(ours.stages):
        # Quantus normalises the maps by their maximum in float32 first: ranks move by a tie or two
        assert np.asarray(theirs[stage]) == pytest.approx(ours.rank_abs[i], abs=1e-4), stage
