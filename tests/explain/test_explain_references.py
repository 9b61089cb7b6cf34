"""Every registered explanation method against (a) its paper's equation and (b) pytorch-grad-cam.

(a) tests/paper_cams.py writes each paper's equation out for one image at a time with plain torch
autograd, in float64; vizcore's batched raw maps must equal it to float32 precision. (b) pytorch-grad-cam
must give the same min-max normalised maps once vizcore's maps are put in its conventions, each
named in ``ours_in_library_convention`` and in the method's docstring.

Cases: the tiny trained LeNet-GAP (conftest's ``trained_run``) at its last block and at an inner
block; a seeded random ResNet-18 on 3x64x64 inputs at its last block (512 channels, 2x2 maps) and
at layer1 (``features.1``, 64 channels, 16x16). Score-CAM is checked on the ResNet at layer1 only:
at the last block it is 512 forward passes of a ResNet-18 per image and implementation.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.paper_cams import (
    eigen_in_library_sign,
    library_maps,
    library_normalise,
    ours_in_library_convention,
    paper_map,
)
from vizcore.explain.layers import layer_activations
from vizcore.explain.methods import (
    EXPLAINERS,
    eigen_projection,
    explain,
    grad_cam_pp,
    list_explainers,
)
from vizcore.models import create_model
from vizcore.views.analysis import eval_domain

pytest.importorskip("pytorch_grad_cam")  # requirements-dev.txt: the reference library

SETTINGS = [
    ("lenet", "features"),
    ("lenet", "features.0"),
    ("resnet", "features"),
    ("resnet", "features.1"),
]


def _applies(method: str, setting: tuple[str, str]) -> bool:
    if EXPLAINERS.get(method).fixed_layer and setting[1] != "features":
        return False  # CAM: the last block only
    # Score-CAM at the ResNet's last block: 512 passes of a ResNet-18 per image, too slow for a test
    return not (method == "Score-CAM" and setting == ("resnet", "features"))


CASES = [(m, s) for m in list_explainers() for s in SETTINGS if _applies(m, s)]
IDS = [f"{m}-{s[0]}-{s[1]}" for m, s in CASES]


@pytest.fixture(scope="module")
def nets(trained_run) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """name -> (model in eval mode, images, classes): half the predicted class, half another one."""
    gen = torch.Generator().manual_seed(0)
    lenet = trained_run.load_model()
    torch.manual_seed(0)
    resnet = create_model("resnet18", num_classes=5, in_channels=3, input_size=64).eval()
    out = {}
    for name, model, x in [("lenet", lenet, eval_domain(trained_run.config(), "source").images[:4]),
                           ("resnet", resnet, torch.rand(2, 3, 64, 64, generator=gen))]:  # fmt: skip
        with torch.no_grad():
            logits = model(x)
        cls = logits.argmax(1)
        cls[1::2] = (cls[1::2] + 1) % logits.shape[1]
        out[name] = (model, x, cls)
    return out


@pytest.mark.parametrize(("method", "setting"), CASES, ids=IDS)
def test_each_method_is_its_papers_equation(method: str, setting: tuple[str, str], nets) -> None:
    model, x, cls = nets[setting[0]]
    got = explain(model, x, cls, method, setting[1]).low
    want = paper_map(method, model, x, cls, setting[1]).float()
    assert want.amax(dim=(1, 2)).gt(0).any(), "a reference of all-zero maps would check nothing"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize(("method", "setting"), [c for c in CASES if c[0] != "Eigen-CAM"],
                         ids=[i for c, i in zip(CASES, IDS, strict=True) if c[0] != "Eigen-CAM"])  # fmt: skip
def test_each_method_is_pytorch_grad_cams_in_its_conventions(
    method: str, setting: tuple[str, str], nets
) -> None:
    model, x, cls = nets[setting[0]]
    ours = ours_in_library_convention(method, model, x, cls, setting[1])
    theirs = library_maps(method, model, x, cls, setting[1])
    torch.testing.assert_close(library_normalise(ours), theirs, rtol=0, atol=2e-5)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if _applies("Eigen-CAM", s)], ids="-".join)
def test_eigen_cam_is_pytorch_grad_cams_up_to_the_sign_of_the_axis(
    setting: tuple[str, str], nets
) -> None:
    """grad-cam keeps the sign its SVD returns; ours makes the map correlate positively with the
    channel mean (checked against the reference in the test above). Each grad-cam map is one of the two."""
    model, x, cls = nets[setting[0]]
    proj = eigen_projection(layer_activations(model, x, setting[1]))  # (B, h, w), our sign
    theirs = library_maps("Eigen-CAM", model, x, cls, setting[1])
    torch.testing.assert_close(
        library_normalise(eigen_in_library_sign(proj, theirs)), theirs, rtol=0, atol=2e-5
    )
    assert torch.equal(explain(model, x, cls, "Eigen-CAM", setting[1]).low, F.relu(proj))


def test_grad_cam_pp_at_the_last_block_of_a_gap_network_in_closed_form(nets) -> None:
    """dS^c/dA^k_ij = W[c, k] / (h w) everywhere, so eq. 19 gives alpha_k = 1 / (2 + W[c, k] mean(A^k))
    and the map is ReLU(sum_k ReLU(W[c, k]) / (2 + W[c, k] mean(A^k)) A^k): no gradients needed."""
    model, x, cls = nets["lenet"]
    with torch.no_grad():
        a = model.forward_features(x).conv  # (B, K, h, w)
        w = model.cam_weights()[0][cls]  # (B, K)
    weights = w.clamp_min(0) / (2 + w * a.mean(dim=(2, 3)))
    want = torch.einsum("bk,bkhw->bhw", weights, a).clamp_min(0)
    torch.testing.assert_close(explain(model, x, cls, "Grad-CAM++").low, want, rtol=1e-4, atol=1e-6)


def test_grad_cam_pp_gives_alpha_zero_where_the_gradient_is_zero() -> None:
    """0/0 in eq. 19 (g = 0) is alpha = 0: a channel with no gradient adds nothing, and nothing is NaN."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 4, 5, generator=gen)
    g = torch.rand(2, 3, 4, 5, generator=gen)
    g[:, 0] = 0.0
    g[1, 2, :2] = 0.0  # some positions of a channel
    got = grad_cam_pp(a, g)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, grad_cam_pp(a[:, 1:], g[:, 1:]))
