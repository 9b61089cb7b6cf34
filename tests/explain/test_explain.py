"""Explanation methods and faithfulness scores, checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vizcore.explain.faithfulness import (
    auc,
    confidence_change,
    deletion_insertion,
    faithfulness,
    impute,
    salience_rank,
)
from vizcore.explain.layers import default_layer, layer_choices
from vizcore.explain.methods import explain, list_explainers, map_agreement
from vizcore.models import create_model, list_models


def _lenet(**kw) -> nn.Module:
    torch.manual_seed(0)
    m = create_model("lenet_gap", widths=(4, 8), **kw)
    for p in m.modules():  # non-trivial BN statistics, so the eval-mode head is a real affine map
        if isinstance(p, (nn.BatchNorm1d, nn.BatchNorm2d)):
            p.running_mean.uniform_(-0.5, 0.5)
            p.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.mark.parametrize("bottleneck_dim", [0, 6])
def test_grad_cam_at_the_last_block_is_cam_over_hw(bottleneck_dim: int) -> None:
    """The GAP identity: dY_c/dA_k(i, j) = W[c, k] / (h*w) everywhere, so Grad-CAM's channel
    weights are W[c] / (h*w) and its map, before the ReLU, is CAM / (h*w)."""
    model = _lenet(bottleneck_dim=bottleneck_dim)
    x = torch.rand(5, 1, 16, 16)
    cls = torch.tensor([0, 3, 7, 9, 2])
    conv = model.trunk(x).detach().requires_grad_(True)
    gap = conv.mean(dim=(2, 3))
    head = model.fc(model.bottleneck(gap) if model.bottleneck is not None else gap)
    (grad,) = torch.autograd.grad(head.gather(1, cls[:, None]).sum(), conv)
    w, _ = model.cam_weights()
    h, wd = conv.shape[-2:]
    assert torch.allclose(grad, (w[cls] / (h * wd))[:, :, None, None].expand_as(grad), atol=1e-7)
    raw_grad_cam = torch.einsum("nc,nchw->nhw", grad.mean(dim=(2, 3)), conv.detach())
    cam = explain(model, x, cls, "CAM").low
    assert torch.allclose(raw_grad_cam, cam / (h * wd), atol=1e-6)
    assert (cam < 0).any()  # the identity holds before the ReLU, where the sign matters
    library = explain(model, x, cls, "Grad-CAM").low  # torchcam: ReLU, not normalised
    assert torch.allclose(library, cam.clamp_min(0) / (h * wd), atol=1e-6)


def test_the_default_layer_is_the_block_before_pooling_and_an_override_is_checked() -> None:
    model = _lenet()
    assert default_layer(model, (1, 16, 16)) == "features"
    assert "features.0" in layer_choices(model, (1, 16, 16))
    e = explain(model, torch.rand(2, 1, 16, 16), None, "Grad-CAM", layer="features.0")
    assert e.layer == "features.0" and e.low.shape == (2, 8, 8) and e.maps.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="no layer 'fc'"):
        explain(model, torch.rand(2, 1, 16, 16), None, "Grad-CAM", layer="fc")
    with pytest.raises(ValueError, match="only at the layer before global pooling"):
        explain(model, torch.rand(2, 1, 16, 16), None, "CAM", layer="features.0")


@pytest.mark.parametrize("model_name", list_models())
def test_a_models_cam_layer_outputs_its_conv_features(model_name: str) -> None:
    model = create_model(model_name, num_classes=3, in_channels=1).eval()
    x = torch.rand(2, 1, 16, 16)
    got = []
    model.get_submodule(model.cam_layer).register_forward_hook(lambda _m, _i, out: got.append(out))
    conv = model.forward_features(x).conv
    assert len(got) == 1 and got[0] is conv
    assert layer_choices(model, (1, 16, 16))[-1] == model.cam_layer


def test_a_plain_cnn_is_explained_at_its_last_four_d_output() -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()  # fmt: skip
    assert layer_choices(plain, (1, 10, 10)) == ["0", "1", "2", "3", "4"]
    assert default_layer(plain, (1, 10, 10)) == "4"  # the pooled (B, 6, 1, 1) map is 4-D too
    e = explain(plain, torch.rand(2, 1, 10, 10), None, "Grad-CAM", layer="3")
    assert e.maps.shape == (2, 10, 10) and torch.isfinite(e.maps).all()


@pytest.mark.parametrize("model_name", list_models())
@pytest.mark.parametrize("method", list_explainers())
def test_every_method_gives_finite_full_size_maps_for_every_model(method: str, model_name: str) -> None:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=3, in_channels=1).eval()
    backbone = model_name in ("resnet18", "mobilenet_v3_small")
    size = 8 if backbone else 16  # tiny inputs: Score-CAM is one forward pass per channel and image
    x = torch.rand(2, 1, size, size)
    e = explain(model, x, torch.tensor([0, 2]), method)
    assert e.maps.shape == (2, size, size)
    assert torch.isfinite(e.maps).all() and e.maps.dtype == torch.float32
    assert e.class_idx.tolist() == [0, 2]


def test_eigen_cam_is_the_first_principal_component_of_the_activations() -> None:
    model = _lenet()
    x = torch.rand(3, 1, 16, 16)
    a = model.trunk(x).detach().flatten(2).transpose(1, 2)  # (N, hw, C)
    centred = a - a.mean(1, keepdim=True)
    _, vecs = torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # ascending eigenvalues
    proj = (centred @ vecs[:, :, -1:])[..., 0]
    got = explain(model, x, None, "Eigen-CAM").low.flatten(1)
    # equal to the projection or its negative, after the ReLU
    ok = [torch.allclose(got[i], proj[i].clamp_min(0), atol=1e-4) or
          torch.allclose(got[i], (-proj[i]).clamp_min(0), atol=1e-4) for i in range(3)]  # fmt: skip
    assert all(ok)


@pytest.mark.parametrize("method", list_explainers())
def test_a_class_may_be_an_int_a_sequence_an_array_or_a_tensor(method: str) -> None:
    """One class for all images or one per image, in any integer form: the same maps."""
    model = _lenet()
    x = torch.rand(3, 1, 16, 16)
    for want_cls, forms in [
        ([2, 2, 2], [2, np.int64(2), [2], (2,), np.array(2), np.array([2], dtype=np.int32), torch.tensor(2),
                     torch.tensor([2], dtype=torch.int32)]),
        ([0, 5, 9], [[0, 5, 9], (0, 5, 9), np.array([0, 5, 9]), np.array([0, 5, 9], dtype=np.uint8),
                     torch.tensor([0, 5, 9], dtype=torch.int16)]),
    ]:  # fmt: skip
        want = explain(model, x, torch.tensor(want_cls), method)
        for form in forms:
            got = explain(model, x, form, method)
            assert got.class_idx.tolist() == want_cls, form
            assert torch.equal(got.low, want.low), form


def test_a_class_of_the_wrong_kind_or_count_is_refused_clearly() -> None:
    model, x = _lenet(), torch.rand(3, 1, 16, 16)
    with pytest.raises(TypeError, match="must be integers"):
        explain(model, x, 2.0, "Grad-CAM")
    with pytest.raises(ValueError, match="one for all or one per image"):
        explain(model, x, [1, 2], "Grad-CAM")
    with pytest.raises(ValueError, match="non-negative"):
        explain(model, x, -1, "Grad-CAM")


def test_map_agreement_is_the_per_image_pearson_correlation() -> None:
    a, b = torch.rand(4, 5, 6), torch.rand(4, 5, 6)
    want = [np.corrcoef(a[i].flatten(), b[i].flatten())[0, 1] for i in range(4)]
    assert np.allclose(map_agreement(a, b).numpy(), want, atol=1e-6)
    assert map_agreement(a, torch.ones(4, 5, 6)).tolist() == [0.0] * 4


# --------------------------------------------------------------------------- faithfulness


class RegionModel(nn.Module):
    """Logit of class 1 = 12 * (mean of the image over a known region) - 6; class 0 stays 0."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x[:, 0] * self.region).sum((1, 2)) / self.region.sum()
        z = 12 * m - 6 + 0 * self.dummy
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _toy(n: int = 6, size: int = 12):
    region = torch.zeros(size, size, dtype=torch.bool)
    region[2:6, 3:8] = True  # 20 of 144 pixels
    gen = torch.Generator().manual_seed(0)
    x = 0.3 * torch.rand(n, 1, size, size, generator=gen)
    x[:, 0][:, region] = 1.0
    return RegionModel(region), x, region


