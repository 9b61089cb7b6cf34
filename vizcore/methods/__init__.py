"""Training methods: source-only and the domain-adaptation losses (one file each).

A method is an ``nn.Module`` with ``loss(model, xs, ys, xt, progress)``. The default
``loss`` runs one joint forward pass over source and target, adds the classification
loss on the labelled source and ``lambda(progress) * transfer_loss(f_s, f_t)``. Methods
that need a different step override ``loss``; ``train.py`` stays one loop.
"""

from __future__ import annotations

from vizcore.methods.base import Method, split_features
from vizcore.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    return METHODS.register(name)


def create_method(name: str, **kwargs) -> Method:
    return METHODS.get(name)(**kwargs)


def list_methods() -> list[str]:
    return METHODS.names()


# registration order is the order the Train page lists them in
from vizcore.methods import source_only, ddc, dan, dann, coral  # noqa: E402,F401,I001

__all__ = ["Method", "METHODS", "create_method", "list_methods", "register_method", "split_features"]
