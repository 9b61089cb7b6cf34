"""Image folders read right, and the same on both data paths: 16-bit images scaled, symbolic
links never followed, a class without a readable image refused before a run exists, bombs and
broken files skipped by name (decided once, when the folder is listed), and what a run read
recorded in its summary."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY
from vizcore.data import domains as D
from vizcore.data import feeds as F
from vizcore.data import pairs
from vizcore.data.images import SIXTEEN_BIT_GREY
from vizcore.data.sources.folders import FOLDER_PREFIX, LINK_NOT_FOLLOWED, folder_files
from vizcore.store.runs import RunStore
from vizcore.train.loop import train

SIDE = 16
GREY = (1, SIDE, SIDE)
PATHS = ("memory", "stream")


def _png(path: Path, value: int, size: int = SIDE) -> Path:
    """A uniform 8-bit grey PNG of ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, per_class: dict[str, int], base: int = 10) -> dict[Path, int]:
    """``root/<class>/<i>.png``, each image one distinct grey value; file -> value."""
    out, v = {}, base
    for c, n in per_class.items():
        for i in range(n):
            out[_png(root / c / f"{i}.png", v)] = v
            v += 7
    return out


def _name(root: Path) -> str:
    return f"{FOLDER_PREFIX}{root}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: Path) -> Path:
    """A 170-byte PNG that declares 30,000 x 30,000 grey pixels (900 million, five times PIL's
    MAX_IMAGE_PIXELS): refused from its header, nothing decompressed."""
    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + _chunk(b"IEND", b""))  # fmt: skip
    return path


def _cut_png(path: Path) -> Path:
    """A PNG whose header reads but whose data stops short (its last 20 bytes cut off)."""
    data = _png(path, 200).read_bytes()
    path.write_bytes(data[:-20])
    return path


def _cut_jpeg(path: Path) -> Path:
    """A JPEG cut to two thirds: its header reads and JPEG has no structure to walk, so only
    decoding finds it broken."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return path


def _streamed(files: D.FileSplit) -> torch.Tensor:
    """The split's images as the streaming path reads them (in the training process)."""
    feed = F.make_feed(files, F.FeedOptions(torch.device("cpu"), workers=0), train=False)
    return torch.cat([x for x, _ in feed.in_order(batch_size=5)])


def _values(images: torch.Tensor) -> list[int]:
    """The grey value of each (uniform) image."""
    return [round(float(x[0, 0, 0]) * 255) for x in images]


def _both(name: str, split: str = "train", shape: tuple[int, int, int] = GREY) -> tuple[D.Domain, D.FileSplit]:
    return D.load_domain(name, split, shape=shape), folder_files(name, split, shape=shape)


def _config(source: str, **changes: object):  # type: ignore[no-untyped-def]
    """One step a run: every training image in one batch."""
    return TINY.replace(source=source, input_shape=GREY, batch_size=64, epochs=1, train_limit=None,
                        test_limit=None, **changes)  # fmt: skip


# --------------------------------------------------------------------------- 16-bit


def test_sixteen_bit_png_is_scaled_by_257_on_both_paths(tmp_path: Path) -> None:
    v = np.array([0, 1, 128, 129, 256, 257, 1000, 30_000, 40_000, 65_278, 65_279, 65_534, 65_535, 5, 9, 77])
    grid = np.resize(v, (SIDE, SIDE)).astype(np.uint16)
    wide = tmp_path / "train" / "deep" / "wide.png"
    wide.parent.mkdir(parents=True)
    Image.fromarray(grid).save(wide)
    assert Image.open(wide).mode in SIXTEEN_BIT_GREY  # a true 16-bit PNG
    _png(tmp_path / "train" / "flat" / "0.png", 40)
    for c in ("deep", "flat"):
        _png(tmp_path / "test" / c / "0.png", 90)
    mem, files = _both(_name(tmp_path))
    assert [Path(f).name for f in files.files] == ["wide.png", "0.png"]
    expected = np.floor(grid / 257 + 0.5)  # value / 257, rounded: 0..65535 onto 0..255 exactly
    for images in (mem.images, _streamed(files)):
        got = (images[0, 0].numpy() * 255).round()
        np.testing.assert_array_equal(got, expected)
    assert np.unique(expected).tolist() == [0, 1, 4, 117, 156, 254, 255]  # not binarised to 0 and 255
    for prov in (mem.provenance, files.provenance):
        assert "16-bit grey scaled to 8 bits (value / 257) (1 of 2 images)" in prov


# --------------------------------------------------------------------------- links


