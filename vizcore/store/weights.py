"""Weights I/O: safetensors files read and written, checked tensor by tensor against a model, and
hashed once per file version (the key of a run's cached analyses)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from vizcore.core.atomic import write_bytes_atomic

if TYPE_CHECKING:  # torch is imported where weights are touched: listing runs stays light
    import torch


class CheckpointError(ValueError):
    """Weights that cannot be loaded into the run's architecture; the message says why."""


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Content hash of a file; size and mtime in the key only say when to hash it again."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_safetensors(path: Path | str | bytes) -> dict[str, torch.Tensor]:
    """Read a safetensors file (path or raw bytes); a corrupt file raises CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    try:
        return load(path) if isinstance(path, bytes) else load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"not a readable safetensors file ({e})") from e


def state_dict_problems(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Every difference between a checkpoint and a model's expected tensors, in words."""
    import torch

    expected = model.state_dict()
    problems = [f"missing tensor {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state]
    problems += [f"unexpected tensor {k} {tuple(state[k].shape)}" for k in state if k not in expected]
    for k, v in expected.items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            problems.append(f"{k}: checkpoint has shape {tuple(state[k].shape)}, model expects {tuple(v.shape)}")
    for k, v in state.items():
        if k in expected and v.is_floating_point() and not torch.isfinite(v).all():
            problems.append(f"{k}: contains NaN or Inf values")
    return problems


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    problems = state_dict_problems(model, state)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {shown}")
    model.load_state_dict(state)


def _write_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    write_bytes_atomic(path, save({k: v.detach().cpu().contiguous() for k, v in state.items()}))
