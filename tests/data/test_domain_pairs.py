"""Domains as a pair: folder splits and classes, the class check, class maps, data-driven recipes.

Every folder is built in ``tmp_path`` from tiny PNGs whose grey value encodes where the image
came from, so a test can tell exactly which files were read and with which label.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vizcore.core.errors import DomainMismatch
from vizcore.data import domains as D
from vizcore.data import pairs
from vizcore.data.sources.folders import FOLDER_PREFIX, _folder_all
from vizcore.data.sources.torchvision_sets import FASHION_CLASSES

GREY = (1, 8, 8)  # load folders at their stored size: a constant image keeps its value exactly


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def _folder(root: Path, counts: dict[str, int], base: int = 0) -> dict[int, str]:
    """One class folder per key with ``counts[key]`` images; returns grey value -> class folder.

    Values are ``base + 4 * k`` for the k-th image written, so every image is unique.
    """
    values: dict[int, str] = {}
    for cls, n in counts.items():
        for i in range(n):
            v = base + 4 * len(values)
            _png(root / cls / f"{i}.png", v)
            values[v] = cls
    return values


def _values(d: D.Domain) -> list[int]:
    """The grey value (0..255) of each image of a domain loaded at GREY."""
    return [int(round(float(v) * 255)) for v in d.images[:, 0, 0, 0]]


def _name(path: Path) -> str:
    return f"{FOLDER_PREFIX}{path}"


# --------------------------------------------------------------------------- folder splits


def test_train_test_folders_are_the_splits(tmp_path: Path) -> None:
    train_vals = _folder(tmp_path / "train", {"a": 4, "b": 3, "c": 5})
    test_vals = _folder(tmp_path / "test", {"a": 2, "b": 1, "c": 2}, base=150)
    name = _name(tmp_path)
    train, test = D.load_domain(name, "train", shape=GREY), D.load_domain(name, "test", shape=GREY)
    assert train.classes == test.classes == ("a", "b", "c")
    assert D.domain_info(name).classes == ("a", "b", "c")
    assert list(D.class_counts(train).values()) == [4, 3, 5]
    assert list(D.class_counts(test).values()) == [2, 1, 2]
    # every test image is one of test/'s, with its own folder's label; same for train
    assert sorted(_values(test)) == sorted(test_vals)
    assert sorted(_values(train)) == sorted(train_vals)
    for v, y in zip(_values(test), test.labels.tolist(), strict=True):
        assert test.classes[y] == test_vals[v]
    assert str(tmp_path / "test") in test.provenance and "own test split" in test.provenance
    assert "80/20" not in test.provenance


def test_val_folder_is_the_test_split_without_test(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"0": 3, "1": 3})
    val_vals = _folder(tmp_path / "val", {"0": 1, "1": 2}, base=200)
    test = D.load_domain(_name(tmp_path), "test", shape=GREY)
    assert sorted(_values(test)) == sorted(val_vals)
    assert str(tmp_path / "val") in test.provenance and "there is no test/" in test.provenance


def test_test_split_with_a_class_train_lacks_is_refused(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 2})
    _folder(tmp_path / "test", {"a": 1, "b": 1})
    with pytest.raises(D.DataUnavailable, match=r"lacks \(b\)"):
        D.domain_info(_name(tmp_path))


def test_stratified_fallback_is_deterministic_stratified_and_disjoint(tmp_path: Path) -> None:
    vals = _folder(tmp_path, {"a": 10, "b": 5, "c": 7})
    name = _name(tmp_path)
    train, test = D.load_domain(name, "train", shape=GREY), D.load_domain(name, "test", shape=GREY)
    # 22 images, round(4.4) = 4 to test, by largest remainder of 2.0 / 1.0 / 1.4
    assert list(D.class_counts(test).values()) == [2, 1, 1]
    assert list(D.class_counts(train).values()) == [8, 4, 6]
    assert sorted(_values(train) + _values(test)) == sorted(vals)  # disjoint, nothing lost
    for d in (train, test):
        assert [d.classes[y] for y in d.labels.tolist()] == [vals[v] for v in _values(d)]
    assert "stratified 80/20" in test.provenance
    _folder_all.cache_clear()  # a fresh decode draws the very same split
    again = D.load_domain(name, "test", shape=GREY)
    assert _values(again) == _values(test) and torch.equal(again.labels, test.labels)


def test_a_lone_train_folder_is_the_pool_of_the_split(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"x": 5, "y": 5})
    d = D.load_domain(_name(tmp_path), "test", shape=GREY)
    assert d.classes == ("x", "y") and list(D.class_counts(d).values()) == [1, 1]


# --------------------------------------------------------------------------- integer classes


def test_integer_folders_are_ordered_by_value_and_named_as_digits(tmp_path: Path) -> None:
    k = 12  # "10" and "11" sort between "1" and "2" as strings
    vals = _folder(tmp_path, {str(i): 1 for i in range(k)})
    d = D.load_domain(_name(tmp_path), "train", shape=GREY)
    assert d.classes == tuple(str(i) for i in range(k))
    assert [d.classes[y] for y in d.labels.tolist()] == [vals[v] for v in _values(d)]
    assert "ordered by value" in d.provenance


def test_zero_padded_digit_folders_match_mnist(tmp_path: Path) -> None:
    vals = _folder(tmp_path / "train", {f"{i:02d}": 2 for i in range(10)})
    _folder(tmp_path / "test", {f"{i:02d}": 1 for i in range(10)}, base=100)
    name = _name(tmp_path)
    assert D.domain_info(name).classes == D.DIGITS
    pairs.check_domain_pair("mnist", name)  # no error
    d = D.load_domain(name, "train", shape=GREY)
    assert [d.labels[i].item() for i in range(len(d))] == [int(vals[v]) for v in _values(d)]


def test_integers_that_are_not_0_to_k_keep_their_names_in_value_order(tmp_path: Path) -> None:
    _folder(tmp_path, {str(i): 1 for i in range(1, 11)})
    assert D.domain_info(_name(tmp_path)).classes == tuple(str(i) for i in range(1, 11))
    with pytest.raises(DomainMismatch):
        pairs.check_domain_pair("mnist", _name(tmp_path))


# --------------------------------------------------------------------------- the pair check


def test_registered_domains_name_their_classes() -> None:
    assert D.domain_info("mnist-m").classes == D.DIGITS
    assert D.domain_info("fashion-mnist").classes == FASHION_CLASSES
    pairs.check_domain_pair("mnist", "mnist-m")
    pairs.check_domain_pair("mnist", None)
    with pytest.raises(DomainMismatch, match="Ankle boot"):
        pairs.check_domain_pair("mnist", "fashion-mnist")


def test_other_classes_are_refused_listing_both(tmp_path: Path) -> None:
    _folder(tmp_path, {"cat": 1, "dog": 1, "zebra": 1})
    with pytest.raises(DomainMismatch) as err:
        pairs.check_domain_pair("mnist", _name(tmp_path))
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "(10) 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in msg and "(3) cat, dog, zebra" in msg
    assert "--class-map cat=0,dog=1,zebra=2" in msg


def test_the_usual_split_layout_is_not_read_as_two_classes(tmp_path: Path) -> None:
    for split in ("train", "test"):
        _folder(tmp_path / split, {str(i): 1 for i in range(10)})
    pairs.check_domain_pair("mnist", _name(tmp_path))  # was classes ('test', 'train')


def test_class_map_remaps_target_labels_exactly(tmp_path: Path) -> None:
    vals = _folder(tmp_path, {"cat": 3, "dog": 2, "zebra": 2})
    name, cmap = _name(tmp_path), {"cat": "3", "dog": "0", "zebra": "7"}
    pairs.check_domain_pair("mnist", name, class_map=cmap)
    raw = D.load_domain(name, "train", shape=GREY)
    got = pairs.align_target(raw, "mnist", cmap)
    assert got.classes == D.DIGITS and got.labels.dtype == torch.int64
    assert got.labels.tolist() == [int(cmap[vals[v]]) for v in _values(raw)]
    assert raw.labels.tolist() == [("cat", "dog", "zebra").index(vals[v]) for v in _values(raw)]
    assert torch.equal(got.images, raw.images)
    assert "cat→3" in got.provenance
    same = D.load_domain("mnist-m", "test", limit=20)
    assert pairs.align_target(same, "mnist") is same


@pytest.mark.parametrize(
    ("cmap", "message"),
    [
        ({"cat": "0", "dog": "1", "zebra": "2", "cow": "3"}, "not target classes: cow"),
        ({"cat": "0", "dog": "1", "zebra": "eleven"}, "not source classes: eleven"),
        ({"cat": "0", "dog": "1"}, "target classes left unmapped: zebra"),
    ],
)
def test_a_class_map_that_does_not_fit_is_refused(
    tmp_path: Path, cmap: dict[str, str], message: str
) -> None:
    _folder(tmp_path, {"cat": 1, "dog": 1, "zebra": 1})
    with pytest.raises(DomainMismatch, match=message):
        pairs.check_domain_pair("mnist", _name(tmp_path), class_map=cmap)
    with pytest.raises(DomainMismatch, match=message):
        pairs.align_target(D.load_domain(_name(tmp_path), shape=GREY), "mnist", cmap)


def test_a_class_map_without_a_target_is_refused() -> None:
    with pytest.raises(DomainMismatch, match="no target"):
        pairs.check_domain_pair("mnist", None, class_map={"a": "0"})


def test_the_check_opens_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _folder(tmp_path, {"cat": 1, "dog": 1})

    def no_decoding(*args: object) -> None:
        raise AssertionError("check_domain_pair decoded images")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(DomainMismatch):
        pairs.check_domain_pair("mnist", _name(tmp_path))


def test_a_run_evaluates_its_target_through_the_class_map(tmp_path: Path) -> None:
    from vizcore.core.config import TrainConfig
    from vizcore.views.analysis import eval_domain

    vals = _folder(tmp_path, {"cat": 5, "dog": 5})
    cmap = {"cat": "1", "dog": "0"}
    cfg = TrainConfig(target=_name(tmp_path), class_map=cmap, input_shape=GREY)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # survives the run folder's config.json
    d = eval_domain(cfg, "target", "train")
    assert d.classes == D.DIGITS
    assert d.labels.tolist() == [int(cmap[vals[v]]) for v in _values(d)]
    assert eval_domain(cfg, "source", "test", limit=10).classes == D.DIGITS


# --------------------------------------------------------------------------- the CLI


def _parse(*argv: str) -> argparse.Namespace:
    from vizcore.app.cli import _train_parser

    ap = argparse.ArgumentParser()
    _train_parser(ap.add_subparsers(dest="cmd"))
    return ap.parse_args(["train", *argv])


def test_cli_class_map_flag_reaches_the_config() -> None:
    from vizcore.app.cli import _config_from_args

    cfg = _config_from_args(_parse("--target", "folder:x", "--class-map", "cat=0, dog = 1"))
    assert cfg.class_map == {"cat": "0", "dog": "1"}
    assert _config_from_args(_parse()).class_map == {}


@pytest.mark.parametrize("bad", ["cat", "cat=", "=0", "cat=0,cat=1", ","])
def test_cli_refuses_a_malformed_class_map(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--class-map", bad)
    assert "--class-map" in capsys.readouterr().err


def test_cli_help_describes_folder_layouts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "folder:PATH" in out and "train/ and test/ (or val/)" in out
    assert "stratified 80/20 split (seed 0)" in out and "--class-map" in out


# --------------------------------------------------------------------------- data-driven recipes


def _colour_digits(root: Path, varied: bool, n: int = 6) -> None:
    """Ten digit classes of 8x8 RGB images: a bar on a background, in colours and brightness
    drawn afresh for every image (``varied``) or the same two colours throughout."""
    rng = np.random.default_rng(0)
    for d in range(10):
        for i in range(n):
            ground = rng.integers(0, 256, 3) * rng.uniform(0.2, 1) if varied else [40, 90, 160]
            img = np.broadcast_to(np.asarray(ground, dtype=np.float64), (8, 8, 3)).copy()
            ink = rng.integers(0, 256, 3) if varied else [215, 165, 95]
            img[1:7, d % 6 : d % 6 + 2] = ink
            (root / str(d)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.astype(np.uint8)).save(root / str(d) / f"{i}.png")


def test_image_stats_match_the_formula() -> None:
    from vizcore.methods.recipes import image_stats

    x = torch.tensor([0.2, 0.6]).view(2, 1, 1, 1).expand(2, 3, 4, 4)  # two flat images
    st = image_stats(x)
    assert st.channels == 3 and st.mean == pytest.approx(0.4) and st.contrast == pytest.approx(0)
    assert st.brightness_spread == pytest.approx(np.std([0.2, 0.6], ddof=1))


def test_recipe_standardises_a_varied_colour_folder_and_says_why(tmp_path: Path) -> None:
    from vizcore.methods.recipes import from_data, recipe_notes, recommended_config

    _colour_digits(tmp_path / "varied", varied=True)
    _colour_digits(tmp_path / "plain", varied=False)
    varied, plain = _name(tmp_path / "varied"), _name(tmp_path / "plain")
    # supervised: the TrainConfig default is off; the data turn it on only where images vary
    assert recommended_config("source_only", varied).standardize is True
    assert recommended_config("source_only", plain).standardize is False
    (note,) = [n for n in recipe_notes("source_only", varied) if "Per-image standardisation" in n]
    assert "brightness spread" in note and varied in note
    assert not any("Per-image standardisation" in n for n in recipe_notes("source_only", plain))
    # against mnist: one channel against three, and the measured means are named
    advice = from_data("mnist", plain)
    assert advice.fields["standardize"] is True and advice.fields["input_shape"] == (1, 32, 32)
    assert "1 channel and the target 3 channels" in advice.note
    assert "source mnist: 1 channel, mean 0.13" in advice.note
    assert recommended_config("dann", "mnist", varied).standardize is True
    assert advice.note in recipe_notes("dann", "mnist", plain)


def test_measured_recipes_of_the_built_in_pairs_are_unchanged() -> None:
    from vizcore.core.config import TrainConfig
    from vizcore.methods import recipes as R

    assert R.from_data("mnist", "uci-digits") == R.DataAdvice({}, None)
    assert R.from_data("mnist") == R.DataAdvice({}, None)
    got = R.recommended_config("dann", "mnist", "uci-digits")
    assert (got.standardize, got.trade_off, got.lr, got.epochs, got.batch_size) == (
        True, 0.3, 0.01, 8, 64,
    )  # fmt: skip
    assert got == TrainConfig(**{**R.BASE, **R.BY_METHOD["dann"], "method": "dann",
                                 "source": "mnist", "target": "uci-digits"})  # fmt: skip
    shift = R.BY_SHIFT[("mnist", "mnist-m")]
    assert R.recommended_config("dann", "mnist", "mnist-m") == TrainConfig(
        **{**R.BASE, **R.BY_METHOD["dann"], **shift},
        method="dann", source="mnist", target="mnist-m",
    )  # fmt: skip
    assert R.recommended_config("source_only", "mnist") == TrainConfig(**R.SUPERVISED)
    clutter = R.recommended_config("source_only", "cluttered-mnist")
    assert clutter == TrainConfig(**{**R.SUPERVISED, **R.BY_SOURCE["cluttered-mnist"]},
                                  source="cluttered-mnist")  # fmt: skip
    assert not clutter.standardize and not R.recommended_config("source_only", "mnist").standardize


def test_an_unreadable_domain_is_not_measured(tmp_path: Path) -> None:
    from vizcore.methods.recipes import from_data

    advice = from_data("mnist", _name(tmp_path / "missing"))
    assert advice.fields == {} and "could not be read" in advice.note


# --------------------------------------------------------------------------- training on a pair


def _mismatched_pairs(tmp_path: Path) -> list[tuple[str, str]]:
    animals = tmp_path / "animals"
    _folder(animals, {"cat": 3, "dog": 3, "zebra": 3})
    split = tmp_path / "split"  # the usual layout, but only two of the digits
    for part in ("train", "test"):
        _folder(split / part, {"0": 2, "1": 2})
    nine = tmp_path / "nine"  # one digit short
    _folder(nine, {str(k): 2 for k in range(9)})
    letters = tmp_path / "letters"  # ten classes, other names
    _folder(letters, {c: 2 for c in "abcdefghij"})
    return [("mnist", _name(animals)), ("mnist", _name(split)), ("mnist", _name(nine)),
            ("mnist", _name(letters)), ("mnist", "fashion-mnist"), (_name(animals), "mnist")]  # fmt: skip


def test_no_mismatched_pair_trains(tmp_path: Path) -> None:
    from tests.conftest import TINY
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import train

    store = RunStore(tmp_path / "runs", demo_root=None)
    pairs = _mismatched_pairs(tmp_path)
    trained = []
    for source, target in pairs:
        try:
            list(train(TINY.replace(source=source, target=target, method="dann"), store))
        except DomainMismatch as e:
            assert "classes" in str(e)
        else:
            trained.append((source, target))
    assert trained == [] and store.run_ids() == []  # refused before any run folder exists


def test_the_cli_refuses_a_mismatched_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vizcore.app import cli

    animals = tmp_path / "animals"
    _folder(animals, {"cat": 3, "dog": 3, "zebra": 3})
    code = cli.main(["--runs", str(tmp_path / "runs"), "train", "--method", "dann", "--target", _name(animals)])
    assert code == 2
    err = capsys.readouterr().err
    assert "cat" in err and "0" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
