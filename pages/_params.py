"""Streamlit widgets for vizcore.core.params: one widget per typed parameter, for methods, measures and
embedding methods alike. UI only; what a value may be is decided by vizcore.core.params."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from vizcore.core.params import Param

# ---------------------------------------------------------------------------------- parameters
# One widget per vizcore.core.params.Param, for methods, measures and embeddings alike. Each drawer
# gets (container, param, key, starting value, disabled) and returns the value in the param's type.


def _help(p: Param) -> str | None:
    """The parameter's help; for a number, with its range (a number field shows it only on a bad entry)."""
    if p.kind not in ("int", "float", "optional_int") or (p.low is None and p.high is None):
        return p.help or None
    unit = f" {p.unit}" if p.unit and p.unit != "×" else ""
    return f"{p.help} Range: {p.range_text()}{unit}.".strip()


def _bounds(p: Param, cast: Callable[[Any], Any]) -> dict[str, Any]:
    return {"min_value": None if p.low is None else cast(p.low), "max_value": None if p.high is None else cast(p.high)}


def _choice(where: Any, p: Param, key: str, value: Any, disabled: bool) -> Any:
    opts = list(p.choices)
    # a None option ("automatic") is offered by position: as a value it would look like an empty,
    # clearable box; other choices are offered as themselves, so their state reads as the value
    by_position = None in opts
    got = where.selectbox(p.full_label, range(len(opts)) if by_position else opts, index=opts.index(value), key=key,
                          disabled=disabled, help=p.help or None,
                          format_func=(lambda i: p.choice_label(opts[i])) if by_position else p.choice_label)  # fmt: skip
    return opts[got] if by_position else got


def _number(where: Any, p: Param, key: str, value: Any, disabled: bool, cast: Callable[[Any], Any]) -> Any:
    step = None if p.step is None else cast(p.step)
    start = None if value is None else cast(value)
    if p.widget == "slider" and p.low is not None and p.high is not None:  # a slider shows its own range
        return cast(where.slider(p.full_label, cast(p.low), cast(p.high), start, step, key=key, disabled=disabled,
                                 help=p.help or None))  # fmt: skip
    fmt = {} if cast is int else {"format": "%.4g"}
    got = where.number_input(p.full_label, value=start, step=step, key=key, disabled=disabled, help=_help(p),
                             **_bounds(p, cast), **fmt)  # fmt: skip
    return None if got is None else cast(got)


def _bandwidth(where: Any, p: Param, key: str, value: Any, disabled: bool) -> str | float:
    rules = [*p.choices, "fixed"]
    rule = isinstance(value, str)
    got = where.selectbox(p.full_label, rules, index=rules.index(value if rule else "fixed"), key=key,
                          disabled=disabled, help=p.help or None,
                          format_func=lambda r: "fixed number" if r == "fixed" else p.choice_label(r))  # fmt: skip
    if got != "fixed":
        return got
    return float(where.number_input(f"Fixed {p.label.lower()}", value=1.0 if rule else float(value), format="%g",
                                    key=f"{key}_value", disabled=disabled, **_bounds(p, float)))  # fmt: skip


PARAM_WIDGETS: dict[str, Callable[[Any, Param, str, Any, bool], Any]] = {
    "choice": _choice,
    "int": lambda w, p, k, v, d: _number(w, p, k, v, d, int),
    "float": lambda w, p, k, v, d: _number(w, p, k, v, d, float),
    "optional_int": lambda w, p, k, v, d: _number(w, p, k, v, d, int),
    "bool": lambda w, p, k, v, d: bool(w.checkbox(p.full_label, value=bool(v), key=k, disabled=d, help=p.help or None)),
    "bandwidth": _bandwidth,
}


def param_widgets(
    params: Sequence[Param],
    key_prefix: str,
    *,
    fixed: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    columns: Sequence[Any] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw one widget per parameter and return the chosen values, by name.

    Args:
        params: the descriptions (a method's, a measure's or an embedding's ``params``).
        key_prefix: widget keys are ``key_prefix + name``.
        fixed: values shown disabled, or a function of the values chosen so far giving them
            (choosing the seed estimator fixes the kernel drawn after it).
        columns: containers to place the widgets in, in turn (None: the current container).
        values: starting values other than the defaults (e.g. a recipe's).
    """
    out: dict[str, Any] = {}
    for i, p in enumerate(params):
        pinned = fixed(out) if callable(fixed) else (fixed or {})
        where = columns[i % len(columns)] if columns else st
        # a fixed value gets its own widget key, so the user's own choice comes back when it is unfixed
        key = f"{key_prefix}{p.name}" + ("_fixed" if p.name in pinned else "")
        start = pinned.get(p.name, (values or {}).get(p.name, p.default))
        out[p.name] = PARAM_WIDGETS[p.kind](where, p, key, start, p.name in pinned)
    return out
