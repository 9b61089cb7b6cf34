"""Your own images in the browser: what the inspection of a folder reports (against what was
planted in it), zips that are refused with nothing written, and the registry of folders kept in
the store, which a damaged file never turns into an error."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.test_folders import _bomb, _cut_png, _png
from vizcore.core.config import TrainConfig
from vizcore.store.datasets import (
    DatasetNameError,
    datasets_dir,
    read_registry,
    register_folder,
    registry_path,
)
from vizcore.views import datasets as V
from vizcore.views.archives import ArchiveRefused, ZipLimits, extract_zip
from vizcore.views.data_choices import data_choices, shown_names

# --------------------------------------------------------------------------- inspection


def _planted(root: Path) -> dict[str, object]:
    """train/{cat,dog,owl}, test/{cat,dog,owl}: owl has only unreadable training files, two test
    images copy training images byte for byte, a link sits among the classes."""
    for i in range(5):
        _png(root / "train" / "cat" / f"c{i}.png", 10 + i)
        _png(root / "train" / "dog" / f"d{i}.png", 100 + i)
    for i in range(3):
        _png(root / "test" / "cat" / f"t{i}.png", 50 + i)
        _png(root / "test" / "dog" / f"u{i}.png", 150 + i)
    _png(root / "test" / "owl" / "o0.png", 200)
    (root / "train" / "owl").mkdir(parents=True)
    _bomb(root / "train" / "owl" / "bomb.png")
    _cut_png(root / "train" / "owl" / "cut.png")
    leak_a = root / "test" / "cat" / "leak.png"
    leak_a.write_bytes((root / "train" / "cat" / "c3.png").read_bytes())
    leak_b = root / "test" / "dog" / "leak.png"
    leak_b.write_bytes((root / "train" / "dog" / "d0.png").read_bytes())
    os.symlink(root / "train" / "cat", root / "train" / "kitten")
    return {"leaks": {"test/cat/leak.png": "train/cat/c3.png", "test/dog/leak.png": "train/dog/d0.png"}}


def test_inspection_reports_what_was_planted(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    planted = _planted(root)
    r = V.inspect_folder(root)
    assert r.own_splits and r.classes == ("cat", "dog", "owl")
    assert r.counts == {"train": {"cat": 5, "dog": 5, "owl": 0}, "test": {"cat": 4, "dog": 4, "owl": 1}}
    assert r.empty == {"train": ("owl",), "test": ()}
    assert "'owl'" in r.problem and "no readable image" in r.problem  # the run would be refused, and says so
    skipped = dict(r.skipped)
    assert set(skipped) == {"train/owl/bomb.png", "train/owl/cut.png", "train/kitten"}
    assert "decompression bomb" in skipped["train/owl/bomb.png"]
    assert "truncated" in skipped["train/owl/cut.png"]
    assert "symbolic link" in skipped["train/kitten"]
    found = {t: tr for d in r.duplicates for t in d.test for tr in d.train}
    assert found == planted["leaks"] and r.leaked == 2
    assert r.kinds == {("L", (16, 16)): 19}  # 10 training + 9 test images, all grey 16x16
    assert any("2 test images are byte-identical" in line for line in V.summary_lines(r))
    rows = {row["class"]: row for row in V.counts_rows(r)}
    assert rows["owl"]["train"] == 0 and rows["owl"]["note"] == "no readable train image"


def test_samples_are_decoded_as_training_decodes_them(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _planted(root)
    r = V.inspect_folder(root, samples_per_class=2)
    tiles, captions = V.sample_images(r, (3, 8, 8))
    assert tiles.shape == (6, 8, 8, 3) and tiles.dtype == np.uint8  # a row per class, owl's left white
    assert captions == ["cat · c0.png", "cat · c1.png", "dog · d0.png", "dog · d1.png", "owl · no readable training image", ""]
    assert (tiles[4:] == 255).all()
    assert int(tiles[0, 0, 0, 0]) == 10 and int(tiles[2, 0, 0, 0]) == 100  # the planted grey values


def test_a_folder_without_splits_is_reported_by_its_80_20_split(tmp_path: Path) -> None:
    for c in ("a", "b"):
        for i in range(10):
            _png(tmp_path / "flat" / c / f"{i}.png", i * 20 + (c == "b"))
    r = V.inspect_folder(tmp_path / "flat")
    assert not r.own_splits and r.problem is None and not r.duplicates and not r.skipped
    assert r.counts == {"train": {"a": 8, "b": 8}, "test": {"a": 2, "b": 2}}


def test_pair_check_uses_the_class_map(tmp_path: Path) -> None:
    for i, c in enumerate(("zero", "one")):
        _png(tmp_path / "t" / c / "0.png", 10 * i)
    target = V.folder_domain(tmp_path / "t")
    assert "different classes" in V.pair_check("mnist", target)
    suggested = V.suggested_class_map("mnist", target)
    assert suggested == {"one": "0", "zero": "1"}  # by position (classes are sorted) where the names differ
    assert "left unmapped" in V.pair_check("mnist", target, {"zero": "0"})
    assert V.pair_check("mnist", target, {"zero": "0", "one": "1"}) is None
    for d in "0123456789":
        _png(tmp_path / "digits" / d / "0.png", 5)
    same = V.folder_domain(tmp_path / "digits")
    assert V.pair_check("mnist", same, {d: d for d in "0123456789"}) is None
    assert V.effective_class_map("mnist", same, {d: d for d in "0123456789"}) == {}


def test_a_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(V.DataUnavailable, match="does not exist"):
        V.inspect_folder(tmp_path / "nope")


# --------------------------------------------------------------------------- zips


def _png_bytes(value: int = 7, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


GOOD = {"pets/train/cat/0.png": _png_bytes(1), "pets/train/dog/0.png": _png_bytes(2),
        "pets/test/cat/0.png": _png_bytes(3), "pets/test/dog/0.png": _png_bytes(4)}  # fmt: skip


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_good_zip_is_extracted_under_the_store_and_its_top_folder_used(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    data = _zip({**GOOD, "pets/README.txt": b"hello", "__MACOSX/pets/._0.png": b"x"})
    got = extract_zip(data, store, "pets")
    assert got.folder == datasets_dir(store) / "pets" / "pets" and got.images == 4
    assert set(got.left_out) == {"pets/README.txt", "__MACOSX/pets/._0.png"}
    assert V.inspect_folder(got.folder).counts["train"] == {"cat": 1, "dog": 1}
    with pytest.raises(ArchiveRefused, match="exists already"):
        extract_zip(data, store, "pets")


BAD_ZIPS = {
    "climbs": (lambda: _zip({**GOOD, "pets/../../evil.png": _png_bytes()}), "climbs out"),
    "absolute": (lambda: _zip({**GOOD, "/tmp/evil.png": _png_bytes()}), "absolute path"),
    "link": (lambda: _zip(GOOD, links={"pets/train/cat/l.png": "/etc/passwd"}), "symbolic link"),
    "bomb": (lambda: _zip({**GOOD, "pets/train/cat/big.png": b"\0" * (4 * 1024**2)}), "zip bomb"),
    "too many": (lambda: _zip({**GOOD, **{f"pets/train/cat/{i}.png": _png_bytes() for i in range(30)}}), "entries"),
    "pixels": (lambda: _zip({**GOOD, "pets/train/cat/huge.png": _bomb_bytes()}), "decompression bomb"),
    "not a zip": (lambda: b"PK\x03\x04 this is not a zip", "not a readable zip"),
}


def _bomb_bytes() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return _bomb(Path(d) / "b.png").read_bytes()


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_a_hostile_zip_is_refused_with_nothing_written(tmp_path: Path, case: str) -> None:
    make, words = BAD_ZIPS[case]
    store = tmp_path / "store" / "runs"
    store.mkdir(parents=True)
    before = _tree(tmp_path)
    limits = ZipLimits(max_files=20, max_total_bytes=64 * 1024**2)
    with pytest.raises(ArchiveRefused, match=words):
        extract_zip(make(), store, "pets", limits)
    assert _tree(tmp_path) == before  # nothing outside, and no folder (or temporary one) left behind


def test_a_total_size_over_the_cap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveRefused, match="inflates to"):
        extract_zip(_zip(GOOD), tmp_path, "pets", ZipLimits(max_total_bytes=100))
    assert not datasets_dir(tmp_path).exists()


def test_a_hostile_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetNameError):
        extract_zip(_zip(GOOD), tmp_path, "../evil")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the registry


def test_registry_keeps_names_and_survives_a_damaged_file(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    folder = tmp_path / "pets"
    folder.mkdir()
    register_folder(store, "pets", folder)
    assert read_registry(store).folders == {"pets": folder.resolve()}
    registry_path(store).write_text("{not json")
    damaged = read_registry(store)
    assert damaged.folders == {} and "cannot be read and is ignored" in damaged.problem
    choices, problem = data_choices(store)
    assert "mnist" in [c.domain for c in choices] and problem == damaged.problem  # the bundled sets stay
    register_folder(store, "pets", folder)  # a damaged registry is replaced by a valid one
    assert read_registry(store).problem is None
    body = json.loads(registry_path(store).read_text())
    body["folders"]["../x"] = "/tmp"
    body["folders"]["rel"] = "not/absolute"
    registry_path(store).write_text(json.dumps(body))
    partly = read_registry(store)
    assert partly.folders == {"pets": folder.resolve()} and "'../x'" in partly.problem and "rel" in partly.problem
    with pytest.raises(ValueError, match="not a folder"):
        register_folder(store, "gone", tmp_path / "gone")


def test_a_registered_folder_is_offered_and_shown_by_its_name(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    for i, c in enumerate(("cat", "dog")):
        _png(tmp_path / "pets" / c / "0.png", i)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    register_folder(store, "pets", tmp_path / "pets")
    register_folder(store, "empty", tmp_path / "empty")
    choices, _ = data_choices(store)
    by_name = {c.shown: c for c in choices}
    assert by_name["pets"].domain == f"folder:{(tmp_path / 'pets').resolve()}" and by_name["pets"].missing is None
    assert by_name["empty"].missing and by_name["empty"].label == "empty (not on this machine)"
    names = shown_names(choices, by_name["pets"].domain, "mnist", None)
    assert names == {by_name["pets"].domain: "pets"}
    cfg = TrainConfig(source=by_name["pets"].domain, data_names=names)
    assert "source_only · lenet_gap · pets · seed 0" == cfg.label and cfg.shown("mnist") == "mnist"


def test_tile_captions_name_the_classes() -> None:
    from vizcore.views.explanations import tile_caption

    assert tile_caption(1, 0.9, 0, "Grad-CAM", "0", 0, ("cat", "dog")) == "pred dog (90%) · true cat · Grad-CAM cat"
    assert tile_caption(1, 0.9, 0, "CAM", "predicted", 1) == "pred 1 (90%) · true 0"  # no names: indices


def test_no_download_is_offered_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from vizcore.views import data_choices as dc

    dc.network_reason.cache_clear()
    monkeypatch.setattr(dc.socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("unreachable")))
    monkeypatch.delenv(dc.OFFLINE_ENV, raising=False)
    assert "no network connection" in dc.network_reason() and "unreachable" in dc.network_reason()
    dc.network_reason.cache_clear()
    monkeypatch.setenv(dc.OFFLINE_ENV, "1")
    assert "offline" in dc.network_reason()
    dc.network_reason.cache_clear()


def test_each_file_is_hashed_once_per_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pets"
    _planted(root)
    read: list[str] = []
    real = V._digest
    monkeypatch.setattr(V, "_digest", lambda p: read.append(p) or real(p))
    V._shared_contents.cache_clear()
    first = V.inspect_folder(root)
    assert len(read) == 19  # the 10 training and 9 test images training reads; skipped files are not read
    V.inspect_folder(root)  # a page rerun
    assert len(read) == 19
    leak = root / "test" / "cat" / "leak.png"
    leak.write_bytes(_png_bytes(99))  # edited: no longer a copy
    os.utime(leak, ns=(leak.stat().st_mtime_ns + 10**9,) * 2)
    again = V.inspect_folder(root)
    assert len(read) == 38 and first.leaked == 2 and again.leaked == 1


def test_the_table_of_data_sets_says_what_is_here(tmp_path: Path) -> None:
    from vizcore.views.data_choices import choice_rows

    (tmp_path / "gone").mkdir()
    register_folder(tmp_path / "runs", "gone", tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    rows = {r["data set"]: r for r in choice_rows(data_choices(tmp_path / "runs")[0])}
    assert rows["mnist"] == {"data set": "mnist", "kind": "bundled", "here": "yes", "why not": ""}
    assert rows["gone"]["kind"] == "your folder" and rows["gone"]["here"] == "no" and "does not exist" in rows["gone"]["why not"]


@pytest.mark.slow
def test_the_command_line_trains_a_registered_folder_by_its_name(tmp_path: Path) -> None:
    from vizcore.app import cli
    from vizcore.store.runs import RunStore

    for split, n in (("train", 4), ("test", 2)):
        for i, c in enumerate(("cat", "dog")):
            for k in range(n):
                _png(tmp_path / "pets" / split / c / f"{k}.png", 40 * i + k)
    store = tmp_path / "runs"
    register_folder(store, "pets", tmp_path / "pets")
    with pytest.raises(DatasetNameError, match="bundled"):
        register_folder(store, "mnist", tmp_path / "pets")
    args = ["--runs", str(store), "train", "--data", "pets", "--epochs", "1", "--batch-size", "8", "--quiet"]
    assert cli.main(args) == 0
    (info,) = RunStore(store, demo_root=None).list()
    assert info.source == f"folder:{(tmp_path / 'pets').resolve()}" and info.shown(info.source) == "pets"
    assert "pets" in info.label and "folder:" not in info.label and "-source_only-pets-" in info.run_id
