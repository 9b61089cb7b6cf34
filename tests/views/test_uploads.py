"""Outside checkpoints and images: safe reading, precise refusals, inference, runs, preprocessing."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from tests.paths import APP
from vizcore.data.domains import load_domain
from vizcore.explain.cam import class_activation_maps
from vizcore.models import create_model, list_models
from vizcore.store.runs import CheckpointError, RunStore
from vizcore.views.uploads import (
    Architecture,
    ImageOptions,
    guess_architecture,
    infer_architectures,
    load_checked,
    pickle_globals,
    predict,
    prepare_image,
    read_checkpoint,
    save_uploaded_run,
    standardize_check,
)


def _st_bytes(model: torch.nn.Module) -> bytes:
    return save({k: v.detach().contiguous() for k, v in model.state_dict().items()})


def _pt_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _WritesAFile:
    """A pickle payload that, if ever loaded unsafely, creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize(
    "kind",
    ["zip", "pickle-v2", "pickle-v3", "pickle-v4", "pickle-v5", "legacy", "named-safetensors"],
)
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"fc.weight": torch.zeros(2, 2), "evil": _WritesAFile(marker)}
    data = {
        "zip": lambda: _pt_bytes(payload),
        "pickle-v2": lambda: pickle.dumps(payload, protocol=2),
        "pickle-v3": lambda: pickle.dumps(payload, protocol=3),
        "pickle-v4": lambda: pickle.dumps(payload, protocol=4),
        "pickle-v5": lambda: pickle.dumps(payload, protocol=5),
        "legacy": lambda: _legacy_pt_bytes(payload),
        "named-safetensors": lambda: _pt_bytes(payload),
    }[kind]()
    name = "model.safetensors" if kind == "named-safetensors" else "model.pt"
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(data, name)
    msg = str(e.value)
    assert "refused" in msg and "nothing" in msg and "executed" in msg
    assert "system" in msg, msg  # the call it would make is named (posix.system / nt.system)
    assert not marker.exists()


def test_pickle_globals_are_read_without_running() -> None:
    assert any(g.endswith(".system") for g in pickle_globals(pickle.dumps(_WritesAFile(Path("/x")))))
    assert pickle_globals(_pt_bytes({"a": torch.zeros(1)})) == [
        g for g in pickle_globals(_pt_bytes({"a": torch.zeros(1)})) if g.startswith(("torch.", "collections."))
    ]


def test_truncated_checkpoints_say_so() -> None:
    model = create_model("lenet_gap")
    data = _st_bytes(model)
    with pytest.raises(CheckpointError, match=r"truncated: tensor \S+ \(.*\) ends at byte"):
        read_checkpoint(data[:-50], "m.safetensors")
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(data[:20], "m.safetensors")
    with pytest.raises(CheckpointError, match="refused m.pt: it is a torch.save zip"):
        read_checkpoint(_pt_bytes(model.state_dict())[:3000], "m.pt")
    with pytest.raises(CheckpointError, match="m.pt is not a checkpoint format vizcore reads"):
        read_checkpoint(b"hello world, not weights", "m.pt")


SMALL = {
    "conv.weight": torch.arange(24.0).reshape(2, 3, 2, 2),
    "fc.bias": torch.tensor([1, -2], dtype=torch.int64),
}


