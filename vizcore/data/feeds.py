"""Where training and evaluation batches come from: tensors held in memory, or image files
streamed through a ``torch.utils.data.DataLoader``.

The digit domains are small and generated in memory, so their images stay one tensor (on the
device while training) and a batch is an index into it: the fast path. An image folder too big
to hold (Office-31 or VisDA at 224 px: 0.6 MB of float32 per image) is read an image at a time
by DataLoader workers, with pinned memory for the copy to a GPU and per-image augmentation in
the workers. :func:`choose_streaming` picks the path by size; both paths take the same index
batches, so a run trains on the same images in the same order whichever path reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vizcore.data.domains import Domain, FileSplit
from vizcore.data.images import channels_first, decode_image
from vizcore.data.sources.folders import FOLDER_PREFIX, folder_size

# the choice of data path (TrainConfig.data_path), with what each means
DATA_PATHS = {
    "auto": "stream an image folder whose float32 images would exceed the memory budget, else hold it in memory",
    "memory": "hold every split in memory (the fast path of the digit domains)",
    "stream": "read an image folder's images from disk in DataLoader workers, batch by batch",
}
# Float32 bytes of one split above which "auto" streams it; the environment variable sets it in MB.
STREAM_ABOVE_ENV = "VIZCORE_STREAM_ABOVE_MB"
STREAM_ABOVE_MB = 1024
EVAL_BATCH = 256  # evaluation batch of a streamed split (1,024 at 224 px would be 0.6 GB)

Batch = tuple[torch.Tensor, torch.Tensor]
Transform = Callable[[torch.Tensor], torch.Tensor]


def stream_budget_bytes() -> int:
    """The size above which ``auto`` streams a split (``$VIZCORE_STREAM_ABOVE_MB``, default 1 GB)."""
    raw = os.environ.get(STREAM_ABOVE_ENV, "")
    try:
        mb = float(raw) if raw.strip() else STREAM_ABOVE_MB
    except ValueError:
        raise ValueError(f"{STREAM_ABOVE_ENV} must be a number of megabytes, got {raw!r}") from None
    return int(mb * 2**20)


def check_data_path(data_path: str, name: str) -> None:
    """Refuse an unknown ``data_path``, or "stream" for domain ``name`` when it is not an image folder."""
    if data_path not in DATA_PATHS:
        raise ValueError(f"unknown data path {data_path!r}; choose one of {', '.join(DATA_PATHS)}")
    if data_path == "stream" and not name.startswith(FOLDER_PREFIX):
        raise ValueError(f"the streaming data path reads image folders (folder:PATH); {name} is made in memory")


def choose_streaming(data_path: str, name: str, split: str, shape: tuple[int, int, int],
                     limit: int | None) -> bool:  # fmt: skip
    """Whether ``split`` of domain ``name`` is streamed under ``data_path`` ("auto", "memory", "stream").

    Raises:
        ValueError: an unknown ``data_path``, or "stream" for a domain that is not an image folder.
    """
    check_data_path(data_path, name)
    if data_path != "auto" or not name.startswith(FOLDER_PREFIX):
        return data_path == "stream"
    n = folder_size(name, split)
    n = min(n, limit) if limit else n
    return n * int(np.prod(shape)) * 4 > stream_budget_bytes()


def default_workers(device: torch.device | str = "cpu") -> int:
    """DataLoader workers when the config leaves them open.

    On CUDA the training process mostly waits for the GPU, so workers take every core but one (at
    most 8). On the CPU the step itself wants the cores: a worker per four of them (none on a
    laptop's two, where one worker made training 0.59x as fast as decoding in the training
    process; bench/data_paths.py).
    """
    cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1)) if torch.device(device).type == "cuda" else min(4, cores // 4)


def photo_augment(shape: tuple[int, int, int]) -> Transform:
    """Per-image augmentation of photos: a random resized crop (60-100 % of the area, aspect
    3:4 to 4:3) back to the image's size, and a horizontal flip with probability 1/2 -- the usual
    training transform of Office-31 and VisDA models. Acts on one float (C, H, W) tensor."""
    from torchvision.transforms import v2

    _, h, w = shape
    return v2.Compose(
        [v2.RandomResizedCrop((h, w), scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    )


def _per_image(x: torch.Tensor, transform: Transform) -> torch.Tensor:
    return torch.stack([transform(im) for im in x])


class MemoryFeed:
    """A split held as tensors on ``store`` (the device, for training); batches are index views."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                 store: torch.device | None = None, transform: Transform | None = None) -> None:  # fmt: skip
        where = store or device
        self.images = images.to(where, non_blocking=True)
        self.labels = labels.to(where, non_blocking=True)
        self.device, self.transform = device, transform
        self.streaming = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def load(self, batches: Iterable[torch.Tensor], own_pass: bool = False) -> Iterator[Batch]:
        """(images, labels) of each index batch, on the device (augmented per image if asked);
        ``own_pass`` is the streaming feed's (every pass here is its own)."""
        for idx in batches:
            x, y = self.images[idx], self.labels[idx]
            if self.transform is not None:
                x = _per_image(x, self.transform)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def in_order(self, batch_size: int = 1024) -> Iterator[Batch]:
        """Every item once, in order, unaugmented (evaluation)."""
        n = len(self)
        for i in range(0, n, batch_size):
            x, y = self.images[i : i + batch_size], self.labels[i : i + batch_size]
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class _Files(Dataset):
    """A :class:`FileSplit` as a map-style dataset: float32 (C, H, W) in [0, 1] and the label."""

    def __init__(self, split: FileSplit, transform: Transform | None) -> None:
        self.files, self.labels, self.shape, self.transform = (
            split.files,
            split.labels,
            split.shape,
            transform,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Batch:
        # a file broken past the listing's check raises OSError naming itself (decode_image), as
        # it does on the in-memory path; _moved keeps that line, not the worker's traceback
        x = channels_first(decode_image(self.files[i], self.shape)).to(torch.float32).div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[i]


class _Plan(Sampler[list[int]]):
    """The batches a persistent loader serves next: set before each pass, read as it prefetches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamFeed:
    """A split read from its files by DataLoader workers, batch by batch.

    The run's own passes (the source epochs, the target passes) go through one loader whose
    workers stay up between passes: a target of 800 images is a new pass every 25 steps, and
    starting workers anew each time would make the GPU wait for them.
    """

    def __init__(self, split: FileSplit, device: torch.device, workers: int | None = None,
                 transform: Transform | None = None, seed: int = 0) -> None:  # fmt: skip
        self.split, self.device = split, device
        # a loader draws its workers' seeds from its generator, else from the global stream, which
        # would shift every later random draw of the run (dropout, say) against the in-memory path
        self.seeds = torch.Generator().manual_seed(seed)
        self.labels = split.labels
        self.workers = default_workers(device) if workers is None else workers
        self.train_set, self.eval_set = _Files(split, transform), _Files(split, None)
        self.streaming = True
        self._plan = _Plan()
        self._stream: DataLoader | None = None  # made on first use, its workers kept for the run

    def __len__(self) -> int:
        return len(self.split)

    def _loader(self, data: Dataset, batches: Iterable[Sequence[int]], persistent: bool = False) -> DataLoader:
        more = {"prefetch_factor": 4, "persistent_workers": persistent} if self.workers else {}
        # pinned host memory lets the copy to the GPU overlap the step (non_blocking below)
        return DataLoader(data, batch_sampler=batches, num_workers=self.workers, generator=self.seeds,
                          pin_memory=self.device.type == "cuda", **more)  # fmt: skip

    def _moved(self, loader: DataLoader) -> Iterator[Batch]:
        try:
            for x, y in loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        except OSError as e:  # a worker re-raises with its traceback as the message: keep its last line
            raise OSError(str(e).strip().splitlines()[-1].removeprefix("OSError: ")) from None

    def load(self, batches: Iterable[torch.Tensor], own_pass: bool = False) -> Iterator[Batch]:
        """(images, labels) of each index batch, on the device, augmented in the workers.

        A new pass restarts the kept loader, so a pass made while another is still being read (a
        BatchNorm pass over the target, between two target batches of training) asks for
        ``own_pass``: a loader of its own.
        """
        plan = [b.tolist() for b in batches]
        if own_pass or not self.workers:
            return self._moved(self._loader(self.train_set, plan))
        if self._stream is None:
            self._stream = self._loader(self.train_set, self._plan, persistent=True)
        self._plan.batches = plan
        return self._moved(self._stream)

    def in_order(self, batch_size: int = EVAL_BATCH) -> Iterator[Batch]:
        n = len(self)
        order = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        return self._moved(self._loader(self.eval_set, order))


Feed = MemoryFeed | StreamFeed


@dataclass(frozen=True)
class FeedOptions:
    """How a run's feeds are built: the device, workers and the per-image augmentation."""

    device: torch.device
    workers: int | None = None
    transform: Transform | None = None
    seed: int = 0  # of the streaming loaders' worker seeds


def make_feed(split: Domain | FileSplit, options: FeedOptions, *, train: bool) -> Feed:
    """The feed of one split: a training split lives on the device, a test split on the CPU
    (moved a batch at a time); only training batches are augmented."""
    transform = options.transform if train else None
    if isinstance(split, FileSplit):
        return StreamFeed(split, options.device, options.workers, transform, options.seed)
    store = options.device if train else torch.device("cpu")
    return MemoryFeed(split.images, split.labels, options.device, store, transform)
