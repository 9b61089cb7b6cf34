"""The transferability table drawn from a run store (vizcore.views.transfer)."""

from __future__ import annotations

import statistics

import pytest

from vizcore.store.info import RunInfo
from vizcore.views.transfer import SCRATCH, row_label, transfer_tables


def _info(rid: str, acc: float | None, k: int | None, parent: str | None = "p", freeze: int | list[str] = 0,
          status: str = "complete", target: str | None = "mnist-m", seed: int = 0) -> RunInfo:  # fmt: skip
    return RunInfo(run_id=rid, label=rid, status=status, method="finetune", model="lenet_gap", source="mnist",
                   target=target, seed=seed, created=0.0, read_only=False,
                   summary={} if acc is None else {"target_acc": acc}, message="", init_from=parent,
                   freeze=freeze, labels_per_class=k)  # fmt: skip


def test_cells_group_seeds_by_what_was_frozen_and_k() -> None:
    infos = [
        _info("a0", 0.60, 10, freeze=2, seed=0), _info("a1", 0.64, 10, freeze=2, seed=1),
        _info("b0", 0.50, 1, freeze=2),
        _info("s0", 0.30, 10, parent=None), _info("s1", 0.36, 10, parent=None, seed=1),
        _info("c0", 0.58, 10, freeze=["features", "bottleneck"]),
        _info("z0", 0.55, 10, freeze=0),
        # left out: not complete, no labelled budget (a parent run), no accuracy, no target
        _info("f", 0.99, 10, status="failed"), _info("p", 0.53, None, parent=None), _info("n", None, 10),
    ]  # fmt: skip
    (table,) = transfer_tables(infos)
    assert table.pair == "mnist → mnist-m"
    assert table.rows == ("frozen conv blocks 0", "frozen conv blocks 2", "classifier only", SCRATCH)
    assert table.ks == (1, 10)
    assert table.cells[("frozen conv blocks 2", 10)] == [0.60, 0.64]
    assert table.gain("frozen conv blocks 2", 10) == pytest.approx(0.62 - 0.33)
    assert table.gain(SCRATCH, 10) is None and table.gain("frozen conv blocks 2", 1) is None  # no baseline at K=1
    rec = {r["frozen (of the parent)"]: r for r in table.records()}
    sd = 100 * statistics.stdev([0.60, 0.64])
    assert rec["frozen conv blocks 2"]["K = 10"] == f"62.0 ± {sd:.1f} (2)"
    assert rec["frozen conv blocks 2"]["K = 10: gain vs scratch"] == "+29.0"
    assert rec["frozen conv blocks 0"]["K = 1"] == "–"
    label, means, stds = table.series()[1]
    assert label == "frozen conv blocks 2" and means == [0.50, pytest.approx(0.62)] and stds[0] == 0.0


def test_row_labels_name_the_frozen_part() -> None:
    assert row_label(_info("x", 0.5, 5, freeze=1)) == "frozen conv blocks 1"
    assert row_label(_info("x", 0.5, 5, freeze=["features"])) == "classifier only"
    assert row_label(_info("x", 0.5, 5, freeze=["features.0", "bottleneck"])) == "frozen features.0, bottleneck"
    assert row_label(_info("x", 0.5, 5, parent=None, freeze=2)) == SCRATCH