def _header_length(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


def _saved_with_header_length(tensors: dict[str, torch.Tensor], n: int) -> bytes:
    """safetensors' own file whose (space-padded) header is n bytes, by lengthening its metadata."""
    for k in range(n):
        data = save(tensors, metadata={"note": "x" * k})
        if _header_length(data) == n:
            return data
    raise AssertionError(f"no metadata gives a {n}-byte header")


def _padded_to(data: bytes, n: int) -> bytes:
    """The same file with its header padded by spaces to exactly n bytes (the format allows any)."""
    header = data[8 : 8 + _header_length(data)].rstrip(b" ")
    return struct.pack("<Q", n) + header.ljust(n, b" ") + data[8 + _header_length(data) :]


def _assert_same(ckpt_tensors: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
    assert set(ckpt_tensors) == set(tensors)
    for k, v in tensors.items():
        assert ckpt_tensors[k].dtype == v.dtype and torch.equal(ckpt_tensors[k], v), k


# safetensors pads headers to 8 bytes, so its files' first byte is one of 32 values; 0x280..0x580
# make the first two bytes 0x80 0x02..0x05, exactly a pickle's protocol header
@pytest.mark.parametrize("n", [0x200 + r for r in range(0, 256, 8)] + [0x380, 0x480, 0x580])
def test_safetensors_files_are_read_whatever_their_first_byte(n: int) -> None:
    data = _saved_with_header_length(SMALL, n)
    assert data[0] == n & 0xFF and data[1] == n >> 8
    ckpt = read_checkpoint(data, "small.safetensors")
    assert ckpt.fmt == "safetensors"
    _assert_same(ckpt.tensors, SMALL)


@pytest.mark.parametrize("low_byte", range(256))
def test_space_padded_headers_of_every_length_are_read(low_byte: int) -> None:
    """Every low byte of the header length; with 0x80 the file starts with 0x80 0x02, like a pickle."""
    data = _padded_to(save(SMALL), 0x200 + low_byte)
    assert data[:2] == bytes([low_byte, 2])
    _assert_same(read_checkpoint(data, "small.safetensors").tensors, SMALL)


def test_run_weights_with_metadata_starting_with_0x80_are_read(trained_run) -> None:
    """The case that was refused as a pickle: a real run's weights, saved with metadata."""
    weights = read_checkpoint(
        (trained_run.path / "model.safetensors").read_bytes(), "m.safetensors"
    )
    shortest = _header_length(save(weights.tensors, metadata={"note": ""}))
    data = _saved_with_header_length(
        weights.tensors, next(n for n in range(shortest, 1 << 16) if n % 256 == 0x80)
    )
    assert data[0] == 0x80
    ckpt = read_checkpoint(data, "theirs.safetensors")
    _assert_same(ckpt.tensors, weights.tensors)
    assert infer_architectures(ckpt.tensors)[0].fits


def _st_file(header: object, body: bytes = bytes(24), length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


F32_2x3 = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}  # 24 bytes, as _st_file's body
# one case a line: the table is read across
# fmt: off
MALFORMED = {
    "entry-a-number": ({"a": 1}, "entry 'a' is a number, not a tensor description"),
    "entry-a-list": ({"a": [1, 2]}, "entry 'a' is a list, not a tensor description"),
    "offsets-a-string": ({"a": {**F32_2x3, "data_offsets": "xx"}}, r"data_offsets 'xx', not \[begin, end\]"),
    "offsets-missing": ({"a": {"dtype": "F32", "shape": [2, 3]}}, "tensor 'a' has no data_offsets"),
    "all-missing": ({"a": {}}, "has no dtype and no shape and no data_offsets"),
    "offsets-three": ({"a": {**F32_2x3, "data_offsets": [0, 12, 24]}}, r"data_offsets \[0, 12, 24\], not"),
    "offsets-floats": ({"a": {**F32_2x3, "data_offsets": [0.0, 24.0]}}, r"data_offsets \[0.0, 24.0\], not"),
    "offsets-negative": ({"a": {**F32_2x3, "data_offsets": [-24, 0]}}, r"data_offsets \[-24, 0\], not"),
    "offsets-backwards": ({"a": {**F32_2x3, "data_offsets": [24, 0]}}, r"data_offsets \[24, 0\], not"),
    "offsets-bools": ({"a": {**F32_2x3, "data_offsets": [False, True]}}, r"data_offsets \[False, True\]"),
    "offsets-wrong-size": ({"a": {**F32_2x3, "data_offsets": [0, 12]}}, "takes 24 bytes but its data_offsets"),
    "offsets-past-the-end": (
        {"a": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}},
        r"truncated: tensor a \(4, 3\) ends at byte",
    ),
    "offsets-huge": (
        {"a": {"dtype": "U8", "shape": [10**30], "data_offsets": [0, 10**30]}},
        "truncated: tensor a",
    ),
    "overlap": (
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}},
        "tensors 'a' and 'b' overlap",
    ),
    "gap": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [12, 24]}}, "bytes 0 to 12 after the header"),
    "bytes-left-over": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}, "last 12 bytes belong"),
    "dtype-unknown": ({"a": {**F32_2x3, "dtype": "F4"}}, "has dtype 'F4', not one of"),
    "dtype-a-number": ({"a": {**F32_2x3, "dtype": 32}}, "has dtype 32, not one of"),
    "shape-negative": ({"a": {**F32_2x3, "shape": [-2, -3]}}, r"shape \[-2, -3\], not a list of counts"),
    "shape-a-string": ({"a": {**F32_2x3, "shape": "2x3"}}, "shape '2x3', not a list of counts"),
    "shape-floats": ({"a": {**F32_2x3, "shape": [2.0, 3]}}, r"shape \[2.0, 3\], not a list of counts"),
    "shape-bools": ({"a": {**F32_2x3, "shape": [True, 3]}}, r"shape \[True, 3\], not a list of counts"),
    "shape-nested": ({"a": {**F32_2x3, "shape": [[2], 3]}}, r"not a list of counts"),
    "metadata-a-list": ({"__metadata__": ["x"], "a": F32_2x3}, "__metadata__ is a list, not a map of text"),
    "metadata-a-number-value": ({"__metadata__": {"epoch": 3}, "a": F32_2x3}, "entry 'epoch' is a number, not text"),
    "metadata-a-dict-value": ({"__metadata__": {"m": {}}, "a": F32_2x3}, "entry 'm' is an object, not text"),
    "name-twice": (b'{"a":' + json.dumps(F32_2x3).encode() + b',"a":' + json.dumps(F32_2x3).encode() + b"}",
                   "the name 'a' appears twice"),
    "not-json": (b'{"a": {"dtype": "F32",', "its header is not valid JSON"),
    "not-utf8": (b'{"\xff": 1}', r"its header is not UTF-8 text \(byte 10\)"),
    "nested-too-deeply": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
}
# fmt: on


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_safetensors_headers_get_one_clear_message(case: str) -> None:
    header, words = MALFORMED[case]
    data = _st_file(header)
    with pytest.raises(CheckpointError, match=words) as e:
        read_checkpoint(data, "bad.safetensors")
    assert str(e.value).startswith("bad.safetensors is not a usable safetensors file: ")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_st_file(b"[1, 2]"), "is not a checkpoint format vizcore reads"),  # JSON, not an object
        (_st_file(F32_2x3, length=2**40), "is not a checkpoint format vizcore reads"),  # 1 TB
        (_st_file(b"{}", body=b""), "holds no tensors"),
        (
            _st_file(b'{"a": {}}', body=b"", length=500),
            "truncated: its 17 bytes end inside the 500-byte header",
        ),
        (b"\x80", "is not a checkpoint format vizcore reads"),
        (b"\x80\x09 not a pickle protocol", "is not a checkpoint format vizcore reads"),
    ],
    ids=[
        "header-a-list",
        "length-1-TB",
        "no-tensors",
        "header-cut-off",
        "one-byte-0x80",
        "0x80-then-no-protocol",
    ],
)
def test_files_that_are_not_checkpoints_say_so(data: bytes, words: str) -> None:
    with pytest.raises(CheckpointError, match=words) as e:
        read_checkpoint(data, "bad.safetensors")
    assert "bad.safetensors" in str(e.value)


