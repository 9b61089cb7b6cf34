"""Typed parameter descriptions: validation, and every registered parameter is described."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY
from vizcore.core.params import Param, defaults, validate
from vizcore.embed import methods as E
from vizcore.methods import METHODS, list_methods
from vizcore.metrics import list_metrics
from vizcore.store.runs import RunStore
from vizcore.train.loop import train
from vizcore.views import distances as dv

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
    assert got == {
        "hidden": 8,
        "rate": 1.0,
        "input": "features",
        "mean": False,
        "k": 3,
        "bandwidth": 2.0,
    }
    assert type(got["hidden"]) is int and type(got["rate"]) is float
    assert list(got) == [p.name for p in PARAMS]  # in the order of the descriptions


def test_an_out_of_range_number_is_refused_naming_the_range() -> None:
    with pytest.raises(
        ValueError, match=r"DANN: hidden=0 is outside its range; valid range: 1 to 4096"
    ):
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
        (
            {"bandwidth": "mode"},
            r"bandwidth='mode' is not a valid choice; valid values: mean, median or a number",
        ),
    ],
)
def test_a_wrong_type_is_refused_naming_what_is_valid(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(PARAMS, values)


def test_an_unknown_choice_is_refused_listing_the_valid_values() -> None:
    with pytest.raises(
        ValueError, match=r"input='bogus' is not a valid choice; valid values: features, gap"
    ):
        validate(PARAMS, {"input": "bogus"})


def test_an_unknown_key_is_refused_listing_the_valid_names() -> None:
    with pytest.raises(
        ValueError, match=r"DANN has no parameter 'hiden'; valid parameters: hidden, rate, input"
    ):
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


# --------------------------------------------------------------------------- every registry


def _registered() -> list[tuple[str, tuple[Param, ...]]]:
    out = [(f"method {m}", tuple(METHODS.get(m).params)) for m in list_methods()]
    out += [(f"metric {m}", tuple(dv.all_metric_params(m))) for m in list_metrics()]
    out += [(f"embedding {m}", E.EMBEDDINGS.get(m).params) for m in E.EMBEDDINGS.names()]
    return out


@pytest.mark.parametrize(("owner", "params"), _registered(), ids=[o for o, _ in _registered()])
def test_every_registered_parameter_is_described_and_its_default_is_valid(
    owner: str, params: tuple[Param, ...]
) -> None:
    for p in params:
        assert isinstance(p, Param), f"{owner}: {p!r}"
        assert p.label and p.label != p.name, f"{owner}: {p.name} is labelled by its raw name"
        assert p.help, f"{owner}: {p.name} has no help"
        if p.kind == "choice" and owner.startswith("method"):
            assert p.choice_labels, f"{owner}: the choices of {p.name} have no readable labels"
    assert validate(params, defaults(params)) == validate(params, {})


def test_dann_input_and_dan_kernel_weights_are_choices() -> None:
    by_name = {p.name: p for p in METHODS.get("dann").params}
    assert by_name["input"].kind == "choice" and by_name["input"].choices == (
        "features",
        "gap",
        "conv",
        "conv_local",
    )
    by_name = {p.name: p for p in METHODS.get("dan").params}
    assert by_name["kernel_weights"].kind == "choice" and set(
        by_name["kernel_weights"].choices
    ) == {
        "uniform",
        "optimal",
    }


# --------------------------------------------------------------------------- before any run folder


def test_a_bad_method_parameter_is_refused_before_a_run_folder_exists(store: RunStore) -> None:
    cfg = TINY.replace(method="dann", target="mnist-m", method_params={"input": "bogus"})
    with pytest.raises(
        ValueError, match="input='bogus'.*valid values: features, gap, conv, conv_local"
    ):
        list(train(cfg, store))
    assert store.run_ids() == []


def test_the_cli_refuses_a_bad_method_parameter_with_exit_2(tmp_path: Path, capsys) -> None:
    from vizcore.app.cli import main

    runs = tmp_path / "runs"
    argv = [
        "--runs",
        str(runs),
        "train",
        "--method",
        "dann",
        "--target",
        "mnist-m",
        "--param",
        "input=bogus",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "valid values: features, gap, conv, conv_local" in err
    assert RunStore(runs, demo_root=None).run_ids() == []
