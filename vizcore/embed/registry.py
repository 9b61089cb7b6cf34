"""The registry of 2-D layout methods (``EMBEDDINGS``) and the checks every method shares.

Each method has a label, the parameters it takes (name, default, range: enough for a page to
build sliders) and a caption template saying how the layout was computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vizcore.core.params import Param
from vizcore.core.params import defaults as param_defaults
from vizcore.core.params import validate as validate_params
from vizcore.core.registry import Registry

#: Fewest points any method accepts; below this a 2-D layout says nothing.
MIN_POINTS = 5

ProgressFn = Callable[[float, str], None]
# (features (N, D) float64, seed, init (N, 2) or None, progress, **params) -> (N, 2)
EmbedFn = Callable[..., np.ndarray]


def _no_progress(fraction: float, message: str) -> None:
    return None


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EmbeddingMethod:
    """A registered way to lay features out in 2-D."""

    name: str
    label: str
    caption: str  # format template over the params and ``seed``
    run: EmbedFn
    params: tuple[Param, ...] = ()
    supports_init: bool = False
    min_points: int = MIN_POINTS
    # (n_points, n_features, params) -> None; raises ValueError before any work starts
    validate: Callable[[int, int, Mapping[str, Any]], None] = field(default=lambda n, d, p: None)

    def defaults(self) -> dict[str, float | int]:
        return param_defaults(self.params)


EMBEDDINGS: Registry[EmbeddingMethod] = Registry("embedding method")


def _method(
    name: str,
    *,
    label: str,
    caption: str,
    params: tuple[Param, ...] = (),
    supports_init: bool = False,
    min_points: int = MIN_POINTS,
    validate: Callable[[int, int, Mapping[str, Any]], None] | None = None,
) -> Callable[[EmbedFn], EmbedFn]:
    """Decorator registering ``fn`` as embedding method ``name``."""

    def deco(fn: EmbedFn) -> EmbedFn:
        spec = EmbeddingMethod(
            name,
            label,
            caption,
            fn,
            params,
            supports_init,
            min_points,
            validate or (lambda n, d, p: None),
        )
        EMBEDDINGS.add(name, spec)
        return fn

    return deco


def resolve_params(method: str, params: Mapping[str, Any]) -> dict[str, float | int]:
    """Fill defaults, reject unknown names and cast types, so equal settings hash equal."""
    spec = EMBEDDINGS.get(method)
    return validate_params(spec.params, params, owner=spec.label)


def describe(method: str, seed: int = 0, **params: Any) -> str:
    """One line saying how a layout was computed, for the figure caption."""
    spec = EMBEDDINGS.get(method)
    return spec.caption.format(seed=seed, **resolve_params(method, params))


# --------------------------------------------------------------------------- checks


def _check_features(features: np.ndarray, min_points: int, what: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (points, features); got shape {x.shape}")
    if x.shape[0] < min_points:
        raise ValueError(
            f"{what}: {x.shape[0]} points are too few; a 2-D layout needs at least "
            f"{min_points} points"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what} contain NaN or Inf in {int(bad.sum())} of {x.shape[0]} rows "
            f"(first at row {int(np.argmax(bad))}); drop or fix those rows before embedding"
        )
    return x


def _check_init(init: np.ndarray | None, n: int, spec: EmbeddingMethod) -> np.ndarray | None:
    if init is None:
        return None
    if not spec.supports_init:
        raise ValueError(f"{spec.label} takes no initial layout; align with Procrustes instead")
    init = np.asarray(init, dtype=np.float64)
    if init.shape != (n, 2):
        raise ValueError(f"init must have shape ({n}, 2) to match the features; got {init.shape}")
    if not np.isfinite(init).all():
        raise ValueError("init contains NaN or Inf")
    return init


def check_embed_inputs(features: np.ndarray, method: str, **params: Any) -> dict[str, Any]:
    """Raise the ValueError ``embed`` would raise, without computing; returns the params.

    A page can call this to show a message before starting a long computation.
    """
    spec = EMBEDDINGS.get(method)
    values = resolve_params(method, params)
    x = _check_features(features, spec.min_points)
    spec.validate(x.shape[0], x.shape[1], values)
    return values