def test_every_damaged_or_cut_header_gives_a_checkpoint_error_or_tensors() -> None:
    """Each byte of a header replaced by each of a few hostile bytes, and the file cut at every
    length: a CheckpointError or a checkpoint whose tensors fill the file, never anything else."""
    data = save(SMALL)
    n = _header_length(data)
    cut = [data[:k] for k in range(len(data))]
    hurt = [
        data[:i] + b + data[i + 1 :]
        for i in range(8 + n)
        for b in (b'"', b"}", b"-", b"9", b"\xff", b"\x00")
    ]
    readable = 0
    for bad in cut + hurt:
        try:
            ckpt = read_checkpoint(bad, "x.safetensors")
        except CheckpointError:
            continue
        readable += 1
        filled = sum(v.numel() * v.element_size() for v in ckpt.tensors.values())
        assert filled == len(bad) - 8 - _header_length(bad)
    assert readable < len(hurt) // 2  # most damage is caught, not read as something else


def test_wrong_architecture_names_each_tensor_and_both_shapes() -> None:
    state = read_checkpoint(_st_bytes(create_model("lenet_gap", in_channels=3, num_classes=5)), "c.safetensors").tensors
    with pytest.raises(CheckpointError) as e:
        load_checked(state, Architecture("lenet_gap", num_classes=10, in_channels=1), expected_classes=10)
    msg = str(e.value)
    assert "number of classes: the checkpoint has 5 (fc.weight is (5, 64)), 10 were chosen" in msg
    assert "features.0.0.weight: checkpoint has shape (32, 3, 5, 5), model expects (32, 1, 5, 5)" in msg
    assert "fc.weight: checkpoint has shape (5, 64), model expects (10, 64)" in msg
    plus = read_checkpoint(_st_bytes(create_model("lenet_gap_plus")), "p.safetensors").tensors
    with pytest.raises(CheckpointError, match=r"unexpected tensor features\.2\.0\.weight \(128, 64, 3, 3\)"):
        load_checked(plus, Architecture("lenet_gap"))


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize(("classes", "chans", "bott"), [(10, 1, 0), (7, 3, 16)])
def test_architecture_is_inferred_from_shapes(model: str, classes: int, chans: int, bott: int) -> None:
    original = create_model(model, num_classes=classes, in_channels=chans, bottleneck_dim=bott).eval()
    ckpt = read_checkpoint(_st_bytes(original), "m.safetensors")
    best = infer_architectures(ckpt.tensors)[0]
    assert best.fits and best.arch == Architecture(model, classes, chans, bott)
    assert guess_architecture(ckpt.tensors, model) == best.arch
    x = torch.rand(2, chans, 28, 28)
    torch.testing.assert_close(load_checked(ckpt.tensors, best.arch)(x), original(x))


