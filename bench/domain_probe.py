"""Diagnostic: can a fresh domain classifier tell a trained run's source features from its target's?

    python bench/domain_probe.py --runs /tmp/printed-runs RUN_ID [RUN_ID ...]

An adversarial method's own domain accuracy near 50% says only that *its* classifier is fooled.
Whether the features are aligned is a separate question: this script reads each run's training
images of both domains (the source augmented as in training: shifts and inversions), passes them
through the trained network in eval mode, and trains a new classifier on each layer the domain
classifier could read (the adaptation layer, the GAP vector, the flattened conv maps), scored on
held-out images by cross-fitting (``vizcore.metrics.learned.discriminate``, the classifier
two-sample test of the Distances page). Near 100% held-out: the domains are not aligned there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = ("bottleneck", "gap", "conv")
LOGISTIC, MLP = {"logistic": 0}, {"mlp": 64}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_ids", nargs="*", help="runs of an adaptation shift (source and target)")
    ap.add_argument("--runs", default=None, help="the run store holding them (required)")
    ap.add_argument("--images", type=int, default=1000, help="training images per domain (default 1000)")
    ap.add_argument("--mlp", action="store_true",
                    help="also a one-hidden-layer MLP (64 units; minutes on one core for the conv maps)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return ap.parse_args(argv)


def layer_features(model, x, batch: int = 256) -> dict[str, object]:
    """Each probed layer's features of ``x`` (eval mode), as float64 numpy arrays (N, D)."""
    import numpy as np
    import torch

    out: dict[str, list] = {k: [] for k in LAYERS}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            f = model.forward_features(x[i : i + batch])
            for k in LAYERS:
                v = getattr(f, k)
                if v is not None:
                    out[k].append(v.flatten(1).double().numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def probe(store: str, run_id: str, images: int, classifiers: dict[str, int]) -> dict[str, dict[str, float]]:
    """Held-out domain accuracy of a fresh classifier per layer and classifier kind."""
    import torch

    from vizcore.metrics.learned import discriminate
    from vizcore.store.runs import RunStore
    from vizcore.train.augment import random_invert, random_shift
    from vizcore.train.data import load_data

    run = RunStore(store, demo_root=None).get(run_id)
    cfg = run.config()
    if not cfg.target:
        raise SystemExit(f"run {run_id} has no target domain")
    data = load_data(cfg.replace(train_limit=images))
    gen = torch.Generator().manual_seed(cfg.seed)
    xs, xt = data.source_train.images, data.target_train.images
    if cfg.augment_shift:
        xs = random_shift(xs, cfg.augment_shift, gen)
    if cfg.augment_invert:
        xs = random_invert(xs, cfg.augment_invert, gen)
    model = run.load_model()
    fs, ft = layer_features(model, xs), layer_features(model, xt)
    out: dict[str, dict[str, float]] = {}
    for layer in fs:
        got = {name: discriminate([(fs[layer], ft[layer])], [cfg.seed], hidden=hidden)
               for name, hidden in classifiers.items()}  # fmt: skip
        out[layer] = {name: float(d.correct[0] / d.n_test[0]) for name, d in got.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if not a.run_ids or not a.runs:
        print("give --runs STORE and at least one run id", file=sys.stderr)
        return 2
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    kinds = {**LOGISTIC, **(MLP if a.mlp else {})}
    print("| run | layer | " + " | ".join(f"{c} held-out domain acc %" for c in kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    for rid in a.run_ids:
        for layer, accs in probe(a.runs, rid, a.images, kinds).items():
            print(f"| {rid} | {layer} | " + " | ".join(f"{100 * accs[c]:.1f}" for c in kinds) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
