"""Checkpoints and images that users bring from elsewhere.

Checkpoints: ``.safetensors`` only, which cannot run code by design; its header is checked in
full before safetensors reads it. A PyTorch file (torch.save's zip, or a raw pickle) is refused
unread, as unpickling can run any code in the file (torch's weights_only unpickler included, a
filter over the same machinery). Nothing from an upload is ever executed: a refused pickle is
explained by reading its opcodes (``pickletools``), never by loading it.

Architecture: inferred from the tensors' shapes for every registered model (number of classes
from the classifier, input channels from the first convolution, the bottleneck width), then
checked tensor by tensor with :func:`vizcore.store.runs.state_dict_problems`.

Images: any PNG/JPEG, colour or grey, any size, brought to a model's (C, H, W) input by a list of
small steps, each reporting in words what it did, so the page can show before/after. Only the
header is read before the size check, so a decompression bomb is refused before PIL decodes a
pixel; 16-bit grey is scaled to 8 bits, not clipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickletools
import struct
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vizcore.core.config import TrainConfig
from vizcore.core.registry import Registry
from vizcore.data.domains import domain_info, load_domain
from vizcore.data.images import PIL_READ_ERRORS as _PIL_READ_ERRORS
from vizcore.data.images import eight_bit, to_shape
from vizcore.explain.cam import class_activation_maps, normalize_maps
from vizcore.models import list_models
from vizcore.models.architecture import build_network
from vizcore.models.base import GapNet
from vizcore.store.runs import (
    CheckpointError,
    Run,
    RunStore,
    slugify,
)
from vizcore.store.weights import read_safetensors, state_dict_problems

if TYPE_CHECKING:
    from PIL import Image

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
IMAGE_FORMATS = ("PNG", "JPEG")
MAX_IMAGE_PIXELS = 50_000_000  # larger is refused before decoding (a "decompression bomb")
# Largest upload, in Streamlit's megabytes (MiB); .streamlit/config.toml gives the server the same
# server.maxUploadSize (a test checks). The largest registered model (resnet18) is 45 MB in F32,
# a 50-megapixel photo far less as JPEG, and the largest header safetensors reads (100 MB) fits.
MAX_UPLOAD_MB = 100
WORK_SIZE = 512  # big photos are shrunk to this longest side first; the model sees far less
# Prefixes of the names a plain state dict's pickle imports; a refusal names any others (code).
# Protocol 2 pickles bytes as _codecs.encode(text, "latin1").
_HARMLESS_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset",
                     "_codecs.encode")  # fmt: skip
PICKLE_SCAN_BYTES = 1 << 20  # a refused pickle's names are read from its first MiB


# --------------------------------------------------------------------------- reading checkpoints


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


def check_upload_size(data: bytes, name: str) -> None:
    """ValueError when ``data`` is larger than MAX_UPLOAD_MB (what the server lets through)."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        mb = len(data) / 1024 / 1024
        raise ValueError(f"{name} is {mb:,.1f} MB, more than the {MAX_UPLOAD_MB} MB vizcore reads")


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


# --------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class Architecture:
    """A registered model and the constructor arguments a checkpoint needs."""

    model: str
    num_classes: int = 10
    in_channels: int = 1
    bottleneck_dim: int = 0
    standardize: bool = False  # has no tensors, so it cannot be inferred: the user says

    def build(self) -> GapNet:
        return build_network(self.model, num_classes=self.num_classes, in_channels=self.in_channels,
                             bottleneck_dim=self.bottleneck_dim, standardize=self.standardize)  # fmt: skip

    def describe(self) -> str:
        bott = f", bottleneck {self.bottleneck_dim}" if self.bottleneck_dim else ""
        return f"{self.model}: {self.num_classes} classes, {self.in_channels} input channel(s){bott}"


