"""Benchmark: how much a source network helps on the target with few labels (fine-tuning).

    python bench/transferability.py --threads 1              # 3 seeds, K = 1, 5, 10, 50
    python bench/transferability.py --quick                  # smoke run

For each seed a source network is trained once (the source-only recipe on MNIST ->
MNIST-M-style, 3,000 images, as in bench/domain_adaptation.py); then, for every K, K labelled
target training images per class are drawn with the seed (``target_labels_per_class``) and

* rows "frozen conv blocks k" (k = 0 ... n): fine-tuning from the source network with its first
  k conv blocks frozen (weights and BatchNorm statistics), the rest retrained;
* row "classifier only": everything but the final linear classifier frozen;
* row "from scratch": the same network and schedule trained on the same K labels from a random
  initialisation (no parent), the baseline of every ratio.

Cells: target test accuracy, mean ± sample std over the seeds; the last column of each row is
its K = 10 gain over "from scratch" (points). Every cell trains the same number of steps (about
``--steps``), so small K is not starved of updates. Target test labels are used for the
accuracy only; the target *training* labels of the K images are the training set.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cell_config(base, k: int, batch_size: int, steps: int):
    """The fine-tuning config for K labels per class: about ``steps`` steps, no source inversion
    (the training images are target images)."""
    n = 10 * k
    bs = min(batch_size, n)
    per_epoch = max(1, n // bs)
    epochs = max(1, math.ceil(steps / per_epoch))
    # evaluated once, at the end: with K = 1 every epoch is one step, and evaluating each would
    # cost thirty times the training
    return base.replace(target_labels_per_class=k, batch_size=bs, epochs=epochs, eval_every=epochs,
                        augment_invert=0.0, precise_bn=False, log_every=10_000)  # fmt: skip



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, tiny data, few steps")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ks", default="1,5,10,50", help="labelled target images per class, comma-separated")
    ap.add_argument("--source", default="mnist")
    ap.add_argument("--target", default="mnist-m")
    ap.add_argument("--train-limit", type=int, default=3000, help="training images of the source run")
    ap.add_argument("--test-limit", type=int, default=1000, help="test images per domain")
    ap.add_argument("--steps", type=int, default=100, help="training steps of every fine-tuning cell")
    ap.add_argument("--lr", type=float, default=0.01, help="learning rate of every cell")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--store", default=None, metavar="DIR",
                    help="keep the runs in this run store (e.g. runs, or $VIZCORE_RUNS): the Compare page then "
                    "draws the table; default: a temporary folder")  # fmt: skip
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from vizcore.methods.recipes import recommended_config
    from vizcore.models.architecture import build_model
    from vizcore.store.runs import RunStore
    from vizcore.train.loop import completed, train
    from vizcore.views.transfer import SCRATCH, TransferTable, freeze_label

    if a.threads:
        torch.set_num_threads(a.threads)
    ks = [int(k) for k in a.ks.split(",") if k.strip()]
    seeds, train_limit, steps, test_limit = a.seeds, a.train_limit, a.steps, a.test_limit
    if a.quick:
        seeds, train_limit, steps, test_limit, ks = 1, 256, 4, 128, [1, 5]
    src_cfg = recommended_config("source_only", a.source, a.target, train_limit=train_limit,
                                 test_limit=test_limit, device="cpu", **({"epochs": 1} if a.quick else {}))  # fmt: skip
    blocks = len(build_model(src_cfg).conv_blocks())
    # each row's freeze, named as the Compare page names it (vizcore.views.transfer.freeze_label)
    classifier_only = ["features", "bottleneck"] if src_cfg.bottleneck_dim else ["features"]
    freeze = {freeze_label(f): f for f in [*range(blocks + 1), classifier_only]}
    rows = [*freeze, SCRATCH]
    print(f"# transferability ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {a.source} -> {a.target}, {seeds} seed(s), ~{steps} steps a cell, "
          f"lr {a.lr})", flush=True)  # fmt: skip
    acc: dict[tuple[str, int], list[float]] = {}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vizcore-transfer-") as tmp:
        store = RunStore(a.store or tmp, demo_root=None)
        for seed in range(seeds):
            end = completed(train(src_cfg.replace(seed=seed), store))
            values, parent = end.values, end.run_id
            print(f"seed {seed}: source run {100 * values['target_acc']:.1f} % on the target "
                  f"(source {100 * values['source_acc']:.1f} %)", flush=True)  # fmt: skip
            base = recommended_config("finetune", a.source, a.target, seed=seed, test_limit=test_limit,
                                      device="cpu", lr=a.lr, schedule="cosine")  # fmt: skip
            for k in ks:
                for row in rows:
                    cfg = cell_config(base, k, src_cfg.batch_size, steps)
                    if row == SCRATCH:
                        cfg = cfg.replace(method="source_only")
                    else:
                        cfg = cfg.replace(init_from=parent, freeze=freeze[row])
                    values = completed(train(cfg, store)).values
                    acc.setdefault((row, k), []).append(values["target_acc"])
                    print(f"  seed {seed} K={k:<3d} {row:22s} target {100 * values['target_acc']:.1f} %", flush=True)
    # the same table the Compare page draws from a store (vizcore.views.transfer)
    table = TransferTable(f"{a.source} → {a.target}", tuple(rows), tuple(ks), acc)
    records = table.records()
    print()
    print("| " + " | ".join(records[0]) + " |")
    print("|---|" + "---|" * (len(records[0]) - 1))
    for rec in records:
        print("| " + " | ".join(rec.values()) + " |")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