def _legacy_pt_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)  # a raw pickle, 0x80 0x02 first
    return buf.getvalue()


PYTORCH_FILES = {
    "torch.save-zip": lambda state: _pt_bytes(state),
    "torch.save-legacy": lambda state: _legacy_pt_bytes(state),
    "in-a-training-wrapper": lambda state: _pt_bytes({"epoch": 3, "state_dict": state}),
    **{f"pickle-v{p}": (lambda state, p=p: pickle.dumps(state, protocol=p)) for p in (2, 3, 4, 5)},
}


@pytest.mark.parametrize("kind", list(PYTORCH_FILES))
def test_plain_pytorch_state_dicts_are_refused_unread(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a harmless state dict: vizcore never unpickles (torch.load and pickle are never called)."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was unpickled")

    data = PYTORCH_FILES[kind](create_model("lenet_gap").state_dict())
    for module, name in [
        (torch, "load"),
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
    ]:
        monkeypatch.setattr(module, name, never)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(data, "weights.pt")
    msg = str(e.value)
    assert (
        msg.startswith("refused weights.pt: it is a ")
        and "unpickling a file can run any code" in msg
    )
    assert "would call" not in msg  # a plain state dict names no code
    assert "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')" in msg


def test_dataparallel_prefix_is_removed() -> None:
    model = create_model("lenet_gap")
    ckpt = read_checkpoint(
        save({f"module.{k}": v for k, v in model.state_dict().items()}), "dp.safetensors"
    )
    assert ckpt.fmt == "safetensors" and set(ckpt.tensors) == set(model.state_dict())
    assert ckpt.notes == ("removed the 'module.' prefix that DataParallel adds",)


def test_a_zip_member_is_scanned_only_so_far(tmp_path: Path) -> None:
    """A refused zip's pickle is read for names only up to PICKLE_SCAN_BYTES: a deflated member
    could inflate far beyond its upload."""
    import zipfile

    from vizcore.views.uploads import PICKLE_SCAN_BYTES

    head = pickle.dumps(_WritesAFile(tmp_path / "pwned"), protocol=2)[:-1]  # without its STOP
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", head + b"N0" * (4 * PICKLE_SCAN_BYTES))  # NONE, POP, ...
    assert len(bomb.getvalue()) < PICKLE_SCAN_BYTES // 10
    assert any(g.endswith(".system") for g in pickle_globals(bomb.getvalue()))
    with pytest.raises(
        CheckpointError, match=r"refused bomb.pt: it is a torch.save zip.*would call \S+system"
    ):
        read_checkpoint(bomb.getvalue(), "bomb.pt")
    assert not (tmp_path / "pwned").exists()