def _head_and_stem(model: str) -> tuple[str, str]:
    """Names of a model's classifier weight (last 2-D tensor) and first conv weight (first 4-D)."""
    ref = Architecture(model).build().state_dict()
    stem = next(k for k, v in ref.items() if v.ndim == 4)
    head = [k for k, v in ref.items() if v.ndim == 2][-1]
    return head, stem


def guess_architecture(state: dict[str, torch.Tensor], model: str) -> Architecture:
    """Read classes, input channels and bottleneck width of ``model`` off the tensors' shapes."""
    head, stem = _head_and_stem(model)
    arch = Architecture(model)
    if stem in state and state[stem].ndim == 4:
        arch = replace(arch, in_channels=int(state[stem].shape[1]))
    if head in state and state[head].ndim == 2:
        arch = replace(arch, num_classes=int(state[head].shape[0]))
    bott = next((v for k, v in state.items() if k.startswith("bottleneck.") and v.ndim == 2), None)
    if bott is not None:
        arch = replace(arch, bottleneck_dim=int(bott.shape[0]))
    return arch


def problems(state: dict[str, torch.Tensor], arch: Architecture, expected_classes: int | None = None) -> list[str]:
    """Everything that stops ``state`` loading into ``arch``, classes first, in words."""
    out: list[str] = []
    head, _ = _head_and_stem(arch.model)
    if expected_classes is not None and head in state and state[head].shape[0] != expected_classes:
        out.append(
            f"number of classes: the checkpoint has {state[head].shape[0]} ({head} is "
            f"{tuple(state[head].shape)}), {expected_classes} were chosen"
        )
    try:
        model = arch.build()
    except (TypeError, ValueError) as e:
        return [*out, f"cannot build {arch.describe()}: {e}"]
    found = state_dict_problems(model, state)
    # shape mismatches say most about what is wrong; missing/unexpected names follow
    return out + sorted(found, key=lambda m: m.startswith(("missing", "unexpected")))


@dataclass(frozen=True)
class Candidate:
    arch: Architecture
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems


def infer_architectures(state: dict[str, torch.Tensor]) -> list[Candidate]:
    """Every registered model with the arguments read off the tensors, best fit first."""
    out = []
    for name in list_models():
        arch = guess_architecture(state, name)
        out.append(Candidate(arch, tuple(problems(state, arch))))
    return sorted(out, key=lambda c: len(c.problems))


def load_checked(state: dict[str, torch.Tensor], arch: Architecture, expected_classes: int | None = None) -> GapNet:
    """The model with the checkpoint's weights, in eval mode; CheckpointError lists every mismatch."""
    found = problems(state, arch, expected_classes)
    if found:
        shown = "; ".join(found[:8]) + (f"; and {len(found) - 8} more" if len(found) > 8 else "")
        raise CheckpointError(f"the checkpoint does not fit {arch.describe()}: {shown}")
    model = arch.build()
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------- saving as a run


def matching_domains(arch: Architecture) -> list[str]:
    """Registered data sets with the architecture's number of classes (what a run can be evaluated on)."""
    from vizcore.data.domains import list_domains

    return [d for d in list_domains() if domain_info(d).num_classes == arch.num_classes]


def _slug(text: str) -> str:
    return slugify(Path(text).stem, 40) if Path(text).stem else "file"


@torch.no_grad()
def _accuracy(model: GapNet, data: str, shape: tuple[int, int, int], limit: int) -> float | None:
    try:
        dom = load_domain(data, "test", shape=shape, limit=limit)
    except Exception:  # noqa: BLE001 — data not available here: the run is still saved, unscored
        return None
    preds = torch.cat([model(dom.images[i : i + 512]).argmax(1) for i in range(0, len(dom), 512)])
    return float((preds == dom.labels).float().mean())


