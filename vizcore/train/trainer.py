"""The state of one training run and its steps: data and model built once, then epochs of steps,
each epoch ended by the BatchNorm pass and the evaluations, every value reported as a
:class:`Progress` event. :func:`vizcore.train.loop.train` drives a :class:`Trainer` and writes what
it reports into the run's folder; the trainer itself writes nothing."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from vizcore.core.config import TrainConfig
from vizcore.core.device import resolve_device
from vizcore.data.domains import domain_info
from vizcore.data.feeds import (
    Feed,
    FeedOptions,
    make_feed,
    photo_augment,
)
from vizcore.methods import create_method
from vizcore.methods.base import Lineage, Method, StepContext
from vizcore.methods.freeze import apply_freeze
from vizcore.models.architecture import build_model, resolve_input_shape
from vizcore.store.run import Run
from vizcore.store.weights import load_state_checked
from vizcore.train import distributed
from vizcore.train.augment import random_invert, random_shift
from vizcore.train.data import epoch_layout_seed, load_data, load_split
from vizcore.train.lineage import _Lineage
from vizcore.train.optim import OPTIMIZERS, SCHEDULES


class Diverged(FloatingPointError):
    """The loss, or after a step the weights, became NaN or Inf."""


@dataclass
class Progress:
    """One event of a training run.

    kind: "start" (once, at once), "ready" (data and model built), "step" (every
    ``log_every`` steps), "stage" (each piece of end-of-epoch work as it begins, named in
    ``message``: recomputing BatchNorm statistics, evaluating on the source test split, on the
    target test split), "epoch" (after each evaluation) or "end" (once, with the final status).
    """

    kind: str
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    values: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    message: str = ""
    run_id: str | None = None
    time: float = field(default_factory=time.time)

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(model: nn.Module, feed: Feed) -> float:
    """Top-1 accuracy in eval mode over every item of ``feed``."""
    was = model.training
    model.eval()
    correct = 0
    for x, y in feed.in_order():
        correct += (model(x).argmax(1) == y).sum().item()
    model.train(was)
    return correct / max(len(feed), 1)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch; the last incomplete batch is dropped (BatchNorm needs >1)."""
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)] or [perm]


class _TargetStream:
    """Endless shuffled batches of target images, independent of the source epoch length.

    The batch order of each pass is drawn from ``gen`` when the last pass runs out, as the
    source's is at each epoch start, so both data paths draw the same batches; ``shard`` is this
    process's slice of a global batch.
    """

    def __init__(self, feed: Feed, batch_size: int, gen: torch.Generator,
                 shard: Callable[[torch.Tensor], torch.Tensor] = lambda b: b, own_pass: bool = False) -> None:  # fmt: skip
        self.feed, self.bs, self.gen, self.shard, self.own_pass = feed, batch_size, gen, shard, own_pass
        self.batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())

    def next(self) -> torch.Tensor:
        batch = next(self.batches, None)
        if batch is None:
            queue = _batches(len(self.feed), min(self.bs, len(self.feed)), self.gen)
            self.batches = self.feed.load((self.shard(b) for b in reversed(queue)), own_pass=self.own_pass)
            batch = next(self.batches)
        return batch[0]


def as_floats(logs: dict[str, Any]) -> dict[str, float]:
    return {k: float(v.detach().float().item() if torch.is_tensor(v) else v) for k, v in logs.items()}


def _check_finite(loss: torch.Tensor, step: int, world: distributed.World | None = None) -> None:
    # before the step, so a NaN never reaches the weights (one sync a step, cheap next to it);
    # over several processes all of them stop together, or the others would wait for ever
    if not distributed.all_finite(loss, world):
        raise Diverged(f"training diverged at step {step + 1}: the loss became NaN/Inf ({loss.item():g})")


