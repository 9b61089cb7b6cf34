"""Values checked at the source: every bad value is refused before a run folder exists.

Each case goes through the library (``train(config, store)``) and, where a flag can say it, the
command line (``vizcore.app.cli.main``): both refuse it in the same one-line words, and neither leaves
a run folder. Nothing here trains: the good values only pass the checks.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY
from tests.paths import APP
from vizcore.app import cli
from vizcore.core.config import TrainConfig
from vizcore.core.registry import UnknownNameError
from vizcore.core.rules import ConfigError
from vizcore.store.runs import RunStore
from vizcore.train.checks import REFUSALS, check_config
from vizcore.train.loop import train

# small enough that a case which slipped through would still end quickly (and fail its test)
BASE = TINY.replace(batch_size=32, train_limit=64, test_limit=32)
CLI_BASE = [
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--train-limit",
    "64",
    "--test-limit",
    "32",
    "--quiet",
]


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad value: as config changes (the library), as flags (the command line), or both;
    ``match`` is part of the message both give. ``{missing}``, ``{flat}`` and ``{root}`` stand
    for a folder that does not exist, one without class folders and an empty data root."""

    id: str
    changes: dict[str, Any] | None
    argv: list[str] | None
    match: str


CASES = [
    # the values of the hostile trial
    Case("batch-size-0", {"batch_size": 0}, ["--batch-size", "0"], "batch_size must be a whole number >= 2"),
    Case("batch-size-negative", {"batch_size": -5}, ["--batch-size", "-5"], "batch_size must be"),
    Case("batch-size-1", {"batch_size": 1}, ["--batch-size", "1"], "BatchNorm needs more than one image"),
    Case("lr-negative", {"lr": -1.0}, ["--lr", "-1"], r"lr must be a finite number > 0, got -1.0 \(--lr\)"),
    Case("lr-nan", {"lr": math.nan}, ["--lr", "nan"], "lr must be a finite number > 0, got nan"),
    Case("lr-inf", {"lr": math.inf}, ["--lr", "inf"], "lr must be a finite number > 0, got inf"),
    Case("lr-0", {"lr": 0.0}, ["--lr", "0"], "lr must be a finite number > 0"),
    Case("train-limit-0", {"train_limit": 0}, ["--train-limit", "0"], "train_limit must be None or a whole number >= 2"),
    Case("train-limit-1", {"train_limit": 1}, ["--train-limit", "1"], "train_limit must be"),
    Case("momentum-negative", {"momentum": -1.0}, ["--momentum", "-1"], r"momentum must be a finite number in \[0, 1\)"),
    Case("momentum-1", {"momentum": 1.0}, ["--momentum", "1"], "momentum must be"),
    Case("weight-decay-negative", {"weight_decay": -1.0}, ["--weight-decay", "-1"], "weight_decay must be a finite number >= 0"),
    Case("weight-decay-nan", {"weight_decay": math.nan}, ["--weight-decay", "nan"], "weight_decay must be"),
    Case("seed-negative", {"seed": -1}, ["--seed", "-1"], r"seed must be a whole number in \[0, 4294967296\)"),
    Case("seed-2**32", {"seed": 2**32}, ["--seed", str(2**32)], "seed must be"),
    Case("augment-shift-negative", {"augment_shift": -3}, ["--augment-shift", "-3"], "augment_shift must be a whole number >= 0"),
    Case("augment-shift-image-wide", {"augment_shift": 28}, ["--augment-shift", "28"], "augment_shift must be smaller than the images' side, 28"),
    Case("bottleneck-dim-negative", {"bottleneck_dim": -5}, ["--bottleneck-dim", "-5"], "bottleneck_dim must be"),
    Case("folder-missing", {"source": "folder:{missing}"}, ["--data", "folder:{missing}"], "does not exist"),
    Case("folder-without-class-folders", {"source": "folder:{flat}"}, ["--data", "folder:{flat}"], "has no class sub-folders"),
    Case("target-folder-missing", {"target": "folder:{missing}"}, ["--target", "folder:{missing}"], "does not exist"),
    Case("torchvision-set-not-downloaded", {"source": "usps", "data_root": "{root}"}, ["--data", "usps", "--data-root", "{root}"], "usps .* is not available"),
    Case("augment-invert-2", {"augment_invert": 2.0}, ["--augment-invert", "2"], r"augment_invert must be a finite number in \[0, 1\]"),
    Case("augment-invert-negative", {"augment_invert": -0.1}, ["--augment-invert", "-0.1"], "augment_invert must be"),
    Case("dann-without-target", {"method": "dann"}, ["--method", "dann"], "DANN adapts the model to an unlabelled target domain: it needs a target"),
    Case("cdan-without-target", {"method": "cdan"}, ["--method", "cdan"], "it needs a target"),
    Case("teacher-unused", {"teacher": "some-run"}, ["--teacher", "some-run"], "Source only does not use teacher = 'some-run' \\(--teacher\\); only distill does"),
    Case("teacher-unused-by-dann", {"method": "dann", "target": "mnist-m", "teacher": "r"}, ["--method", "dann", "--target", "mnist-m", "--teacher", "r"], "DANN does not use teacher"),
    Case("freeze-without-parent", {"freeze": 2}, ["--freeze", "2"], r"freeze = 2 \(--freeze\) keeps weights fixed, so it needs trained ones"),
    Case("freeze-names-without-parent", {"freeze": ["features.0"]}, ["--freeze", "features.0"], "needs trained ones"),
    # the other fields' edges
    Case("epochs-0", {"epochs": 0}, ["--epochs", "0"], "epochs must be a whole number >= 1"),
    Case("eval-every-0", {"eval_every": 0}, ["--eval-every", "0"], "eval_every must be a whole number >= 1"),
    Case("log-every-0", {"log_every": 0}, None, "log_every must be a whole number >= 1, got 0$"),
    Case("workers-negative", {"workers": -1}, ["--workers", "-1"], "workers must be None or a whole number >= 0"),
    Case("test-limit-0", {"test_limit": 0}, ["--test-limit", "0"], "test_limit must be None or a whole number >= 1"),
    Case("labels-per-class-0", {"target_labels_per_class": 0, "target": "mnist-m"}, ["--target-labels-per-class", "0", "--target", "mnist-m"], "target_labels_per_class must be"),
    Case("labels-per-class-without-target", {"target_labels_per_class": 2}, ["--target-labels-per-class", "2"], "needs a target domain to draw the labelled images from"),
    Case("labels-per-class-with-an-adaptation-method", {"target_labels_per_class": 2, "method": "dann", "target": "mnist-m"}, ["--target-labels-per-class", "2", "--method", "dann", "--target", "mnist-m"], "adapts to an unlabelled target"),
    Case("input-shape-2-channels", {"input_shape": (2, 28, 28)}, ["--input-shape", "2,28,28"], r"input_shape must be None or \(C, H, W\) with C 1 \(grey\) or 3 \(RGB\)"),
    Case("input-shape-too-small", {"input_shape": (1, 2, 2)}, ["--input-shape", "1,2,2"], r"H, W in \[4, 1024\], got \(1, 2, 2\)"),
    Case("input-shape-too-large", {"input_shape": (1, 4096, 4096)}, ["--input-shape", "1,4096,4096"], "input_shape must be"),
    Case("input-shape-0", {"input_shape": (0, 28, 28)}, ["--input-shape", "0,28,28"], "input_shape must be"),
    Case("widths-0", {"widths": (0, 16)}, ["--widths", "0,16"], "widths must be None or one channel count per conv block"),
    Case("widths-negative", {"widths": (8, -16)}, ["--widths", "8,-16"], "widths must be"),
    Case("widths-huge", {"widths": (8, 100_000)}, ["--widths", "8,100000"], "widths must be"),
    Case("widths-for-another-depth", {"widths": (8, 16, 32)}, ["--widths", "8,16,32"], "model 'lenet_gap' \\(--model\\) cannot be built"),
    Case("freeze-too-many-blocks", {"freeze": 5, "init_from": "some-run"}, ["--freeze", "5", "--init-from", "some-run"], "freeze=5: LeNetGAP has 2 conv blocks"),
    Case("freeze-unknown-layer", {"freeze": ["nope"], "init_from": "some-run"}, ["--freeze", "nope", "--init-from", "some-run"], "no layer named 'nope'"),
    Case("optimizer-unknown", {"optimizer": "sgdd"}, ["--optimizer", "sgdd"], r"unknown optimizer 'sgdd' \(--optimizer\); choose one of sgd, adam, adamw"),
    Case("schedule-unknown", {"schedule": "nope"}, ["--schedule", "nope"], "unknown schedule 'nope'"),
    Case("device-unknown", {"device": "tpu"}, ["--device", "tpu"], "unknown device 'tpu' \\(--device\\); choose one of auto, cuda, mps, cpu"),
    Case("data-path-unknown", {"data_path": "disk"}, None, "choose one of auto, memory, stream"),
    Case("data-path-stream-for-mnist", {"data_path": "stream"}, ["--data-path", "stream"], "reads image folders"),
    Case("method-unknown", {"method": "nope"}, ["--method", "nope"], "unknown method 'nope'"),
    Case("model-unknown", {"model": "nope"}, ["--model", "nope"], "unknown model 'nope'"),
    Case("source-unknown", {"source": "no-such-set"}, ["--data", "no-such-set"], "unknown data set source = 'no-such-set' \\(--data\\); valid names: mnist"),
    Case("source-empty", {"source": ""}, ["--data", ""], "source must be a data set name or folder:PATH"),
    Case("target-empty", {"target": ""}, ["--target", ""], "target must be None or a data set name"),
    Case("init-from-empty", {"init_from": "", "method": "finetune"}, ["--init-from", "", "--method", "finetune"], "init_from must be None or a run id"),
    Case("trade-off-negative", {"trade_off": -1.0}, ["--trade-off", "-1"], "trade_off must be a finite number >= 0"),
    Case("trade-off-nan", {"trade_off": math.nan}, ["--trade-off", "nan"], "trade_off must be"),
    Case("pretrained-for-lenet", {"pretrained": True}, ["--pretrained"], "lenet_gap has no pretrained weights"),
    Case("adabn-without-target", {"adabn": True}, ["--adabn"], "adabn .* it needs a target"),
    Case("class-map-without-target", {"class_map": {"a": "0"}}, ["--class-map", "a=0"], "there is no target"),
    Case("method-param-out-of-range", {"method": "dann", "target": "mnist-m", "method_params": {"hidden": 0}}, ["--method", "dann", "--target", "mnist-m", "--param", "hidden=0"], "hidden=0 is outside its range"),
    Case("method-param-unknown", {"method_params": {"nope": 1}}, ["--param", "nope=1"], "has no parameter 'nope'"),
    Case("method-param-without-value", None, ["--param", "nope"], "--param expects KEY=VALUE"),
    Case("adda-without-parent", {"method": "adda", "target": "mnist-m"}, ["--method", "adda", "--target", "mnist-m"], "ADDA needs init_from \\(--init-from\\)"),
    Case("distill-without-teacher", {"method": "distill"}, ["--method", "distill"], "needs teacher \\(--teacher\\)"),
    # types the command line cannot give, which a config written by hand or by code can
    Case("epochs-bool", {"epochs": True}, None, "epochs must be a whole number >= 1, got True"),
    Case("seed-float", {"seed": 1.5}, None, "seed must be a whole number"),
    Case("lr-text", {"lr": "0.1"}, None, "lr must be a finite number > 0, got '0.1'"),
    Case("lr-huge-int", {"lr": 10**400}, None, "lr must be a finite number"),
    Case("amp-text", {"amp": "yes"}, None, "amp must be true or false, got 'yes' \\(--no-amp\\)"),
    Case("input-shape-2-values", {"input_shape": (1, 28)}, None, "input_shape must be"),
    Case("freeze-bool", {"freeze": True}, None, "freeze must be a number of conv blocks >= 0 or a list of layer names"),
    Case("class-map-not-text", {"class_map": {"a": 0}, "target": "mnist-m"}, None, "class_map must be a mapping of target class names"),
    Case("method-params-not-named", {"method_params": {1: 2}}, None, "method_params must be a mapping of parameter names"),
    Case("name-not-text", {"name": 3}, None, "name must be text"),
]  # fmt: skip
LIBRARY = [c for c in CASES if c.changes is not None]
COMMAND_LINE = [c for c in CASES if c.argv is not None]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """Folders the data cases name: missing, without class folders, an empty data root."""
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(b"")  # an image, but no class folder to hold it
    root = tmp_path / "data"
    root.mkdir()
    return {"missing": str(tmp_path / "nowhere"), "flat": str(flat), "root": str(root)}


