"""Recommended training recipes: the defaults the Train page, the CLI and the benchmarks start from.

A recipe is a TrainConfig; explicit overrides always win, so every number in the README can
be reproduced from ``recommended_config(...)`` plus the flags it names.
"""

from __future__ import annotations

from typing import Any

from vizcore.config import TrainConfig


def recommended_config(method: str, source: str, target: str | None = None, **overrides: Any) -> TrainConfig:
    """The tuned defaults for a method on a source (and target) domain."""
    base = TrainConfig(source=source, target=target, method=method)
    return base.replace(**overrides)
