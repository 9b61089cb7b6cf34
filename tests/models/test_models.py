import pytest
import torch

from vizcore.core.registry import UnknownNameError
from vizcore.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("bottleneck", [0, 16])
def test_features_and_effective_head(name: str, bottleneck: int) -> None:
    """In eval mode the affine head collapses exactly: logits = W_eff · gap + b_eff."""
    m = create_model(name, num_classes=10, in_channels=3, bottleneck_dim=bottleneck).eval()
    # move BN running stats away from their defaults so the collapse is really tested
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-1, 1)
    x = torch.rand(5, 3, 28, 28)
    f = m.forward_features(x)
    c = f.conv.shape[1]
    assert f.conv.shape[0] == 5 and f.gap.shape == (5, c) and f.logits.shape == (5, 10)
    torch.testing.assert_close(f.gap, f.conv.mean(dim=(2, 3)))
    w, b = m.cam_weights()
    torch.testing.assert_close(f.logits, f.gap @ w.T + b, rtol=1e-4, atol=1e-5)
    assert ("bottleneck" in m.feature_layers) == bool(bottleneck)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="lenet_gap"):
        create_model("resnet9000")


def test_standardize_removes_contrast_and_offset() -> None:
    m = create_model("lenet_gap", standardize=True).eval()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(m(x), m(3 * x + 0.5), rtol=1e-4, atol=1e-4)
