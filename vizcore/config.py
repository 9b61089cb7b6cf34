"""Training configuration: a frozen dataclass saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rebuild a run from its folder alone.

    The defaults are the LeNet-GAP recipe measured in the README: BatchNorm, SGD with
    Nesterov momentum and a one-cycle learning-rate schedule.
    """

    source: str = "mnist"
    target: str | None = None  # unlabelled target domain for adaptation methods
    # target class name -> source class name, for a target whose class names differ on purpose
    # (vizcore.data.check_domain_pair / align_target); empty: both domains have the same classes
    class_map: dict[str, str] = field(default_factory=dict)
    method: str = "source_only"
    model: str = "lenet_gap"
    widths: tuple[int, ...] | None = None  # channels of each conv block (None: the model's own)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    schedule: str = "onecycle"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used on CUDA only
    trade_off: float = 1.0  # lambda: weight of the transfer loss
    method_params: dict[str, Any] = field(default_factory=dict)
    bottleneck_dim: int = 0  # >0: linear adaptation layer before the classifier
    pretrained: bool = False  # start a torchvision backbone from its ImageNet weights
    standardize: bool = False  # per-image input standardisation inside the model
    batch_norm: bool = True  # BatchNorm after each convolution (LeNet-GAP; the CAM paper's had none)
    augment_shift: int = 0  # random translation of training images by up to this many pixels
    # probability of showing a source image with inverted intensities (x -> 1 - x): a dark stroke on
    # a light ground, which MNIST never has and MNIST-M's |patch - digit| blend often does
    augment_invert: float = 0.0
    # per-image random resized crop and horizontal flip of the training images (photo folders)
    augment_crop: bool = False
    # recompute BatchNorm statistics over the training batches before each evaluation (and so in
    # every saved checkpoint) instead of keeping the running average of the last batches
    precise_bn: bool = False
    # AdaBN (Li et al. 2016): before each evaluation the BatchNorm statistics are recomputed on the
    # target training images alone (no labels), so the saved model is the target's; its source
    # accuracy is then read with target statistics
    adabn: bool = False
    # a generated source (cluttered-mnist, mnist-m) is redrawn every epoch with a new layout seed,
    # so the network cannot memorise where the clutter of each training item lies
    fresh_layouts: bool = False
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) both domains are brought to
    train_limit: int | None = None  # use only this many training images (quick runs)
    test_limit: int | None = None
    data_root: str | None = None
    download: bool = False
    # "auto" streams an image folder too big for memory through DataLoader workers, "memory" and
    # "stream" force a path (vizcore.feeds.DATA_PATHS); workers: None is vizcore.feeds.default_workers
    data_path: str = "auto"
    workers: int | None = None
    # runs from runs (vizcore.train.resolve_lineage checks them before a run folder exists)
    init_from: str | None = None  # parent run id: training starts from its weights
    # the first k conv blocks, or layers by name ("features.0", "bottleneck", ...), are frozen:
    # no gradient, BatchNorm in eval mode, weights and statistics bit-identical
    freeze: int | list[str] = 0
    teacher: str | None = None  # run id of a teacher (knowledge distillation)
    # K labelled target training images per class (drawn with the seed) are the training set
    # instead of the source; the target test split stays held out
    target_labels_per_class: int | None = None
    log_every: int = 10  # steps between progress events
    # epochs between evaluations, each of which keeps a checkpoint (the last epoch always has one):
    # many short epochs (a few labelled images) would otherwise spend their time evaluating
    eval_every: int = 1
    name: str = ""  # free label shown in run lists

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from JSON; unknown keys are rejected so a typo is not silently ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        d = dict(d)
        for key in ("input_shape", "widths"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """Short human description for lists and legends."""
        dom = self.source if not self.target else f"{self.source}→{self.target}"
        # what tells apart the runs of a fine-tuning grid: the labelled budget and what was frozen
        extra = f" · K = {self.target_labels_per_class}" if self.target_labels_per_class else ""
        if self.freeze:
            extra += f" · frozen {self.freeze if isinstance(self.freeze, int) else ', '.join(self.freeze)}"
        return self.name or f"{self.method} · {self.model} · {dom}{extra} · seed {self.seed}"