class Trainer:
    """State of one training run; ``train`` drives it."""

    def __init__(
        self, config: TrainConfig, run: Run | None, stop: threading.Event | None, lineage: _Lineage | None = None
    ) -> None:
        self.config, self.run, self.stop = config, run, stop
        lineage = lineage or _Lineage()
        torch.manual_seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.world = distributed.current_world()
        self.device = distributed.device_for(self.world, resolve_device(config.device))
        if self.world is not None:
            distributed.start(self.world, self.device)
        # the batch order comes from ``gen``, identical in every process; each process augments its
        # own slice, so augmentations draw from a generator of their own (the same one alone)
        self.aug_gen = (self.gen if self.world is None
                        else torch.Generator().manual_seed(config.seed * 1_000_003 + self.world.rank))  # fmt: skip
        self.data = load_data(config)
        if config.target and self.data.target_train is not None and len(self.data.target_train) == 0:
            raise ValueError(f"target domain {config.target!r} has no training images")
        self.model = build_model(config)
        parent = None
        if lineage.parent_state is not None:  # init_from: start from the parent's weights
            load_state_checked(self.model, lineage.parent_state, source=f"run {config.init_from!r}")
            parent = copy.deepcopy(self.model)
        if self.world is not None:
            self.model = distributed.prepare_model(self.model, self.device)
        self.model.to(self.device)
        self.frozen = apply_freeze(self.model, config.freeze)
        self.method: Method = create_method(
            config.method,
            trade_off=config.trade_off,
            feature_dim=self.model.feature_dim,
            num_classes=self.model.num_classes,
            domain_bn=config.domain_bn,
            target_im=config.target_im,
            **config.method_params,
        ).to(self.device)
        teacher = lineage.teacher.to(self.device) if lineage.teacher is not None else None
        self.method.setup(self.model, Lineage(parent=parent.to(self.device) if parent else None, teacher=teacher))
        self.opts = self.method.optimizers(self.model, lambda params: OPTIMIZERS.get(config.optimizer)(params, config))
        if self.world is not None:  # every optimiser's step averages the gradients over the processes
            for opt in self.opts.values():
                distributed.synchronise(opt, self.world)
        self.lr_at = SCHEDULES.get(config.schedule)
        self.steps_per_epoch = len(_batches(len(self.data.source_train), config.batch_size, torch.Generator()))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.step = 0
        self.epoch = 0
        # bf16 autocast needs no loss scaling; CPU runs in full precision (it is not faster there)
        self.amp = config.amp and self.device.type == "cuda"
        self._make_feeds(config)
        # (with a labelled target budget the training images are not the source's to redraw)
        self.fresh_layouts = (
            config.fresh_layouts and domain_info(config.source).generated and not config.target_labels_per_class
        )
        # The last weights known finite, copied at an epoch end: what a failed run keeps.
        self.kept: dict[str, torch.Tensor] | None = None
        self.kept_epoch, self.kept_step = 0, 0
        self.kept_eval: dict[str, float] = {}

    def _make_feeds(self, config: TrainConfig) -> None:
        """Where each split's batches come from (vizcore.data.feeds): the source and, for a method that
        uses it, the target stream (augmented, on the device), the target images BatchNorm
        statistics are recomputed on (AdaBN, domain_bn), and the test splits."""
        crop = photo_augment(resolve_input_shape(config)) if config.augment_crop else None
        self.feed_options = FeedOptions(self.device, config.workers, crop, config.seed)
        self.source = make_feed(self.data.source_train, self.feed_options, train=True)
        self.shard = self.world.shard if self.world is not None else (lambda b: b)
        tt = self.data.target_train
        self.targets = None
        if tt is not None and self.method.uses_target:
            self.targets = _TargetStream(make_feed(tt, self.feed_options, train=True), config.batch_size, self.gen,
                                         self.shard)  # fmt: skip
        reads_target = (config.adabn or config.domain_bn) and tt is not None
        self.target_images = make_feed(tt, self.feed_options, train=False) if reads_target else None
        self.tests = {side: make_feed(split, self.feed_options, train=False)
                      for side, split in (("source", self.data.source_test), ("target", self.data.target_test))
                      if split is not None}  # fmt: skip

    def start_epoch(self, epoch: int) -> None:
        """Set the 1-based epoch; under ``fresh_layouts`` redraw a generated source's images."""
        self.epoch = epoch
        self.model.train()
        if self.fresh_layouts and epoch > 1:
            src = load_split(self.config, self.config.source, "train", epoch_layout_seed(self.config.seed, epoch))
            self.source = make_feed(src, self.feed_options, train=True)

    def epoch_batches(self) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        """This epoch's source batches: (global batch size, this process's (images, labels))."""
        batches = _batches(len(self.source), self.config.batch_size, self.gen)
        return zip((len(b) for b in batches), self.source.load(self.shard(b) for b in batches), strict=True)

    def _set_lr(self) -> float:
        lr = self.config.lr * self.lr_at(self.step / max(self.total_steps, 1))
        for opt in self.opts.values():
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
        return lr

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def augment(self, xs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The configured augmentations of a source batch."""
        if self.config.augment_shift:
            xs = random_shift(xs, self.config.augment_shift, gen)
        if self.config.augment_invert:
            xs = random_invert(xs, self.config.augment_invert, gen)
        return xs

    def train_step(self, xs: torch.Tensor, ys: torch.Tensor) -> dict[str, Any]:
        """One step of the method (its own hook: one backward by default, or its own updates)
        on this process's source batch and the next target batch."""
        lr = self._set_lr()
        xt = self.targets.next() if self.targets else None
        xs = self.augment(xs, self.aug_gen)
        ctx = StepContext(self.model, self.opts, lambda loss: _check_finite(loss, self.step, self.world),
                          self._autocast, self.aug_gen, self.augment)  # fmt: skip
        logs = self.method.step(ctx, xs, ys, xt, self.step / max(self.total_steps, 1))
        self.step += 1
        return {**logs, "lr": lr}

    @torch.no_grad()
    def precise_bn(self, domain: str | None = None) -> None:
        """Recompute every BatchNorm's running statistics with the current weights.

        During training they are an exponential average over the last ~10 batches, taken while
        the weights moved; under adversarial training that lag made the test accuracy jump by
        several points from one epoch to the next. One pass over the training batches, built as
        in training (augmented source, plus target for a method that uses it; labels unused),
        with a cumulative average instead. Its own random stream, so training is unchanged.
        ``domain`` ("source" or "target"): that domain's training images alone (``domain_bn``).
        """
        self.model.train()
        # a frozen BatchNorm keeps its statistics (vizcore.methods.freeze)
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and not getattr(m, "_vizcore_frozen", False)]  # fmt: skip
        if not bns:
            return
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch counts the same
        for x in self._bn_batches(domain):
            if len(x) < 2:  # an in-order pass can end on one image, which BatchNorm cannot train on
                continue
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                self.model(x)
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum

    def _bn_batches(self, domain: str | None = None) -> Iterator[torch.Tensor]:
        """The batches BatchNorm statistics are recomputed over: the target training images alone
        under ``adabn`` (or ``domain="target"``), else the training batches as built in training
        (augmented source, plus target for a method that uses it unless ``domain="source"``),
        from a random stream of their own."""
        if domain == "target" or (domain is None and self.target_images is not None):
            yield from (x for x, _ in self.target_images.in_order(self.config.batch_size))
            return
        gen = torch.Generator().manual_seed(self.config.seed + 7_919 * self.epoch)
        # its own pass: the training stream's target pass is still being read
        joint = self.targets is not None and domain is None
        targets = _TargetStream(self.targets.feed, self.targets.bs, gen, own_pass=True) if joint else None
        for x, _ in self.source.load(_batches(len(self.source), self.config.batch_size, gen)):
            x = self.augment(x, gen)
            yield x if targets is None else torch.cat([x, targets.next()])

    def evaluate_all(self) -> Iterator[Progress]:
        """Test accuracies (the generator's return value), each stage announced as it begins;
        with ``precise_bn`` the BatchNorm statistics are recomputed first, under ``domain_bn``
        once per domain."""
        here = (self.epoch, self.step, self.total_steps)
        # (BatchNorm domain, the test splits read with its statistics); under domain_bn each split
        # is read with its own domain's, the target's last, so they are the ones the model keeps
        plan: list[tuple[str | None, list[str]]] = (
            [(side, [side]) for side in self.tests] if self.config.domain_bn else [(None, list(self.tests))]
        )
        recompute = self.config.precise_bn or self.config.domain_bn or self.target_images is not None
        out = {}
        for domain, sides in plan:
            if recompute:
                yield Progress("stage", *here, message="recomputing BatchNorm statistics" + self._bn_words(domain))
                self.precise_bn(domain)
            for side in sides:
                yield Progress("stage", *here, message=f"evaluating on the {side} test split")
                out[f"{side}_acc"] = evaluate(self.model, self.tests[side])
        if names := self.method.eval_metrics:  # the method's own end-of-epoch values
            yield Progress("stage", *here, message=f"evaluating {', '.join(names)}")
            out.update(self.method.evaluate(self.model, self.source, self.tests["source"]))
        return out

    def _bn_words(self, domain: str | None) -> str:
        if domain is not None:
            return f" on the {domain} training images"
        return " on the target training images (AdaBN)" if self.target_images is not None else ""

    def describe_data(self) -> str:
        """How the training images are read, for the "ready" event."""
        feeds = [self.source, *([self.targets.feed] if self.targets else [])]
        streamed = [f for f in feeds if f.streaming]
        if not streamed:
            return "images in memory"
        workers = streamed[0].workers
        return (f"streaming {sum(len(f) for f in streamed):,} training images from disk "
                f"({workers} loader worker{'s' if workers != 1 else ''})")  # fmt: skip

    def non_finite(self) -> list[str]:
        """Names of weights and buffers holding NaN or Inf (empty when all are finite)."""
        state = self.model.state_dict()
        return [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]

    def end_epoch(self) -> Iterator[Progress]:
        """Check, evaluate and keep the weights at an epoch end; returns the accuracies.

        The loss is checked before every step, but an optimiser can still blow the weights up
        with a finite loss: they are checked here, before and after the BatchNorm pass, so
        only finite weights are ever kept or written.
        """
        if bad := self.non_finite():
            raise Diverged(f"training diverged by step {self.step}: {', '.join(bad[:3])} became NaN/Inf")
        accs = yield from self.evaluate_all()
        if bad := self.non_finite():
            raise Diverged(f"BatchNorm statistics became NaN/Inf at epoch {self.epoch}: {', '.join(bad[:3])}")
        kept = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.run is not None:
            self.run.save_weights(kept)  # the last good checkpoint; a failed write keeps the previous one
        # only now are these the weights the run has: a write that failed (a full disk) changes nothing
        self.kept, self.kept_epoch, self.kept_step, self.kept_eval = kept, self.epoch, self.step, accs
        return accs
