"""The colour-digit network (svhn_gap) and the recipe's choices as functions of measured data."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vizcore.explain.methods import explain
from vizcore.methods import recipe_data as RD
from vizcore.models import create_model

# --------------------------------------------------------------------------- the network


def test_svhn_gap_classifies_32x32_colour_images_from_an_8x8_map() -> None:
    torch.manual_seed(0)
    model = create_model("svhn_gap", num_classes=10, in_channels=3, bottleneck_dim=256).eval()
    x = torch.rand(4, 3, 32, 32)
    f = model.forward_features(x)
    assert f.logits.shape == (4, 10) and f.conv.shape == (4, 128, 8, 8)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    kernels = [m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 64, 128] and kernels == [(5, 5)] * 3  # the DANN paper's SVHN trunk


@pytest.mark.parametrize("method", ["CAM", "Grad-CAM"])
def test_svhn_gap_maps_are_full_size_and_not_flat(method: str) -> None:
    torch.manual_seed(0)
    model = create_model("svhn_gap", num_classes=10, in_channels=3).eval()
    x = torch.rand(3, 3, 32, 32)
    e = explain(model, x, torch.tensor([0, 4, 9]), method)
    assert e.maps.shape == (3, 32, 32) and e.low.shape == (3, 8, 8)
    assert torch.isfinite(e.maps).all()
    assert all(float(m.std()) > 0 for m in e.low)  # the map varies over the image


def test_cam_of_svhn_gap_is_the_head_applied_to_each_position() -> None:
    torch.manual_seed(0)
    model = create_model("svhn_gap", num_classes=10, in_channels=1).eval()
    x = torch.rand(2, 1, 32, 32)
    conv = model.trunk(x)  # (2, 128, 8, 8)
    w, _ = model.cam_weights()
    want = torch.einsum("c,nchw->nhw", w[3], conv)
    got = explain(model, x, 3, "CAM").low
    # CAM may normalise; the map is the weighted sum up to a positive scale and shift
    a = (want - want.flatten(1).min(1).values[:, None, None]).flatten(1)
    b = (got - got.flatten(1).min(1).values[:, None, None]).flatten(1)
    torch.testing.assert_close(a / a.amax(1, keepdim=True), b / b.amax(1, keepdim=True), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the recipe's rules

COLOUR = RD.ImageStats(3, 0.5, 0.22, 0.12, 0.2, colour=0.17, dark_ink=0.5, height=32, width=32, count=3000)
GREY = RD.ImageStats(1, 0.13, 0.3, 0.04, 0.15, colour=0.0, dark_ink=0.0, height=28, width=28, count=8000)
ADAPT = RD.Defaults(epochs=8, batch_size=64)


def _fields(s: RD.ImageStats, t: RD.ImageStats | None, d: RD.Defaults = ADAPT) -> dict:
    return RD.advise(s, t, d).fields


def test_one_grey_side_makes_both_grey_at_the_larger_size() -> None:
    for s, t in ((COLOUR, GREY), (GREY, COLOUR)):
        got = _fields(s, t)
        assert got["input_shape"] == (1, 32, 32) and got["standardize"] is True
    both = _fields(COLOUR, dataclasses.replace(COLOUR, dark_ink=0.4))
    assert "input_shape" not in both
    # grey stored as three equal channels counts as grey
    assert _fields(COLOUR, dataclasses.replace(GREY, channels=3))["input_shape"] == (1, 32, 32)


def test_small_colour_images_get_the_colour_network_and_large_or_grey_ones_do_not() -> None:
    assert _fields(COLOUR, None)["model"] == "svhn_gap"
    assert _fields(GREY, COLOUR)["model"] == "svhn_gap"  # a colour target is as varied
    big = dataclasses.replace(COLOUR, height=224, width=224)
    assert "model" not in _fields(big, None) and "model" not in _fields(GREY, GREY)


def test_inks_that_run_differently_invert_half_the_source() -> None:
    assert _fields(COLOUR, GREY)["augment_invert"] == 0.5  # 50% dark ink against 0%
    assert _fields(GREY, COLOUR)["augment_invert"] == 0.5
    near = dataclasses.replace(GREY, dark_ink=0.5 - RD.POLARITY_GAP)
    assert "augment_invert" not in _fields(COLOUR, near)
    assert "augment_invert" not in _fields(COLOUR, None)  # nothing to match without a target


def test_inks_that_run_differently_add_the_target_terms_for_a_method_of_the_shared_loss() -> None:
    shared = dataclasses.replace(ADAPT, shared_loss=True)
    got = _fields(COLOUR, GREY, shared)
    assert got["domain_bn"] is True and got["target_im"] == RD.TARGET_IM
    assert "domain_bn" not in _fields(COLOUR, GREY)  # ADDA's own step, source-only: not theirs
    near = dataclasses.replace(GREY, dark_ink=0.5 - RD.POLARITY_GAP)
    assert "domain_bn" not in _fields(COLOUR, near, shared)  # the same ink: one BatchNorm fits both


def test_the_recipe_asks_the_method_whether_the_target_terms_apply() -> None:
    from vizcore.methods.recipes import recommended_config

    for method, on in (("dann", True), ("cdan", True), ("source_only", False), ("adda", False)):
        cfg = recommended_config(method, "printed-digits", "mnist")
        assert (cfg.domain_bn, cfg.target_im > 0) == (on, on), method
    plain = recommended_config("dann", "mnist", "uci-digits")  # the same ink on both sides
    assert not plain.domain_bn and plain.target_im == 0


def test_a_small_source_is_shifted_in_proportion_to_its_size() -> None:
    assert _fields(COLOUR, GREY)["augment_shift"] == 2  # 32 px / 16
    assert "augment_shift" not in _fields(GREY, COLOUR)  # 8,000 images
    small_big = dataclasses.replace(COLOUR, height=64, width=96)
    assert _fields(small_big, GREY)["augment_shift"] == 4


@pytest.mark.parametrize(
    ("count", "defaults", "want"),
    [
        (8000, ADAPT, 8),  # the reference: the recipe's own epochs
        (30000, ADAPT, 8),  # never fewer
        (4000, ADAPT, 16),  # 8 x 125 steps over 63 per epoch
        (3000, ADAPT, RD.MAX_EPOCHS),  # 22 wanted, capped
        (3000, RD.Defaults(30, 64), 30),  # a method's own longer training is kept
        (8000, RD.Defaults(15, 128), 15),
    ],
)
def test_epochs_follow_the_number_of_images(count: int, defaults: RD.Defaults, want: int) -> None:
    assert RD.epochs_for(count, defaults) == want
    got = _fields(dataclasses.replace(GREY, count=count), GREY, defaults).get("epochs", defaults.epochs)
    assert got == want


def test_two_grey_digit_sets_of_the_reference_size_change_nothing() -> None:
    assert RD.advise(GREY, dataclasses.replace(GREY, mean=0.15), ADAPT) == RD.DataAdvice({}, None)


def test_the_note_gives_each_reason_and_the_measurements() -> None:
    note = RD.advise(COLOUR, GREY, ADAPT, ("printed", "mnist")).note
    assert note is not None
    for words in ("read as grey", "svhn_gap", "inverted", "shifted by up to 2", "20 epochs", "printed: 3 channels"):
        assert words in note


def test_image_stats_measure_colour_and_which_way_the_ink_runs() -> None:
    x = torch.zeros(2, 3, 4, 4)
    x[0] = 0.9  # light ground, one dark red pixel
    x[0, :, 0, 0] = torch.tensor([0.6, 0.0, 0.0])
    x[1, :, 1, 1] = 1.0  # black ground, one white pixel
    st = RD.image_stats(x, count=10)
    assert st.dark_ink == 0.5 and st.count == 10 and (st.height, st.width) == (4, 4)
    want_colour = float(torch.tensor([0.6, 0.0, 0.0]).std(unbiased=False)) / 16 / 2  # one pixel of 32
    assert st.colour == pytest.approx(want_colour)
    assert RD.image_stats(x.mean(dim=1, keepdim=True)).colour == 0.0
