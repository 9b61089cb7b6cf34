"""Knowledge distillation (Hinton et al. 2015): a student learns from a teacher's softened outputs.

``loss = alpha * T² * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)``, with
``t`` the teacher's logits, ``s`` the student's and ``T`` the temperature; the T² keeps the soft
term's gradients at the scale of the hard one as T changes. The teacher is another run
(``TrainConfig.teacher``), kept in eval mode without gradients; the student is the run's own
architecture (e.g. ``--model lenet_gap --widths 8,16``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Lineage, Method, batch_accuracy
from vizcore.models.base import GapNet


def kd_loss(
    student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, temperature: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hinton's distillation loss; returns (total, soft term T²·KL, hard term CE).

    Shape:
        student, teacher: (B, K) logits; y: (B,) labels.
    """
    t = float(temperature)
    soft = (
        t
        * t
        * F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
    )
    hard = F.cross_entropy(student, y)
    return alpha * soft + (1.0 - alpha) * hard, soft, hard


@register_method("distill")
class Distill(Method):
    uses_target = False
    label = "Knowledge distillation"
    description = (
        "Trains a (smaller) student on a teacher run's temperature-softened outputs, mixed with the "
        "hard labels."
    )
    params = (
        Param("temperature", "Temperature T", "float", 4.0, low=1.0, high=50.0, step=0.5,
              help="Softens both output distributions; higher shows more of the teacher's "
              "'dark knowledge' about which wrong classes are close."),
        Param("alpha", "Soft-target weight α", "float", 0.9, low=0.0, high=1.0, step=0.05,
              help="Weight of the T²·KL term; 1 - α weighs the cross-entropy on the hard labels."),
    )  # fmt: skip
    extra_metrics = ("kd_loss", "teacher_agreement")
    requires = ("teacher",)

    def setup(self, model: GapNet, lineage: Lineage) -> None:
        if lineage.teacher is None:
            raise ValueError("distillation needs a teacher run")
        # a plain attribute, not a submodule: never trained, never put back in training mode
        object.__setattr__(self, "teacher", lineage.teacher.eval())

    def loss(
        self,
        model: GapNet,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xt: torch.Tensor | None,
        progress: float,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        with torch.no_grad():
            t_logits = self.teacher(xs)
        s_logits = model(xs)
        p = self.hparams
        total, soft, hard = kd_loss(
            s_logits.float(), t_logits.float(), ys, p["temperature"], p["alpha"]
        )
        agree = (s_logits.argmax(1) == t_logits.argmax(1)).float().mean()
        return total, {"loss": total, "kd_loss": soft, "cls_loss": hard, "train_acc": batch_accuracy(s_logits, ys),
                       "teacher_agreement": agree}  # fmt: skip
