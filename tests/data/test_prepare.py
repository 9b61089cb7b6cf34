"""Users' images brought to a model's input: each step, bombs refused before decoding, 16-bit scaled."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vizcore.data.domains import load_domain
from vizcore.data.prepare import ImageOptions, prepare_image


def _paper_photo(digit: np.ndarray, size: tuple[int, int] = (240, 180)) -> bytes:
    """A 28x28 light-on-dark digit as a colour JPEG photo: dark ink on grey paper, off-centre."""
    w, h = size
    paper = np.full((h, w, 3), (205, 200, 190), dtype=np.float32)
    ink = np.asarray(Image.fromarray(digit).resize((112, 112), Image.BILINEAR), dtype=np.float32) / 255
    paper[30:142, 90:202] *= 1 - 0.8 * ink[..., None]
    buf = io.BytesIO()
    Image.fromarray(paper.astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_images_are_brought_to_the_model_input_and_say_how() -> None:
    digit = (load_domain("mnist", "test", limit=1).images[0, 0] * 255).byte().numpy()
    p = prepare_image(_paper_photo(digit), (1, 28, 28), "photo.jpg")
    assert p.tensor.shape == (1, 1, 28, 28) and p.inverted
    text = " ".join(p.steps)
    for words in ("JPEG 240x180", "grey", "inverted", "contrast", "cropped", "placed in 28x28 with its centre of mass"):
        assert words in text, p.steps
    x = p.tensor[0, 0]
    assert x[:3].max() < 0.1 and x.max() > 0.9  # light-on-dark like MNIST, empty margin
    kept = prepare_image(_paper_photo(digit), (1, 28, 28), "photo.jpg", ImageOptions(invert=False))
    assert not kept.inverted and kept.tensor[0, 0, :3].mean() > 0.5

    rgba = np.zeros((50, 40, 4), dtype=np.uint8)
    rgba[10:40, 18:22] = (0, 0, 0, 255)  # a black stroke on a transparent canvas
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    q = prepare_image(buf.getvalue(), (3, 32, 32), "drawing.png")
    assert q.tensor.shape == (1, 3, 32, 32) and not q.inverted
    assert any("transparent" in s for s in q.steps) and any("square" in s for s in q.steps)
    bmp = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(bmp, "BMP")
    with pytest.raises(ValueError, match="PNG or JPEG"):
        prepare_image(bmp.getvalue(), (1, 28, 28), "x.bmp")


def _encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


NOISE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _declaring(data: bytes, width: int, height: int) -> bytes:
    """A small PNG/JPEG whose header declares width x height: what a decompression bomb shows."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr = struct.pack(">II", width, height) + data[24:29]
        return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]
    sof = data.index(b"\xff\xc0") + 5  # baseline JPEG: marker, length, precision, then H and W
    return data[:sof] + struct.pack(">HH", height, width) + data[sof + 4 :]


BOMBS = {  # (width, height): past MAX_IMAGE_PIXELS, PIL's warning (89M) and its error (179M)
    "just-over-the-cap": (7072, 7071),
    "under-PILs-limits": (8000, 8000),
    "PIL-warns": (10_000, 10_000),
    "PIL-raises": (20_000, 20_000),
}
BOMB_CASES = [(fmt, *size) for fmt in ("PNG", "JPEG") for size in BOMBS.values()] + [
    ("PNG", 50_000_001, 1),
    ("PNG", 2**31 - 1, 2**31 - 1),  # the largest a PNG can declare
    ("JPEG", 65_535, 65_535),  # the largest a JPEG can declare
]
BOMB_IDS = [f"{fmt}-{name}" for fmt in ("PNG", "JPEG") for name in BOMBS] + [
    "PNG-one-row",
    "PNG-largest",
    "JPEG-largest",
]


