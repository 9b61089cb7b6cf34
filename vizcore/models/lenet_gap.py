"""LeNet-GAP: the network of the Class Activation Map paper, LeNet-sized.

conv(32, 5x5) - BN - ReLU - maxpool - conv(64, 5x5) - BN - ReLU - maxpool - GAP - linear.
BatchNorm is the part of the recipe that makes a GAP network train quickly; it sits
before the ReLU so the CAM structure (last conv maps -> GAP -> one linear map) is kept.
An optional linear bottleneck (the DDC/DAN "adaptation layer") keeps the head affine.
"""

from __future__ import annotations

import torch
from torch import nn

from vizcore.models import register_model
from vizcore.models.base import Features, GapNet, collapse_head, make_bottleneck


def _conv_block(cin: int, cout: int, kernel: int, pool: bool, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class InputStandardize(nn.Module):
    """Per-image, per-channel standardisation: removes colour/contrast shifts between domains."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
        return (x - mean) / std


@register_model("lenet_gap")
class LeNetGAP(GapNet):
    """LeNet-sized CAM network.

    Args:
        num_classes: K.
        in_channels: 1 for grey digits, 3 for colour domains.
        widths: channels of the conv layers.
        kernels: their kernel sizes ('same' padding keeps the maps aligned with the input).
        pools: whether each conv is followed by 2x2 max pooling.
        batch_norm: BatchNorm after each convolution.
        bottleneck_dim: 0 for a plain classifier, else a linear adaptation layer of this size.
        standardize: standardise each input image (helps across domains of different contrast).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 64),
        kernels: tuple[int, ...] = (5, 5),
        pools: tuple[bool, ...] = (True, True),
        batch_norm: bool = True,
        bottleneck_dim: int = 0,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.prep = InputStandardize() if standardize else nn.Identity()
        if not len(widths) == len(kernels) == len(pools):
            raise ValueError("widths, kernels and pools must have one entry per conv layer")
        chans = (in_channels, *widths)
        self.features = nn.Sequential(
            *(_conv_block(chans[i], chans[i + 1], kernels[i], pools[i], batch_norm) for i in range(len(widths)))
        )
        feat = widths[-1]
        self.bottleneck = make_bottleneck(feat, bottleneck_dim)
        self.fc = nn.Linear(bottleneck_dim or feat, num_classes)
        self.feature_dim = bottleneck_dim or feat
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            # Linear layers keep PyTorch's default init: a tiny classifier init (std 0.01)
            # starves the convolutions of gradient and slowed the first epochs threefold.

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.prep(x))  # (B, C, h, w)

    def forward_features(self, x: torch.Tensor) -> Features:
        conv = self.trunk(x)
        gap = conv.mean(dim=(2, 3))  # (B, C)
        bott = self.bottleneck(gap) if self.bottleneck is not None else None
        logits = self.fc(bott if bott is not None else gap)
        return Features(conv=conv, gap=gap, bottleneck=bott, logits=logits)

    def conv_blocks(self) -> list[nn.Module]:
        return list(self.features)

    def cam_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return collapse_head(self.bottleneck, self.fc)

    @property
    def feature_layers(self) -> list[str]:
        return ["gap", "bottleneck", "logits"] if self.bottleneck is not None else ["gap", "logits"]


@register_model("lenet_gap_plus")
class LeNetGAPPlus(LeNetGAP):
    """LeNet-GAP with a third, unpooled 3x3 conv (128 channels) before GAP.

    The extra layer widens the receptive field from 14 to 22 pixels, enough to see a whole
    digit on a cluttered 60x60 canvas, while keeping the CAM resolution of the two-block
    network (no extra pooling, as the CAM paper removes late pooling for finer maps).
    """

    def __init__(self, **kwargs) -> None:
        kwargs = {"widths": (32, 64, 128), "kernels": (5, 5, 3), "pools": (True, True, False), **kwargs}
        super().__init__(**kwargs)
