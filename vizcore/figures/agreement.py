"""Do two distance measures agree about which classes sit close? Ranks against ranks.

Every pair of classes is a point at (its rank under the first measure, its rank under the
second), 1 = the closest pair. Points on the dashed diagonal are ranked alike; the pairs the
two measures disagree about most, and the closest pairs under either, are named.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vizcore.core.numbers import fmt
from vizcore.figures import SERIES_COLORS, caption_below, style

NAMED = 5  # closest pairs named under each measure, and as many of the largest disagreements


def _named(rank_a: np.ndarray, rank_b: np.ndarray) -> np.ndarray:
    """Which points get a label: the NAMED closest under either measure and the NAMED largest rank changes."""
    picks = set(np.argsort(rank_a, kind="stable")[:NAMED]) | set(np.argsort(rank_b, kind="stable")[:NAMED])
    picks |= set(np.argsort(-np.abs(rank_a - rank_b), kind="stable")[:NAMED])
    return np.isin(np.arange(len(rank_a)), sorted(picks))


def rank_agreement_figure(
    pairs: tuple[str, ...],
    rank_a: np.ndarray,
    rank_b: np.ndarray,
    values: tuple[np.ndarray, np.ndarray],
    labels: tuple[str, str],
    rho: float,
    title: str,
    presentation: bool = False,
    caption: str = "",
) -> go.Figure:
    """Ranks of the class pairs under two measures, one point per pair, Spearman's ρ in the title.

    Shape:
        rank_a, rank_b, values[0], values[1]: (P,) for the P class pairs.
    """
    n = len(pairs)
    named = _named(rank_a, rank_b)
    hover = [f"{p}<br>{labels[0]}: {fmt(a)} (rank {ra:g})<br>{labels[1]}: {fmt(b)} (rank {rb:g})"
             for p, a, b, ra, rb in zip(pairs, *values, rank_a, rank_b, strict=True)]  # fmt: skip
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[1, n], y=[1, n], mode="lines", line=dict(color="#999", dash="dash"),
                             name="same rank under both", hoverinfo="skip"))  # fmt: skip
    fig.add_trace(go.Scatter(
        x=rank_a, y=rank_b, mode="markers+text", name="class pair", hovertext=hover, hoverinfo="text",
        text=[p if k else "" for p, k in zip(pairs, named, strict=True)], textposition="top center",
        textfont=dict(size=14 if presentation else 10), marker=dict(size=11 if presentation else 8, color=SERIES_COLORS[0]),
    ))  # fmt: skip
    style(fig, presentation, height=640 if presentation else 560)
    # the legend sits outside the plot, on the right: inside it would hide points of some corner
    fig.update_layout(title=f"{title} — Spearman ρ = {rho:.2f}", showlegend=True)
    axis = dict(range=[0, n + 1], zeroline=False)
    fig.update_xaxes(title_text=f"rank under {labels[0]} (1 = closest)", **axis)
    fig.update_yaxes(title_text=f"rank under {labels[1]} (1 = closest)", **axis)
    below = caption_below(fig, caption, presentation, below=60)
    fig.update_layout(margin=dict(b=70 + below))
    return fig
