"""Seeded orders and splits of a labelled set, the same in every process: a stratified train/test
split for a folder without splits, and a class-balanced order so any prefix (``limit``) keeps the
classes in proportion."""

from __future__ import annotations

import zlib

import numpy as np


def seeded_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator for ``seed`` and a purpose; crc32 because ``hash(str)`` varies per process."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class, ``round(N * test_fraction)`` to test in all.

    Classes get their share by largest remainder; a class of one item stays in train. Each part
    is shuffled, so its first items are not all of one class.

    Returns:
        (train indices, test indices), int64. Shapes: (N_train,), (N_test,).
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_fraction
    n_test = np.floor(exact).astype(np.int64)
    short = int(round(len(labels) * test_fraction)) - int(n_test.sum())
    order = np.argsort(-(exact - n_test), kind="stable")
    n_test[order[: max(short, 0)]] += 1
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    train, test = [], []
    for c, k in zip(classes, n_test, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def balanced_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order whose every prefix holds each class in proportion (within one item).

    An item with rank ``r`` among its class's ``n`` items gets a key in ``[r/n, (r+1)/n)``;
    sorting by key interleaves the classes evenly.
    """
    rng = seeded_rng(seed, "limit")
    key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        key[idx] = (rng.permutation(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(key, kind="stable")