def test_accepted_checkpoint_becomes_a_complete_run(store: RunStore, trained_run) -> None:
    data = (trained_run.path / "model.safetensors").read_bytes()
    ckpt = read_checkpoint(data, "their model.safetensors")
    arch = infer_architectures(ckpt.tensors)[0].arch
    with pytest.raises(ValueError, match="classes"):
        save_uploaded_run(store, ckpt, Architecture("lenet_gap", num_classes=5), "mnist")
    run = save_uploaded_run(store, ckpt, arch, "mnist", eval_limit=200)
    assert run.status()["status"] == "complete" and "uploaded file their model.safetensors" in run.status()["message"]
    assert run.config().name == "uploaded file their model.safetensors"
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []  # no partial folder left
    assert store.list()[0].run_id == run.run_id
    dom = load_domain("mnist", "test", limit=200)
    with torch.no_grad():
        logits = trained_run.load_model()(dom.images)
        torch.testing.assert_close(run.load_model()(dom.images), logits)
    expected = (logits.argmax(1) == dom.labels).float().mean().item()
    assert run.config().epochs == 0 and run.summary()["source_acc"] == pytest.approx(expected)


def test_standardisation_is_checked_both_ways(trained_run) -> None:
    """The flag has no tensors; both accuracies are shown so a user can tell how it was trained."""
    ckpt = read_checkpoint((trained_run.path / "model.safetensors").read_bytes(), "m.safetensors")
    arch = infer_architectures(ckpt.tensors)[0].arch
    acc = standardize_check(ckpt, arch, "mnist", limit=300)
    dom = load_domain("mnist", "test", limit=300)
    with torch.no_grad():
        direct = (trained_run.load_model()(dom.images).argmax(1) == dom.labels).float().mean().item()
    assert acc[arch.standardize] == pytest.approx(direct) and acc[not arch.standardize] is not None


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

    from vizcore.views.uploads import MAX_IMAGE_PIXELS

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
    from vizcore.views.uploads import eight_bit

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


def test_predictions_are_the_models_softmax_and_cam(trained_run) -> None:
    model = trained_run.load_model()
    x = load_domain("mnist", "test", limit=6).images
    preds = predict(model, x)
    with torch.no_grad():
        p, k = model(x).softmax(1).topk(3)
    for i, pred in enumerate(preds):
        assert [c for c, _ in pred.top] == k[i].tolist()
        np.testing.assert_allclose([q for _, q in pred.top], p[i].numpy(), rtol=1e-5)
    raw = class_activation_maps(model, x).maps[0]
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(preds[0].cam, expected.numpy(), atol=1e-5)


