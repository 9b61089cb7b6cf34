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
import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from vizcore.core.registry import UnknownNameError


class ConfigError(ValueError):
    """A config value, or a combination of values, that cannot train. The message is one line
    that names the field and its command-line flag, the value and what would be valid."""


class UnknownConfigName(ConfigError, UnknownNameError):
    """A name that no registry holds: a bad value and, for a caller that catches lookups, an
    unknown name."""


# the LeNet-GAP networks pool twice: a side under 4 pixels leaves no feature map to pool
MIN_SIDE = 4


@dataclass(frozen=True)
class Rule:
    """What one :class:`TrainConfig` field accepts; the field's ``metadata["rule"]``.

    Attributes:
        kind: a key of :data:`KINDS`, how the value is checked.
        help: what the field does (a flag's or a widget's help).
        low, high: the smallest and largest number allowed (None: unbounded); for "shape" the
            bounds of H and W, for "widths" those of each channel count.
        low_open, high_open: the bound itself is refused (``lr > 0``, ``momentum < 1``).
        optional: None is valid too (not set, or automatic).
        names: ``"module:NAME"`` of the registry (a Registry, dict or tuple) of the valid names,
            imported by :meth:`TrainConfig.check_names` only.
        flag: the command-line flag when it is not ``--`` and the field name with dashes; None
            for a field the command line does not set.
        why: the reason behind a bound, said when a value is refused.
    """

    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    names: str = ""
    flag: str | None = ""
    why: str = ""

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return KINDS[self.kind].accepts(self, value)

    def expected(self) -> str:
        """What is valid, in words: "a whole number >= 2", "None or a finite number > 0"."""
        text = KINDS[self.kind].describe(self)
        return f"None or {text}" if self.optional else text

    def in_range(self, number: float) -> bool:
        low_ok = self.low is None or (number > self.low if self.low_open else number >= self.low)
        high_ok = self.high is None or (
            number < self.high if self.high_open else number <= self.high
        )
        return low_ok and high_ok

    def range_text(self) -> str:
        """The bounds in words: ">= 2", "> 0", "in [0, 1)", "" when unbounded."""
        if self.low is not None and self.high is not None:
            return (
                f"in {'(' if self.low_open else '['}{_num(self.low)}, "
                f"{_num(self.high)}{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return ""

    def valid_names(self) -> list[str]:
        """The names of the registry ``names`` points at (imported now)."""
        module, _, attr = self.names.partition(":")
        return [str(n) for n in getattr(importlib.import_module(module), attr)]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(
        v, bool
    )  # True is an int to Python, not to a person


def _is_finite(v: Any) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def _is_seq(v: Any) -> bool:
    return isinstance(v, tuple | list)  # JSON gives lists, the dataclass holds tuples


def _sides(r: Rule) -> str:
    return f"H, W {r.range_text()}" if r.range_text() else "H, W"


class Kind(NamedTuple):
    """How one kind of field is checked and described."""

    accepts: Callable[[Rule, Any], bool]
    describe: Callable[[Rule], str]


KINDS: dict[str, Kind] = {
    "int": Kind(
        lambda r, v: _is_int(v) and r.in_range(v),
        lambda r: f"a whole number {r.range_text()}".rstrip(),
    ),
    "float": Kind(
        lambda r, v: _is_finite(v) and r.in_range(v),
        lambda r: f"a finite number {r.range_text()}".rstrip(),
    ),
    "bool": Kind(lambda r, v: isinstance(v, bool), lambda r: "true or false"),
    "text": Kind(lambda r, v: isinstance(v, str), lambda r: "text"),
    # a registry's names are checked by check_names; here only that it is a name at all
    "name": Kind(lambda r, v: isinstance(v, str) and bool(v.strip()), lambda r: "a name"),
    "domain": Kind(
        lambda r, v: isinstance(v, str) and bool(v.strip()),
        lambda r: "a data set name or folder:PATH",
    ),
    "run": Kind(lambda r, v: isinstance(v, str) and bool(v.strip()), lambda r: "a run id"),
    "shape": Kind(
        lambda r, v: (
            _is_seq(v)
            and len(v) == 3
            and all(map(_is_int, v))
            and v[0] in (1, 3)
            and all(r.in_range(s) for s in v[1:])
        ),
        lambda r: f"(C, H, W) with C 1 (grey) or 3 (RGB) and {_sides(r)}",
    ),
    "widths": Kind(
        lambda r, v: _is_seq(v) and len(v) > 0 and all(_is_int(w) and r.in_range(w) for w in v),
        lambda r: (
            f"one channel count per conv block, each a whole number {r.range_text()}, like (8, 16)"
        ),
    ),
    "freeze": Kind(
        lambda r, v: (
            (_is_int(v) and v >= 0)
            or (_is_seq(v) and all(isinstance(n, str) and n.strip() for n in v))
        ),
        lambda r: "a number of conv blocks >= 0 or a list of layer names",
    ),
    "class_map": Kind(
        lambda r, v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and isinstance(s, str) for k, s in v.items())
        ),
        lambda r: "a mapping of target class names to source class names",
    ),
    "names": Kind(
        lambda r, v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(s, str) and s.strip()
                                                 for k, s in v.items()),
        lambda r: "a mapping of domain names to the names shown for them",
    ),
    "params": Kind(
        lambda r, v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
        lambda r: "a mapping of parameter names to values",
    ),
}


