"""SVHN-GAP: the DANN paper's SVHN network (Ganin et al. 2016, JMLR, fig. 4) with a GAP head.

The paper's trunk is conv5x5-64, pool, conv5x5-64, pool, conv5x5-128, then two fully connected
layers (3072, 2048). Here the same three convolutions (BatchNorm before each ReLU) are followed
by global average pooling and the affine head every GapNet has, in place of the fully connected
layers. The capacity the colour 32x32 domains need comes from the width of the trunk (twice
LeNet-GAP's channels in the first two blocks, a third block of 128: three times its multiply-adds
at 32x32) and its receptive field of 29 pixels, a whole digit; ending in GAP keeps CAM exact, and
the Grad-CAM family applies at any layer.
"""

from __future__ import annotations

from vizcore.models import register_model
from vizcore.models.lenet_gap import LeNetGAP


@register_model("svhn_gap")
class SvhnGAP(LeNetGAP):
    """The DANN SVHN trunk (64, 64, 128 channels, 5x5, pooling after the first two), GAP and an affine head.

    Args: as :class:`~vizcore.models.lenet_gap.LeNetGAP`, whose defaults are replaced by this
    trunk's. A 32x32 input leaves an 8x8 map for the explanations.
    """

    def __init__(self, **kwargs) -> None:
        kwargs = {"widths": (64, 64, 128), "kernels": (5, 5, 5), "pools": (True, True, False), **kwargs}
        super().__init__(**kwargs)
