"""Fine-tuning: start from a trained run, keep its first layers frozen, retrain the rest on a
small labelled set of the new domain (``init_from``, ``freeze``, ``target_labels_per_class``).

The step is plain cross-entropy; what makes it fine-tuning is the run's lineage: the weights
come from the parent, the frozen layers stay bit-identical (vizcore.methods.freeze) and the
training images are K labelled target images per class. Trained the same way with no parent
(``source_only`` with the same ``target_labels_per_class``) is the "from scratch" baseline.
"""

from __future__ import annotations

from vizcore.methods import register_method
from vizcore.methods.base import Method


@register_method("finetune")
class FineTune(Method):
    uses_target = False
    label = "Fine-tune"
    description = (
        "Starts from a trained run's weights, keeps its first layers frozen and retrains the rest on "
        "K labelled target images per class."
    )
    requires = ("init_from", "target_labels_per_class")
