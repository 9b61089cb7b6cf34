"""Device choice: CUDA, else Apple MPS, else CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's choice into a usable device, explaining why a request cannot be met."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested (--device cuda) but no CUDA GPU is visible to PyTorch; "
                         "use --device auto or cpu, or check the driver with nvidia-smi")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("Apple MPS was requested but is not available on this machine; use --device auto or cpu")
    return torch.device(name)


def available_devices() -> list[str]:
    """The choices that can actually run here, 'auto' first."""
    out = ["auto"]
    if torch.cuda.is_available():
        out.append("cuda")
    if torch.backends.mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out
