"""A source and a target domain as a pair: the same classes in the same order, or an explicit
class map (:func:`check_domain_pair`), checked before a run exists; :func:`align_target` renumbers a
target's labels as the source's classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from vizcore.core.errors import DomainMismatch
from vizcore.data.domains import Domain, domain_info


def check_domain_pair(
    source: str, target: str | None, *, class_map: Mapping[str, str] | None = None
) -> None:
    """Refuse a source and target whose classes do not correspond.

    Cheap: it reads class names (a directory listing for ``folder:`` domains), never images.
    Without ``class_map`` both domains need the same class names in the same order, so label
    ``k`` means the same class on both sides; with it, every target class must be mapped onto a
    source class by name.

    Args:
        source: The labelled source domain.
        target: The target domain, or None for plain supervised training.
        class_map: Target class name -> source class name (e.g. ``{"cat": "0"}``), for domains
            whose names differ on purpose; None or empty to require equal classes.

    Raises:
        DomainMismatch: the classes differ (the message lists both lists), or ``class_map``
            names unknown classes, leaves target classes unmapped, or is given without a target.
        UnknownNameError: a name is not registered.
        DataUnavailable: a ``folder:`` path is missing or has no class folders.
    """
    if target is None:
        if class_map:
            raise DomainMismatch("a class map renames target classes, but there is no target")
        return
    names = domain_info(source).class_names, domain_info(target).class_names
    _target_index(source, names[0], target, names[1], class_map)


def align_target(target: Domain, source: str, class_map: Mapping[str, str] | None = None) -> Domain:
    """``target`` with its labels renumbered as the classes of ``source``.

    Without a class map the classes must already be equal and ``target`` itself is returned;
    with one, label ``k`` becomes the index of the source class that target class ``k`` maps to.

    Args:
        target: A loaded target domain. Shape of its labels: (N,).
        source: The source domain's name; only its class names are read.
        class_map: Target class name -> source class name, as for :func:`check_domain_pair`.

    Returns:
        A :class:`Domain` with the source's classes; labels int64. Shape: (N,).

    Raises:
        DomainMismatch: as :func:`check_domain_pair`.
    """
    names = domain_info(source).class_names
    index = _target_index(source, names, target.name, target.classes, class_map)
    if not class_map:
        return target
    lut = torch.tensor(index, dtype=torch.int64)
    pairs = ", ".join(f"{t}→{s}" for t, s in class_map.items())
    return dataclasses.replace(
        target,
        labels=lut[target.labels],
        classes=names,
        provenance=f"{target.provenance} Target classes mapped onto {source}'s: {pairs}.",
    )


def _listing(classes: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(classes[:limit]) + (", ..." if len(classes) > limit else "")
    return f"({len(classes)}) {shown}"


def _target_index(
    source: str,
    source_classes: Sequence[str],
    target: str,
    target_classes: Sequence[str],
    class_map: Mapping[str, str] | None,
) -> tuple[int, ...]:
    """Source label of each target label; raises :class:`DomainMismatch` with both lists."""
    both = (
        f"\n  source {source}: {_listing(source_classes)}"
        f"\n  target {target}: {_listing(target_classes)}"
    )
    if not class_map:
        if tuple(source_classes) == tuple(target_classes):
            return tuple(range(len(target_classes)))
        same_set = sorted(source_classes) == sorted(target_classes)
        how = "the same classes in a different order" if same_set else "different classes"
        example = ",".join(f"{t}={s}" for t, s in zip(target_classes, source_classes, strict=False))
        raise DomainMismatch(
            f"source and target have {how}:{both}\nPick domains with the same classes (name a "
            "folder's class folders like the source's classes), or map each target class onto a "
            f"source class with --class-map (TrainConfig.class_map), e.g. --class-map {example}"
        )
    unknown_values = sorted({s for s in class_map.values() if s not in source_classes})
    checks = {
        "not target classes": [t for t in class_map if t not in target_classes],
        "not source classes": unknown_values,
        "target classes left unmapped": [t for t in target_classes if t not in class_map],
    }
    problems = "; ".join(f"{what}: {', '.join(got)}" for what, got in checks.items() if got)
    if problems:
        raise DomainMismatch(f"the class map does not fit the domains ({problems}):{both}")
    return tuple(source_classes.index(class_map[t]) for t in target_classes)
