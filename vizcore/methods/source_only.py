"""Source only: plain supervised training on the labelled source, the baseline of every table."""

from __future__ import annotations

from vizcore.methods import register_method
from vizcore.methods.base import Method


@register_method("source_only")
class SourceOnly(Method):
    uses_target = False
    label = "Source only"
    description = "Cross-entropy on the labelled source; the target is only evaluated."
