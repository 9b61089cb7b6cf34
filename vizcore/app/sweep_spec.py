"""A sweep's specification: what every trial shares, what varies, and the checks that refuse a bad
one in one line before any run or study exists (the training checks, at every grid point and at
both ends of every searched range)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from vizcore.core.config import TrainConfig
from vizcore.core.errors import DataUnavailable
from vizcore.core.rules import ConfigError

SWEEPABLE = ("int", "float", "bool", "name", "domain", "text")  # field kinds a sweep may vary
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class SweepError(ConfigError):
    """A sweep specification that cannot run, said in one line before any run or study exists."""


@dataclass(frozen=True)
class Range:
    """One searched number: ``low`` to ``high``, on a log scale if ``log``; ``kind`` int or float."""

    low: float
    high: float
    log: bool = False
    kind: str = "float"


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: the fields every trial shares (``base``) and what varies.

    A grid (``grid``: each field's values, the trials are their product) or a search
    (``ranges`` and ``choices``, ``trials`` of them, proposed by TPE). The ``objective`` is a
    validator (higher is better); it never reads a target label.
    """

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    trials: int = 0
    objective: str = "source_acc"
    prune: bool = False
    validators: bool = False
    seed: int = 0
    recipe: bool = False

    @property
    def is_grid(self) -> bool:
        return bool(self.grid)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point, in the order of the fields and their values."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def config(self, point: dict[str, Any]) -> TrainConfig:
        """The trial's config; with ``recipe``, the method's recommended config for the shift
        (:func:`vizcore.methods.recipes.recommended_config`) under the set and swept fields."""
        fields = {**self.base, **point}
        if not self.recipe:
            return TrainConfig.from_dict(fields)
        from vizcore.methods.recipes import recommended_config

        method, source = fields.pop("method", "source_only"), fields.pop("source", "mnist")
        return recommended_config(method, source, fields.pop("target", None), **fields)

    def to_json(self) -> str:
        """The specification as the study records it (two workers must agree on it)."""
        d = dataclasses.asdict(self)
        return json.dumps({k: v for k, v in d.items() if k not in ("prune", "validators")}, sort_keys=True)


def _field_kind(key: str, swept: bool) -> str:
    rules = TrainConfig.rules()
    if key not in rules:
        raise SweepError(f"unknown sweep parameter {key!r}; valid parameters: {', '.join(rules)}")
    kind = rules[key].kind
    if swept and kind not in SWEEPABLE:
        raise SweepError(f"{key} cannot be swept (a {kind}); set it once with --set {key}=...")
    return kind


def _check_config(config: TrainConfig, where: str) -> None:
    from vizcore.train.checks import check_config

    try:
        check_config(config)
    except (ValueError, LookupError, DataUnavailable) as e:
        raise SweepError(f"{where}: {e}") from None


def _trial_config(spec: SweepSpec, point: dict[str, Any]) -> TrainConfig:
    try:
        return spec.config(point)
    except (TypeError, ValueError, LookupError) as e:
        raise SweepError(f"{point}: {e}") from None


