"""Typed parameter descriptions shared by training methods, distance measures and embeddings.

A :class:`Param` says everything a page needs to draw one widget (label, unit, kind, range,
choices and their readable labels, help) and everything a check needs to refuse a bad value.
:func:`validate` fills defaults and turns a user's mapping into checked, typed values, so a bad
value fails before any work (a run folder, a matrix, a layout) starts, with a message naming
the parameter, the value and what would have been valid.

This module sits in the lowest layer: it imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "Param", "defaults", "validate"]

#: The kinds a page knows how to draw. "optional_int" is a whole number or None ("automatic");
#: "bandwidth" is one of the named rules in ``choices`` or a fixed positive number.
KINDS = ("choice", "int", "float", "bool", "optional_int", "bandwidth")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _show(value: Any) -> str:
    """A value as a message or a widget shows it: strings bare, None as "None"."""
    return value if isinstance(value, str) else repr(value)


@dataclass(frozen=True)
class Param:
    """One parameter of a method, a measure or an embedding.

    Attributes:
        name: the keyword the code accepts.
        label: what a person reads next to the widget.
        kind: one of :data:`KINDS`.
        default: the value used when none is given (must itself be valid).
        choices: the allowed values of a "choice", or the named rules of a "bandwidth".
        choice_labels: readable labels for ``choices``, in the same order (empty: the values).
        low: smallest allowed number (None: unbounded), for the number kinds.
        high: largest allowed number (None: unbounded), for the number kinds.
        step: widget step for the number kinds (None: the widget's own).
        unit: unit shown after the label, e.g. "units" or "×" (empty: none).
        help: one or two sentences on what the parameter does.
        widget: a drawing hint, "slider" for a slider instead of a number field.
    """

    name: str
    label: str
    kind: str
    default: Any
    choices: tuple[Any, ...] = ()
    choice_labels: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    unit: str = ""
    help: str = ""
    widget: str = ""

    def __post_init__(self) -> None:
        # a wrong description is a programming error: fail at import, not on a user's click
        if self.kind not in KINDS:
            raise ValueError(
                f"{self.name}: unknown kind {self.kind!r}; valid kinds: {', '.join(KINDS)}"
            )
        if self.kind in ("choice", "bandwidth") and not self.choices:
            raise ValueError(f"{self.name}: a {self.kind} needs choices")
        if self.choice_labels and len(self.choice_labels) != len(self.choices):
            raise ValueError(
                f"{self.name}: {len(self.choice_labels)} labels for {len(self.choices)} choices"
            )
        self.check(self.default)

    @property
    def full_label(self) -> str:
        """The label with its unit, as a widget shows it."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def choice_label(self, value: Any) -> str:
        """The readable label of one of ``choices`` (None reads "automatic" unless labelled)."""
        if self.choice_labels and value in self.choices:
            return self.choice_labels[self.choices.index(value)]
        return "automatic" if value is None else _show(value)

    def range_text(self) -> str:
        """The allowed numbers in words: "1 to 20", "at least 0", "any number"."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"at least {self.low:g}"
        return "any number" if self.high is None else f"at most {self.high:g}"

    def valid_text(self) -> str:
        """What would have been valid, for an error message."""
        if self.kind == "choice":
            return "valid values: " + ", ".join(_show(c) for c in self.choices)
        if self.kind == "bool":
            return "valid values: true, false"
        if self.kind == "bandwidth":
            return f"valid values: {', '.join(self.choices)} or a number, {self.range_text()}"
        if self.kind == "optional_int":
            return f"valid values: None (automatic) or a whole number, {self.range_text()}"
        return f"valid range: {self.range_text()}"

    def check(self, value: Any) -> Any:
        """``value`` cast to this parameter's type, or ValueError naming what is valid."""
        return _CHECKS[self.kind](self, value)

    def _refuse(self, value: Any, why: str) -> ValueError:
        return ValueError(f"{self.name}={value!r} {why}; {self.valid_text()}")

    def _in_range(self, value: Any, number: float) -> None:
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            raise self._refuse(value, "is outside its range")


def _number(p: Param, value: Any) -> float:
    # bool is an int to Python, never a number to a person
    if isinstance(value, bool):
        raise p._refuse(value, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise p._refuse(value, "must be a number") from None
    if not math.isfinite(number):
        raise p._refuse(value, "must be a finite number")
    return number


def _check_int(p: Param, value: Any) -> int:
    number = _number(p, value)
    if number != int(number):
        raise p._refuse(value, "must be a whole number")
    p._in_range(value, number)
    return int(number)


def _check_float(p: Param, value: Any) -> float:
    number = _number(p, value)
    p._in_range(value, number)
    return number


def _check_optional_int(p: Param, value: Any) -> int | None:
    return None if value is None else _check_int(p, value)


def _check_choice(p: Param, value: Any) -> Any:
    # compare by type too: True == 1 would otherwise pass for a choice of numbers
    for c in p.choices:
        if type(c) is type(value) and c == value:
            return c
    raise p._refuse(value, "is not a valid choice")


def _check_bool(p: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()  # "true" from a command line or a form
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise p._refuse(value, "must be true or false")


def _check_bandwidth(p: Param, value: Any) -> str | float:
    if isinstance(value, str):
        return _check_choice(p, value)
    return _check_float(p, value)


_CHECKS = {
    "choice": _check_choice,
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "optional_int": _check_optional_int,
    "bandwidth": _check_bandwidth,
}


def defaults(params: Iterable[Param]) -> dict[str, Any]:
    """Every parameter's default, by name, typed as :func:`validate` returns it (30 -> 30.0 for a
    float), so defaults and checked values hash alike in cache keys."""
    return {p.name: p.check(p.default) for p in params}


def validate(params: Sequence[Param], values: Mapping[str, Any], owner: str = "") -> dict[str, Any]:
    """Checked values for ``params``: defaults filled in, types cast, ranges and choices checked.

    Args:
        params: the parameter descriptions.
        values: the values given, by name (any subset of ``params``).
        owner: who takes the parameters (e.g. "DANN"), named in messages.

    Returns:
        One typed value per parameter, in the order of ``params``.

    Raises:
        ValueError: an unknown name (the message lists the valid names) or a bad value (the
            message names the parameter, the value and the valid values or range).
    """
    known = {p.name: p for p in params}
    unknown = [k for k in values if k not in known]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        valid = ", ".join(known) or "none"
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise ValueError(f"{owner or 'this'} has no {what} {names}; valid parameters: {valid}")
    out: dict[str, Any] = {}
    for p in params:
        try:
            out[p.name] = p.check(values.get(p.name, p.default))
        except ValueError as e:
            raise ValueError(f"{owner}: {e}" if owner else str(e)) from None
    return out
