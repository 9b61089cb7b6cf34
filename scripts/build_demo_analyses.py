"""Compute what the views read of every shipped demo run into its own folder.

    python scripts/build_demo_analyses.py
    python scripts/build_demo_analyses.py --sanity-only   # only the sanity checks (a minute or two)

Per demo run: the per-run analysis of each side and the default distance matrices
(vizcore.views.precompute); for the default before/after pair of the Embeddings page and the
report, its default embedding; per run, the maps and faithfulness scores of every explanation
method (vizcore.views.explanations) of the source side, and their sanity checks (vizcore.views.sanity). All are keyed by the weights' SHA-256, so this must be run
again whenever a demo run is retrained; a fresh clone then opens every demo view without a
forward pass, a matrix or a t-SNE to wait for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vizcore.explain.methods import list_explainers  # noqa: E402
from vizcore.store.runs import DEMO_ROOT, Run, RunStore  # noqa: E402
from vizcore.views.distances import default_layer  # noqa: E402
from vizcore.views.embeddings import EmbeddingSettings, common_layers, default_pair, embedding_pair  # noqa: E402
from vizcore.views.explanations import faithfulness_table, sanity_target, verdict  # noqa: E402
from vizcore.views.precompute import precompute  # noqa: E402
from vizcore.views.sanity import sanity_arrays  # noqa: E402


def _size(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.parent != folder) / 1e6


def sanity(runs: dict[str, Run]) -> None:
    """The sanity checks of every explanation method on each run's source side."""
    for rid, run in runs.items():
        for method in list_explainers():
            print(f"{rid}: sanity checks of {method}", flush=True)
            sanity_arrays(run, "source", method, *sanity_target(run, "source"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sanity-only", action="store_true", help="only the sanity checks of the explanation methods")
    only_sanity = ap.parse_args().sanity_only
    # writable views of the demo folders (the store only ever reads them), so caches land inside
    runs = {p.name: Run(p) for p in sorted(DEMO_ROOT.iterdir()) if (p / "config.json").exists()}
    if only_sanity:
        sanity(runs)
        return
    for rid, run in runs.items():
        precompute(run, lambda stage, rid=rid: print(f"{rid}: {stage}", flush=True), learned=True)
    before, after = default_pair(RunStore(demo_root=DEMO_ROOT).list())
    if before in runs and after in runs:
        layer = default_layer(common_layers(runs[before], runs[after]))
        embedding_pair(runs[before], runs[after], EmbeddingSettings(layer=layer))
        print(f"default embedding pair: {before} -> {after} ({layer})")
    for rid, run in runs.items():
        print(f"{rid}: faithfulness of every explanation method", flush=True)
        print(f"{rid}: {verdict(faithfulness_table(run, 'source'))}", flush=True)
    sanity(runs)
    for rid in runs:
        print(f"{rid}: {_size(DEMO_ROOT / rid):.1f} MB of analyses")


if __name__ == "__main__":
    main()