def test_deletion_and_insertion_rank_the_true_map_first_and_a_random_map_last() -> None:
    model, x, region = _toy()
    n, size = len(x), x.shape[-1]
    gen = torch.Generator().manual_seed(1)
    true_map = region.float().expand(n, size, size) + 0.01 * torch.rand(n, size, size, generator=gen)
    half = true_map * (torch.rand(n, size, size, generator=gen) < 0.5) + 0.5 * torch.rand(n, size, size, generator=gen)
    random = torch.rand(n, size, size, generator=gen)
    cls = torch.ones(n, dtype=torch.long)
    got = {name: deletion_insertion(model, x, m, cls, steps=24) for name, m in
           [("true", true_map), ("half", half), ("random", random)]}  # fmt: skip
    dele = {k: v["deletion"].mean().item() for k, v in got.items()}
    ins = {k: v["insertion"].mean().item() for k, v in got.items()}
    assert dele["true"] < dele["half"] < dele["random"]
    assert ins["true"] > ins["half"] > ins["random"]
    # the true map's deletion curve in closed form: removing f*P pixels zeroes min(fP, 20) of the region
    fractions = torch.linspace(0, 1, 25)
    removed = torch.clamp((fractions * size * size).round(), max=20)
    want = torch.sigmoid(12 * (20 - removed) / 20 - 6)
    assert torch.allclose(got["true"]["deletion_curve"], want.expand(n, -1), atol=1e-6)
    assert torch.allclose(got["true"]["deletion"], auc(want[None], fractions).expand(n), atol=1e-6)


