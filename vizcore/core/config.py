"""Training configuration: a frozen dataclass saved beside every checkpoint.

Every field declares what it accepts where it is declared (a :class:`Rule` in the field's
metadata: its kind, range, the registry of its names, its flag and help), so a new field is one
edit. :meth:`TrainConfig.check_values` checks types and ranges (pure and cheap: no imports, no
files) and :meth:`TrainConfig.check_names` checks names against their registries, imported only
then (they bring torch, which ``python -m vizcore list`` and the first page do without).

The values are checked when a run is about to train (``vizcore.train.checks.check_config``), never when
a saved config is read back (:meth:`TrainConfig.from_dict`): a run trained under older, looser
rules must still open.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from vizcore.core.rules import MIN_SIDE, ConfigError, Rule, UnknownConfigName, rule_field


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rebuild a run from its folder alone.

    The defaults are the LeNet-GAP recipe measured in the README: BatchNorm, SGD with
    Nesterov momentum and a one-cycle learning-rate schedule. Each field's :class:`Rule` says
    what it accepts; :meth:`check_values` and :meth:`check_names` refuse anything else.
    """

    source: str = rule_field(
        "mnist", "domain", "labelled source: a data set name or folder:PATH", flag="--data"
    )
    target: str | None = rule_field(
        None, "domain", "unlabelled target domain for adaptation methods", optional=True
    )
    # checked against both domains' classes by vizcore.data.pairs.check_domain_pair, applied by align_target
    class_map: dict[str, str] = rule_field(
        {},
        "class_map",
        "target class name -> source class name, for a target whose class names differ on "
        "purpose; empty: both domains have the same classes",
    )
    method: str = rule_field("source_only", "name", "training method", names="vizcore.methods:METHODS")
    model: str = rule_field("lenet_gap", "name", "network", names="vizcore.models:MODELS")
    # the upper bound keeps a typo from allocating gigabytes: a 5x5 conv of 1,024 to 1,024 channels is 100 MB
    widths: tuple[int, ...] | None = rule_field(
        None,
        "widths",
        "channels of each conv block (None: the model's own)",
        low=1,
        high=1024,
        optional=True,
    )
    epochs: int = rule_field(
        10,
        "int",
        "passes over the training images",
        low=1,
        why="a run is complete only with trained weights",
    )
    batch_size: int = rule_field(
        128,
        "int",
        "training images per step",
        low=2,
        why="BatchNorm needs more than one image in a batch",
    )
    lr: float = rule_field(0.1, "float", "peak learning rate", low=0, low_open=True)
    optimizer: str = rule_field("sgd", "name", "optimiser", names="vizcore.train.optim:OPTIMIZERS")
    schedule: str = rule_field(
        "onecycle", "name", "learning-rate schedule", names="vizcore.train.optim:SCHEDULES"
    )
    momentum: float = rule_field(
        0.9,
        "float",
        "SGD momentum (Nesterov when > 0)",
        low=0,
        high=1,
        high_open=True,
        why="at 1 or more no gradient is ever forgotten",
    )
    weight_decay: float = rule_field(5e-4, "float", "L2 weight decay", low=0)
    seed: int = rule_field(
        0,
        "int",
        "seeds the initialisation, the batch order and the data",
        low=0,
        high=2**32,
        high_open=True,
        why="it seeds torch and numpy",
    )
    device: str = rule_field(
        "auto",
        "name",
        "auto (CUDA, else MPS, else CPU), cuda, mps or cpu",
        names="vizcore.core.device:DEVICE_CHOICES",
    )
    amp: bool = rule_field(True, "bool", "mixed precision, used on CUDA only", flag="--no-amp")
    trade_off: float = rule_field(1.0, "float", "lambda: weight of the transfer loss", low=0)
    method_params: dict[str, Any] = rule_field(
        {}, "params", "the method's own parameters (checked by the method)", flag="--param"
    )
    # the upper bound keeps a typo from allocating gigabytes (65,536 x 512 features is 134 MB)
    bottleneck_dim: int = rule_field(
        0, "int", ">0: linear adaptation layer before the classifier", low=0, high=65536
    )
    pretrained: bool = rule_field(
        False, "bool", "start a torchvision backbone from its ImageNet weights"
    )
    standardize: bool = rule_field(False, "bool", "per-image input standardisation inside the model")
    batch_norm: bool = rule_field(
        True,
        "bool",
        "BatchNorm after each convolution (LeNet-GAP; the CAM paper's had none)",
        flag="--no-batch-norm",
    )
    augment_shift: int = rule_field(
        0, "int", "random translation of training images by up to this many pixels", low=0
    )
    # a dark stroke on a light ground, which MNIST never has and MNIST-M's |patch - digit| blend often does
    augment_invert: float = rule_field(
        0.0,
        "float",
        "probability of showing a source image with inverted intensities (x -> 1 - x)",
        low=0,
        high=1,
    )
    augment_crop: bool = rule_field(
        False, "bool", "per-image random resized crop and horizontal flip (photo folders)"
    )
    precise_bn: bool = rule_field(
        False,
        "bool",
        "recompute BatchNorm statistics over the training batches before each evaluation (and so in "
        "every saved checkpoint) instead of keeping the running average of the last batches",
    )
    # AdaBN (Li et al. 2016): the saved model is the target's; its source accuracy is then read with
    # target statistics
    adabn: bool = rule_field(
        False,
        "bool",
        "recompute the BatchNorm statistics on the target training images alone (no labels) "
        "before each evaluation",
    )
    # Domain-specific BatchNorm (Chang et al. 2019): when the domains' intensities differ, one
    # shared BatchNorm normalises a mixture of both, and the target's features arrive off-centre
    domain_bn: bool = rule_field(
        False,
        "bool",
        "normalise source and target batches by their own BatchNorm statistics in training (two "
        "forward passes); each test split is read with its own domain's statistics and the saved "
        "model keeps the target's",
    )
    # information maximisation (Krause et al. 2010; the target loss of SHOT, Liang et al. 2020):
    # entropy minimisation alone collapsed onto a few classes (printed digits -> MNIST: 23%)
    target_im: float = rule_field(
        0.0,
        "float",
        "weight of information maximisation on the target predictions, added to the loss: the mean "
        "entropy of each prediction minus the entropy of the batch's mean prediction (confident "
        "predictions, every class kept in use)",
        low=0,
        high=100,
    )
    # so the network cannot memorise where the clutter of each training item lies
    fresh_layouts: bool = rule_field(
        False,
        "bool",
        "redraw a generated source (cluttered-mnist, mnist-m) every epoch with a new layout seed",
    )
    # the upper bound: a 1,024-pixel RGB image is already 12 MB of float32, four times the photo size
    input_shape: tuple[int, int, int] | None = rule_field(
        None,
        "shape",
        "(C, H, W) both domains are brought to (None: the domains' own)",
        low=MIN_SIDE,
        high=1024,
        optional=True,
    )
    # with fewer images than batch_size an epoch is one batch of them all (vizcore.train.trainer._batches),
    # which BatchNorm needs two images in
    train_limit: int | None = rule_field(
        None,
        "int",
        "use only this many training images (quick runs)",
        low=2,
        optional=True,
        why="one batch of them must hold two images for BatchNorm",
    )
    test_limit: int | None = rule_field(
        None, "int", "use only this many test images", low=1, optional=True
    )
    data_root: str | None = rule_field(None, "text", "folder with torchvision data sets", optional=True)
    download: bool = rule_field(False, "bool", "let torchvision download missing data sets")
    # vizcore.data.feeds.DATA_PATHS; workers: None is vizcore.data.feeds.default_workers
    data_path: str = rule_field(
        "auto",
        "name",
        "auto streams an image folder too big for memory through DataLoader workers, memory and "
        "stream force a path",
        names="vizcore.data.feeds:DATA_PATHS",
    )
    workers: int | None = rule_field(
        None,
        "int",
        "DataLoader workers of the streaming path (None: automatic)",
        low=0,
        optional=True,
    )
    # runs from runs (vizcore.train.lineage.resolve_lineage checks them before a run folder exists)
    init_from: str | None = rule_field(
        None, "run", "parent run id: training starts from its weights", optional=True
    )
    # no gradient, BatchNorm in eval mode, weights and statistics bit-identical
    freeze: int | list[str] = rule_field(
        0,
        "freeze",
        "the first k conv blocks, or layers by name (features.0, bottleneck, ...), are frozen",
    )
    teacher: str | None = rule_field(
        None, "run", "run id of a teacher (knowledge distillation)", optional=True
    )
    # the target test split stays held out
    target_labels_per_class: int | None = rule_field(
        None,
        "int",
        "K labelled target training images per class (drawn with the seed) are the training set "
        "instead of the source",
        low=1,
        optional=True,
    )
    log_every: int = rule_field(10, "int", "steps between progress events", low=1, flag=None)
    # many short epochs (a few labelled images) would otherwise spend their time evaluating
    eval_every: int = rule_field(
        1,
        "int",
        "epochs between evaluations, each of which keeps a checkpoint (the last epoch always has one)",
        low=1,
    )
    name: str = rule_field("", "text", "free label shown in run lists")
    # a folder registered on the "Your data" page trains as folder:PATH and is shown by its name;
    # kept in the run, so the run shows it wherever it is opened (vizcore.store.datasets)
    data_names: dict[str, str] = rule_field(
        {}, "names", "shown name of a folder:PATH domain of this run, e.g. {'folder:/data/cats': 'cats'}", flag=None
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from JSON; unknown keys are rejected so a typo is not silently ignored.

        The values are not checked here: this reads runs back, and a run trained before a rule
        existed must still open (:meth:`check_values` is for a run about to train).
        """
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

    # -- checks --------------------------------------------------------------------------------
    @classmethod
    def rules(cls) -> dict[str, Rule]:
        """Every field's :class:`Rule`, by field name, in declaration order."""
        return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls)}

    @classmethod
    def flag(cls, name: str) -> str | None:
        """The command-line flag of field ``name`` (None: the command line does not set it)."""
        flag = cls.rules()[name].flag
        return "--" + name.replace("_", "-") if flag == "" else flag

    def field_text(self, name: str) -> str:
        """Field ``name``, its value and its flag, for a message: "lr = nan (--lr)"."""
        flag = self.flag(name)
        return f"{name} = {getattr(self, name)!r}" + (f" ({flag})" if flag else "")

    def must_be(self, name: str, expected: str, why: str = "") -> ConfigError:
        """The error for field ``name``: what it must be, the value it has, its flag, and why."""
        flag = self.flag(name)
        got = f"got {getattr(self, name)!r}" + (f" ({flag})" if flag else "")
        return ConfigError(f"{name} must be {expected}, {got}" + (f"; {why}" if why else ""))

    def check_values(self) -> None:
        """Refuse a field of the wrong type or out of its range (its :class:`Rule`).

        Pure and cheap: no imports, no files, no registries (:meth:`check_names` reads those).

        Raises:
            ConfigError: the first bad field, in one line naming it, its flag, the value and what
                is valid.
        """
        for name, rule in self.rules().items():
            if not rule.accepts(getattr(self, name)):
                raise self.must_be(name, rule.expected(), rule.why)

    def check_names(self) -> None:
        """Refuse a name that is not in its field's registry (imported now: they bring torch).

        Raises:
            UnknownConfigName: the message names the field, its flag, the value and the valid names.
        """
        for name, rule in self.rules().items():
            value = getattr(self, name)
            if rule.names and value is not None and value not in (valid := rule.valid_names()):
                flag = self.flag(name)
                raise UnknownConfigName(
                    f"unknown {name} {value!r}"
                    + (f" ({flag})" if flag else "")
                    + f"; choose one of {', '.join(valid)}"
                )

    def shown(self, domain: str | None) -> str:
        """The name a page shows for ``domain`` (the source or target): a registered folder's own
        name, else ``domain`` itself ("—" for none)."""
        return "—" if domain is None else self.data_names.get(domain, domain)

    @property
    def label(self) -> str:
        """Short human description for lists and legends."""
        dom = self.shown(self.source) if not self.target else f"{self.shown(self.source)}→{self.shown(self.target)}"
        # what tells apart the runs of a fine-tuning grid: the labelled budget and what was frozen
        extra = f" · K = {self.target_labels_per_class}" if self.target_labels_per_class else ""
        if self.freeze:
            extra += f" · frozen {self.freeze if isinstance(self.freeze, int) else ', '.join(self.freeze)}"
        return self.name or f"{self.method} · {self.model} · {dom}{extra} · seed {self.seed}"
