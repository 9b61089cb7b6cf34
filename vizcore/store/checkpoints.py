"""Checkpoints that users bring from elsewhere, read without running anything in them.

Only ``.safetensors`` is read, which cannot run code by design; its header is checked in full
before safetensors reads it. A PyTorch file (torch.save's zip, or a raw pickle) is refused unread,
as unpickling can run any code in the file (torch's weights_only unpickler included, a filter over
the same machinery). A refused pickle is explained by reading its opcodes (``pickletools``), never
by loading it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickletools
import struct
import zipfile
from dataclasses import dataclass

import torch

from vizcore.core.uploads import check_upload_size
from vizcore.store.runs import CheckpointError
from vizcore.store.weights import read_safetensors

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Prefixes of the names a plain state dict's pickle imports; a refusal names any others (code).
# Protocol 2 pickles bytes as _codecs.encode(text, "latin1").
_HARMLESS_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset",
                     "_codecs.encode")  # fmt: skip
PICKLE_SCAN_BYTES = 1 << 20  # a refused pickle's names are read from its first MiB

@dataclass(frozen=True)
class Checkpoint:
    """Tensors read from an uploaded file, and what was done to find them."""

    tensors: dict[str, torch.Tensor]
    filename: str
    fmt: str  # "safetensors", the one format read
    sha256: str
    notes: tuple[str, ...] = ()

    @property
    def provenance(self) -> str:
        return f"uploaded file {self.filename} ({self.fmt}, sha256 {self.sha256[:12]})"


# The safetensors format: an 8-byte little-endian header length N, N bytes of JSON (an object,
# UTF-8, which writers pad with trailing spaces to a multiple of 8 bytes), then the tensors' bytes.
# safetensors itself refuses headers over 100 MB; so does vizcore, before reading one.
MAX_HEADER_BYTES = 100_000_000
# Bytes per element of each safetensors dtype that torch holds (safetensors.torch reads these).
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U64": 8, "U32": 4, "U16": 2, "C64": 8, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip
TENSOR_FIELDS = ("dtype", "shape", "data_offsets")
PICKLE_PROTOCOLS = range(2, 6)  # pickles from protocol 2 on start with 0x80 and the protocol number
_JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}


def _header_length(data: bytes) -> int | None:
    """N when the first 8 bytes are a plausible safetensors header length, else None."""
    if len(data) < 8:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    return n if 2 <= n <= MAX_HEADER_BYTES else None


def sniff_format(data: bytes) -> str:
    """'safetensors', 'zip' (torch.save's format), 'pickle' or 'unknown', told by the content.

    A safetensors file is recognised by its header, not its first byte: that byte is the low
    byte of the header length, and 0x80 (a pickle's first byte) for one header length in 32. A
    plausible length followed by JSON that opens an object is safetensors; whether the rest of
    the header is right is :func:`safetensors_header`'s to say, precisely. Neither a zip nor a
    pickle passes for one: a length of at most 100 MB has bytes 4 to 7 zero, which a zip's
    version and flags never are, nor a pickle's first opcodes followed by ``{``; and a file
    taken for safetensors is never unpickled anyway.
    """
    n = _header_length(data)
    if n is not None and data[8 : 8 + min(n, 64)].lstrip(b" \t\r\n")[:1] == b"{":
        return "safetensors"
    if data[:4] == b"PK\x03\x04":
        return "zip"
    if data[:1] == b"\x80" and len(data) > 1 and data[1] in PICKLE_PROTOCOLS:
        return "pickle"
    return "unknown"


class _BadHeader(ValueError):
    """One thing wrong with a safetensors header, in words; the caller names the file."""


def _is_count(x: object) -> bool:
    # JSON true/false arrive as bool, which Python counts as int
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _kind(x: object) -> str:
    return "null" if x is None else _JSON_KINDS.get(type(x), "a number")


def _unique_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json object hook: with a name given twice, which tensor is meant would be the reader's guess."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _BadHeader(f"the name {key!r} appears twice in the header")
        out[key] = value
    return out


def _tensor_span(name: str, entry: object) -> tuple[int, int]:
    """(begin, end) of one tensor's bytes after the header, once its description is checked."""
    if not isinstance(entry, dict):
        what = ", ".join(TENSOR_FIELDS)
        raise _BadHeader(f"entry {name!r} is {_kind(entry)}, not a tensor description ({what})")
    missing = [f for f in TENSOR_FIELDS if f not in entry]
    if missing:
        raise _BadHeader(f"tensor {name!r} has no {' and no '.join(missing)}")
    dtype, shape, offsets = (entry[f] for f in TENSOR_FIELDS)
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        known = ", ".join(DTYPE_BYTES)
        raise _BadHeader(f"tensor {name!r} has dtype {dtype!r}, not one of {known}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _BadHeader(
            f"tensor {name!r} has shape {shape!r}, not a list of counts (integers >= 0)"
        )
    pair = isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
    if not pair or offsets[0] > offsets[1]:
        raise _BadHeader(
            f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end], 0 <= begin <= end"
        )
    need = math.prod(shape) * DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != need:
        raise _BadHeader(
            f"tensor {name!r} ({dtype}, shape {tuple(shape)}) takes {need:,} bytes but its "
            f"data_offsets {offsets} span {offsets[1] - offsets[0]:,}"
        )
    return offsets[0], offsets[1]


def _check_metadata(meta: object) -> None:
    # safetensors reads a missing or null __metadata__ as none, and otherwise only text -> text
    if meta is not None and not isinstance(meta, dict):
        raise _BadHeader(f"__metadata__ is {_kind(meta)}, not a map of text to text")
    for key, value in (meta or {}).items():
        if not isinstance(value, str):
            raise _BadHeader(f"__metadata__ entry {key!r} is {_kind(value)}, not text")


def _check_spans(spans: dict[str, tuple[int, int]], size: int) -> None:
    """safetensors wants the tensors back to back, covering every byte after the header."""
    at, previous = 0, ""
    for name, (begin, end) in sorted(spans.items(), key=lambda kv: kv[1]):
        if begin < at:
            raise _BadHeader(
                f"tensors {previous!r} and {name!r} overlap (bytes {begin:,} to {at:,})"
            )
        if begin > at:
            raise _BadHeader(f"bytes {at:,} to {begin:,} after the header belong to no tensor")
        at, previous = end, name
    if at < size:
        raise _BadHeader(f"the last {size - at:,} bytes belong to no tensor")


def safetensors_header(data: bytes) -> dict[str, tuple[int, int]]:
    """Each tensor's (begin, end) in the data after the header, once the whole header is checked.

    Every way a header can be wrong gives one ValueError in words: a header cut off, not UTF-8
    JSON, not an object, a name given twice, an entry that is not a tensor description, an
    unknown dtype, a shape or data_offsets of the wrong kind or size, tensors that overlap, leave
    bytes between them or run past the end of the file (a truncated file), or metadata that is
    not text -> text. safetensors then meets no header it does not expect.
    """
    n = _header_length(data)
    if n is None:
        raise _BadHeader("its first 8 bytes are not a header length between 2 bytes and 100 MB")
    if 8 + n > len(data):
        raise _BadHeader(f"truncated: its {len(data):,} bytes end inside the {n:,}-byte header")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), object_pairs_hook=_unique_names)
    except UnicodeDecodeError as e:
        raise _BadHeader(f"its header is not UTF-8 text (byte {e.start + 8:,})") from None
    except RecursionError:
        raise _BadHeader("its header's JSON is nested too deeply") from None
    except json.JSONDecodeError as e:
        raise _BadHeader(f"its header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _BadHeader(f"its header is {_kind(header)}, not a JSON object")
    _check_metadata(header.get("__metadata__"))
    spans = {k: _tensor_span(k, v) for k, v in header.items() if k != "__metadata__"}
    size = len(data) - 8 - n
    for name, (_, end) in spans.items():
        if end > size:
            raise _BadHeader(
                f"truncated: tensor {name} {tuple(header[name]['shape'])} ends at byte "
                f"{end + 8 + n:,} but the file has only {len(data):,} bytes"
            )
    _check_spans(spans, size)
    return spans


def _read_safetensors(data: bytes, filename: str) -> dict[str, torch.Tensor]:
    try:
        safetensors_header(data)
        return read_safetensors(data)
    except _BadHeader as e:
        raise CheckpointError(f"{filename} is not a usable safetensors file: {e}") from None
    # safetensors.torch raises these itself after its reader (an unknown dtype is a KeyError)
    except (KeyError, TypeError, AssertionError) as e:
        why = f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{filename} is not a usable safetensors file ({why})") from e


def pickle_globals(data: bytes) -> list[str]:
    """Names a pickle would import when loaded, read from its opcodes without running anything.

    For a ``torch.save`` zip file the pickle is its ``*/data.pkl`` member. Only the first
    ``PICKLE_SCAN_BYTES`` are read: a zip member can inflate to far more than its upload.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                if pkl is None:
                    return []
                with z.open(pkl) as f:
                    data = f.read(PICKLE_SCAN_BYTES)
        except (zipfile.BadZipFile, OSError, KeyError, EOFError, NotImplementedError):
            return []
    names: list[str] = []
    strings: list[str] = []  # STACK_GLOBAL takes module and name from the two last strings
    stream = io.BytesIO(data[:PICKLE_SCAN_BYTES])
    try:
        # one pickle after another: torch.save's legacy format writes several in a row
        while stream.tell() < len(stream.getbuffer()):
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # noqa: BLE001 — a damaged pickle, or bytes after the last: what was read
        pass
    return names


def _refusal(data: bytes, filename: str, fmt: str) -> CheckpointError:
    """Why a PyTorch file is refused, and how to bring its weights; nothing in it is loaded."""
    what = "a torch.save zip, which holds a pickle" if fmt == "zip" else "a pickle"
    code = [g for g in pickle_globals(data) if not g.startswith(_HARMLESS_GLOBALS)]
    calls = (
        f" Read without running it, it would call {', '.join(dict.fromkeys(code))}." if code else ""
    )
    return CheckpointError(
        f"refused {filename}: it is {what}, and vizcore loads no pickle, because unpickling a file "
        f"can run any code in it. It was not loaded and nothing in it was executed.{calls} Save the "
        "weights as safetensors where you trust the file: "
        "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')."
    )


def _without_module_prefix(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    # nn.DataParallel / DistributedDataParallel save every name with a "module." prefix
    if not state or not all(k.startswith("module.") for k in state):
        return state, []
    note = "removed the 'module.' prefix that DataParallel adds"
    return {k.removeprefix("module."): v for k, v in state.items()}, [note]


def read_checkpoint(data: bytes, filename: str = "checkpoint") -> Checkpoint:
    """Read an uploaded safetensors checkpoint; CheckpointError says precisely what is wrong.

    The format is told by the content, not the name: a PyTorch file (a torch.save zip or a
    pickle), whatever it is called, is refused without being loaded.
    """
    if not data:
        raise CheckpointError(f"{filename} is empty")
    try:
        check_upload_size(data, filename)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    fmt = sniff_format(data)
    if fmt in ("zip", "pickle"):
        raise _refusal(data, filename, fmt)
    if fmt != "safetensors":
        raise CheckpointError(
            f"{filename} is not a checkpoint format vizcore reads: it starts with {data[:8]!r}, "
            "which is neither a safetensors header nor a PyTorch file; upload a .safetensors file"
        )
    state = _read_safetensors(data, filename)
    if not state:
        raise CheckpointError(f"{filename} holds no tensors")
    state, notes = _without_module_prefix(state)
    return Checkpoint(state, filename, fmt, hashlib.sha256(data).hexdigest(), tuple(notes))


