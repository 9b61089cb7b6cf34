"""How the distances' parameters are described to a person: label, kind, range, help.

Written once, by parameter name, for every measure (the defaults come from each measure's
signature) and for the training methods that use the same kernels (DDC, DAN), so "Number of
kernels" reads the same on the Distances page and on the Train page.
"""

from __future__ import annotations

from typing import Any

from vizcore.core.params import Param
from vizcore.metrics.learned import CLASSIFIERS
from vizcore.metrics.mmd import ESTIMATORS, KERNELS
from vizcore.metrics.transport import ORDERS

BANDWIDTH_RULES = ("mean", "median")
ESTIMATOR_LABELS = {"unbiased": "unbiased (≈ 0 for equal distributions)", "biased": "biased (always ≥ 0)",
                    "linear": "linear-time (O(n), noisier)", "seed": "seed (the group's first experiment)"}
# the estimators a training method can use on a batch ("seed" reproduces a whole matrix's setup)
BATCH_ESTIMATORS = ("biased", "unbiased", "linear")
BATCH_ESTIMATOR_HELP = ("How MMD² is estimated from a batch: biased, always ≥ 0; unbiased, ≈ 0 for equal "
                        "distributions; linear, O(n) and noisier (DAN's linear-time estimator).")
# What a page needs beyond a measure's signature, by parameter name (the default comes from the
# signature), written once for the distances and for the methods that use the same kernels
# (DDC, DAN). One missing here would be labelled by its raw name: the tests refuse that.
DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "estimator": dict(label="Estimator", kind="choice", choices=tuple(ESTIMATORS.names()), labels=ESTIMATOR_LABELS,
                      help="unbiased: ≈ 0 for equal distributions, can be slightly negative; biased: always ≥ 0 "
                           "but > 0 even for equal ones; linear: O(n), noisier; seed: the group's first "
                           "experiment (biased, 5 kernels, bandwidth per pair)."),
    "bandwidth": dict(label="Kernel bandwidth", kind="bandwidth", choices=BANDWIDTH_RULES, low=1e-6, high=1e6,
                      help="base bandwidth of exp(-|a-b|²/(bandwidth·s)): mean or median of the pairwise squared "
                           "distances, or a fixed number"),
    "kernel": dict(label="Kernel", kind="choice", choices=tuple(KERNELS.names()), help="the kernel family"),
    "kernel_num": dict(label="Number of kernels", kind="int", low=1, high=20,
                       help="Gaussians in the family (1: a single kernel)"),
    "kernel_mul": dict(label="Kernel multiplier", kind="float", low=1.0, high=10.0, step=0.5, unit="×",
                       help="ratio between neighbouring bandwidths"),
    "bandwidth_scope": dict(label="Bandwidth from", kind="choice", choices=(None, "matrix", "pair"),
                            help="matrix: one kernel for every entry (comparable entries); pair: the rule on each "
                                 "pair's pooled samples (the seed's convention); automatic: pair for seed only"),
    "k": dict(label="Subspace dimension k", kind="optional_int", low=1, high=10_000, help="empty: min(5, d/2)"),
    "n_projections": dict(label="Random projections", kind="int", low=1, high=10_000,
                          help="random directions the samples are projected on; more: less noise, slower"),
    "classifier": dict(label="Classifier", kind="choice", choices=CLASSIFIERS,
                       choice_labels=("logistic regression", "MLP (64 hidden units)"),
                       help="the model that tries to tell the two samples apart"),
    "folds": dict(label="Folds (held-out scoring)", kind="int", low=2, high=10,
                  help="cross-fitting: each model trains on all folds but one and scores that one, so every "
                       "sample is scored once by a model that never saw it"),
    "steps": dict(label="Training steps", kind="int", low=10, high=5_000, step=50,
                  help="full-batch Adam steps of every model; all the matrix's models train together"),
    "hidden": dict(label="Hidden units", kind="int", low=1, high=1_024,
                   help="width of the model's one hidden layer (ReLU)"),
    "weight_decay": dict(label="Weight decay", kind="float", low=0.0, high=10.0, step=0.005,
                         help="× the squared weights in the loss: keeps the model from growing over-confident on "
                              "few samples, which would push held-out estimates below the truth"),
    "penalty": dict(label="Gradient penalty λ", kind="float", low=0.0, high=1_000.0, step=1.0,
                    help="weight of (‖∇f‖ − 1)², which keeps the critic about 1-Lipschitz (10 in the WGAN-GP paper)"),
    "n_neighbors": dict(label="Neighbours k", kind="int", low=1, high=100,
                        help="the k of the k-nearest-neighbour estimator: small k, less bias; large k, less variance"),
    "order": dict(label="Order p (W_p)", kind="choice", choices=ORDERS, choice_labels=("W1 (earth mover's)", "W2"),
                  help="W1: Euclidean ground cost; W2: squared Euclidean ground cost, square root of the total"),
}  # fmt: skip


_KIND_OF_DEFAULT = {bool: "bool", int: "int", float: "float", str: "choice", type(None): "optional_int"}


def described(name: str, default: Any, **overrides: Any) -> Param:
    """A measure's parameter with its page description; an undescribed one still gets a widget
    (kind from its default; a string is its only choice, so it is not offered), labelled by its
    name until it is added to ``DESCRIPTIONS``). ``overrides`` narrow it for one user (e.g. a
    method that offers fewer estimators)."""
    kind = _KIND_OF_DEFAULT[type(default)]
    ui = DESCRIPTIONS.get(name) or {"label": name.replace("_", " "), "kind": kind, "choices": (default,) * (kind == "choice")}
    ui = {**ui, **overrides}
    if (labels := ui.pop("labels", None)) is not None:  # readable labels of whichever choices are offered
        ui["choice_labels"] = tuple(labels[c] for c in ui["choices"])
    return Param(name=name, default=default, **ui)
