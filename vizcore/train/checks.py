"""The checks of a config before it trains: :func:`check_config` refuses a bad value or
combination in one line, before any run folder exists, so the Train page, the command line (exit 2)
and the library say the same words."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vizcore.core.config import TrainConfig
from vizcore.core.device import resolve_device
from vizcore.core.params import validate
from vizcore.core.registry import UnknownNameError
from vizcore.core.rules import ConfigError, UnknownConfigName
from vizcore.data.domains import DataUnavailable, check_available, domain_info, list_domains
from vizcore.data.feeds import check_data_path
from vizcore.data.pairs import check_domain_pair
from vizcore.methods import METHODS
from vizcore.methods.base import Method
from vizcore.methods.freeze import frozen_layers
from vizcore.models.architecture import build_model, pretrained_models, resolve_input_shape

REFUSALS: tuple[type[Exception], ...] = (ValueError, LookupError, DataUnavailable)

# What each field a method may require gives it, for the message when it is missing.
_NEEDS = {
    "init_from": "a parent run to start from",
    "teacher": "a teacher run",
    "target_labels_per_class": "labelled target images per class",
}
# Lineage fields a method may be given only when it requires them. init_from is not one: the
# trainer starts any method from a parent's weights (a warm start). Only a method that requires a
# teacher reads one, so a teacher anywhere else would be recorded and never used.
_ONLY_WHEN_REQUIRED = ("teacher",)


def check_config(config: TrainConfig) -> None:
    """Refuse what cannot train, before a run folder exists (the message says what is valid).

    Cheapest first: each field's type and range (:meth:`TrainConfig.check_values`), names
    against their registries, what the method needs and uses, the domains (directory listings,
    no images), the model (built once, without pretrained weights) and the device. The runs a
    config starts from are checked by :func:`resolve_lineage`.

    Raises:
        ConfigError: a bad value or combination, in one line naming the field, its flag, the
            value and what is valid (an unknown name is also a LookupError).
        DomainMismatch: the domains' classes do not correspond (the message lists both).
        DataUnavailable: a domain's files are missing (the message says what to do).
    """
    config.check_values()
    config.check_names()
    _check_method(config, METHODS.get(config.method))
    _check_data(config)
    _check_model(config)
    with _as_config_error():  # a device that is not here
        resolve_device(config.device)


@contextlib.contextmanager
def _as_config_error() -> Iterator[None]:
    """A helper's ValueError (one line naming the value and what is valid) as a ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_method(config: TrainConfig, method: type[Method]) -> None:
    """The method's own parameters, and the fields it needs, ignores or cannot work with."""
    name = method.label or config.method
    with _as_config_error():
        validate(method.params, config.method_params, owner=name)
    for need in method.requires:
        if not getattr(config, need):
            raise ConfigError(f"{name} needs {need} ({config.flag(need)}): {_NEEDS.get(need, need)}")  # fmt: skip
    for used in _ONLY_WHEN_REQUIRED:
        if getattr(config, used) and used not in method.requires:
            users = [m for m in METHODS if used in METHODS.get(m).requires]
            raise ConfigError(f"{name} does not use {config.field_text(used)}; only {', '.join(users)} does")  # fmt: skip
    if method.uses_target and not config.target:
        raise ConfigError(f"{name} adapts the model to an unlabelled target domain: it needs a target (--target)")  # fmt: skip
    if config.freeze and not (config.init_from or config.pretrained):
        raise ConfigError(f"{config.field_text('freeze')} keeps weights fixed, so it needs trained ones: a "
                          "parent run (--init-from) or ImageNet weights (--pretrained); frozen random "
                          "weights never learn")  # fmt: skip
    if config.target_labels_per_class is not None:
        if not config.target:
            raise ConfigError("target_labels_per_class (--target-labels-per-class) needs a target domain to "
                              "draw the labelled images from (--target)")  # fmt: skip
        if method.uses_target:
            raise ConfigError(f"{name} adapts to an unlabelled target; target_labels_per_class trains on "
                              "labelled target images instead (use finetune or source_only)")  # fmt: skip


def _check_data(config: TrainConfig) -> None:
    """Both domains are known, have corresponding classes, can be read by the data path, and
    their files are there."""
    roles = [role for role in ("source", "target") if getattr(config, role) is not None]
    for role in roles:
        with _naming_the_domain(config, role):
            domain_info(getattr(config, role))  # a folder: domain is scanned for its class folders
    # mismatched domains before missing files: class names need no files
    check_domain_pair(config.source, config.target, class_map=config.class_map)
    for role in roles:
        name = getattr(config, role)
        with _naming_the_domain(config, role):
            check_available(name, root=config.data_root, download=config.download)
        with _as_config_error():  # e.g. "stream" for a domain made in memory
            check_data_path(config.data_path, name)
    if config.domain_bn or config.target_im:
        _check_target_terms(config)
    if config.adabn and not config.target:
        raise ConfigError("adabn (--adabn) recomputes BatchNorm statistics on the target training images: "
                          "it needs a target (--target)")  # fmt: skip


def _check_target_terms(config: TrainConfig) -> None:
    """``domain_bn`` and ``target_im`` act in the shared loss on a target batch: they need a
    target and a method trained through that loss (not ADDA's or distillation's own steps)."""
    names = [n for n in ("domain_bn", "target_im") if getattr(config, n)]
    flags = " and ".join(config.field_text(n) for n in names)
    act, need, apply = ("act", "need", "apply") if len(names) > 1 else ("acts", "needs", "applies")
    if not config.target:
        raise ConfigError(f"{flags} {act} on the target batches and {need} a target (--target)")
    if not METHODS.get(config.method).uses_shared_loss():
        users = ", ".join(m for m in METHODS if METHODS.get(m).uses_shared_loss())
        raise ConfigError(f"{flags} {apply} to the methods trained through the shared loss ({users}), "
                          f"not {config.method}")  # fmt: skip


@contextlib.contextmanager
def _naming_the_domain(config: TrainConfig, role: str) -> Iterator[None]:
    """An unknown or unreadable domain, with the field and flag that named it."""
    try:
        yield
    except UnknownNameError:
        raise UnknownConfigName(f"unknown data set {config.field_text(role)}; valid names: "
                                f"{', '.join(list_domains())}, or folder:PATH for an image folder") from None  # fmt: skip
    except DataUnavailable as e:
        raise DataUnavailable(f"{role} ({config.flag(role)}): {e}") from None


def _check_model(config: TrainConfig) -> None:
    """The model can be built for the run's images (once, never with ImageNet weights: that would
    download them), and ``freeze`` names its layers."""
    shape = resolve_input_shape(config)
    if config.pretrained and config.model not in pretrained_models():
        raise ConfigError(f"{config.model} has no pretrained weights (--pretrained); pretrained "
                          f"backbones: {', '.join(pretrained_models())}")  # fmt: skip
    # a shift as wide as the image shows nothing of it, and random_shift pads by the shift
    if config.augment_shift >= min(shape[1:]):
        raise config.must_be("augment_shift", f"smaller than the images' side, {min(shape[1:])} pixels")  # fmt: skip
    try:
        model = build_model(config.replace(input_shape=shape), pretrained=False)
    except ValueError as e:
        raise ConfigError(f"model {config.model!r} (--model) cannot be built from this config: {e}") from None  # fmt: skip
    with _as_config_error():
        frozen_layers(model, config.freeze)
