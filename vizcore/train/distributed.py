"""Data-parallel training over several processes started by ``torchrun``.

    torchrun --nproc_per_node 2 -m vizcore train --method dann --source mnist --target mnist-m

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; :func:`current_world` reads them. Every process
builds the same model from the same seed and draws the same global batch; each takes its own
slice of it (:meth:`World.shard`), and before every optimiser step the gradients are averaged
over the processes (:func:`synchronise`), so every process takes the same step and the weights
stay identical. This is the arithmetic of PyTorch's DistributedDataParallel; its module
wrapper is not used because it synchronises from inside ``forward()``, and vizcore's methods
read a network through ``forward_features`` and may own several optimisers (ADDA, a GAN
discriminator), which a hook on each optimiser's step covers whatever the method does.

BatchNorm: on CUDA (NCCL) BatchNorm layers become ``SyncBatchNorm``, so the statistics of a step
are those of the global batch, as in one process. On the CPU (gloo) PyTorch has no synchronised
BatchNorm, so each process normalises with its own slice's statistics (as DDP does without
SyncBatchNorm): the result is then close to, not equal to, one process with the same global batch.

Only rank 0 writes the run; the others train alongside and never touch the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

# a rank that stops answering fails the others after this long, instead of the default 30 min
TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run and prints progress."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's slice of a global batch (rows rank, rank + size, ...)."""
        return batch[self.rank :: self.size]


def current_world() -> World | None:
    """The world torchrun describes in the environment, or None for a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def check_batch(world: World | None, batch_size: int) -> None:
    """Refuse a global batch that the processes cannot share evenly (before any run folder exists).

    Raises:
        ValueError: naming the batch sizes that would work.
    """
    if world is None:
        return
    if batch_size % world.size:
        lower = batch_size - batch_size % world.size
        raise ValueError(
            f"batch size {batch_size} cannot be split evenly over {world.size} processes; use a multiple of "
            f"{world.size} (e.g. {lower or world.size} or {lower + world.size}) or another --nproc_per_node"
        )


def device_for(world: World | None, device: torch.device) -> torch.device:
    """On CUDA each process uses the GPU of its local rank."""
    if world is not None and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


class WorldError(RuntimeError):
    """The processes cannot form their group (the message says what to change)."""


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU), once per process."""
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    except dist.DistNetworkError as e:
        if "EADDRINUSE" not in str(e):
            raise
        port = os.environ.get("MASTER_PORT", "?")
        raise WorldError(f"port {port} for the processes to meet on is in use by another program; start "
                           "torchrun with --standalone (it picks a free port) or --master_port N") from None  # fmt: skip


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """SyncBatchNorm on CUDA, where PyTorch has it; the model unchanged on the CPU."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model


def synchronise(optimizer: torch.optim.Optimizer, world: World) -> None:
    """Average every gradient of ``optimizer``'s parameters over the processes before each step.

    One all-reduce of all gradients flattened together per step; a parameter without a
    gradient on this step (a frozen or unused one) is skipped on every process alike, since
    all processes run the same code on the same step.
    """

    def average(opt: torch.optim.Optimizer, *_: object) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    optimizer.register_step_pre_hook(average)


def all_finite(value: torch.Tensor, world: World | None) -> bool:
    """Whether ``value`` is finite on every process (all must stop together, or the others wait)."""
    ok = torch.isfinite(value.detach()).all().float().reshape(1)
    if world is not None:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def finish(world: World | None) -> None:
    """Leave the process group."""
    if world is not None and dist.is_initialized():
        dist.destroy_process_group()