def test_salience_rank_orders_pixels_from_the_most_salient() -> None:
    maps = torch.tensor([[[0.1, 0.9], [0.5, 0.3]]])
    assert salience_rank(maps).tolist() == [[3, 0, 1, 2]]


def test_road_imputation_keeps_unmasked_pixels_and_solves_the_neighbour_system() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 7, generator=gen)
    mask = torch.rand(2, 1, 6, 7, generator=gen) < 0.4
    noisy = impute(x, mask)
    keep = ~mask.expand_as(x)
    assert torch.equal(noisy[keep], x[keep])
    out = impute(x.double(), mask, noise=0.0, rtol=1e-12)
    # direct dense solve: every removed pixel is the weighted mean of its in-image neighbours
    w = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
         (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12}  # fmt: skip
    for b in range(2):
        unknown = [(i, j) for i in range(6) for j in range(7) if mask[b, 0, i, j]]
        pos = {p: k for k, p in enumerate(unknown)}
        for c in range(3):
            a = np.zeros((len(unknown), len(unknown)))
            rhs = np.zeros(len(unknown))
            for (i, j), k in pos.items():
                for (di, dj), wt in w.items():
                    q = (i + di, j + dj)
                    if 0 <= q[0] < 6 and 0 <= q[1] < 7:
                        a[k, k] += wt
                        if q in pos:
                            a[k, pos[q]] -= wt
                        else:
                            rhs[k] += wt * float(x[b, c, q[0], q[1]])
            sol = np.linalg.solve(a, rhs)
            got = np.array([float(out[b, c, i, j]) for i, j in unknown])
            assert np.allclose(got, sol, atol=1e-5)


def test_average_drop_and_increase_follow_their_formula() -> None:
    model, x, region = _toy()
    maps = torch.rand(len(x), *x.shape[-2:])
    cls = torch.ones(len(x), dtype=torch.long)
    got = confidence_change(model, x, maps, cls)
    norm = (maps - maps.amin((1, 2), keepdim=True)) / (maps.amax((1, 2), keepdim=True) - maps.amin((1, 2), keepdim=True))
    p = model(x).softmax(1)[:, 1]
    q = model(x * norm[:, None]).softmax(1)[:, 1]
    assert torch.allclose(got["drop"], (p - q).clamp_min(0) / p, atol=1e-6)
    assert torch.equal(got["increase"], q > p)


def test_faithfulness_scores_the_true_map_above_a_random_one() -> None:
    model, x, region = _toy()
    n, size = len(x), x.shape[-1]
    cls = torch.ones(n, dtype=torch.long)
    true = faithfulness(model, x, region.float().expand(n, size, size).clone(), cls)
    rand = faithfulness(model, x, torch.rand(n, size, size), cls)
    assert true.deletion < rand.deletion and true.insertion > rand.insertion
    assert true.road_morf < rand.road_morf and true.road_lerf > rand.road_lerf
    with pytest.raises(ValueError, match="do not fit"):
        faithfulness(model, x, torch.rand(n, 3, 3), cls)
