"""Optimisers and learning-rate schedules, by name: registries, so the Train page lists them,
``TrainConfig`` checks a name against them and tests cover each."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vizcore.core.registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.add(
    "sgd",
    lambda params, c: torch.optim.SGD(
        params, lr=c.lr, momentum=c.momentum, nesterov=c.momentum > 0, weight_decay=c.weight_decay
    ),
)
OPTIMIZERS.add("adam", lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay))
OPTIMIZERS.add("adamw", lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay))

# Each schedule maps progress p in [0, 1) to a multiplier of the base learning rate.
SCHEDULES: Registry[Callable[[float], float]] = Registry("schedule")
SCHEDULES.add("constant", lambda p: 1.0)
SCHEDULES.add("cosine", lambda p: 0.5 * (1 + math.cos(math.pi * p)))
# one-cycle: linear warm-up over the first 15%, then cosine decay to ~0 (Smith 2018)
SCHEDULES.add("onecycle", lambda p: p / 0.15 if p < 0.15 else 0.5 * (1 + math.cos(math.pi * (p - 0.15) / 0.85)))
# the DANN paper's annealing: mu_p = mu_0 / (1 + 10 p)^0.75
SCHEDULES.add("dann", lambda p: (1 + 10 * p) ** -0.75)

