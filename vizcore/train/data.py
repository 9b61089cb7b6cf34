"""The data of a run: its source and target splits at the run's input shape and limits, as pixels
in memory or as files for the streaming path, with a target's labels as the source's classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vizcore.core.config import TrainConfig
from vizcore.data.domains import Domain, FileSplit, load_domain
from vizcore.data.feeds import choose_streaming
from vizcore.data.pairs import align_target
from vizcore.data.sources.folders import folder_files
from vizcore.models.architecture import resolve_input_shape

Split = Domain | FileSplit  # pixels in memory, or files for the streaming path (vizcore.data.feeds)


@dataclass
class Data:
    source_train: Split
    source_test: Split
    target_train: Split | None
    target_test: Split | None


def load_split(config: TrainConfig, name: str, split: str, layout_seed: int | None = None) -> Domain:
    """One split of one of the run's domains, at the run's input shape and limits;
    ``layout_seed`` redraws a generated domain's layout."""
    return load_domain(
        name,
        split,
        seed=config.seed,
        root=config.data_root,
        download=config.download,
        shape=resolve_input_shape(config),
        limit=config.train_limit if split == "train" else config.test_limit,
        layout_seed=layout_seed,
    )


def epoch_layout_seed(seed: int, epoch: int) -> int | None:
    """Layout seed of 1-based ``epoch`` under ``fresh_layouts``; epoch 1 keeps the run's own
    layout, so a 1-epoch run sees the same images with or without fresh layouts."""
    return None if epoch <= 1 else seed + 1_000_003 * (epoch - 1)


def training_split(config: TrainConfig, name: str, split: str) -> Split:
    """One split as the run reads it: files when the run's data path streams it, else pixels."""
    shape = resolve_input_shape(config)
    limit = config.train_limit if split == "train" else config.test_limit
    if choose_streaming(config.data_path, name, split, shape, limit):
        return folder_files(name, split, shape=shape, seed=config.seed, limit=limit)
    return load_split(config, name, split)


def labels_per_class(domain: Split, k: int, seed: int) -> Split:
    """``k`` images of every class of ``domain``, drawn with ``seed`` (class order kept).

    Raises:
        ValueError: a class has fewer than ``k`` images.
    """
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c, name in enumerate(domain.classes):
        idx = torch.nonzero(domain.labels == c).flatten()
        if len(idx) < k:
            raise ValueError(f"target_labels_per_class={k}: class {name!r} of {domain.name} has only "
                             f"{len(idx)} training images")  # fmt: skip
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    return domain.subset(torch.cat(picked).sort().values, f"{k} labelled images per class (seed {seed})")


def load_data(config: TrainConfig) -> Data:
    """The four splits; a target's labels are the source's class indices (its class map).

    With ``target_labels_per_class`` the labelled training set is K images per class of the
    target's training split, in place of the source's; both test splits are kept.
    """

    def target(split: str) -> Split | None:
        if not config.target:
            return None
        return align_target(training_split(config, config.target, split), config.source, config.class_map)

    target_train = target("train")
    source_train = training_split(config, config.source, "train")
    if config.target_labels_per_class and target_train is not None:
        source_train = labels_per_class(target_train, config.target_labels_per_class, config.seed)
    return Data(
        source_train=source_train,
        source_test=training_split(config, config.source, "test"),
        target_train=target_train,
        target_test=target("test"),
    )