def check_spec(spec: SweepSpec) -> None:
    """Refuse a specification that cannot run, before any run or study exists.

    Every grid point and both ends of every searched range are checked with the training checks
    (:func:`vizcore.train.checks.check_config`), so a sweep never starts a run that would be refused.

    Raises:
        SweepError: one line naming the parameter, the value and what would be valid.
    """
    from vizcore.metrics.validators import VALIDATORS

    if not NAME.fullmatch(spec.name):
        raise SweepError(f"sweep name {spec.name!r} must be letters, digits, '-' or '_' (at most 64)")
    for key in spec.base:
        _field_kind(key, swept=False)
    swept = [*spec.grid, *spec.ranges, *spec.choices]
    for key in swept:
        _field_kind(key, swept=True)
        if key in spec.base:
            raise SweepError(f"{key} is both set and swept; give it once")
    if spec.grid and (spec.ranges or spec.choices):
        raise SweepError("a sweep is a grid (--grid) or a search (--search), not both")
    if not swept:
        raise SweepError("nothing to sweep: give --grid KEY=V1,V2,... or --search KEY=LOW:HIGH")
    if empty := [k for k, v in {**spec.grid, **spec.choices}.items() if not v]:
        raise SweepError(f"the grid of {empty[0]} is empty; give at least one value, like {empty[0]}=1,2")
    if not spec.grid and spec.trials < 1:
        raise SweepError(f"a search needs --trials of at least 1, got {spec.trials}")
    if spec.objective not in VALIDATORS:
        raise SweepError(f"unknown objective {spec.objective!r}; choose a validator: {', '.join(VALIDATORS)}")
    for key, r in spec.ranges.items():
        if r.kind not in ("int", "float") or _field_kind(key, True) != r.kind:
            raise SweepError(f"{key} is not a number to search over; give its values: --search {key}=A,B")
        if not r.low < r.high or (r.log and r.low <= 0):
            raise SweepError(f"{key}: the range {r.low:g}:{r.high:g} must have low < high (and low > 0 for log)")
    points = spec.points() if spec.grid else _search_corners(spec)
    for point in points:
        config = _trial_config(spec, point)
        _check_config(config, f"trial {point}")
        if (spec.objective != "source_acc" or spec.validators) and not config.target:
            raise SweepError(f"trial {point}: validators score adaptation runs; set a target (--set target=...)")


def _search_corners(spec: SweepSpec) -> list[dict[str, Any]]:
    """Points that check a search: each range's ends and each choice, the rest at their first value."""
    first = {k: r.low if r.kind == "float" else int(r.low) for k, r in spec.ranges.items()}
    first |= {k: v[0] for k, v in spec.choices.items()}
    out = [first]
    for k, r in spec.ranges.items():
        out.append({**first, k: r.high if r.kind == "float" else int(r.high)})
    for k, values in spec.choices.items():
        out += [{**first, k: v} for v in values[1:]]
    return out




def _value(text: str) -> Any:
    """'0.5' -> 0.5, 'true' -> True, '[1, 28, 28]' -> a list; anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _assignment(text: str, flag: str) -> tuple[str, str]:
    key, sep, rest = text.partition("=")
    if not sep or not key.strip():
        raise SweepError(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip(), rest.strip()


def _values(key: str, text: str) -> tuple[Any, ...]:
    return tuple(_value(v.strip()) for v in text.split(",") if v.strip())


def _range(key: str, text: str) -> Range:
    """'LOW:HIGH' or 'LOW:HIGH:log', typed by the field (an int field searches whole numbers)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise SweepError(f"--search {key}={text!r}: expected LOW:HIGH or LOW:HIGH:log (or values A,B,C)")
    kind = _field_kind(key, swept=True)
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise SweepError(f"--search {key}={text!r}: LOW and HIGH must be numbers") from None
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise SweepError(f"--search {key}={text!r}: {key} is a whole number, so are its bounds")
    return Range(low, high, len(parts) == 3, kind if kind in ("int", "float") else "choice")


def parse_spec(name: str, sets: list[str], grids: list[str], searches: list[str], **options: Any) -> SweepSpec:
    """A specification from command-line assignments: ``--set KEY=VALUE`` (shared by every trial),
    ``--grid KEY=V1,V2,...`` and ``--search KEY=LOW:HIGH[:log]`` or ``--search KEY=A,B,C``.
    ``options`` are the other fields of :class:`SweepSpec` (trials, objective, prune, ...)."""
    base: dict[str, Any] = {}
    for text in sets:
        key, value = _assignment(text, "--set")
        base[key] = _value(value)
    grid = {k: _values(k, v) for k, v in map(lambda t: _assignment(t, "--grid"), grids)}
    ranges: dict[str, Range] = {}
    choices: dict[str, tuple[Any, ...]] = {}
    for text in searches:
        key, value = _assignment(text, "--search")
        if ":" in value:
            ranges[key] = _range(key, value)
        else:
            choices[key] = _values(key, value)
    return SweepSpec(name, base, grid, ranges, choices, **options)