def test_symbolic_links_are_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    values = _folder(root, {"a": 5, "b": 5})
    outside = _folder(tmp_path / "elsewhere", {"x": 2}, base=200)
    os.symlink(".", root / "zloop")  # a loop at the top: once an 11th class of duplicates
    os.symlink(tmp_path / "elsewhere", root / "outside")  # a folder outside
    os.symlink(root / "a" / "0.png", root / "a" / "again.png")  # inside, to an image inside
    os.symlink(next(iter(outside)), root / "b" / "out.png")  # inside, to an image outside
    os.symlink(root / "b", root / "a" / "more")  # a folder inside, from inside
    name = _name(root)
    assert D.domain_info(name).classes == ("a", "b")
    links = [root / "a" / "again.png", root / "a" / "more", root / "b" / "out.png", root / "outside", root / "zloop"]
    for split in D.SPLITS:
        mem, files = _both(name, split)
        assert mem.classes == files.classes == ("a", "b")
        assert all(not Path(f).is_symlink() and Path(f).parent.parent == root for f in files.files)
        assert _values(mem.images) == _values(_streamed(files)) == [values[Path(f)] for f in files.files]
        assert mem.skipped == files.skipped == tuple(f"{p}: {LINK_NOT_FOLLOWED}" for p in links)
    train, test = _both(name, "train")[1], _both(name, "test")[1]
    assert sorted(train.files + test.files) == sorted(map(str, values))  # each real image once
    assert "(5 symbolic links not followed: a/again.png, a/more, b/out.png, outside, zloop)" in train.provenance


def test_a_link_is_not_a_split_folder(tmp_path: Path) -> None:
    """``test -> train`` would evaluate on the training images; as a link it is not followed."""
    _folder(tmp_path / "train", {"a": 5, "b": 5})
    os.symlink(tmp_path / "train", tmp_path / "test")
    mem = D.load_domain(_name(tmp_path), "test", shape=GREY)
    assert "stratified 80/20" in mem.provenance and len(mem) == 2  # train/ is the pool
    assert mem.skipped == (f"{tmp_path / 'test'}: {LINK_NOT_FOLLOWED}",)


# --------------------------------------------------------------------------- empty classes


@pytest.mark.parametrize("role", ["source", "target"])
@pytest.mark.parametrize("fill", ["nothing", "junk"])
def test_a_class_without_a_readable_image_is_refused_before_a_run_exists(role: str, fill: str,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    good, bad = tmp_path / "good", tmp_path / "bad"
    _folder(good, {"cat": 3, "dog": 3, "eel": 3})
    _folder(bad, {"cat": 3, "dog": 3})
    (bad / "eel").mkdir()
    if fill == "junk":
        (bad / "eel" / "junk.png").write_bytes(b"not an image")
    pair = {"source": _name(bad)} if role == "source" else {"source": _name(good), "target": _name(bad)}
    pairs.check_domain_pair(_name(good), _name(bad))  # the classes correspond: the pair check passes
    store = RunStore(tmp_path / "runs", demo_root=None)
    with pytest.raises(D.DataUnavailable) as e:
        list(train(_config(**pair, method="dann" if role == "target" else "source_only"), store))
    msg = str(e.value)
    flag = {"source": "--data", "target": "--target"}[role]
    assert msg.startswith(f"{role} ({flag}): {bad}: class 'eel' ") and " has no readable image;" in msg
    assert ("1 unreadable files skipped, e.g. junk.png" in msg) == (fill == "junk")
    assert "\n" not in msg
    assert store.run_ids() == [] and not (tmp_path / "runs").exists()


def test_every_empty_class_is_named_and_a_class_without_test_images_is_allowed(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 2, "b": 2})
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "train" / "d").mkdir()
    _folder(tmp_path / "test", {"a": 1})  # b, c, d have no test images
    with pytest.raises(D.DataUnavailable, match=r"classes 'c', 'd' have no readable image"):
        D.check_available(_name(tmp_path))
    _png(tmp_path / "train" / "c" / "0.png", 1)
    _png(tmp_path / "train" / "d" / "0.png", 2)
    D.check_available(_name(tmp_path))  # b has training images: it is only not measured


# --------------------------------------------------------------------------- bombs and broken files


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[str, dict[Path, int], dict[str, str]]:
    """train/ and test/ of two classes, with a decompression bomb, a cut-off PNG and a text file
    among the training images: (name, the good training files -> value, skipped file -> why)."""
    root = tmp_path / "damaged"
    good = _folder(root / "train", {"a": 4, "b": 4})
    _folder(root / "test", {"a": 2, "b": 2}, base=150)
    bad = {_bomb(root / "train" / "a" / "bomb.png"): "refused unread as a decompression bomb",
           _cut_png(root / "train" / "b" / "cut.png"): "truncated, damaged or unreadable",
           root / "train" / "b" / "notes.png": "not an image PIL can read"}  # fmt: skip
    (root / "train" / "b" / "notes.png").write_text("not an image")
    return _name(root), good, {str(f): why for f, why in bad.items()}


