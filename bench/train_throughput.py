"""Training throughput: the vizcore loop against a bare PyTorch loop, same model and batches.

    python bench/train_throughput.py [--data mnist] [--steps 50] [--repeats 5] [--device auto]

Both loops train LeNet-GAP from the same initial weights with SGD on the same data held in
memory; the bare loop is the minimal `zero_grad / forward / loss / backward / step`. They run
alternately, several times, and the table reports the median images/s of each and their ratio
(goal: vizcore >= 0.9x the bare loop). The machines are shared and noisy, so only the ratio
within one run means anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

if TYPE_CHECKING:
    from vizcore.core.config import TrainConfig


def bare_loop(cfg: TrainConfig, steps: int) -> float:
    """images/s of the plainest correct loop over the same data."""
    import torch
    import torch.nn.functional as F

    from vizcore.core.device import resolve_device
    from vizcore.data.domains import load_domain
    from vizcore.models.architecture import build_model

    dev = resolve_device(cfg.device)
    d = load_domain(cfg.source, "train", limit=cfg.train_limit)
    x, y = d.images.to(dev), d.labels.to(dev)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    g = torch.Generator().manual_seed(0)
    n_batches = len(x) // cfg.batch_size
    done, t0 = 0, 0.0
    while done < steps + 5:
        perm = torch.randperm(len(x), generator=g).to(dev)
        for b in range(n_batches):
            if done == 5:  # warm-up steps are not timed
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            done += 1
            if done == steps + 5:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def vizcore_loop(cfg: TrainConfig, steps: int) -> float:
    """images/s of vizcore.train.loop between its 5th and (5+steps)th step, inside the first epoch."""
    from vizcore.train.loop import train

    t0, first = 0.0, None
    for ev in train(cfg.replace(log_every=5)):
        if ev.kind != "step":
            continue
        if ev.step == 5:
            t0, first = time.perf_counter(), ev.step
        elif first is not None and ev.step == first + steps:
            return steps * cfg.batch_size / (time.perf_counter() - t0)
    raise RuntimeError("not enough steps: raise --limit or lower --steps")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--model", default="lenet_gap")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=50, help="a multiple of 5, below one epoch's steps")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    return ap.parse_args(argv)


def main() -> None:
    a = parse_args()
    import torch

    from vizcore.core.config import TrainConfig
    from vizcore.core.device import resolve_device

    # one epoch: the timed window never includes the end-of-epoch evaluation
    cfg = TrainConfig(source=a.data, model=a.model, batch_size=a.batch_size, epochs=1, device=a.device,
                      schedule="constant", lr=0.05, weight_decay=0.0)  # fmt: skip
    bare, viz = [], []
    for _ in range(a.repeats):
        bare.append(bare_loop(cfg, a.steps))
        viz.append(vizcore_loop(cfg, a.steps))
    b, v = statistics.median(bare), statistics.median(viz)
    dev = resolve_device(a.device)
    print(f"\nTraining throughput, {a.model} on {a.data}, batch {a.batch_size}, {a.steps} timed steps, "
          f"median of {a.repeats}, device {dev}, torch threads {torch.get_num_threads()}\n")  # fmt: skip
    print("| loop | images/s (median) | all runs | ratio vs bare |")
    print("|---|---|---|---|")
    print(f"| bare PyTorch | {b:,.0f} | {', '.join(f'{x:,.0f}' for x in bare)} | 1.00 |")
    print(f"| vizcore.train.loop | {v:,.0f} | {', '.join(f'{x:,.0f}' for x in viz)} | {v / b:.2f} |")


if __name__ == "__main__":
    main()
