"""How every number on screen is written: by its scale, one convention everywhere.

Three significant figures; scientific notation below 0.001 and from a million on (so a CORAL
distance of 5.5e-06 never prints as 0.00000); one mark, "—", for a value that does not exist.
CSV files keep exact values: this is for people, not for files.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np

MISSING = "—"
# how a change of a measure reads, given which direction is better for it
VERDICT_MARKS = {"better": "▲ better", "worse": "▼ worse", "same": "= same"}
SIG = 3
SMALL, LARGE = 1e-3, 1e6


def _missing(x: object) -> bool:
    return x is None or not isinstance(x, int | float | np.integer | np.floating) or not math.isfinite(float(x))


def unsigned_zero(text: str) -> str:
    """"0.00" for "-0.00": a value that rounds to zero has no sign on screen (a tiny negative
    unbiased MMD² on the diagonal is zero within its noise)."""
    return text[1:] if text[:1] in "-−" and not any(c in "123456789" for c in text.split("e")[0]) else text


def column_format(values: Sequence[float | None], sig: int = SIG, signed: bool = False) -> Callable[[float | None], str]:
    """One format for a whole column: the decimals that give its largest value ``sig`` significant
    figures, for every cell (so "+0.120" and "+0.0300" read "+0.120" and "+0.030"); scientific for
    a column whose largest value is tiny or huge. ``signed``: changes, with "+" or "−"."""
    finite = [abs(float(v)) for v in values if not _missing(v)]
    top = max(finite, default=0.0)
    if top and (top < SMALL or top >= LARGE):
        one = fmt_change if signed else fmt
        return lambda v: one(v, sig)
    decimals = 2 if top == 0 else max(0, sig - 1 - math.floor(math.log10(top)))

    def write(v: float | None) -> str:
        if _missing(v):
            return MISSING
        text = unsigned_zero(f"{float(v):.{decimals}f}")  # type: ignore[arg-type]
        if not signed or text.strip("0.") == "":
            return text
        return ("+" if float(v) > 0 else "−") + text.lstrip("-")  # type: ignore[arg-type]

    return write


def fmt(x: float | None, sig: int = SIG) -> str:
    """One number with ``sig`` significant figures, scientific when very small or large."""
    if _missing(x):
        return MISSING
    v = float(x)  # type: ignore[arg-type]
    if v == 0:
        return "0"
    a = abs(v)
    if a < SMALL or a >= LARGE:
        return f"{v:.{sig - 1}e}"
    decimals = max(0, sig - 1 - math.floor(math.log10(a)))
    return f"{v:.{decimals}f}"


def fmt_change(x: float | None, sig: int = SIG) -> str:
    """A difference, always with its sign ("+0.136", "−0.0158")."""
    if _missing(x):
        return MISSING
    text = fmt(abs(float(x)), sig)  # type: ignore[arg-type]
    return text if float(x) == 0 else ("+" if float(x) > 0 else "−") + text  # type: ignore[arg-type]


def percent(x: float | None, decimals: int = 1) -> str:
    """A 0..1 fraction as a percentage ("97.8%")."""
    return MISSING if _missing(x) else f"{100 * float(x):.{decimals}f}%"  # type: ignore[arg-type]


def shared_scale(values: np.ndarray, sig: int = SIG) -> tuple[int, Callable[[float], str]]:
    """One scale for all cells of a matrix: (exponent e, a function writing v / 10**e).

    A matrix whose entries are all tiny (or huge) is written as mantissas with a common power of
    ten, which the colour bar names ("×10⁻⁶"), so every cell stays short and comparable; e = 0
    otherwise. Every cell gets the decimals that give the largest entry ``sig`` significant figures.
    """
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    exp = math.floor(math.log10(top)) if top and (top < SMALL or top >= LARGE) else 0
    top /= 10.0**exp
    decimals = 2 if top == 0 else int(min(6, max(0, sig - 1 - math.floor(math.log10(top)))))

    def write(v: float) -> str:
        return MISSING if not math.isfinite(v) else unsigned_zero(f"{v / 10.0**exp:.{decimals}f}")

    return exp, write


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(exp: int) -> str:
    """"×10⁻⁶" for -6; "" for 0."""
    return "" if exp == 0 else f"×10{str(exp).translate(SUPERSCRIPT)}"


def mean_std(xs: Sequence[float], scale: float = 100.0, decimals: int = 1) -> str:
    """``"54.9 ± 1.7"``: the mean and sample standard deviation of ``xs`` times ``scale`` (0 for
    one value), or the missing mark for none; a benchmark table's cell over seeds."""
    if not xs:
        return MISSING
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{scale * statistics.mean(xs):.{decimals}f} ± {scale * sd:.{decimals}f}"



def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 file"``, ``"2,345 files"``: a count with its noun, singular for one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