@pytest.mark.parametrize(("fmt", "width", "height"), BOMB_CASES, ids=BOMB_IDS)
def test_decompression_bombs_are_refused_before_decoding(
    fmt: str, width: int, height: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_IMAGE_PIXELS, and past PIL's own warning and error limits: one clear message
    naming the file, and no pixel is decoded."""
    from PIL import ImageFile

    from vizcore.data.prepare import MAX_IMAGE_PIXELS

    assert width * height > MAX_IMAGE_PIXELS
    decoded: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    bomb = _declaring(_encoded(NOISE, fmt), width, height)
    with pytest.raises(ValueError, match=r"^bomb\.img is refused before decoding: .* pixels") as e:
        prepare_image(bomb, (1, 28, 28), "bomb.img")
    msg, pixels = str(e.value), width * height
    assert f"{MAX_IMAGE_PIXELS:,}" in msg and (
        f"{pixels:,} pixels" in msg or f"({pixels} pixels)" in msg
    )
    assert decoded == []


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_sixteen_bit_grey_is_scaled_by_257_not_clipped(mode: str) -> None:
    from vizcore.data.images import eight_bit

    v = np.array(
        [[0, 1, 128, 129, 256, 257, 1000], [30_000, 40_000, 65_278, 65_279, 65_534, 65_535, 5]]
    )
    img = (
        Image.fromarray(v.astype(np.int32))
        if mode == "I"
        else Image.frombytes(mode, (7, 2), v.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    )
    assert img.mode == mode
    out, note = eight_bit(img)
    expected = np.floor(v / 257 + 0.5)
    np.testing.assert_array_equal(np.asarray(out), expected)
    assert out.mode == "L" and expected.tolist()[0] == [0, 0, 0, 1, 1, 1, 4] and "257" in note
    same = Image.fromarray(NOISE)
    assert eight_bit(same) == (same, None)


def test_a_sixteen_bit_png_reaches_the_model_scaled() -> None:
    """PNG keeps 16-bit grey as is; before, PIL's convert clipped every value from 255 to white."""
    v = np.arange(0, 65_536, 257 * 5, dtype=np.uint16).reshape(1, -1).repeat(3, 0)  # 0, 1285, ...
    v[1] = [0, 1, 255, 256, 3000, 30_000, 65_535] + [123] * (v.shape[1] - 7)
    p = prepare_image(
        _encoded(v), (1, 28, 28), "depth.png", ImageOptions(invert=False, frame=False)
    )
    assert "mode I;16" in p.steps[0] and any("16-bit grey to 8 bits" in s for s in p.steps)
    expected = np.floor(v / 257 + 0.5)
    for c in range(3):
        np.testing.assert_array_equal(p.original[..., c], expected)
    assert p.original[0, :, 0].tolist() == [5 * k for k in range(v.shape[1])]


@pytest.mark.parametrize(
    "damage",
    ["png-cut-in-half", "png-cut-in-its-header", "png-data-zeroed", "jpeg-cut-in-half",
     "jpeg-cut-in-its-header", "jpeg-data-zeroed", "not-an-image", "empty"],
)  # fmt: skip
def test_truncated_or_damaged_images_name_the_file(damage: str) -> None:
    png, jpeg = _encoded(NOISE), _encoded(NOISE, "JPEG")
    data = {
        "png-cut-in-half": png[: len(png) // 2],
        "png-cut-in-its-header": png[:20],
        "png-data-zeroed": png[:200] + bytes(60) + png[260:],
        "jpeg-cut-in-half": jpeg[: len(jpeg) // 2],
        "jpeg-cut-in-its-header": jpeg[:100],
        "jpeg-data-zeroed": jpeg[:400] + bytes(100) + jpeg[500:],
        "not-an-image": b"hello, not pixels",
        "empty": b"",
    }[damage]
    words = (
        "not an image PIL can read"
        if damage in ("not-an-image", "empty")
        else "truncated or damaged"
    )
    with pytest.raises(ValueError, match=rf"^broken\.img is {words}"):
        prepare_image(data, (1, 28, 28), "broken.img")


def test_photographed_digits_come_back_like_mnist() -> None:
    """A digit printed dark on grey paper, photographed off-centre, is recovered close to the original."""
    dom = load_domain("mnist", "test", limit=30)
    corr = []
    for img in dom.images:
        p = prepare_image(_paper_photo((img[0] * 255).byte().numpy()), (1, 28, 28))
        corr.append(np.corrcoef(img[0].flatten(), p.tensor[0, 0].flatten())[0, 1])
    assert np.median(corr) > 0.8 and min(corr) > 0.4, np.round(corr, 2)
