"""Checkpoints from elsewhere: safe reading, precise refusals, nothing unpickled, the upload cap."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save

from tests.data.test_prepare import _encoded
from tests.paths import APP
from vizcore.data.prepare import prepare_image
from vizcore.models import create_model
from vizcore.store.checkpoints import pickle_globals, read_checkpoint
from vizcore.store.runs import CheckpointError
from vizcore.views.uploads import (
    infer_architectures,
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



def test_a_zip_member_is_scanned_only_so_far(tmp_path: Path) -> None:
    """A refused zip's pickle is read for names only up to PICKLE_SCAN_BYTES: a deflated member
    could inflate far beyond its upload."""
    import zipfile

    from vizcore.store.checkpoints import PICKLE_SCAN_BYTES

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



def test_the_servers_upload_cap_is_the_modules() -> None:
    """.streamlit/config.toml lets through what vizcore reads, and the largest header fits."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from vizcore.core.uploads import MAX_UPLOAD_MB
    from vizcore.store.checkpoints import MAX_HEADER_BYTES

    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB
    assert MAX_UPLOAD_MB * 1024 * 1024 >= 8 + MAX_HEADER_BYTES


def test_files_past_the_upload_cap_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import vizcore.core.uploads

    monkeypatch.setattr(vizcore.core.uploads, "MAX_UPLOAD_MB", 1)
    weights = save({"x": torch.zeros(300_000)})  # 1.2 million bytes: 1.1 MiB
    with pytest.raises(CheckpointError, match=r"^big\.safetensors is 1\.1 MB, more than the 1 MB"):
        read_checkpoint(weights, "big.safetensors")
    photo = _encoded(np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8))
    assert len(photo) > 1024 * 1024
    with pytest.raises(ValueError, match=r"^big\.png is \d\.\d MB, more than the 1 MB"):
        prepare_image(photo, (1, 28, 28), "big.png")
