"""Figures of a sweep: each validator's score against the true target accuracy, and accuracy and
MMD² as the transfer weight λ varies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vizcore.core.numbers import fmt, percent
from vizcore.figures import SERIES_COLORS, style

COLUMNS = 4


def validator_scatter(runs: Sequence[Any], verdicts: Sequence[Any], oracle_id: str,
                      presentation: bool = False) -> go.Figure:  # fmt: skip
    """One panel per validator: a point per run at (score, target test accuracy %); the validator's
    pick is ringed, the oracle's run (the most accurate) drawn as a star.

    Args:
        runs: ``vizcore.views.sweeps.SweepRun`` with scores.
        verdicts: ``vizcore.views.sweeps.Verdict``, one per panel.
    """
    rows = math.ceil(len(verdicts) / COLUMNS)
    titles = [f"{v.label}: ρ {fmt(v.spearman)}, weighted {fmt(v.weighted_spearman)}" for v in verdicts]
    fig = make_subplots(rows=rows, cols=COLUMNS, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.16)  # fmt: skip
    scored = [r for r in runs if r.scores]
    for i, v in enumerate(verdicts):
        row, col = i // COLUMNS + 1, i % COLUMNS + 1
        x = [r.scores[v.name] for r in scored]
        y = [100 * r.target_acc for r in scored]
        text = [f"{r.run_id}<br>{r.params}<br>target {percent(r.target_acc)}" for r in scored]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", text=text, hoverinfo="text", showlegend=i == 0,
                                 name="run", marker=dict(color=SERIES_COLORS[0], size=7, opacity=0.8)), row, col)  # fmt: skip
        for rid, name, symbol, color in ((v.pick, "validator's pick", "circle-open", SERIES_COLORS[1]),
                                         (oracle_id, "oracle (best target accuracy)", "star", SERIES_COLORS[2])):  # fmt: skip
            r = next(r for r in scored if r.run_id == rid)
            fig.add_trace(go.Scatter(x=[r.scores[v.name]], y=[100 * r.target_acc], mode="markers", name=name,
                                     showlegend=i == 0, hoverinfo="skip",
                                     marker=dict(symbol=symbol, size=15, color=color, line=dict(width=2, color=color))),
                          row, col)  # fmt: skip
        fig.update_xaxes(title_text="score (higher: better pick)", row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text="target test accuracy %", row=row, col=col)
    fig.update_layout(title="Each validator's score against the target accuracy (one point per run)")
    return style(fig, presentation, height=300 * rows + 120)


def lambda_figure(points: Sequence[Any], presentation: bool = False) -> go.Figure:
    """Target accuracy % (left, mean ± std over seeds) and source–target MMD² (right) against λ,
    one line per method.

    Args:
        points: ``vizcore.views.sweeps.LambdaPoint``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("target test accuracy %", "MMD² source–target (adapted layer)"))
    methods = list(dict.fromkeys(p.method for p in points))
    for i, m in enumerate(methods):
        ps = sorted((p for p in points if p.method == m), key=lambda p: p.trade_off)
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        lam = [p.trade_off for p in ps]
        fig.add_trace(go.Scatter(x=lam, y=[100 * p.target_acc for p in ps], name=m, mode="lines+markers",
                                 line=dict(color=color), legendgroup=m,
                                 error_y=dict(type="data", array=[100 * p.target_std for p in ps], visible=True)),
                      1, 1)  # fmt: skip
        fig.add_trace(go.Scatter(x=lam, y=[p.mmd for p in ps], name=m, mode="lines+markers", showlegend=False,
                                 line=dict(color=color), legendgroup=m), 1, 2)  # fmt: skip
    fig.update_xaxes(title_text="λ (weight of the transfer loss)", type="log")
    fig.update_layout(title="Accuracy and MMD² as λ varies (mean over seeds)")
    return style(fig, presentation, height=420)
