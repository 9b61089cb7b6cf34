"""One self-contained HTML report of a run, or of a before/after pair of runs, for a group meeting.

``build_report(runs, options) -> str``: the run's configuration and data provenance, training
curves, accuracies (overall and per class), CAM grids with the localisation score, class distance
matrices and the 2-D embeddings with their alignment numbers. plotly.js is inlined once in the
head and every figure is a ``<div>`` drawn by it, so the file opens with no network; nothing
else is referenced by URL.

Sections live in a registry, so a new view is one function. Each computes through the same cached
analyses as the pages (CAMs, features and matrices are cached in the run folders), so a report of
runs already looked at in the dashboard is quick.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

import vizcore.views.report_sections  # noqa: F401  (registers the sections, in order)
from vizcore import __version__
from vizcore.store.run import Run
from vizcore.views.report_parts import (
    SECTION_ERRORS,
    SECTIONS,
    Context,
    ProgressFn,
    ReportOptions,
    Section,
)

CSS = """
body{font-family:Inter,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;
font-size:var(--fs)}
h1{font-size:1.8em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}.mono{font-family:monospace;color:#555}.note{color:#a00}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;vertical-align:middle;border-radius:2px}
nav a{margin-right:1em}.plot{margin:1em 0}.headline{font-size:1.3em;font-weight:600}
"""


@dataclass
class Report:
    title: str
    sections: list[Section]
    presentation: bool = False

    @property
    def figures(self) -> list[go.Figure]:
        return [f for s in self.sections for f in s.figures]

    def to_html(self) -> str:
        """One file: plotly.js inlined once, each figure a div drawn from inline JSON."""
        parts: list[str] = []
        n = 0
        for sec in self.sections:
            parts.append(f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2>')
            for block in sec.blocks:
                if isinstance(block, go.Figure):
                    n += 1
                    parts.append(f'<div class="plot" id="fig-{sec.key}-{n}-box">' + block.to_html(
                        full_html=False, include_plotlyjs=False, div_id=f"fig-{sec.key}-{n}",
                        config={"displaylogo": False, "responsive": True}) + "</div>")  # fmt: skip
                else:
                    parts.append(block)
            parts.append("</section>")
        nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in self.sections)
        made = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        fs = "20px" if self.presentation else "15px"
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>:root{{--fs:{fs}}}{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class='mono'>vizcore {__version__}, {made}</p>"
            f"<nav>{nav}</nav>{''.join(parts)}</body></html>"
        )


def make_report(
    runs: Sequence[Run], options: ReportOptions | None = None, progress: ProgressFn | None = None
) -> Report:
    """Compute every section; a section that cannot be made says why instead of failing the report.

    Args:
        runs: one run, or two runs (before, after) on the same data.
    """
    if len(runs) not in (1, 2):
        raise ValueError(f"a report is about one run or a before/after pair, got {len(runs)} runs")
    ctx = Context(list(runs), options or ReportOptions())
    report = progress or (lambda f, m: None)
    sections = []
    for i, key in enumerate(SECTIONS):
        title, fn = SECTIONS.get(key)
        report(i / len(SECTIONS), title)
        sec = Section(key, title)
        try:
            fn(ctx, sec)
        except SECTION_ERRORS as e:
            sec.raw(f"<p class='note'>Could not make this section: {html.escape(str(e))}</p>")
        sections.append(sec)
    report(1.0, "done")
    heading = " vs ".join(c.label for c in ctx.configs)
    return Report(f"vizcore report — {heading}", sections, ctx.options.presentation)


def build_report(
    runs: Sequence[Run], options: ReportOptions | None = None, progress: ProgressFn | None = None
) -> str:
    """The report as one self-contained HTML string (see the module docstring)."""
    return make_report(runs, options, progress).to_html()
