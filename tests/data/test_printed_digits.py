"""printed-digits: colour digits rendered from fonts; fixed properties on small renderings, the
registered domain on its full splits (slow)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vizcore.data import domains as D
from vizcore.data.sources import printed as P

PER_CLASS = 4


@pytest.fixture(scope="module")
def fonts() -> tuple[str, ...]:
    """Three fonts of this machine (Pillow's built-in font where it has none)."""
    return P.font_files()[:3]


def _split(split: str, fonts: tuple[str, ...]) -> D._Raw:
    return P.printed_raw.__wrapped__(split, fonts, PER_CLASS)


def test_a_split_is_colour_uint8_32x32_with_balanced_labels(fonts: tuple[str, ...]) -> None:
    raw = _split("train", fonts)
    assert raw.images.shape == (10 * PER_CLASS, 3, 32, 32) and raw.images.dtype == torch.uint8
    assert raw.labels.dtype == torch.int64
    assert torch.bincount(raw.labels, minlength=10).tolist() == [PER_CLASS] * 10
    x = raw.images.to(torch.float32) / 255
    # colour, not grey: a pixel's three channels differ (0 for grey stored as RGB)
    assert float(x.std(dim=1).mean()) > 0.05
    # every image has a digit on its ground: contrast inside each image
    assert float(x.flatten(1).std(dim=1).min()) > 0.03


def test_splits_are_deterministic_and_disjoint(fonts: tuple[str, ...]) -> None:
    train, again, test = _split("train", fonts), _split("train", fonts), _split("test", fonts)
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    digests = [{hashlib.sha256(im.numpy().tobytes()).hexdigest() for im in s.images} for s in (train, test)]
    assert len(digests[0]) == len(train.images) and not digests[0] & digests[1]


def test_the_provenance_names_the_fonts_and_another_list_draws_other_images(fonts: tuple[str, ...]) -> None:
    raw = _split("test", fonts)
    assert all(P._font_name(f) in raw.provenance for f in fonts)
    assert P.INSTALL_FONTS in raw.provenance
    other = _split("test", fonts[:1])
    assert torch.equal(raw.labels, other.labels) and not torch.equal(raw.images, other.images)


def test_a_machine_without_fonts_draws_with_pillows_own() -> None:
    raw = _split("test", ())
    assert P.DEFAULT_FONT in raw.provenance
    assert torch.bincount(raw.labels, minlength=10).tolist() == [PER_CLASS] * 10
    assert float((raw.images.to(torch.float32) / 255).std(dim=1).mean()) > 0.05


def test_symbol_fonts_are_left_out_and_text_fonts_kept(tmp_path) -> None:  # noqa: ANN001
    found = P.font_files(dirs=())  # matplotlib's bundled fonts, when it is installed
    names = [P._font_name(f).lower() for f in found]
    assert not any(bad in n for n in names for bad in P.NOT_DIGIT_FONTS)
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    assert not P._draws_digits(str(tmp_path / "broken.ttf"))
    assert P.font_files(dirs=(str(tmp_path),)) == found  # the broken file is skipped


def test_ink_and_ground_differ_in_luma_by_the_minimum() -> None:
    ink, g1, g2 = P._colours(500, np.random.default_rng(0))
    luma = np.array([0.299, 0.587, 0.114])
    gap1, gap2 = ink @ luma - g1 @ luma, ink @ luma - g2 @ luma
    assert np.all(np.abs(gap1) >= P.MIN_LUMA_GAP - 1e-6) and np.all(np.sign(gap1) == np.sign(gap2))
    assert 0.3 < np.mean(gap1 < 0) < 0.7  # both polarities, about half each


@pytest.mark.slow
def test_the_registered_domain_loads_both_splits_once_per_process() -> None:
    assert "printed-digits" in D.list_domains()
    spec = D.domain_info("printed-digits")
    assert spec.offline and spec.native_shape == (3, 32, 32) and spec.num_classes == 10
    train, test = D.load_domain("printed-digits", "train"), D.load_domain("printed-digits", "test")
    assert (len(train), len(test)) == (10 * P.PER_CLASS["train"], 10 * P.PER_CLASS["test"])
    assert D.class_counts(test) == {str(d): P.PER_CLASS["test"] for d in range(10)}
    assert train.images.dtype == torch.float32 and 0 <= float(train.images.min()) <= float(train.images.max()) <= 1
    hits = P.printed_raw.cache_info().hits
    again = D.load_domain("printed-digits", "test", seed=3)  # the run's seed does not change the split
    assert P.printed_raw.cache_info().hits == hits + 1 and torch.equal(again.images, test.images)
