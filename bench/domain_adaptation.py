"""Benchmark: target accuracy of every domain-adaptation method against source-only training.

    python bench/domain_adaptation.py --jobs 2 --threads 1   # full run: 3 seeds, both shifts
    python bench/domain_adaptation.py --quick                # smoke run (a minute or two)

Every run starts from ``vizcore.methods.recipes.recommended_config(method, source, target)``,
the same defaults as the Train page and ``python -m vizcore train --recipe``, with only
``--train-limit`` (images per training domain) and the seed on top, so a row can be
reproduced from the command line. Target labels are used for evaluation only.

Rows: every registered method, plus a control ("joint-BN λ=0"): the adaptation network and
batches (source and target through one BatchNorm) with the transfer loss switched off. Source-only
normalises with source statistics only; the control shows how much of each method's gain is
that shared normalisation rather than its transfer loss. The last row, "train on target", is the
ceiling: the same recipe trained on the labelled target training split (same number of images).

Columns: target and source test accuracy (mean ± sample std over the seeds), the gain over
source-only on the target, and the training time relative to source-only on the same shift
(CPU time of the run's process from "data and model ready" to the end, evaluation included,
median over seeds). CPU time rather than wall time because the machine is shared: wall time
would measure the neighbours, and with ``--jobs`` > 1 the runs themselves share the cores.
With ``--threads 1`` CPU time is the work done; accuracies do not depend on ``--jobs``
(every run is seeded).

Rows "cdan+e" (CDAN with entropy weighting) and "adda" are built here: "adda" starts from the
same seed's source-only run of this benchmark (its parent, saved to a temporary run store), so
those runs go second.

Published anchors (different data sizes and backbones; for orientation, not comparison):
DANN paper, MNIST -> MNIST-M: 52.3% source-only -> 76.7% DANN (Ganin et al. 2016, Table 2);
tllib, LeNet, MNIST -> USPS: 82.1% source-only -> 91.7% DANN, 86.0% DAN.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The control row: what the joint source ++ target forward pass alone does (BatchNorm then
# normalises with statistics of both domains, an implicit adaptation every method here shares).
CONTROL = "joint-BN λ=0"
# The ceiling row: the same recipe trained on the *labelled* target training split (the DANN
# paper's "train on target"), so a gain can be read against how much there was to gain.
ORACLE = "train on target"
# CDAN with entropy weighting: a row of its own, the cdan recipe with entropy=True
CDAN_E = "cdan+e"
# ADDA starts from a parent run: this benchmark's source-only run of the same shift and seed
STAGED = {"adda"}
SHIFTS = {
    "MNIST→MNIST-M-style": ("mnist", "mnist-m"),
    "MNIST→UCI-digits": ("mnist", "uci-digits"),
}


@dataclass
class Cell:
    """The runs of one (shift, method): one entry per seed."""

    target: list[float] = field(default_factory=list)
    source: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _init_worker(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def run_once(
    method: str,
    source: str,
    target: str,
    seed: int,
    overrides: dict,
    store_root: str | None = None,
    parent: str | None = None,
) -> tuple[dict, float, str, str | None]:
    """Train one recipe; returns the final accuracies, the training CPU seconds and the status.

    CPU time of this process, not wall time: on a shared machine (and with ``--jobs``) wall
    time mostly measures the neighbours, while CPU time measures the work of the run.
    """
    from vizcore.methods.recipes import recommended_config
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import train

    if method == CONTROL:
        # a DA network and batches (source ++ target through one BatchNorm) without a transfer loss
        cfg = recommended_config("ddc", source, target, seed=seed, device="cpu", **overrides)
        cfg = cfg.replace(trade_off=0.0)
    elif method == ORACLE:
        cfg = recommended_config("source_only", target, target, seed=seed, device="cpu", **overrides)
    elif method == CDAN_E:
        cfg = recommended_config("cdan", source, target, seed=seed, device="cpu", **overrides)
        cfg = cfg.replace(method_params={**cfg.method_params, "entropy": True})
    else:
        cfg = recommended_config(method, source, target, seed=seed, device="cpu", **overrides)
    if method in STAGED:
        cfg = cfg.replace(init_from=parent)
    store = RunStore(store_root, demo_root=None) if store_root else None
    t0, values, status, rid = None, {}, "failed", None
    for ev in train(cfg, store if (method == "source_only" or method in STAGED) else None):
        rid = ev.run_id
        if ev.kind == "ready":
            t0 = time.process_time()  # data preparation (cached after the first run) is not timed
        elif ev.kind == "end":
            values, status = ev.values, f"{ev.status} {ev.message}".strip()
    return values, time.process_time() - (t0 or time.process_time()), status, rid



def table(results: dict[str, dict[str, Cell]], methods: list[str]) -> str:
    from vizcore.core.numbers import mean_std

    rows = [
        "| shift | method | target acc % | gain vs source-only | source acc % | CPU time × source-only |",
        "|---|---|---|---|---|---|",
    ]
    for shift, cells in results.items():
        base = cells.get("source_only")
        base_t = statistics.mean(base.target) if base and base.target else None
        base_s = statistics.median(base.seconds) if base and base.seconds else None
        for m in methods:
            c = cells.get(m)
            if c is None:
                continue
            gain = (
                f"{100 * (statistics.mean(c.target) - base_t):+.1f}"
                if c.target and base_t is not None and m != "source_only"
                else ""
            )
            ratio = f"{statistics.median(c.seconds) / base_s:.2f}" if c.seconds and base_s else "—"
            note = f" ({len(c.failed)} failed)" if c.failed else ""
            rows.append(
                f"| {shift} | {m}{note} | {mean_std(c.target)} | {gain} | {mean_std(c.source)} | {ratio} |"
            )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, tiny data, 1 epoch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=3000, help="training images per domain")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs")
    # default (None): default_methods(), read after parsing (it imports vizcore)
    ap.add_argument("--methods", default=None, help="comma-separated")
    ap.add_argument(
        "--shifts", default=",".join(SHIFTS), help="comma-separated, from: " + ", ".join(SHIFTS)
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    ap.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the joint-BN λ=0 control row",
    )
    ap.add_argument(
        "--no-oracle",
        dest="oracle",
        action="store_false",
        help="skip the train-on-target row (the ceiling)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (worker processes)")
    ap.add_argument("--json", default=None, help="also write every run's numbers to this file")
    return ap.parse_args(argv)


def default_methods() -> list[str]:
    """Every registered method that uses the target, with the CDAN+E row right after CDAN."""
    from vizcore.methods import METHODS, list_methods

    da = [m for m in list_methods() if METHODS.get(m).uses_target]
    da.insert(da.index("cdan") + 1, CDAN_E)
    return da


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    names = a.methods if a.methods is not None else ",".join(default_methods())
    methods = [m.strip() for m in names.split(",") if m.strip()]
    if "source_only" not in methods:
        methods.insert(0, "source_only")  # every ratio is against it
    if a.control:
        methods.insert(1, CONTROL)
    if a.oracle:
        methods.append(ORACLE)
    overrides: dict = {"train_limit": a.train_limit}
    seeds = a.seeds
    if a.quick:
        overrides = {"train_limit": 256, "test_limit": 256, "epochs": 1}
        seeds = 1
    if a.epochs is not None:
        overrides["epochs"] = a.epochs
    print(
        f"# domain adaptation benchmark ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {a.threads or torch.get_num_threads()} threads per run, "
        f"{a.jobs} run(s) at a time)"
    )
    print(f"# {seeds} seed(s), overrides on the recipes: {overrides}", flush=True)
    results: dict[str, dict[str, Cell]] = {}
    jobs = [
        (shift, m, seed)
        for shift in [s.strip() for s in a.shifts.split(",") if s.strip()]
        for m in methods
        for seed in range(seeds)
    ]
    t_all = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="vizcore-bench-")  # the parents of the staged rows
    parents: dict[tuple[str, int], str | None] = {}
    first = [j for j in jobs if j[1] not in STAGED]
    second = [j for j in jobs if j[1] in STAGED]
    # runs are independent and seeded: worker processes give the same numbers as one process
    with ProcessPoolExecutor(a.jobs, initializer=_init_worker, initargs=(a.threads,)) as pool:
        records = []

        def submit(batch: list) -> list:
            return [pool.submit(run_once, m, *SHIFTS[shift], seed, overrides, tmp.name,
                                parents.get((shift, seed))) for shift, m, seed in batch]  # fmt: skip

        for batch in (first, second):  # the staged rows start from the first batch's runs
            for (shift, m, seed), fut in zip(batch, submit(batch), strict=True):
                values, secs, status, rid = fut.result()
                if m == "source_only" and status.startswith("complete"):
                    parents[(shift, seed)] = rid
                cell = results.setdefault(shift, {}).setdefault(m, Cell())
                if status.startswith("complete"):
                    cell.target.append(values["target_acc"])
                    if m != ORACLE:  # its "source" is the target domain itself
                        cell.source.append(values["source_acc"])
                    cell.seconds.append(secs)
                else:
                    cell.failed.append(status)
                records.append({"shift": shift, "method": m, "seed": seed, "cpu_seconds": secs,
                                "status": status, **values})  # fmt: skip
                print(
                    f"{shift:22s} {m:12s} seed {seed}: target {values.get('target_acc', float('nan')):.3f}"
                    f"  source {values.get('source_acc', float('nan')):.3f}  {secs:6.1f} CPU s  {status}",
                    flush=True,
                )
    tmp.cleanup()
    print()
    print(table(results, methods))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
