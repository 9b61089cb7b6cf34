"""Benchmark: self-supervised embeddings by invariant and spreading instance features (Ye et al. 2019).

    python bench/instance_spread.py --threads 1      # 3 seeds
    python bench/instance_spread.py --quick          # smoke run

Per seed, LeNet-GAP is trained with ``instance_spread`` on ``--train-limit`` MNIST training
images and *no labels*; the features are judged by a k-nearest-neighbour classifier (k = 20,
cosine similarity, majority vote) whose memory is the same training images with their labels,
on the bundled MNIST test split. The loss spreads a ``--embedding-dim`` linear layer after the
GAP vector (the paper's 128-d embedding); the kNN reads the GAP vector. Baselines measured in the same run: the same kNN on the GAP
features of the same network at its random initialisation, and on the raw pixels.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 512 images, 1 epoch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=5000, help="unlabelled training images")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128, help="images per batch (two views each)")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--embedding-dim", type=int, default=128,
                    help="linear adaptation layer the loss spreads (0: the GAP vector itself)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from vizcore.core.numbers import mean_std
    from vizcore.methods.instance_spread import KNN_K, gap_features, knn_accuracy
    from vizcore.methods.recipes import recommended_config
    from vizcore.models.architecture import build_model
    from vizcore.store.runs import RunStore
    from vizcore.train.data import load_data
    from vizcore.train.loop import train

    if a.threads:
        torch.set_num_threads(a.threads)
    seeds, over = a.seeds, {"train_limit": a.train_limit, "epochs": a.epochs}
    if a.quick:
        seeds, over = 1, {"train_limit": 512, "test_limit": 512, "epochs": 1}
    cfg = recommended_config("instance_spread", "mnist", batch_size=a.batch_size, device="cpu", augment_shift=0,
                             bottleneck_dim=a.embedding_dim,
                             method_params={"temperature": a.temperature}, **over)  # fmt: skip
    print(f"# instance spreading ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {over['train_limit']} unlabelled MNIST images, {over['epochs']} "
          f"epochs, {seeds} seed(s), τ = {a.temperature})", flush=True)  # fmt: skip
    res: dict[str, list[float]] = {"trained": [], "random": [], "pixels": []}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vizcore-isp-") as tmp:
        store = RunStore(tmp, demo_root=None)
        for seed in range(seeds):
            c = cfg.replace(seed=seed, input_shape=(1, 28, 28))
            data = load_data(c)
            tr, te = data.source_train, data.source_test
            torch.manual_seed(seed)
            random_net = build_model(c)
            res["random"].append(knn_accuracy(gap_features(random_net, tr.images.split(1024)), tr.labels,
                                              gap_features(random_net, te.images.split(1024)), te.labels, KNN_K))  # fmt: skip
            res["pixels"].append(knn_accuracy(tr.images.flatten(1), tr.labels, te.images.flatten(1), te.labels, KNN_K))
            end = None
            for ev in train(c, store):
                end = ev
                if ev.kind == "epoch":
                    print(f"  seed {seed} epoch {ev.epoch}: kNN {100 * ev.values['knn_acc']:.1f} %", flush=True)
            if end is None or end.status != "complete":
                raise RuntimeError(f"run ended {end.status if end else '?'}: {end.message if end else ''}")
            res["trained"].append(end.values["knn_acc"])
            print(f"seed {seed}: kNN accuracy {100 * res['trained'][-1]:.1f} % (random init "
                  f"{100 * res['random'][-1]:.1f} %, pixels {100 * res['pixels'][-1]:.1f} %)", flush=True)  # fmt: skip
    base = statistics.mean(res["random"])
    print()
    print(f"| features (no labels in training) | kNN accuracy %, k = {KNN_K}, cosine | × random-init features |")
    print("|---|---|---|")
    print(f"| raw pixels | {mean_std(res['pixels'])} | {statistics.mean(res['pixels']) / base:.2f} |")
    print(f"| LeNet-GAP GAP vector, random init | {mean_std(res['random'])} | 1.00 |")
    print(f"| LeNet-GAP GAP vector, instance spreading | {mean_std(res['trained'])} | "
          f"{statistics.mean(res['trained']) / base:.2f} |")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
