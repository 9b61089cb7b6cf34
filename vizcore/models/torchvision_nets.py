"""torchvision backbones as GAP networks: ResNet-18 and MobileNetV3-Small.

The torchvision trunk (everything up to its global pooling) becomes ``features``; it is followed
by global average pooling, an optional linear bottleneck and one linear layer, so the head stays
affine and CAM exact (``cam_weights``), as for LeNet-GAP, and every training method applies.

Two stems: ``small`` for 28–32 px digits (the first convolution 3x3 with stride 1 and, for the
ResNet, no max-pooling, so a 28 px digit still leaves a 4x4 map) and ``standard``, torchvision's
own (7x7 stride 2 and max-pooling; stride 2 for the MobileNet), for photo folders of 64 px or
more; ``auto`` picks by ``input_size``. Any number of input channels is taken (a grey digit: 1).

``pretrained=True`` copies torchvision's ImageNet weights into every tensor whose shape fits (a
changed stem is kept from scratch, except that a grey standard stem gets the RGB filters summed).
The weights are read from the torch hub cache if they are there; otherwise they are downloaded
with a short timeout, and a machine without network gets a clear PretrainedUnavailable.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn

from vizcore.models import register_model
from vizcore.models.base import Features, GapNet, collapse_head, make_bottleneck

STEMS = ("auto", "small", "standard")
DOWNLOAD_TIMEOUT_S = 15.0


class PretrainedUnavailable(ValueError):
    """torchvision's ImageNet weights are neither cached nor downloadable here; the message says where."""


def resolve_stem(stem: str, input_size: int) -> str:
    """'auto' -> 'small' below 64 px, else 'standard'; an unknown stem is refused."""
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
    return stem if stem != "auto" else ("small" if input_size < 64 else "standard")


def imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict of ``arch``, from the hub cache or a bounded download."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.exists():
        return torch.load(cached, map_location="cpu", weights_only=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights.get_state_dict(progress=False)
    except (OSError, RuntimeError, ValueError) as e:  # URLError and timeouts are OSErrors
        raise PretrainedUnavailable(
            f"torchvision's ImageNet weights for {arch} are not in the torch hub cache ({cached}) and cannot "
            f"be downloaded from {weights.url} ({type(e).__name__}: {e}); train without --pretrained, or put "
            "the file there on a machine with network"
        ) from e
    finally:
        socket.setdefaulttimeout(old)


class TorchvisionGap(GapNet):
    """A torchvision trunk + GAP + affine head; subclasses build ``self.features``."""

    arch: str = ""

    def _finish(self, num_classes: int, in_channels: int, feat: int, bottleneck_dim: int) -> None:
        self.num_classes, self.in_channels = num_classes, in_channels
        self.bottleneck = make_bottleneck(feat, bottleneck_dim)
        self.fc = nn.Linear(bottleneck_dim or feat, num_classes)
        self.feature_dim = bottleneck_dim or feat

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_features(self, x: torch.Tensor) -> Features:
        conv = self.trunk(x)
        gap = conv.mean(dim=(2, 3))
        bott = self.bottleneck(gap) if self.bottleneck is not None else None
        return Features(conv=conv, gap=gap, bottleneck=bott, logits=self.fc(bott if bott is not None else gap))

    def cam_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return collapse_head(self.bottleneck, self.fc)

    @property
    def feature_layers(self) -> list[str]:
        return ["gap", "bottleneck", "logits"] if self.bottleneck is not None else ["gap", "logits"]

    def conv_blocks(self) -> list[nn.Module]:
        """The stem and the stages of ``features``, input side first (``freeze=k`` counts these)."""
        return list(self.features)

    def load_imagenet(self, state: dict[str, torch.Tensor], renames: dict[str, str]) -> list[str]:
        """Copy every fitting tensor of a torchvision state dict (keys renamed by prefix); returns
        the names of this model's tensors left as initialised."""
        mine = self.state_dict()
        copied = set()
        for key, value in state.items():
            name = next((new + key[len(old):] for old, new in renames.items() if key.startswith(old)), None)
            if name is None or name not in mine:
                continue
            if value.shape != mine[name].shape and value.ndim == 4 and mine[name].shape[1] == 1:
                value = value.sum(dim=1, keepdim=True)  # a grey stem: the RGB filters summed
            if value.shape == mine[name].shape:
                mine[name] = value
                copied.add(name)
        self.load_state_dict(mine)
        return [k for k in mine if k not in copied]


@register_model("resnet18")
class ResNet18Gap(TorchvisionGap):
    """torchvision ResNet-18 as a GAP network (see the module doc for the stems)."""

    arch = "resnet18"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, bottleneck_dim: int = 0, stem: str = "auto",
                 input_size: int = 32, pretrained: bool = False) -> None:  # fmt: skip
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18()
        self.stem = resolve_stem(stem, input_size)
        if self.stem == "small":
            first = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            stem_layers = [first, net.bn1, net.relu]
        else:
            first = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            stem_layers = [first, net.bn1, net.relu, net.maxpool]
        self.features = nn.Sequential(nn.Sequential(*stem_layers), net.layer1, net.layer2, net.layer3, net.layer4)
        self._finish(num_classes, in_channels, 512, bottleneck_dim)
        if pretrained:
            self.load_imagenet(imagenet_state(self.arch), _RESNET_RENAMES)


_RESNET_RENAMES = {"conv1.": "features.0.0.", "bn1.": "features.0.1.", "layer1.": "features.1.",
                   "layer2.": "features.2.", "layer3.": "features.3.", "layer4.": "features.4."}  # fmt: skip


@register_model("mobilenet_v3_small")
class MobileNetV3SmallGap(TorchvisionGap):
    """torchvision MobileNetV3-Small as a GAP network: its ``features`` (576 channels), GAP, linear."""

    arch = "mobilenet_v3_small"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, bottleneck_dim: int = 0, stem: str = "auto",
                 input_size: int = 32, pretrained: bool = False) -> None:  # fmt: skip
        super().__init__()
        from torchvision.models import mobilenet_v3_small

        net = mobilenet_v3_small()
        self.stem = resolve_stem(stem, input_size)
        old = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, 3, stride=1 if self.stem == "small" else 2,
                                       padding=1, bias=False)  # fmt: skip
        self.features = net.features
        self._finish(num_classes, in_channels, 576, bottleneck_dim)
        if pretrained:
            self.load_imagenet(imagenet_state(self.arch), {"features.": "features."})
