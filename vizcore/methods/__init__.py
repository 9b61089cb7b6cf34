"""Training methods: source-only and the domain-adaptation losses (one file each).

A method is an ``nn.Module`` with ``step(ctx, xs, ys, xt, progress)``: by default one backward
pass of ``loss(model, xs, ys, xt, progress)``, which runs one joint forward pass over source and
target, adds the classification loss on the labelled source and
``lambda(progress) * transfer_loss(f_s, f_t)``. Methods that need a different loss override
``loss``; those with their own updates (several optimisers, alternating steps) override ``step``
and ``optimizers``; ``train.py`` stays one loop.
"""

from __future__ import annotations

from vizcore.core.registry import Registry
from vizcore.methods.base import Method, split_features

METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    return METHODS.register(name)


def create_method(name: str, **kwargs) -> Method:
    return METHODS.get(name)(**kwargs)


def list_methods() -> list[str]:
    return METHODS.names()


def curves_of(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The curves a method declares: (step values, end-of-epoch values); a name no longer
    registered (a run of a method since removed) declares none."""
    if name not in METHODS:
        return (), ()
    cls = METHODS.get(name)
    return cls.extra_metrics, cls.eval_metrics


# registration order is the order the Train page lists them in
from vizcore.methods import source_only, ddc, dan, dann, coral, cdan, adda, finetune, distill, instance_spread  # noqa: E402,F401,I001

__all__ = ["Method", "METHODS", "create_method", "curves_of", "list_methods", "register_method", "split_features"]
