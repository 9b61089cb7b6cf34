"""Distances between classes and domains in feature space (pure functions, no UI)."""

from vizcore.metrics import classical, information, learned, transport  # noqa: F401  (register their measures)
from vizcore.metrics.distances import (
    FAMILIES,
    METRICS,
    DistanceResult,
    MetricInfo,
    TwoSampleResult,
    class_distance_matrix,
    cross_domain_matrix,
    list_metrics,
    metric_info,
    two_sample,
)
from vizcore.metrics.mmd import (
    GaussianFamily,
    PairsMMD,
    mmd2,
    mmd2_pairs,
    mmd2_torch,
    resolve_bandwidth,
)
from vizcore.metrics.sampling import SamplePlan, class_samples, cross_domain_samples
from vizcore.metrics.validators import VALIDATORS, ValidationData, Validator, score_all

__all__ = [
    "FAMILIES",
    "METRICS",
    "DistanceResult",
    "GaussianFamily",
    "MetricInfo",
    "PairsMMD",
    "SamplePlan",
    "VALIDATORS",
    "ValidationData",
    "Validator",
    "TwoSampleResult",
    "class_distance_matrix",
    "class_samples",
    "cross_domain_matrix",
    "cross_domain_samples",
    "list_metrics",
    "metric_info",
    "mmd2",
    "mmd2_pairs",
    "mmd2_torch",
    "resolve_bandwidth",
    "score_all",
    "two_sample",
]