def standardize_check(
    ckpt: Checkpoint, arch: Architecture, data: str, input_shape: tuple[int, int, int] | None = None, limit: int = 500
) -> dict[bool, float | None]:
    """Test accuracy on ``data`` without and with per-image input standardisation (False/True keys).

    The flag has no tensors, so no file can tell; a model trained with it (vizcore's recipes are)
    classifies far worse without it, and this makes that visible before the run is kept.
    """
    shape = input_shape or (arch.in_channels, *domain_info(data).native_shape[1:])
    return {
        flag: _accuracy(load_checked(ckpt.tensors, replace(arch, standardize=flag)), data, tuple(shape), limit)
        for flag in (False, True)
    }


def save_uploaded_run(
    store: RunStore,
    ckpt: Checkpoint,
    arch: Architecture,
    data: str,
    input_shape: tuple[int, int, int] | None = None,
    eval_limit: int = 2000,
) -> Run:
    """Write an accepted checkpoint as a complete run, so every view works on it.

    The folder is filled under a hidden name and renamed into place in one step, so no one ever
    sees a half-written run. Its config names the file it came from; ``data`` is the data set
    the views evaluate it on (its number of classes must match).
    """
    spec = domain_info(data)
    if spec.num_classes != arch.num_classes:
        raise ValueError(
            f"data set {data!r} has {spec.num_classes} classes but the checkpoint {arch.num_classes}; "
            f"choose one of: {', '.join(matching_domains(arch)) or 'an image folder (folder:<path>)'}"
        )
    shape = input_shape or (arch.in_channels, *spec.native_shape[1:])
    if shape[0] != arch.in_channels:
        raise ValueError(f"input shape {shape} has {shape[0]} channels, the model takes {arch.in_channels}")
    model = load_checked(ckpt.tensors, arch, arch.num_classes)
    config = TrainConfig(
        source=data, model=arch.model, epochs=0, bottleneck_dim=arch.bottleneck_dim,
        standardize=arch.standardize, input_shape=tuple(shape), name=f"uploaded file {ckpt.filename}",
    )  # fmt: skip
    acc = _accuracy(model, data, tuple(shape), eval_limit)
    summary = {"status": "complete", "epochs_done": 0, "steps": 0, "provenance": ckpt.provenance,
               "notes": list(ckpt.notes), **({} if acc is None else {"source_acc": acc})}  # fmt: skip
    return store.create(
        config, slug=f"uploaded-{_slug(ckpt.filename)}", weights=model.state_dict(), summary=summary,
        status="complete", message=ckpt.provenance,
    )  # fmt: skip


# --------------------------------------------------------------------------- images


@dataclass
class Prepared:
    """An uploaded image before and after preprocessing.

    Shape:
        original: (H0, W0, 3) uint8 as uploaded (alpha flattened); tensor: (1, C, H, W) in [0, 1].
    """

    name: str
    original: np.ndarray
    tensor: torch.Tensor
    steps: list[str] = field(default_factory=list)
    inverted: bool = False

    @property
    def model_view(self) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8: what the model sees, for display."""
        x = (self.tensor[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return x[..., 0] if x.shape[-1] == 1 else x


@dataclass(frozen=True)
class ImageOptions:
    """invert: None = automatic (dark-on-light images for grey models); frame: centre the
    digit in a 20/28 box like MNIST (grey models only; None = automatic)."""

    invert: bool | None = None
    frame: bool | None = None


# A step takes (H, W, C) floats in [0, 1], the target (C, H, W) and the options, and returns the
# new array and a sentence saying what it did (None when it did nothing).
Step = Callable[[np.ndarray, tuple[int, int, int], ImageOptions], tuple[np.ndarray, str | None]]
STEPS: Registry[Step] = Registry("preprocessing step")


def _open_image(data: bytes, name: str) -> Image.Image:
    """The image with only its header read, refused before any pixel is decoded when it is
    not PNG/JPEG or declares more than MAX_IMAGE_PIXELS (a "decompression bomb")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns from 89M pixels and raises from twice that, both inside Image.open and
            # past MAX_IMAGE_PIXELS; as errors they reach the message below, not the browser
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header, decodes nothing
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(
            f"{name} is refused before decoding: it declares more than the {MAX_IMAGE_PIXELS:,} "
            f"pixels vizcore decodes ({e})"
        ) from None
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not an image PIL can read") from None
    except _PIL_READ_ERRORS as e:
        raise ValueError(
            f"{name} is truncated or damaged: PIL cannot read its header ({e})"
        ) from None
    if img.format not in IMAGE_FORMATS:
        raise ValueError(f"{name} is a {img.format} image; upload PNG or JPEG")
    if img.width * img.height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{name} is refused before decoding: it is {img.width}x{img.height} = "
            f"{img.width * img.height:,} pixels, more than the {MAX_IMAGE_PIXELS:,} vizcore decodes"
        )
    return img


