"""What a page does with a computed distance matrix (:class:`~vizcore.views.distances.MatrixView`):
cluster its rows and columns, take the difference of two runs' matrices, compare two metrics'
rankings, export it as CSV and write its hover text."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from vizcore.core.numbers import fmt
from vizcore.metrics import metric_info
from vizcore.metrics.mmd import ESTIMATORS
from vizcore.views.distances import MatrixView

# ------------------------------------------------------------------------------ reshaping


def cluster_order(values: np.ndarray, method: str = "average") -> np.ndarray:
    """Leaf order of hierarchical clustering of a square distance matrix (see CLUSTER_NOTE).

    Shape:
        values: (K, K); output: (K,) a permutation of range(K).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != v.shape[1]:
        raise ValueError(f"clustering needs a square matrix, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("clustering needs finite distances (the matrix has NaN or Inf)")
    if len(v) < 3:
        return np.arange(len(v))
    sym = (v + v.T) / 2
    # unbiased MMD² can dip below 0; a constant shift changes neither average-linkage merges nor the
    # optimal leaf order, and linkage wants non-negative distances
    d = sym - sym[~np.eye(len(v), dtype=bool)].min()
    np.fill_diagonal(d, 0.0)
    return leaves_list(linkage(squareform(d, checks=False), method=method, optimal_ordering=True))


def reorder(view: MatrixView, order: np.ndarray) -> MatrixView:
    """The same matrix with rows and columns in ``order`` (both axes hold the same classes)."""
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(len(view.row_labels))) or view.values.shape[0] != view.values.shape[1]:
        raise ValueError("reorder needs a square matrix and a permutation of its rows")

    def take(a: np.ndarray) -> np.ndarray:
        return a[np.ix_(order, order)]

    return replace(
        view,
        values=take(view.values),
        p_values=None if view.p_values is None else take(view.p_values),
        row_labels=tuple(view.row_labels[i] for i in order),
        col_labels=tuple(view.col_labels[i] for i in order),
    )


def difference(after: MatrixView, before: MatrixView) -> MatrixView:
    """after − before, entry by entry; both must cover the same classes in the same order."""
    if after.values.shape != before.values.shape or (after.row_labels, after.col_labels) != (
        before.row_labels,
        before.col_labels,
    ):
        raise ValueError(
            f"the two matrices cover different classes ({len(before.row_labels)}×{len(before.col_labels)} vs "
            f"{len(after.row_labels)}×{len(after.col_labels)}); compare runs on the same data"
        )
    return MatrixView(
        values=after.values - before.values,
        p_values=None,
        row_labels=after.row_labels,
        col_labels=after.col_labels,
        metric="difference",
        params={"value_label": f"Δ {after.value_label}"},
        description=f"Entry by entry: after minus before. After: {after.description} Before: {before.description}",
        n_per_class=min(after.n_per_class, before.n_per_class),
    )


@dataclass(frozen=True, eq=False)
class RankAgreement:
    """Class pairs ranked under two measures (1 = the closest pair), and how well the ranks agree.

    Attributes:
        pairs: "a – b" for every pair of distinct classes, in the matrices' upper-triangle order.
        first, second: each pair's distance under the first and the second measure.
        rank_first, rank_second: the pair's rank under each (ties share their mean rank).
        rho: Spearman's rank correlation of the two distances over the pairs.
        p_value: two-sided p-value of rho under independence (scipy.stats.spearmanr).
        labels: the two measures' labels.
    """

    pairs: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    rank_first: np.ndarray
    rank_second: np.ndarray
    rho: float
    p_value: float
    labels: tuple[str, str]

    def saturation_note(self) -> str:
        """A sentence naming each measure under which several pairs tie at its largest value (a
        classifier that separates every held-out sample scores 1 however far apart the classes
        are, so ranks among those pairs say nothing), or "" when neither saturates."""
        notes = []
        for label, v in zip(self.labels, (self.first, self.second), strict=True):
            tied = int(np.isclose(v, v.max(), rtol=1e-9, atol=1e-12).sum())
            if tied >= 3:
                notes.append(f"{tied} of {len(v)} pairs tie at the largest value under {label} ({fmt(v.max())}): "
                             "that measure cannot order them, which lowers ρ.")  # fmt: skip
        return " ".join(notes)

    def closest(self, n: int = 10) -> pd.DataFrame:
        """The n closest pairs under each measure side by side (a table for the page and the report)."""
        rows = []
        for order in (np.argsort(self.rank_first, kind="stable"), np.argsort(self.rank_second, kind="stable")):
            rows.append([self.pairs[i] for i in order[:n]])
        a, b = self.labels
        b = b if b != a else f"{b} (second)"  # one measure under two settings
        return pd.DataFrame({"rank": range(1, min(n, len(self.pairs)) + 1), f"closest under {a}": rows[0],
                             f"closest under {b}": rows[1]}).set_index("rank")  # fmt: skip


