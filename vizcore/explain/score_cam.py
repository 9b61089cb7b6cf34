"""Score-CAM (Wang et al. 2020), batched across channels and images: each channel of the target
layer, upsampled to the input and min-max normalised, masks the image, and the class score of
that masked image is the channel's weight. Convolutions and BatchNorm are folded in an inference
copy of the model, so the many masked forward passes cost as little as they can."""

from __future__ import annotations

import copy
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.explain.layers import MapFn, layer_activations


def inference_copy(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode model for many forward passes without gradients: every Conv2d
    followed by a BatchNorm2d inside a Sequential folded into one conv, and channels-last
    weights, the layout oneDNN's fast CPU convolutions want. Measured on the cluttered demo run's
    LeNet-GAP: half the time of the model as it is, with logits equal to ~1e-5 (float rounding
    of the folded weights); a model in training mode is copied unfolded (its BN uses batch
    statistics).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model)
    if not fast.training:
        for seq in [m for m in fast.modules() if isinstance(m, nn.Sequential)]:
            for first, second in pairwise(list(seq._modules)):
                conv, bn = seq._modules[first], seq._modules[second]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    seq._modules[first], seq._modules[second] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return fast.to(memory_format=torch.channels_last)


def masked_scores(
    model: nn.Module, x: torch.Tensor, layer: str, batch_size: int = 2048, align_corners: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score-CAM's forward passes: the target layer's activations A and the scores of *every*
    class for the image masked by each of its channels, H^k = s(Up(A^k)) (see :func:`score_cam`).

    Cost: 1 pass of the images for A, then K masked passes per image (K channels). The masked
    copies of all channels of all images are one stream cut into chunks of ``batch_size`` (a
    chunk spans channels and images), so a few large batches replace many small ones, through
    :func:`inference_copy` of the model. Every class's score comes out of the same pass, so the
    maps of all classes cost no more than one.

    Shape:
        x: (B, C, H, W). Returns A (B, K, h, w) and scores (B, K, classes), both float32.
    """
    a = layer_activations(model, x, layer)  # (B, K, h, w)
    b, k = a.shape[:2]
    low = a.flatten(0, 1)[:, None]  # (B*K, 1, h, w): one mask per channel and image
    image = torch.arange(b, device=x.device).repeat_interleave(k)  # (B*K,) the image of each mask
    parts, fast = [], inference_copy(model)
    with torch.no_grad():
        for s in range(0, b * k, batch_size):
            part = slice(s, s + batch_size)
            up = F.interpolate(low[part], size=x.shape[-2:], mode="bilinear", align_corners=align_corners)
            lo, hi = up.amin(dim=(2, 3), keepdim=True), up.amax(dim=(2, 3), keepdim=True)
            masks = torch.where(hi > lo, (up - lo) / torch.where(hi > lo, hi - lo, 1.0), 0.0)
            masked = (x[image[part]] * masks.to(x.dtype)).contiguous(memory_format=torch.channels_last)
            parts.append(fast(masked).float())  # (n, classes)
    return a, torch.cat(parts).view(b, k, -1)


def score_cam_weighting(a: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Score-CAM's map from the activations and the masked scores of the explained class.

    Shape:
        a: (B, K, h, w); scores: (B, K). Returns (B, h, w).
    """
    alpha = scores.softmax(dim=1)  # (B, K)
    return F.relu(torch.einsum("bk,bkhw->bhw", alpha, a))


def score_cam(batch_size: int = 2048, align_corners: bool = False) -> MapFn:
    r"""Score-CAM (Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for
    Convolutional Neural Networks", CVPR workshops; arXiv:1910.01279) as a MapFn:

    .. math::

        L^c = ReLU\Big(\sum_k \alpha^c_k A^k\Big), \qquad
        \alpha^c = softmax_k\big(S^c(X \circ H^k) - S^c(X_b)\big), \qquad
        H^k = s(Up(A^k)),

    with Up the upsampling of a map to the input and s the min-max normalisation
    s(M) = (M - min M) / (max M - min M): each channel, upsampled *then* normalised, masks the
    image, and the class score of the masked image weighs the channel (the paper's Algorithm 1).
    The softmax over channels makes the baseline X_b's score cancel, so none is computed. A
    constant channel (max = min: 0/0) masks the whole image out (H^k = 0), as pytorch-grad-cam
    does.

    Up is bilinear with ``align_corners=False``, as vizcore draws every map (the paper does not say
    which); pytorch-grad-cam upsamples with ``align_corners=True`` (the tests check that the two
    agree exactly under that setting). torchcam 0.5.0 normalises each channel at the layer's
    resolution and then upsamples it, which the paper does not.

    A map costs K + 1 forward passes per image (K channels of the target layer: one masked pass
    each, plus one for the activations), run as chunks of ``batch_size`` masked images across
    channels and images (:func:`masked_scores`).
    """

    def maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
        a, scores = masked_scores(model, x, layer, batch_size, align_corners)
        return score_cam_weighting(a, scores.gather(2, cls[:, None, None].expand(-1, a.shape[1], 1))[..., 0])

    return maps


def score_cam_all_classes(
    model: nn.Module, x: torch.Tensor, layer: str, batch_size: int = 2048, align_corners: bool = False
) -> torch.Tensor:
    """Score-CAM maps of every class from one set of masked passes (K + 1 per image, as one map).

    Shape:
        x: (B, C, H, W). Returns (B, classes, h, w).
    """
    a, scores = masked_scores(model, x, layer, batch_size, align_corners)  # scores (B, K, classes)
    return torch.stack([score_cam_weighting(a, scores[..., c]) for c in range(scores.shape[2])], dim=1)
