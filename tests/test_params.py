"""Typed parameter descriptions: validation, and every registered parameter is described."""

from __future__ import annotations

import pytest

from vizcore.params import Param, defaults, validate

PARAMS = (
    Param("hidden", "Hidden width", "int", 100, low=1, high=4096, unit="units", help="width"),
    Param("rate", "Rate", "float", 0.5, low=0.0, high=1.0, help="a rate"),
    Param("input", "Reads", "choice", "features", choices=("features", "gap"), help="what it reads"),
    Param("mean", "Match means", "bool", True, help="also the means"),
    Param("k", "Dimension", "optional_int", None, low=1, high=10, help="empty: automatic"),
    Param("bandwidth", "Bandwidth", "bandwidth", "mean", choices=("mean", "median"), low=1e-6, high=1e6,
          help="a rule or a number"),
)  # fmt: skip


# --------------------------------------------------------------------------- validate()


def test_validate_fills_defaults_and_casts_types() -> None:
    assert validate(PARAMS, {}) == defaults(PARAMS)
    got = validate(PARAMS, {"hidden": 8.0, "rate": 1, "mean": "false", "k": 3, "bandwidth": 2})
    assert got == {"hidden": 8, "rate": 1.0, "input": "features", "mean": False, "k": 3, "bandwidth": 2.0}
    assert type(got["hidden"]) is int and type(got["rate"]) is float
    assert list(got) == [p.name for p in PARAMS]  # in the order of the descriptions


def test_an_out_of_range_number_is_refused_naming_the_range() -> None:
    with pytest.raises(ValueError, match=r"DANN: hidden=0 is outside its range; valid range: 1 to 4096"):
        validate(PARAMS, {"hidden": 0}, owner="DANN")
    with pytest.raises(ValueError, match=r"rate=1\.5 is outside its range; valid range: 0 to 1"):
        validate(PARAMS, {"rate": 1.5})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hidden": "many"}, r"hidden='many' must be a number; valid range: 1 to 4096"),
        ({"hidden": 7.5}, r"hidden=7\.5 must be a whole number"),
        ({"rate": True}, r"rate=True must be a number"),  # a bool is no number to a person
        ({"rate": float("nan")}, r"rate=nan must be a finite number"),
        ({"mean": "maybe"}, r"mean='maybe' must be true or false; valid values: true, false"),
        ({"bandwidth": "mode"}, r"bandwidth='mode' is not a valid choice; valid values: mean, median or a number"),
    ],
)
def test_a_wrong_type_is_refused_naming_what_is_valid(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(PARAMS, values)


def test_an_unknown_choice_is_refused_listing_the_valid_values() -> None:
    with pytest.raises(ValueError, match=r"input='bogus' is not a valid choice; valid values: features, gap"):
        validate(PARAMS, {"input": "bogus"})


def test_an_unknown_key_is_refused_listing_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"DANN has no parameter 'hiden'; valid parameters: hidden, rate, input"):
        validate(PARAMS, {"hiden": 8}, owner="DANN")
    with pytest.raises(ValueError, match=r"no parameters 'a', 'b'"):
        validate(PARAMS, {"a": 1, "b": 2})


def test_a_bad_description_fails_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="outside its range"):
        Param("n", "N", "int", 0, low=1)
    with pytest.raises(ValueError, match="unknown kind"):
        Param("n", "N", "text", "x")
    with pytest.raises(ValueError, match="2 labels for 1 choices"):
        Param("c", "C", "choice", "a", choices=("a",), choice_labels=("A", "B"))


def test_labels_show_units_and_readable_choices() -> None:
    hidden, _, reads, *_ = PARAMS
    assert hidden.full_label == "Hidden width (units)"
    assert reads.choice_label("gap") == "gap"
    assert Param("s", "S", "choice", None, choices=(None, "pair")).choice_label(None) == "automatic"