def _field(default: Any, kind: str, help: str = "", **rule: Any) -> Any:
    """A dataclass field with its :class:`Rule`; an empty dict default is made anew per config."""
    meta = {"rule": Rule(kind, help, **rule)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to rebuild a run from its folder alone.

    The defaults are the LeNet-GAP recipe measured in the README: BatchNorm, SGD with
    Nesterov momentum and a one-cycle learning-rate schedule. Each field's :class:`Rule` says
    what it accepts; :meth:`check_values` and :meth:`check_names` refuse anything else.
    """

    source: str = _field(
        "mnist", "domain", "labelled source: a data set name or folder:PATH", flag="--data"
    )
    target: str | None = _field(
        None, "domain", "unlabelled target domain for adaptation methods", optional=True
    )
    # checked against both domains' classes by vizcore.data.pairs.check_domain_pair, applied by align_target
    class_map: dict[str, str] = _field(
        {},
        "class_map",
        "target class name -> source class name, for a target whose class names differ on "
        "purpose; empty: both domains have the same classes",
    )
    method: str = _field("source_only", "name", "training method", names="vizcore.methods:METHODS")
    model: str = _field("lenet_gap", "name", "network", names="vizcore.models:MODELS")
    # the upper bound keeps a typo from allocating gigabytes: a 5x5 conv of 1,024 to 1,024 channels is 100 MB
    widths: tuple[int, ...] | None = _field(
        None,
        "widths",
        "channels of each conv block (None: the model's own)",
        low=1,
        high=1024,
        optional=True,
    )
    epochs: int = _field(
        10,
        "int",
        "passes over the training images",
        low=1,
        why="a run is complete only with trained weights",
    )
    batch_size: int = _field(
        128,
        "int",
        "training images per step",
        low=2,
        why="BatchNorm needs more than one image in a batch",
    )
    lr: float = _field(0.1, "float", "peak learning rate", low=0, low_open=True)
    optimizer: str = _field("sgd", "name", "optimiser", names="vizcore.train.optim:OPTIMIZERS")
    schedule: str = _field(
        "onecycle", "name", "learning-rate schedule", names="vizcore.train.optim:SCHEDULES"
    )
    momentum: float = _field(
        0.9,
        "float",
        "SGD momentum (Nesterov when > 0)",
        low=0,
        high=1,
        high_open=True,
        why="at 1 or more no gradient is ever forgotten",
    )
    weight_decay: float = _field(5e-4, "float", "L2 weight decay", low=0)
    seed: int = _field(
        0,
        "int",
        "seeds the initialisation, the batch order and the data",
        low=0,
        high=2**32,
        high_open=True,
        why="it seeds torch and numpy",
    )
    device: str = _field(
        "auto",
        "name",
        "auto (CUDA, else MPS, else CPU), cuda, mps or cpu",
        names="vizcore.core.device:DEVICE_CHOICES",
    )
    amp: bool = _field(True, "bool", "mixed precision, used on CUDA only", flag="--no-amp")
    trade_off: float = _field(1.0, "float", "lambda: weight of the transfer loss", low=0)
    method_params: dict[str, Any] = _field(
        {}, "params", "the method's own parameters (checked by the method)", flag="--param"
    )
    # the upper bound keeps a typo from allocating gigabytes (65,536 x 512 features is 134 MB)
    bottleneck_dim: int = _field(
        0, "int", ">0: linear adaptation layer before the classifier", low=0, high=65536
    )
    pretrained: bool = _field(
        False, "bool", "start a torchvision backbone from its ImageNet weights"
    )
    standardize: bool = _field(False, "bool", "per-image input standardisation inside the model")
    batch_norm: bool = _field(
        True,
        "bool",
        "BatchNorm after each convolution (LeNet-GAP; the CAM paper's had none)",
        flag="--no-batch-norm",
    )
    augment_shift: int = _field(
        0, "int", "random translation of training images by up to this many pixels", low=0
    )
    # a dark stroke on a light ground, which MNIST never has and MNIST-M's |patch - digit| blend often does
    augment_invert: float = _field(
        0.0,
        "float",
        "probability of showing a source image with inverted intensities (x -> 1 - x)",
        low=0,
        high=1,
    )
    augment_crop: bool = _field(
        False, "bool", "per-image random resized crop and horizontal flip (photo folders)"
    )
    precise_bn: bool = _field(
        False,
        "bool",
        "recompute BatchNorm statistics over the training batches before each evaluation (and so in "
        "every saved checkpoint) instead of keeping the running average of the last batches",
    )
    # AdaBN (Li et al. 2016): the saved model is the target's; its source accuracy is then read with
    # target statistics
    adabn: bool = _field(
        False,
        "bool",
        "recompute the BatchNorm statistics on the target training images alone (no labels) "
        "before each evaluation",
    )
    # so the network cannot memorise where the clutter of each training item lies
    fresh_layouts: bool = _field(
        False,
        "bool",
        "redraw a generated source (cluttered-mnist, mnist-m) every epoch with a new layout seed",
    )
    # the upper bound: a 1,024-pixel RGB image is already 12 MB of float32, four times the photo size
    input_shape: tuple[int, int, int] | None = _field(
        None,
        "shape",
        "(C, H, W) both domains are brought to (None: the domains' own)",
        low=MIN_SIDE,
        high=1024,
        optional=True,
    )
    # with fewer images than batch_size an epoch is one batch of them all (vizcore.train.loop._batches),
    # which BatchNorm needs two images in
    train_limit: int | None = _field(
        None,
        "int",
        "use only this many training images (quick runs)",
        low=2,
        optional=True,
        why="one batch of them must hold two images for BatchNorm",
    )
    test_limit: int | None = _field(
        None, "int", "use only this many test images", low=1, optional=True
    )
    data_root: str | None = _field(None, "text", "folder with torchvision data sets", optional=True)
    download: bool = _field(False, "bool", "let torchvision download missing data sets")
    # vizcore.data.feeds.DATA_PATHS; workers: None is vizcore.data.feeds.default_workers
    data_path: str = _field(
        "auto",
        "name",
        "auto streams an image folder too big for memory through DataLoader workers, memory and "
        "stream force a path",
        names="vizcore.data.feeds:DATA_PATHS",
    )
    workers: int | None = _field(
        None,
        "int",
        "DataLoader workers of the streaming path (None: automatic)",
        low=0,
        optional=True,
    )
    # runs from runs (vizcore.train.lineage.resolve_lineage checks them before a run folder exists)
    init_from: str | None = _field(
        None, "run", "parent run id: training starts from its weights", optional=True
    )
    # no gradient, BatchNorm in eval mode, weights and statistics bit-identical
    freeze: int | list[str] = _field(
        0,
        "freeze",
        "the first k conv blocks, or layers by name (features.0, bottleneck, ...), are frozen",
    )
    teacher: str | None = _field(
        None, "run", "run id of a teacher (knowledge distillation)", optional=True
    )
    # the target test split stays held out
    target_labels_per_class: int | None = _field(
        None,
        "int",
        "K labelled target training images per class (drawn with the seed) are the training set "
        "instead of the source",
        low=1,
        optional=True,
    )
    log_every: int = _field(10, "int", "steps between progress events", low=1, flag=None)
    # many short epochs (a few labelled images) would otherwise spend their time evaluating
    eval_every: int = _field(
        1,
        "int",
        "epochs between evaluations, each of which keeps a checkpoint (the last epoch always has one)",
        low=1,
    )
    name: str = _field("", "text", "free label shown in run lists")
    # a folder registered on the "Your data" page trains as folder:PATH and is shown by its name;
    # kept in the run, so the run shows it wherever it is opened (vizcore.store.datasets)
    data_names: dict[str, str] = _field(
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
