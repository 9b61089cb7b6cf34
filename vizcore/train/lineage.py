"""Runs from runs: the parent a run starts from (``init_from``) and the teacher it learns from,
checked and loaded before a run folder exists."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vizcore.core.config import TrainConfig
from vizcore.models.architecture import build_model, resolve_input_shape
from vizcore.models.base import GapNet
from vizcore.store.run import Run
from vizcore.store.runs import RunStore
from vizcore.store.weights import state_dict_problems


@dataclass
class _Lineage:
    """What a run's parent and teacher give it: the parent's weights, the teacher's model."""

    parent_state: dict[str, torch.Tensor] | None = None
    teacher: GapNet | None = None


def _lineage_run(store: RunStore, role: str, run_id: str) -> Run:
    """The complete run ``run_id`` with weights, for ``role`` ("init_from", "teacher")."""
    try:
        run = store.get(run_id)  # check_run_id first: a hostile id never reaches a path
    except LookupError as e:
        raise ValueError(f"{role}: {e}") from None
    status = run.status().get("status")
    if status != "complete":
        raise ValueError(f"{role}: run {run_id!r} is {status}, not complete; only a complete run can be a {role}")
    if not run.has_weights():
        raise ValueError(f"{role}: run {run_id!r} has no weights")
    return run


def resolve_lineage(config: TrainConfig, store: RunStore | None) -> tuple[TrainConfig, _Lineage]:
    """Check the runs ``config`` starts from and load what it takes of them.

    The parent (``init_from``) and the teacher must exist, be complete, have weights, and fit:
    the parent's weights must load into the run's architecture, the teacher must see the same
    input shape and predict the same classes. A run with no input shape of its own takes its
    parent's (else its teacher's). Everything is checked before a run folder is created.

    Returns:
        the config with its input shape resolved, and the parent's weights and the teacher.
    """
    store = store if store is not None else RunStore()
    parent = _lineage_run(store, "init_from", config.init_from) if config.init_from else None
    teacher = _lineage_run(store, "teacher", config.teacher) if config.teacher else None
    if config.input_shape is None:
        for r in (parent, teacher):
            if r is not None:
                config = config.replace(input_shape=resolve_input_shape(r.config()))
                break
    config = config.replace(input_shape=resolve_input_shape(config))
    out = _Lineage()
    # this run's architecture, built once for both checks (without pretrained weights: only its
    # shapes and its number of classes are read)
    own = build_model(config, pretrained=False)
    if parent is not None:
        state = {k: v for k, v in parent.load_model().state_dict().items()}
        if problems := state_dict_problems(own, state):
            raise ValueError(f"init_from: run {parent.run_id!r} has another architecture than this run "
                             f"({parent.config().model}, input {resolve_input_shape(parent.config())}): "
                             + "; ".join(problems[:4]))  # fmt: skip
        out.parent_state = state
    if teacher is not None:
        t_cfg = teacher.config()
        if (shape := resolve_input_shape(t_cfg)) != config.input_shape:
            raise ValueError(f"teacher: run {teacher.run_id!r} sees {shape} images, this run {config.input_shape}")
        model = teacher.load_model()
        if model.num_classes != own.num_classes:
            raise ValueError(f"teacher: run {teacher.run_id!r} predicts {model.num_classes} classes, "
                             f"this run {own.num_classes}")  # fmt: skip
        for p in model.parameters():
            p.requires_grad_(False)
        out.teacher = model.eval()
    return config, out


# What check_config raises for a config that cannot train: a bad value (ConfigError, and