def rank_agreement(first: MatrixView, second: MatrixView) -> RankAgreement:
    """Rank the class pairs of two class matrices of the same data and compare the rankings.

    Only pairs of distinct classes count (i < j; a class matrix is symmetric): the diagonal is
    each measure's noise floor, not a pair.

    Raises:
        ValueError: matrices over different classes, or fewer than 3 class pairs.
    """
    if first.row_labels != second.row_labels or first.values.shape != second.values.shape:
        raise ValueError("the two matrices cover different classes; compute both on the same run, side and layer")
    iu = np.triu_indices(len(first.row_labels), k=1)
    if len(iu[0]) < 3:
        raise ValueError(f"ranking needs at least 3 class pairs (3 classes); this matrix has {len(iu[0])}")
    a, b = first.values[iu], second.values[iu]
    rho, p = scipy.stats.spearmanr(a, b)
    names = tuple(f"{first.row_labels[i]} – {first.row_labels[j]}" for i, j in zip(*iu, strict=True))
    return RankAgreement(names, a, b, scipy.stats.rankdata(a), scipy.stats.rankdata(b),
                         float(rho), float(p), (metric_info(first.metric).label, metric_info(second.metric).label))  # fmt: skip


def diagonal_contrast(view: MatrixView) -> tuple[float, float]:
    """(mean of the diagonal, mean off the diagonal) of a square matrix."""
    v = view.values
    off = ~np.eye(len(v), dtype=bool)
    return float(np.diag(v).mean()), float(v[off].mean())


# ------------------------------------------------------------------------------ export, hover


def to_csv(view: MatrixView, what: str = "values") -> str:
    """The matrix (or its p-values) as CSV: a header of column classes, one row per row class."""
    table = {"values": view.values, "p_values": view.p_values}[what]
    if table is None:
        raise ValueError("this matrix has no p-values (computed with 0 permutations)")
    df = pd.DataFrame(table, index=pd.Index(view.row_labels, name="row \\ column"), columns=list(view.col_labels))
    return df.to_csv()


def from_csv(text: str) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Read back what :func:`to_csv` wrote: (values, row labels, column labels)."""
    df = pd.read_csv(io.StringIO(text), index_col=0, dtype={0: str})
    return df.to_numpy(dtype=np.float64), tuple(map(str, df.index)), tuple(map(str, df.columns))


def _mmd_info(params: dict[str, Any]) -> str:
    est = ESTIMATORS.get(params["estimator"]).label
    num, mul = params["kernel_num"], params["kernel_mul"]
    kernels = "1 Gaussian" if num == 1 else f"{num} Gaussians, ×{mul:g} apart"
    return f"{est}; {kernels}; bandwidth rule {params['bandwidth_rule']} ({params['bandwidth_scope']})"


def _generic_info(metric: str, params: dict[str, Any]) -> str:
    own = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in params.items() if k in metric_info(metric).params)  # fmt: skip
    return metric_info(metric).label + (f"; {own}" if own else "")


def hover_info(view: MatrixView) -> np.ndarray:
    """Per-cell hover lines: the measure (estimator and kernel for MMD), bandwidth and sample sizes.

    Shape:
        output: (R, C) strings.
    """
    p = view.params
    what = _mmd_info(p) if view.metric == "mmd" else _generic_info(view.metric, p)
    bw = np.broadcast_to(np.asarray(p.get("bandwidth", np.nan), dtype=float), view.values.shape)
    h = int(p.get("n_per_side", view.n_per_class))
    sizes = np.full(view.values.shape, h)
    if p.get("pairing") == "full":  # off-diagonal entries compare whole classes, the diagonal halves
        sizes[~np.eye(*sizes.shape, dtype=bool)] = view.n_per_class
    out = np.empty(view.values.shape, dtype=object)
    for i, j in np.ndindex(view.values.shape):
        bandwidth = "" if np.isnan(bw[i, j]) else f"<br>bandwidth {bw[i, j]:.4g}"
        out[i, j] = f"{what}{bandwidth}<br>n = {sizes[i, j]} vs {sizes[i, j]} samples"
    return out
