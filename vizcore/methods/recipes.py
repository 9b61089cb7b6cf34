"""Tuned training recipes per method and domain shift.

``recommended_config(method, source, target, **overrides)`` is what the Train page, the CLI's
``--recipe`` and ``bench/domain_adaptation.py`` start from, so the numbers in the README can be
reproduced from the same defaults. Layers are merged in this order (later wins):

1. ``BASE``: shared by every method (optimiser, schedule, input standardisation, ...);
2. ``BY_METHOD[method]``: the method's weight ``trade_off`` and its own parameters;
3. :func:`from_data`: what the images themselves call for (:mod:`vizcore.methods.recipe_data`,
   measured on a sample of each domain: size, channels, colour or grey on each side, which way
   the ink runs, the number of images), so any pair, folders included, gets a recipe that fits it;
4. ``BY_SHIFT[(source, target)]``: what a particular pair of domains needs;
5. ``BY_METHOD_SHIFT[(method, source, target)]``: the rare method-and-shift specific value;
6. ``overrides``: explicit values of the caller.

Plain supervised training (no target) uses ``SUPERVISED``, :func:`from_data`, ``BY_SOURCE`` and
``overrides``. The measured layers come after the data layer, so the recipes measured for the
built-in domains stay as they were. ``method_params`` dictionaries are merged key by key rather
than replaced. ``recipe_notes`` gives the reasons behind each layer, for the UI.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vizcore.core.config import TrainConfig
from vizcore.methods import METHODS
from vizcore.methods.recipe_data import (  # noqa: F401 - re-exported: the recipe's data layer
    STATS_SAMPLE,
    DataAdvice,
    Defaults,
    ImageStats,
    image_stats,
    measure,
)
from vizcore.methods.recipe_data import from_data as measured_advice

Fields = dict[str, Any]

BASE: Fields = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "lr": 0.01,
    "schedule": "dann",
    "weight_decay": 5e-4,
    "batch_size": 64,
    "epochs": 8,
    "bottleneck_dim": 256,
    "standardize": True,
    "precise_bn": True,
}
BASE_NOTE = (
    "SGD with momentum 0.9 and the DANN paper's annealed learning rate mu_0 / (1 + 10 p)^0.75 "
    "(a one-cycle schedule peaking at 0.1 made adversarial training diverge); a 256-d linear + "
    "BatchNorm adaptation layer that keeps the head affine, so CAM stays exact; per-image "
    "standardisation, which removes the colour and contrast part of the shift. Every method, "
    "source-only included, uses the same network and schedule, so differences are the method's. "
    "BatchNorm statistics are recomputed over the training batches before each evaluation "
    "(precise BN): with the running average, target accuracy jumped by 2-4 points between "
    "epochs while the features moved."
)

# Plain supervised training (no target): the LeNet-GAP recipe measured in the README
# (TrainConfig's defaults: SGD + Nesterov, one-cycle lr 0.1, batch 128) plus these.
SUPERVISED: Fields = {"epochs": 15, "augment_shift": 2}
SUPERVISED_NOTE = (
    "SGD with Nesterov momentum 0.9, a one-cycle learning rate peaking at 0.1, batch 128, "
    "random shifts of up to 2 pixels, BatchNorm before each ReLU: 97.8% on the bundled MNIST "
    "in 15 epochs (97.2% with 12 epochs and no shifts)."
)
BY_SOURCE: dict[str, Fields] = {
    # a receptive field wider than a digit on the 60x60 canvas; the README has the measurements
    "cluttered-mnist": {"model": "lenet_gap_plus", "epochs": 20, "augment_shift": 0, "fresh_layouts": True},
}
SOURCE_NOTES: dict[str, str] = {
    "cluttered-mnist": (
        "lenet_gap_plus: one more unpooled 3x3 conv widens the receptive field from 14 to 22 "
        "pixels, enough to see a whole digit on the 60x60 canvas (the two-block net reached 22% "
        "after an epoch). Fresh clutter every epoch, because on fixed canvases it overfit "
        "(92.9% test, 98% train); 20 epochs reach 95.8% and a 99.0% CAM pointing game."
    ),
}

BY_METHOD: dict[str, Fields] = {
    "source_only": {},
    "ddc": {"trade_off": 0.25},
    "dan": {"trade_off": 1.0},
    "dann": {"trade_off": 0.3},
    "coral": {"trade_off": 1.0},
    "cdan": {"trade_off": 0.3},
    # the ADDA paper's Adam at 2e-4, but only the adaptation layer adapts, on a cosine decay: the
    # whole encoder at a constant rate collapsed on MNIST-M (54% -> 18% target)
    "adda": {"optimizer": "adam", "lr": 2e-4, "schedule": "cosine", "precise_bn": False, "freeze": ["features"]},
    "finetune": {"epochs": 30},
}
METHOD_NOTES: dict[str, str] = {
    "source_only": (
        "Trains on source batches only, so BatchNorm keeps source statistics; every adaptation "
        "method instead passes source and target through one BatchNorm, which by itself already "
        "adapts part of the shift (see the benchmark's lambda = 0 control)."
    ),
    "ddc": "lambda = 0.25, as in the DDC write-up (lambda = 2 gave the same target accuracy).",
    "dan": (
        "lambda = 1, five Gaussian kernels (bandwidths 1/4 to 4 times the mean distance) on the "
        "GAP and adaptation layers; adapting the logits instead lowered target accuracy."
    ),
    "dann": (
        "lambda = 0.3 and a 2-layer domain classifier with dropout: with lambda = 1 the "
        "adversarial game oscillated and source accuracy collapsed. Read its live domain accuracy "
        "with care: in 8 short epochs this classifier learns slowly (80% with the reversal off), "
        "so near 50% is weak evidence of alignment: on printed digits -> MNIST it sat at 41-52% while "
        "a fresh classifier still told the domains' features apart at 99% (bench/domain_probe.py). "
        "One that learns 10x faster without dropout "
        "(90% with the reversal off) plays a real game, and lowered target accuracy on both "
        "benchmark shifts (README). Near 100% the classifier wins; far below 50% lower lambda."
    ),
    "coral": "lambda = 1; lambda = 30 over-regularised the features (source accuracy fell to 75%).",
    "cdan": "lambda = 0.3 and DANN's domain classifier, here on the multilinear map of features and predictions.",
    "adda": (
        "Adam at 2e-4 as in the ADDA paper, decayed on a cosine; the target encoder's conv trunk stays "
        "the source's (frozen), only its adaptation layer learns and keeps target BatchNorm statistics "
        "(no recomputation pass, which would mix in the source). Training the whole encoder at a "
        "constant rate collapsed on MNIST-M (54% -> 18% target); at rates small enough not to, it "
        "only matched re-estimating BatchNorm on the target (AdaBN)."
    ),
    "finetune": "30 epochs: with K labelled images per class an epoch is only a few steps.",
}

BY_SHIFT: dict[tuple[str, str], Fields] = {
    # the data layer reads these as grey on SVHN-GAP, and its ink rule would add the target terms;
    # the README's MNIST-M numbers were measured with LeNet-GAP in colour without them, as these keep
    ("mnist", "mnist-m"): {"augment_invert": 0.5, "model": "lenet_gap", "input_shape": None,
                           "domain_bn": False, "target_im": 0.0},
}
SHIFT_NOTES: dict[tuple[str, str], str] = {
    ("mnist", "mnist-m"): (
        "Half of the source images are shown inverted (1 - x): the |patch - digit| blend draws a "
        "dark stroke on a light ground for every bright photo crop (39% of the target), a "
        "contrast MNIST never has. Without this, source-only got 14% and DANN 20% of those right; "
        "with it, 56% and 63% (bench/mnistm_polarity.py): every method gained 11-14 points of "
        "target accuracy, for about 2 of source accuracy. Source-only gets it too, so the gains "
        "stay comparable. The target terms the ink rule adds elsewhere (domain BatchNorm, "
        "information maximisation) stay off: this shift's table was measured without them."
    ),
}

BY_METHOD_SHIFT: dict[tuple[str, str, str], Fields] = {}


# --------------------------------------------------------------------------- from the data


def _defaults(target: str | None, method: str | None) -> Defaults:
    """The epochs and batch size the data layer scales from: the supervised recipe's (the
    TrainConfig defaults' batch) or the adaptation recipe's with the method's own epochs."""
    if target is None:
        return Defaults(SUPERVISED["epochs"], TrainConfig.batch_size)
    own = {**BASE, **BY_METHOD.get(method or "", {})}
    shared = method in METHODS and METHODS.get(method).uses_shared_loss()
    return Defaults(own["epochs"], own["batch_size"], shared_loss=shared)


