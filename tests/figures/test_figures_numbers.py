"""Numbers as a reader sees them: formatted by scale, one mark for missing, one colour per series."""

from __future__ import annotations

import numpy as np
import pytest

from vizcore.core.numbers import MISSING, fmt, fmt_change, percent, shared_scale
from vizcore.figures.matrix import MatrixPanel, matrix_figure
from vizcore.figures.training import compare_curves


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (1.4, "1.40"), (0.06667, "0.0667"), (-0.01583, "-0.0158"), (97.8, "97.8"), (12345.6, "12346"),
     (5.5e-6, "5.50e-06"), (2.5e7, "2.50e+07"), (None, MISSING), (float("nan"), MISSING), (float("inf"), MISSING)],
)  # fmt: skip
def test_numbers_are_written_by_their_scale(value: float | None, text: str) -> None:
    assert fmt(value) == text


def test_changes_carry_their_sign_and_percentages_one_decimal() -> None:
    assert (fmt_change(0.136), fmt_change(-0.0158), fmt_change(0.0)) == ("+0.136", "−0.0158", "0")
    assert (percent(0.978), percent(None)) == ("97.8%", MISSING)


def test_a_matrix_of_tiny_values_shows_mantissas_and_names_the_power_on_the_colour_bar() -> None:
    v = np.array([[1.0e-6, 5.5e-6], [2.3e-6, 4.0e-7]])  # a CORAL matrix: "0.00000" in every cell before
    exp, write = shared_scale(v)
    assert exp == -6 and [write(x) for x in v.ravel()] == ["1.00", "5.50", "2.30", "0.40"]
    fig = matrix_figure([MatrixPanel(v, None, ["a", "b"], ["a", "b"])], value_label="CORAL")
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert list(np.asarray(heat.text).ravel()) == ["1.00", "5.50", "2.30", "0.40"]
    assert "×10⁻⁶" in fig.layout.coloraxis.colorbar.title.text


def test_ordinary_matrices_keep_plain_decimals() -> None:
    exp, write = shared_scale(np.array([0.12, 0.5, 1.0]))
    assert exp == 0 and [write(x) for x in (0.12, 0.5, 1.0)] == ["0.12", "0.50", "1.00"]


def test_a_run_keeps_its_colour_on_compare_whatever_else_is_plotted() -> None:
    rec = lambda acc: [{"kind": "epoch", "epoch": 1, "step": 1, "values": {"target_acc": acc}}]  # noqa: E731
    none: list[dict] = [{"kind": "epoch", "epoch": 1, "step": 1, "values": {}}]
    alone = compare_curves([("A", rec(0.5)), ("B", rec(0.6))])
    with_gap = compare_curves([("A", none), ("B", rec(0.6))])  # A has no target accuracy
    assert alone.data[1].line.color == with_gap.data[1].line.color
    assert alone.data[1].y == (60.0,)  # accuracies in percent, as the tables show them
    assert "%" in alone.layout.yaxis.title.text and alone.layout.xaxis.tickvals == (1,)


def test_no_negative_zero_and_one_format_per_column() -> None:
    from vizcore.core.numbers import column_format, shared_scale

    _, write = shared_scale(np.array([[-0.0004, 1.5], [0.7, -0.004]]))
    assert [write(v) for v in (-0.0004, -0.004, 1.5)] == ["0.00", "0.00", "1.50"]  # never "-0.00"
    change = column_format([0.12, 0.03, -0.0158, 0.0], signed=True)
    assert [change(v) for v in (0.12, 0.03, -0.0158, 0.0, -0.0001)] == ["+0.120", "+0.030", "−0.016", "0.000", "0.000"]
    level = column_format([1.91, 0.12, None])
    assert [level(v) for v in (1.91, 0.12, None)] == ["1.91", "0.12", "—"]
    tiny = column_format([5.5e-6, 1e-7])
    assert tiny(5.5e-6) == "5.50e-06"  # a column of tiny values stays scientific, never 0.00000
