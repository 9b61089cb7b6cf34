import torch
import torch.nn.functional as F

from vizcore.explain.cam import (
    class_activation_maps,
    energy_in_box,
    localization_score,
    mean_cam_per_class,
    normalize_maps,
    pointing_game,
)
from vizcore.models import create_model


def _model(bottleneck: int = 0):
    torch.manual_seed(1)
    return create_model("lenet_gap", bottleneck_dim=bottleneck).eval()


def test_cam_equals_direct_weighted_sum() -> None:
    """M_k = sum_c w[k, c] A_c, upsampled bilinearly — written out by hand here."""
    m = _model()
    x = torch.rand(6, 1, 28, 28)
    res = class_activation_maps(m, x, class_idx=3, batch_size=4)  # two batches
    with torch.no_grad():
        a = m.features(m.prep(x))  # (N, 64, 7, 7)
        w = m.fc.weight[3]  # (64,)
        direct = (w[None, :, None, None] * a).sum(dim=1)  # (N, 7, 7)
        direct = F.interpolate(
            direct[:, None], size=(28, 28), mode="bilinear", align_corners=False
        )[:, 0]
    torch.testing.assert_close(res.maps, direct, rtol=1e-4, atol=1e-5)
    assert (res.class_idx == 3).all()


def test_cam_spatial_mean_is_logit_minus_bias_with_bottleneck() -> None:
    """With a linear bottleneck the effective weights still give exact CAMs (before upsampling)."""
    m = _model(bottleneck=32)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        f = m.forward_features(x)
        w, b = m.cam_weights()
        cams = torch.einsum("kc,nchw->nkhw", w, f.conv)
    torch.testing.assert_close(cams.mean(dim=(2, 3)), f.logits - b, rtol=1e-4, atol=1e-5)


def test_predicted_and_per_image_targets() -> None:
    m = _model()
    x = torch.rand(5, 1, 28, 28)
    pred = class_activation_maps(m, x)
    assert torch.equal(pred.class_idx, pred.probs.argmax(1))
    per = class_activation_maps(m, x, class_idx=torch.tensor([0, 1, 2, 3, 4]))
    assert per.class_idx.tolist() == [0, 1, 2, 3, 4]
    # a list, in three batches
    listed = class_activation_maps(m, x, class_idx=[0, 1, 2, 3, 4], batch_size=2)
    assert torch.equal(listed.class_idx, per.class_idx)
    torch.testing.assert_close(listed.maps, per.maps)
    torch.testing.assert_close(pred.probs.sum(1), torch.ones(5))


def test_pointing_game_and_energy_on_known_box() -> None:
    maps = torch.zeros(3, 10, 10)
    maps[0, 2, 3] = 1.0  # peak at x=3, y=2: inside box (2,1)-(5,4)
    maps[1, 8, 8] = 1.0  # outside
    maps[2, 1:4, 2:5] = 1.0  # all energy inside the box
    boxes = torch.tensor([[2, 1, 5, 4]] * 3, dtype=torch.float32)
    assert pointing_game(maps, boxes).tolist() == [True, False, True]
    e = energy_in_box(maps, boxes)
    torch.testing.assert_close(e, torch.tensor([1.0, 0.0, 1.0]))
    half = torch.zeros(1, 10, 10)
    half[0, 1, 2] = 1.0
    half[0, 9, 9] = 1.0
    torch.testing.assert_close(energy_in_box(half, boxes[:1]), torch.tensor([0.5]))
    s = localization_score(maps, boxes)
    assert abs(s.pointing_game - 2 / 3) < 1e-6 and s.n == 3


def test_box_end_is_exclusive() -> None:
    maps = torch.zeros(1, 6, 6)
    maps[0, 1, 4] = 1.0  # x = 4 is the exclusive end of the box below
    assert not pointing_game(maps, torch.tensor([[1.0, 0.0, 4.0, 3.0]])).item()


def test_normalize_and_mean_per_class() -> None:
    maps = torch.stack([torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4)])
    n = normalize_maps(maps)
    assert n[0].abs().max() == 0  # constant map -> zeros, not NaN
    assert n[1].min() == 0 and n[1].max() == 1
    mean = mean_cam_per_class(maps, torch.tensor([1, 1]), 3)
    torch.testing.assert_close(mean[1], n.mean(0))
    assert mean[0].abs().sum() == 0 and mean[2].abs().sum() == 0
