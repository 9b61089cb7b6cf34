"""Cache keys of layouts: a stable digest of the features and a key of method, seed, parameters
and features, so the run store can cache a layout (every layout is deterministic given these)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from vizcore.embed.methods import EMBED_VERSION
from vizcore.embed.registry import resolve_params


def features_digest(features: np.ndarray) -> str:
    """Stable SHA-256 of an array's dtype, shape and values."""
    x = np.ascontiguousarray(features)
    h = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.tobytes())
    return h.hexdigest()


def embedding_key(
    method: str,
    seed: int,
    params: Mapping[str, Any],
    features_digest: str,
    *,
    init_digest: str | None = None,
) -> str:
    """Stable cache key of a layout, e.g. ``"tsne-3f9c0a1b2c3d4e5f"``.

    Defaults are filled in first, so ``{}`` and the explicit defaults share a key; an
    'after' layout started from a 'before' layout passes the latter's digest as
    ``init_digest``. :data:`EMBED_VERSION` is part of the key.
    """
    payload = {
        "version": EMBED_VERSION,
        "method": method,
        "seed": int(seed),
        "params": resolve_params(method, params),
        "features": features_digest,
        "init": init_digest,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{method}-{digest[:16]}"