def _decode(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """(H, W, 3) uint8, EXIF-rotated, transparency filled with white; refuses non-PNG/JPEG."""
    from PIL import Image, ImageOps

    check_upload_size(data, name)
    img = _open_image(data, name)
    notes = [f"read {img.format} {img.width}x{img.height}, mode {img.mode}"]
    try:
        img.load()  # the pixels, decoded here and only here
        img = ImageOps.exif_transpose(img)  # reads the EXIF block, which can be damaged too
    except _PIL_READ_ERRORS as e:
        raise ValueError(
            f"{name} is truncated or damaged: PIL cannot decode its pixels ({e})"
        ) from None
    img, note = eight_bit(img)
    notes += [note] if note else []
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # a drawing on a transparent canvas: transparency counts as paper (white)
        base = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, img.convert("RGBA"))
        notes.append("filled the transparent background with white")
    if max(img.size) > WORK_SIZE:
        img.thumbnail((WORK_SIZE, WORK_SIZE), Image.LANCZOS)
    return np.asarray(img.convert("RGB")), notes


def _border(x: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixels: the background of a centred object. (C,)"""
    edge = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    return np.median(edge, axis=0)


@STEPS.register("channels")
def _channels(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    grey = bool(np.allclose(x[..., 0], x[..., 1], atol=2 / 255) and np.allclose(x[..., 1], x[..., 2], atol=2 / 255))
    if shape[0] == 1:
        # ITU-R BT.601 luminance, as vizcore.data.domains.to_shape and PIL's convert("L")
        y = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return y[..., None], None if grey else "converted colour to grey (BT.601 luminance)"
    return x, "kept the grey image, as three equal RGB channels" if grey else None


def _wants_invert(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> bool:
    if opts.invert is not None:
        return opts.invert
    # MNIST-style grey models learned light strokes on a dark background
    return shape[0] == 1 and float(_border(x).mean()) > 0.5


@STEPS.register("invert")
def _invert(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    if not _wants_invert(x, shape, opts):
        return x, None
    why = "chosen" if opts.invert else "the image is dark-on-light; MNIST digits are light-on-dark"
    return 1.0 - x, f"inverted the image ({why})"


@STEPS.register("contrast")
def _contrast(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    if shape[0] != 1:
        return x, None
    lo, hi = float(np.percentile(x, 1)), float(np.percentile(x, 99.5))
    if hi - lo < 1e-3 or (lo < 0.02 and hi > 0.98):
        return x, None
    # a photographed page is grey, not black: map its background to 0 and its ink to 1, like MNIST
    return np.clip((x - lo) / (hi - lo), 0, 1), f"stretched the contrast (grey levels {lo:.2f}–{hi:.2f} → 0–1)"


def _square(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    s = max(h, w)
    out = np.empty((s, s, x.shape[2]), dtype=x.dtype)
    out[:] = fill
    out[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = x
    return out


def _resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()
    return to_shape(t, (x.shape[2], *hw))[0].permute(1, 2, 0).numpy()


def _mass_centred(digit: np.ndarray, background: np.ndarray, hw: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner that puts the digit's centre of ink mass at the frame's centre (kept inside)."""
    ink = np.abs(digit - background).sum(axis=2)
    total = ink.sum()
    if total <= 0:
        return (hw[0] - digit.shape[0]) // 2, (hw[1] - digit.shape[1]) // 2
    cy = float((ink.sum(1) * np.arange(digit.shape[0])).sum() / total)
    cx = float((ink.sum(0) * np.arange(digit.shape[1])).sum() / total)
    top = int(round((hw[0] - 1) / 2 - cy))
    left = int(round((hw[1] - 1) / 2 - cx))
    return min(max(top, 0), hw[0] - digit.shape[0]), min(max(left, 0), hw[1] - digit.shape[1])


def _frames(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> bool:
    return opts.frame if opts.frame is not None else shape[0] == 1


@STEPS.register("size")
def _size(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    h0, w0 = x.shape[:2]
    _, h, w = shape
    ink = np.abs(x - _border(x)).max(axis=2) > 0.25 if _frames(x, shape, opts) else None
    if ink is not None and ink.any():
        # MNIST: the digit's box fitted into 20x20 (of 28), aspect kept, centred
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        crop = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        inner = (max(1, round(h * 20 / 28)), max(1, round(w * 20 / 28)))
        digit = _resize(_square(crop, _border(x)), inner)
        top, left = _mass_centred(digit, _border(x), (h, w))
        out = np.empty((h, w, x.shape[2]), dtype=np.float32)
        out[:] = _border(x)
        out[top : top + inner[0], left : left + inner[1]] = digit
        return out, (
            f"cropped to the digit ({crop.shape[1]}x{crop.shape[0]} of {w0}x{h0}), fitted into "
            f"{inner[1]}x{inner[0]} keeping its aspect ratio and placed in {w}x{h} with its centre of "
            "mass in the middle, as MNIST digits are"
        )
    if (h0, w0) == (h, w):
        return x, None
    sq = _square(x, _border(x)) if h0 != w0 and h == w else x
    pad = f"padded to a {sq.shape[1]}x{sq.shape[0]} square with the background colour, " if sq is not x else ""
    return _resize(sq, (h, w)), f"{pad}resized {sq.shape[1]}x{sq.shape[0]} → {w}x{h} (antialiased bilinear)"


def prepare_image(
    data: bytes, shape: Sequence[int], name: str = "image", options: ImageOptions | None = None
) -> Prepared:
    """Bring an uploaded PNG/JPEG to a model's input, saying what was done at each step.

    Args:
        data: the file's bytes.
        shape: the model's input (C, H, W), C in {1, 3}.
        name: shown in messages.
        options: inversion and MNIST framing; None means automatic.

    Raises:
        ValueError: not a PNG/JPEG, more than MAX_IMAGE_PIXELS (refused before decoding), or
            truncated or damaged; the message names the file.
    """
    c, h, w = (int(s) for s in shape)
    options = options or ImageOptions()
    rgb, notes = _decode(data, name)
    x = rgb.astype(np.float32) / 255.0  # (H, W, 3)
    inverted = False
    for step_name in STEPS:
        x, note = STEPS.get(step_name)(x, (c, h, w), options)
        if note:
            notes.append(note)
            inverted |= step_name == "invert"
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None].clamp_(0, 1)
    return Prepared(name, rgb, tensor, notes, inverted)


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image and its CAM of the top class.

    Shape:
        cam: (H, W) min-max normalised to [0, 1].
    """

    top: tuple[tuple[int, float], ...]
    cam: np.ndarray

    @property
    def label(self) -> int:
        return self.top[0][0]


def predict(model: GapNet, images: torch.Tensor, k: int = 3) -> list[Prediction]:
    """Top-k probabilities and the CAM of the predicted class for each image.

    Shape:
        images: (N, C, H, W) in [0, 1], the model's input shape.
    """
    r = class_activation_maps(model, images)
    maps = normalize_maps(r.maps).numpy()
    p, idx = r.probs.topk(min(k, r.probs.shape[1]), dim=1)
    return [
        Prediction(tuple(zip(idx[i].tolist(), p[i].tolist(), strict=True)), maps[i])
        for i in range(len(images))
    ]
