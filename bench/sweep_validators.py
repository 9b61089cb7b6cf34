"""How well each unsupervised validator picks among a sweep's runs: the README's tables.

    python bench/sweep_validators.py [--store DIR] [--sweep NAME ...]

Reads the sweeps already in a run store (``python -m vizcore --runs DIR sweep NAME ... --validators``
makes them; see the README) and prints, per sweep, each validator's Spearman and weighted Spearman
correlation with the target test accuracy, the target accuracy of the run it picks and what that
costs against the oracle's run, then target accuracy and source–target MMD² per method and λ.
Scores missing from a run are computed (once, then cached with the run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="runs", help="the run store holding the sweeps (default: runs)")
    ap.add_argument("--sweep", action="append", default=[], help="a sweep's name (default: every sweep)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from vizcore.core.numbers import fmt
    from vizcore.store.runs import RunStore
    from vizcore.views.sweeps import by_trade_off, sweep_names, sweep_runs, verdicts

    store = RunStore(a.store, demo_root=None)
    for name in a.sweep or sweep_names(store):
        runs = sweep_runs(store, name, compute=True)
        judged, oracle = verdicts(runs)
        print(f"\n### {name}: {len(runs)} runs; oracle {oracle.run_id}, target {100 * oracle.target_acc:.1f} %\n")
        print("| validator | Spearman ρ | weighted ρ | pick's target acc % | cost vs oracle (points) |")
        print("|---|---|---|---|---|")
        for v in sorted(judged, key=lambda v: -v.weighted_spearman):
            print(f"| {v.label} | {fmt(v.spearman)} | {fmt(v.weighted_spearman)} | {100 * v.pick_acc:.1f} | "
                  f"{100 * v.cost:.1f} |")  # fmt: skip
        accs = [r.target_acc for r in runs if r.scores]
        print(f"| (a run drawn at random, on average) | | | {100 * sum(accs) / len(accs):.1f} | "
              f"{100 * (oracle.target_acc - sum(accs) / len(accs)):.1f} |")
        print(f"| (the worst run) | | | {100 * min(accs):.1f} | {100 * (oracle.target_acc - min(accs)):.1f} |")  # fmt: skip
        print("\n| method | λ | runs | target acc % | MMD² (adapted layer) |")
        print("|---|---|---|---|---|")
        for p in by_trade_off(runs):
            print(f"| {p.method} | {p.trade_off:g} | {p.n} | {100 * p.target_acc:.1f} | {fmt(p.mmd)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