def _fill(value: Any, places: dict[str, str]) -> Any:
    return value.format(**places) if isinstance(value, str) and "{" in value else value


def _one_line(message: str) -> None:
    assert message and "\n" not in message.strip(), message


@pytest.mark.parametrize("case", LIBRARY, ids=lambda c: c.id)
def test_the_library_refuses_before_a_run_folder_exists(
    case: Case, places: dict[str, str], tmp_path: Path
) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    cfg = BASE.replace(**{k: _fill(v, places) for k, v in case.changes.items()})
    with pytest.raises(REFUSALS, match=case.match) as err:
        list(train(cfg, store))
    _one_line(str(err.value))
    assert not store.root.exists()  # no run folder, not even a hidden one


@pytest.mark.parametrize("case", COMMAND_LINE, ids=lambda c: c.id)
def test_the_command_line_refuses_with_one_line_and_exit_2(case: Case, places: dict[str, str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    runs = tmp_path / "runs"
    argv = ["--runs", str(runs), "train", *CLI_BASE, *(_fill(a, places) for a in case.argv)]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    _one_line(err)
    assert err.startswith("error: ") and re.search(case.match, err), err
    assert "Traceback" not in err and "run " not in out
    assert not runs.exists()
    if case.changes is not None:  # given both ways: the library's message, word for word
        with pytest.raises(REFUSALS) as library:
            check_config(BASE.replace(**{k: _fill(v, places) for k, v in case.changes.items()}))
        assert err == f"error: {library.value}\n"


def test_value_errors_are_config_errors_and_unknown_names_lookups_too() -> None:
    with pytest.raises(ConfigError):
        BASE.replace(lr=math.nan).check_values()
    with pytest.raises(ConfigError) as err:
        check_config(BASE.replace(optimizer="sgdd"))
    assert isinstance(err.value, UnknownNameError) and isinstance(err.value, LookupError)
    with pytest.raises(UnknownNameError, match="valid names"):  # an unknown data set, as before
        check_config(BASE.replace(source="no-such-set"))


# ----------------------------------------------------------------------------- good values pass


def _class_folders(tmp_path: Path) -> str:
    from PIL import Image

    for c in ("a", "b"):  # a class needs a readable image (one to train on, one to test)
        (tmp_path / "good" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "good" / c / f"{i}.png")
    return f"folder:{tmp_path / 'good'}"


GOOD = {
    "defaults": {},
    "smallest batch and training set": {"batch_size": 2, "train_limit": 2, "test_limit": 1},
    "edges of the floats": {"lr": 1e-9, "momentum": 0.0, "weight_decay": 0.0, "trade_off": 0.0, "augment_invert": 1.0},
    "momentum just under 1": {"momentum": 0.999},
    "largest seed": {"seed": 2**32 - 1},
    "widest shift": {"augment_shift": 27},
    "smallest images": {"input_shape": (1, 4, 4)},
    "largest images": {"input_shape": (3, 1024, 1024)},
    "a student's widths": {"widths": (1, 1024)},
    "largest bottleneck": {"bottleneck_dim": 65536},
    "every evaluation and event": {"eval_every": 1, "log_every": 1, "workers": 0, "data_path": "memory"},
    "an adaptation method with its target": {"method": "dann", "target": "mnist-m", "adabn": True},
    "fine-tuning from a parent": {"method": "finetune", "target": "mnist-m", "init_from": "some-run", "freeze": 2,
                                  "target_labels_per_class": 1},
    "layers frozen by name": {"init_from": "some-run", "freeze": ["features.0", "bottleneck"], "bottleneck_dim": 8},
    "ImageNet weights frozen (checked without downloading them)": {"model": "resnet18", "pretrained": True,
                                                                   "freeze": 1, "input_shape": (3, 32, 32)},
    "distillation with a teacher": {"method": "distill", "teacher": "some-run", "widths": (8, 16)},
    "a source-only run also evaluated on a target": {"target": "uci-digits"},
    "a torchvision set that may be downloaded": {"source": "usps", "data_root": "{root}", "download": True},
    "an image folder": {"source": "{folder}", "data_path": "stream", "workers": 0},
}  # fmt: skip


@pytest.mark.parametrize("changes", list(GOOD.values()), ids=list(GOOD))
def test_good_values_pass_the_checks(
    changes: dict[str, Any], places: dict[str, str], tmp_path: Path
) -> None:
    places = {**places, "folder": _class_folders(tmp_path)}
    check_config(BASE.replace(**{k: _fill(v, places) for k, v in changes.items()}))


def test_runs_saved_under_looser_rules_still_read_back() -> None:
    """Values are checked before training, never when a saved config is read: an old run opens."""
    old = {**TrainConfig().to_dict(), "batch_size": 1, "freeze": 2, "train_limit": 1, "seed": -1}
    cfg = TrainConfig.from_dict(old)
    assert cfg.batch_size == 1 and cfg.freeze == 2
    with pytest.raises(ConfigError, match="batch_size"):
        cfg.check_values()


def test_every_rule_names_a_flag_the_command_line_has() -> None:
    """A field's rule and the parser agree on its flag, so a message's flag is one a user can type."""
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    flags = {s for action in cli._train_parser(sub)._actions for s in action.option_strings}
    named = {name: TrainConfig.flag(name) for name in TrainConfig.rules()}
    assert {n: f for n, f in named.items() if f is not None and f not in flags} == {}
    assert [n for n, f in named.items() if f is None] == ["log_every", "data_names"]


def test_the_checks_of_values_import_nothing(tmp_path: Path) -> None:
    """check_values is pure and cheap: the config module and its checks stay free of torch, so the
    command line's list and help and the first page do not pay for it."""
    import subprocess
    import sys

    code = ("import sys; from vizcore.core.config import TrainConfig; TrainConfig().check_values(); "
            "print('torch' in sys.modules)")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_the_train_page_refuses_in_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Train page's form can ask for one training image: the page shows the library's message
    (no traceback, no job, no run folder)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    runs = tmp_path / "runs"
    monkeypatch.setenv("VIZCORE_RUNS", str(runs))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    next(n for n in at.number_input if "Training images" in n.label).set_value(1)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert not at.exception, at.exception
    with pytest.raises(ConfigError) as library:
        BASE.replace(train_limit=1).check_values()
    assert [e.value for e in at.error] == [f"Training could not start: {library.value}"]
    assert "watch" not in at.session_state and not runs.exists()


# a value other than the default for each kind of field, as typed and as the config holds it
_TYPED = {"int": ("7", 7), "float": ("0.25", 0.25), "text": ("x", "x"), "name": ("adam", "adam"),
          "domain": ("usps", "usps"), "run": ("some-run", "some-run"), "shape": ("3,48,48", (3, 48, 48)),
          "widths": ("8,16", (8, 16)), "freeze": ("2", 2), "class_map": ("a=0,b=1", {"a": "0", "b": "1"})}  # fmt: skip


def test_every_field_with_a_flag_is_set_by_it() -> None:
    """The flags are generated from the config's fields: each one sets its field, so a field added
    to TrainConfig is on the command line with no second edit."""
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    parser = cli._train_parser(sub)
    default = TrainConfig()
    for name, rule in TrainConfig.rules().items():
        flag = TrainConfig.flag(name)
        if flag is None or rule.kind == "params":
            continue
        if rule.kind == "bool":
            argv, want = [flag], not getattr(default, name)
        else:
            typed, want = _TYPED[rule.kind]
            argv = [flag, typed]
        got = cli._config_from_args(parser.parse_args(argv))
        assert getattr(got, name) == want, (name, argv)
        assert all(getattr(got, other) == getattr(default, other) for other in TrainConfig.rules() if other != name)