def from_data(
    source: str, target: str | None = None, root: str | None = None, *, method: str | None = None
) -> DataAdvice:
    """The data layer (:mod:`vizcore.methods.recipe_data`): what the measured images call for."""
    return measured_advice(source, target, _defaults(target, method), root)


def _merge(layers: list[Fields]) -> Fields:
    out: Fields = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "method_params":
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


def recommended_config(
    method: str, source: str, target: str | None = None, **overrides: Any
) -> TrainConfig:
    """The tuned configuration for ``method`` on ``source`` -> ``target``, with ``overrides`` on top.

    Args:
        method: a registered method name (``list_methods()``).
        source: the labelled source domain.
        target: the unlabelled target domain, or None for plain supervised training.
        overrides: any ``TrainConfig`` field; ``method_params`` is merged key by key.

    Raises:
        UnknownNameError: ``method`` is not registered.
        ValueError: an override is not a ``TrainConfig`` field.
    """
    METHODS.get(method)  # an unknown method raises here, listing the valid names
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
    shift = (source, target) if target else None
    data = from_data(source, target, overrides.get("data_root"), method=method).fields
    if shift is None:  # supervised: the TrainConfig defaults are the tuned LeNet-GAP recipe
        fields = _merge([SUPERVISED, data, BY_SOURCE.get(source, {}), overrides])
        return TrainConfig(**{**fields, "method": method, "source": source, "target": None})
    fields = _merge(
        [
            BASE,
            BY_METHOD.get(method, {}),
            data,
            BY_SHIFT.get(shift, {}) if shift else {},
            BY_METHOD_SHIFT.get((method, *shift), {}) if shift else {},
            overrides,
        ]
    )
    return TrainConfig(**{**fields, "method": method, "source": source, "target": target})


def recipe_notes(
    method: str, source: str, target: str | None = None, *, root: str | None = None
) -> list[str]:
    """Why the recipe looks the way it does, one sentence per applicable layer.

    ``root`` is the data root the domains are measured under (``TrainConfig.data_root``).
    """
    data = from_data(source, target, root, method=method).note
    data_notes = [data] if data else []
    if not target:  # plain supervised training
        return [SUPERVISED_NOTE, *data_notes] + (
            [SOURCE_NOTES[source]] if source in SOURCE_NOTES else []
        )
    notes = [BASE_NOTE]
    if method in METHOD_NOTES:
        notes.append(METHOD_NOTES[method])
    notes += data_notes
    if (source, target) in SHIFT_NOTES:
        notes.append(SHIFT_NOTES[(source, target)])
    return notes