def test_the_servers_upload_cap_is_the_modules() -> None:
    """.streamlit/config.toml lets through what vizcore reads, and the largest header fits."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from vizcore.views.uploads import MAX_HEADER_BYTES, MAX_UPLOAD_MB

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB
    assert MAX_UPLOAD_MB * 1024 * 1024 >= 8 + MAX_HEADER_BYTES


def test_files_past_the_upload_cap_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import vizcore.views.uploads

    monkeypatch.setattr(vizcore.views.uploads, "MAX_UPLOAD_MB", 1)
    weights = save({"x": torch.zeros(300_000)})  # 1.2 million bytes: 1.1 MiB
    with pytest.raises(CheckpointError, match=r"^big\.safetensors is 1\.1 MB, more than the 1 MB"):
        read_checkpoint(weights, "big.safetensors")
    photo = _encoded(np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8))
    assert len(photo) > 1024 * 1024
    with pytest.raises(ValueError, match=r"^big\.png is \d\.\d MB, more than the 1 MB"):
        prepare_image(photo, (1, 28, 28), "big.png")


# --------------------------------------------------------------------------- the page, headless


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AppTest, RunStore]:
    import pages._shared as shared

    s = RunStore(tmp_path / "runs", demo_root=None)
    monkeypatch.setattr(shared, "store", lambda: s)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/upload.py").run()
    assert not at.exception, at.exception
    return at, s


def test_upload_page_checks_saves_and_predicts(page, trained_run, tmp_path: Path) -> None:
    at, s = page
    marker = tmp_path / "pwned"
    at.file_uploader(key="ckpt_upload").set_value(("evil.pt", _pt_bytes({"x": _WritesAFile(marker)}), "application/octet-stream")).run()
    assert not at.exception and not marker.exists()
    assert any("refused evil.pt" in e.value for e in at.error), [e.value for e in at.error]

    data = (trained_run.path / "model.safetensors").read_bytes()
    at.file_uploader(key="ckpt_upload").set_value(("theirs.safetensors", data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert any("Recognised" in m.value for m in at.success)
    [b for b in at.button if b.label == "Save as run"][0].click().run()
    assert not at.exception, at.exception
    assert any("Saved as run" in m.value for m in at.success), [e.value for e in at.error]
    (run,) = s.list()
    assert run.label == "uploaded file theirs.safetensors" and run.status == "complete"

    digit = (load_domain("mnist", "test", limit=1).images[0, 0] * 255).byte().numpy()
    at.file_uploader(key="img_upload").set_value([("photo.jpg", _paper_photo(digit), "image/jpeg")]).run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "the CAM of the uploaded image is drawn"
    assert any("inverted" in m.value for m in at.markdown)


def test_upload_page_explains_every_bad_file(page, trained_run, tmp_path: Path) -> None:
    """Each hostile file gets a message naming it on the page, never a traceback."""
    at, s = page
    theirs = read_checkpoint((trained_run.path / "model.safetensors").read_bytes(), "m.safetensors")
    save_uploaded_run(
        s, theirs, infer_architectures(theirs.tensors)[0].arch, "mnist", eval_limit=50
    )
    at.run()  # the Images tab predicts with that run
    grey16 = np.linspace(0, 65_535, 28 * 28).astype(np.uint16).reshape(28, 28)
    images = {
        "bomb.png": (
            _declaring(_encoded(NOISE), 20_000, 20_000),
            "bomb.png is refused before decoding",
        ),
        "wide.jpg": (
            _declaring(_encoded(NOISE, "JPEG"), 8000, 8000),
            "wide.jpg is refused before decoding",
        ),
        "cut.png": (_encoded(NOISE)[:400], "cut.png is truncated or damaged"),
    }
    for name, (data, words) in images.items():
        at.file_uploader(key="img_upload").set_value([(name, data, "image/png")]).run()
        assert not at.exception, at.exception
        assert any(words in e.value for e in at.error), (name, [e.value for e in at.error])
    at.file_uploader(key="img_upload").set_value(
        [("depth.png", _encoded(grey16), "image/png")]
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart") and any("16-bit grey to 8 bits" in m.value for m in at.markdown)

    marker = tmp_path / "pwned"
    checkpoints = {
        "entry.safetensors": (
            _st_file({"a": 1}),
            "entry.safetensors is not a usable safetensors file",
        ),
        "offsets.safetensors": (
            _st_file({"a": {**F32_2x3, "data_offsets": "xx"}}),
            "has data_offsets 'xx'",
        ),
        "dtype.safetensors": (_st_file({"a": {**F32_2x3, "dtype": "F4"}}), "has dtype 'F4'"),
        "model.pt": (_pt_bytes(theirs.tensors), "refused model.pt: it is a torch.save zip"),
        "raw.bin": (
            pickle.dumps(_WritesAFile(marker), protocol=2),
            "refused raw.bin: it is a pickle",
        ),
        "notes.bin": (b"hello, not weights", "notes.bin is not a checkpoint format vizcore reads"),
    }
    for name, (data, words) in checkpoints.items():
        at.file_uploader(key="ckpt_upload").set_value(
            (name, data, "application/octet-stream")
        ).run()
        assert not at.exception, at.exception
        assert any(words in e.value for e in at.error), (name, [e.value for e in at.error])
    assert not marker.exists()

    shortest = _header_length(save(theirs.tensors, metadata={"note": ""}))
    first_0x80 = next(n for n in range(shortest, 1 << 16) if n % 256 == 0x80)
    data = _saved_with_header_length(theirs.tensors, first_0x80)
    at.file_uploader(key="ckpt_upload").set_value(
        ("0x80.safetensors", data, "application/octet-stream")
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Recognised" in m.value for m in at.success)