def test_bombs_and_broken_files_are_skipped_by_name_on_both_paths(damaged) -> None:  # type: ignore[no-untyped-def]
    name, good, bad = damaged
    with pytest.warns(UserWarning) as caught:
        D.check_available(name)  # the check a run makes first: it lists, and decides, once
    assert sorted(str(w.message).split(": ")[0] for w in caught) == sorted(f"skipping unreadable image {f}" for f in bad)
    mem, files = _both(name)
    assert files.files == tuple(str(f) for f in sorted(good))  # exactly the readable ones, in order
    assert _values(mem.images) == _values(_streamed(files)) == [good[f] for f in sorted(good)]
    assert torch.equal(mem.labels, files.labels) and mem.labels.tolist() == [0] * 4 + [1] * 4
    assert mem.skipped == files.skipped and [s.split(": ")[0] for s in mem.skipped] == list(bad)
    for entry, why in zip(mem.skipped, bad.values(), strict=True):
        assert entry.split(": ", 1)[1].startswith(why)
    assert mem.provenance == files.provenance
    assert "(3 unreadable files skipped: train/a/bomb.png, train/b/cut.png, train/b/notes.png)" in mem.provenance


@pytest.mark.parametrize("data_path", PATHS)
def test_a_run_on_a_damaged_folder_records_what_it_read_and_skipped(damaged, data_path: str,
                                                                     tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    name, good, bad = damaged
    store = RunStore(tmp_path / "runs", demo_root=None)
    events = list(train(_config(name, data_path=data_path, workers=0), store))
    assert events[-1].status == "complete", events[-1].message
    assert [e.step for e in events if e.kind == "step"] == [1]  # a one-step epoch
    data = store.get(events[-1].run_id).summary()["data"]
    assert data["images"] == {"source_train": 8, "source_test": 4}
    assert [s.split(": ")[0] for s in data["skipped"]] == list(bad)
    assert "3 unreadable files skipped" in data["provenance"]["source_train"]
    assert "3 unreadable files skipped" not in data["provenance"]["source_test"]  # test/ is its own folder


@pytest.mark.parametrize("data_path", PATHS)
def test_a_file_broken_past_the_check_stops_both_paths_by_name(data_path: str, tmp_path: Path) -> None:
    """A cut-off JPEG passes the listing's check; decoding it fails on either path alike, by
    name, rather than one path skipping what the other reads."""
    root = tmp_path / "imgs"
    _folder(root / "train", {"a": 3, "b": 3})
    _folder(root / "test", {"a": 1, "b": 1})
    cut = _cut_jpeg(root / "train" / "b" / "cut.jpg")
    store = RunStore(tmp_path / "runs", demo_root=None)
    end = list(train(_config(_name(root), data_path=data_path, workers=0), store))[-1]
    assert end.status == "failed"
    assert f"OSError: image {cut} could not be read: image file is truncated" in end.message
    assert "Traceback" not in end.message


# --------------------------------------------------------------------------- what a run records


def test_a_run_records_its_split_counts_and_every_conversion(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs", demo_root=None)
    cfg = TINY.replace(input_shape=(3, 32, 32), train_limit=64, test_limit=32, batch_size=64)
    events = list(train(cfg, store))
    assert events[-1].status == "complete", events[-1].message
    data = store.get(events[-1].run_id).summary()["data"]
    assert data["images"] == {"source_train": 64, "source_test": 32} and data["skipped"] == []
    for prov in data["provenance"].values():
        assert prov.endswith("Brought to RGB 32x32: grey→RGB (the channel repeated), "
                             "resized 28x28→32x32 (antialiased bilinear).")  # fmt: skip


def test_a_folder_provenance_names_each_conversion_with_its_count(tmp_path: Path) -> None:
    root = tmp_path / "train" / "a"
    _png(root / "0.png", 10, size=8)
    _png(root / "1.png", 20)
    Image.new("RGBA", (12, 10), (255, 0, 0, 128)).save(root / "2.png")  # (W, H): 10 rows of 12
    Image.new("RGB", (SIDE, SIDE), (0, 0, 255)).save(root / "3.png")
    _png(tmp_path / "test" / "a" / "0.png", 30)
    mem, files = _both(_name(tmp_path))
    assert mem.provenance == files.provenance
    assert mem.provenance.endswith(
        f"; 4 images brought to grey {SIDE}x{SIDE}: transparency dropped (1 of 4 images), colour→grey (BT.601 "
        f"luminance) (2 of 4 images), resized 2 sizes (8x8 to 10x12)→{SIDE}x{SIDE} (antialiased bilinear) "
        "(2 of 4 images)."
    )
    test = D.load_domain(_name(tmp_path), "test", shape=GREY)
    assert test.provenance.endswith(f"; 1 images brought to grey {SIDE}x{SIDE}: nothing (already so).")
