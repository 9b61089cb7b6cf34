"""What a configuration field accepts, declared where the field is: a :class:`Rule` (its kind, range,
the registry of its names, its command-line flag and help) in the field's metadata, made with
:func:`rule_field`. Each kind (:data:`KINDS`) says how a value is checked and how the expectation is
written in a message, so the library, the CLI and the Train page refuse in the same words."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
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


def rule_field(default: Any, kind: str, help: str = "", **rule: Any) -> Any:
    """A dataclass field with its :class:`Rule`; an empty dict default is made anew per config."""
    meta = {"rule": Rule(kind, help, **rule)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)
