"""Benchmark: a hard shift, printed colour digits <-> the bundled MNIST, with the data-driven recipe.

    python bench/hard_shift.py --seeds 3 --threads 1          # every row, three seeds
    python bench/hard_shift.py --rows supervised,p2m:dann     # some rows
    python bench/hard_shift.py --quick                        # smoke run (a minute)
    python bench/hard_shift.py --rows p2m:dann --first-seed 1 --seeds 2   # seeds 1 and 2 only
    python bench/hard_shift.py --table a.json b.json      # one table from runs' --json records

``printed-digits`` (colour digits rendered from the machine's fonts, 32x32) stands in for SVHN:
printed -> MNIST is the DANN paper's SVHN -> MNIST direction, where it reports 54.9% source-only
and 73.9% DANN (Ganin et al. 2016, Table 2). Every run is ``python -m vizcore train --recipe``'s
configuration (``recommended_config``) with only the seed on top, so a row can be reproduced from
the command line; the recipe chooses its settings from what it measures of the images (grey or
colour on each side, size, ink polarity, number of images), never from the domains' names.

Rows: plain supervised training on printed-digits (its own test split); printed -> MNIST with
source-only, the control (the DANN recipe with its adversarial loss off: domain BatchNorm and
information maximisation on the target alone), DANN, CDAN+E and ADDA (which starts from the same seed's source-only run); MNIST ->
printed with source-only and DANN. Columns: target (or, supervised, test) accuracy and source
accuracy as mean ± sample std over the seeds, and the gain over the shift's source-only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PRINTED, MNIST = "printed-digits", "mnist"
# row key -> (label, method, source, target); "cdan+e" is CDAN with entropy weighting; "control"
# is the recipe's DANN with its adversarial loss off (trade-off 0): what the recipe's target terms
# (domain BatchNorm, information maximisation) do alone
ROWS = {
    "supervised": ("printed-digits (supervised)", "source_only", PRINTED, None),
    "p2m:source_only": ("printed → MNIST", "source_only", PRINTED, MNIST),
    "p2m:control": ("printed → MNIST", "control", PRINTED, MNIST),
    "p2m:dann": ("printed → MNIST", "dann", PRINTED, MNIST),
    "p2m:cdan+e": ("printed → MNIST", "cdan+e", PRINTED, MNIST),
    "p2m:adda": ("printed → MNIST", "adda", PRINTED, MNIST),
    "m2p:source_only": ("MNIST → printed", "source_only", MNIST, PRINTED),
    "m2p:dann": ("MNIST → printed", "dann", MNIST, PRINTED),
}
# the DANN paper's SVHN -> MNIST (Table 2), beside the printed -> MNIST rows
PUBLISHED = {"p2m:source_only": "54.9", "p2m:dann": "73.9"}


def run_row(key: str, seed: int, store_root: str, parent: str | None, quick: bool) -> tuple[dict, str | None]:
    """Train one row's recipe for one seed; returns the final accuracies and the run id."""
    from vizcore.methods.recipes import recommended_config
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import train

    _, method, source, target = ROWS[key]
    small = {"train_limit": 256, "test_limit": 256, "epochs": 1} if quick else {}
    base = {"cdan+e": "cdan", "control": "dann"}.get(method, method)
    cfg = recommended_config(base, source, target, seed=seed, device="cpu", **small)
    if method == "control":
        cfg = cfg.replace(trade_off=0.0)
    if method == "cdan+e":
        cfg = cfg.replace(method_params={**cfg.method_params, "entropy": True})
    if method == "adda":
        cfg = cfg.replace(init_from=parent)
    values, rid = {}, None
    for ev in train(cfg, RunStore(store_root, demo_root=None)):
        rid = ev.run_id
        if ev.kind == "end":
            values = {**ev.values, "status": ev.status}
    return values, rid


def table(results: dict[str, list[dict]]) -> str:
    from vizcore.core.numbers import mean_std

    rows = [
        "| shift | method | target acc % | gain vs source-only | source acc % | published (SVHN → MNIST) |",
        "|---|---|---|---|---|---|",
    ]
    for key in [k for k in ROWS if k in results]:
        runs = results[key]
        label, method, _, target = ROWS[key]
        done = [r for r in runs if str(r.get("status", "")).startswith("complete")]
        acc = [r["target_acc" if target else "source_acc"] for r in done]
        src = [r["source_acc"] for r in done] if target else []
        base = [r["target_acc"] for r in results.get(key.split(":")[0] + ":source_only", []) if "target_acc" in r]
        gain = f"{100 * (statistics.mean(acc) - statistics.mean(base)):+.1f}" if acc and base and method != "source_only" else ""
        note = f" ({len(runs) - len(done)} failed)" if len(done) < len(runs) else ""
        rows.append(f"| {label} | {method}{note} | {mean_std(acc)} | {gain} | {mean_std(src) if src else ''} "
                    f"| {PUBLISHED.get(key, '')} |")  # fmt: skip
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the first seed (default 0): a table can be completed seed by seed")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated, from: " + ", ".join(ROWS))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 256 images, 1 epoch")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--runs", default=None, help="run store to keep the runs in (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write every run's numbers to this file")
    ap.add_argument("--table", nargs="+", default=None, metavar="JSON",
                    help="train nothing: print one table from the records of earlier runs' --json files")
    return ap.parse_args(argv)


def from_records(paths: list[str]) -> dict[str, list[dict]]:
    """The results of earlier runs' ``--json`` files, by row (a seed seen twice counts once: the last)."""
    by_row: dict[str, dict[int, dict]] = {}
    for path in paths:
        for r in json.loads(Path(path).read_text(encoding="utf-8")):
            values = {k: v for k, v in r.items() if k not in ("row", "seed", "run")}
            by_row.setdefault(r["row"], {})[int(r["seed"])] = values
    return {row: [seeds[s] for s in sorted(seeds)] for row, seeds in by_row.items()}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.table:
        print(table(from_records(a.table)))
        return 0
    keys = [k.strip() for k in a.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        print(f"unknown rows: {', '.join(unknown)}; choose from {', '.join(ROWS)}", file=sys.stderr)
        return 2
    if "p2m:adda" in keys and "p2m:source_only" not in keys:
        keys.insert(0, "p2m:source_only")  # ADDA's parent
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    seeds = range(a.first_seed, a.first_seed + (1 if a.quick else a.seeds))
    tmp = tempfile.TemporaryDirectory(prefix="vizcore-hard-shift-")
    store = a.runs or tmp.name
    results: dict[str, list[dict]] = {k: [] for k in keys}
    parents: dict[int, str | None] = {}  # seed -> that seed's printed -> MNIST source-only run
    records = []
    for key in keys:
        for seed in seeds:
            values, rid = run_row(key, seed, store, parents.get(seed), a.quick)
            if key == "p2m:source_only":
                parents[seed] = rid
            results[key].append(values)
            records.append({"row": key, "seed": seed, "run": rid, **values})
            print(f"{key:16s} seed {seed}: {json.dumps(values)}", flush=True)
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1), encoding="utf-8")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
