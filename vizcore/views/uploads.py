"""Checkpoints and images that users bring from elsewhere, as the Upload page uses them.

Reading a checkpoint safely is :mod:`vizcore.store.checkpoints`; bringing an image to a model's
input is :mod:`vizcore.data.prepare`. Here: the architecture, inferred from the tensors' shapes for
every registered model (number of classes from the classifier, input channels from the first
convolution, the bottleneck width) and checked tensor by tensor with
:func:`vizcore.store.weights.state_dict_problems`; saving an upload as a run; and predictions with
the CAM of the predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vizcore.core.config import TrainConfig
from vizcore.data.domains import domain_info, load_domain
from vizcore.explain.cam import class_activation_maps, normalize_maps
from vizcore.models import list_models
from vizcore.models.architecture import build_network
from vizcore.models.base import GapNet
from vizcore.store.checkpoints import Checkpoint
from vizcore.store.run import Run
from vizcore.store.runs import CheckpointError, RunStore, slugify
from vizcore.store.weights import state_dict_problems

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
