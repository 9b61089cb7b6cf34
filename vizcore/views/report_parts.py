"""What a report is made of: its options, its sections (a registry, so a new view is one function
with :func:`section`), the runs it is about (:class:`Context`) and the small HTML helpers the
sections share. The sections themselves are :mod:`vizcore.views.report_sections`; the assembly into
one file is :mod:`vizcore.views.report`."""

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vizcore.core.config import TrainConfig
from vizcore.core.numbers import fmt
from vizcore.core.registry import Registry
from vizcore.data.domains import DataUnavailable
from vizcore.figures import fit_text
from vizcore.store.run import Run
from vizcore.store.runs import CheckpointError
from vizcore.views.distances import DistanceSettings, default_layer
from vizcore.views.embeddings import EmbeddingSettings

# A failure a reader can act on becomes a note in its section; the rest of the report is still made.
SECTION_ERRORS = (ValueError, DataUnavailable, CheckpointError, KeyError)
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows and how.

    Attributes:
        presentation: larger fonts in every figure and in the text.
        cam_images: images in each CAM grid (a seeded sample of the test split).
        layer: feature layer for distances and embeddings; None = the adaptation features
            (bottleneck) where the model has them, else the GAP vector.
        distance: the distance-matrix settings (the Distances page's defaults, so caches are shared).
        embed_method: "tsne", "umap" or "pca".
        embed_points: test points per domain in the embeddings.
        seed: seeds the image sample and the embedding.
    """

    presentation: bool = False
    cam_images: int = 12
    layer: str | None = None
    distance: DistanceSettings = field(default_factory=DistanceSettings)
    embed_method: str = "tsne"
    embed_points: int = (
        EmbeddingSettings().n_per_domain
    )  # the Embeddings page's default: one cached pair
    seed: int = 0


@dataclass
class Section:
    """A titled part of the report: HTML blocks and figures, in the order they were added."""

    key: str
    title: str
    blocks: list[str | go.Figure] = field(default_factory=list)

    def text(self, s: str) -> None:
        self.blocks.append(f"<p>{html.escape(s)}</p>")

    def raw(self, s: str) -> None:
        self.blocks.append(s)

    def figure(self, fig: go.Figure) -> None:
        self.blocks.append(fit_text(fig))  # long run names wrap instead of running off the figure

    @property
    def figures(self) -> list[go.Figure]:
        return [b for b in self.blocks if isinstance(b, go.Figure)]


@dataclass
class Context:
    """The runs a report is about: one run, or (before, after)."""

    runs: list[Run]
    options: ReportOptions

    @property
    def configs(self) -> list[TrainConfig]:
        return [r.config() for r in self.runs]

    @property
    def comparison(self) -> bool:
        return len(self.runs) == 2

    def names(self) -> list[str]:
        labels = [c.label for c in self.configs]
        return (
            [f"{role}: {lab}" for role, lab in zip(("before", "after"), labels, strict=False)]
            if self.comparison
            else labels
        )

    def sides(self, cfg: TrainConfig) -> list[str]:
        return ["source"] + (["target"] if cfg.target else [])

    def layer(self, run: Run) -> str:
        if self.options.layer:
            return self.options.layer
        return default_layer(run.build_model().feature_layers)


SectionFn = Callable[[Context, Section], None]
SECTIONS: Registry[tuple[str, SectionFn]] = Registry("report section")


def section(key: str, title: str) -> Callable[[SectionFn], SectionFn]:
    def deco(fn: SectionFn) -> SectionFn:
        SECTIONS.add(key, (title, fn))
        return fn

    return deco


def html_table(rows: Sequence[dict[str, Any]], cls: str = "") -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def html_cell(v: Any) -> str:
    if isinstance(v, float | np.floating) or v is None:
        return fmt(v)  # the app's one number format
    return html.escape(str(v)) if not isinstance(v, Html) else str(v)


class Html(str):
    """A table cell that is already HTML (a colour swatch)."""

