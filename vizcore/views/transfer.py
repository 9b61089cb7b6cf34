"""The transferability table from the run store: how much a parent run helps on a few target labels.

Fine-tuning runs (``target_labels_per_class`` = K, ``init_from`` a parent, ``freeze`` what stays
fixed) and their baseline trained from scratch on the same K labels (no parent) are grouped by
source → target pair: rows are what was frozen, columns K, cells the target test accuracy over
the runs (seeds) of the cell. ``bench/transferability.py --store DIR`` writes such a grid; the
Compare page draws any the store holds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vizcore.core.numbers import mean_std
from vizcore.store.info import RunInfo

SCRATCH = "from scratch"


def freeze_label(freeze: int | Sequence[str]) -> str:
    """A row's name for what a fine-tuning run keeps frozen of its parent (``TrainConfig.freeze``)."""
    if isinstance(freeze, int):
        return f"frozen conv blocks {freeze}"
    names = list(freeze)
    return "classifier only" if names in (["features"], ["features", "bottleneck"]) else f"frozen {', '.join(names)}"


def row_label(info: RunInfo) -> str:
    """The row of a fine-tuning run: what it kept frozen of its parent (or "from scratch")."""
    return freeze_label(info.freeze) if info.init_from else SCRATCH


def _row_order(label: str) -> tuple[int, int, str]:
    if label.startswith("frozen conv blocks "):
        return (0, int(label.rsplit(" ", 1)[1]), label)
    return (2, 0, label) if label == SCRATCH else (1, 0, label)


@dataclass(frozen=True)
class TransferTable:
    """One source → target pair's grid. ``cells[(row, k)]``: the target accuracies (0-1) of its runs."""

    pair: str
    rows: tuple[str, ...]
    ks: tuple[int, ...]
    cells: dict[tuple[str, int], list[float]]

    def gain(self, row: str, k: int) -> float | None:
        """Mean accuracy of ``row`` minus that of "from scratch" at ``k`` (0-1), when both exist."""
        mine, base = self.cells.get((row, k)), self.cells.get((SCRATCH, k))
        if not mine or not base or row == SCRATCH:
            return None
        return statistics.mean(mine) - statistics.mean(base)

    def series(self) -> list[tuple[str, list[float | None], list[float]]]:
        """(row, mean per K or None, sample std per K), accuracies 0-1: what the figure draws."""
        out = []
        for row in self.rows:
            xs = [self.cells.get((row, k), []) for k in self.ks]
            out.append((row, [statistics.mean(x) if x else None for x in xs],
                        [statistics.stdev(x) if len(x) > 1 else 0.0 for x in xs]))  # fmt: skip
        return out

    def records(self, gain_at: int | None = None) -> list[dict[str, str]]:
        """Table rows for display: "mean ± std (n)" per K, then the gain over scratch at ``gain_at``."""
        gain_at = gain_at if gain_at is not None else (10 if 10 in self.ks else self.ks[-1])
        out = []
        for row in self.rows:
            rec = {"frozen (of the parent)": row}
            for k in self.ks:
                xs = self.cells.get((row, k), [])
                rec[f"K = {k}"] = f"{mean_std(xs)} ({len(xs)})" if xs else "–"
            g = self.gain(row, gain_at)
            rec[f"K = {gain_at}: gain vs scratch"] = "" if g is None else f"{100 * g:+.1f}"
            out.append(rec)
        return out


def transfer_tables(infos: Iterable[RunInfo]) -> list[TransferTable]:
    """Every pair's grid from the complete runs that trained on K labelled target images."""
    grids: dict[str, dict[tuple[str, int], list[float]]] = {}
    for r in infos:
        acc = r.summary.get("target_acc")
        if r.status != "complete" or not r.labels_per_class or not r.target or acc is None:
            continue
        grids.setdefault(f"{r.source} → {r.target}", {}).setdefault((row_label(r), r.labels_per_class), []).append(
            float(acc))  # fmt: skip
    return [_table(pair, cells) for pair, cells in sorted(grids.items())]


def _table(pair: str, cells: dict[tuple[str, int], list[float]]) -> TransferTable:
    rows: Sequence[str] = sorted({r for r, _ in cells}, key=_row_order)
    ks = tuple(sorted({k for _, k in cells}))
    return TransferTable(pair, tuple(rows), ks, cells)
