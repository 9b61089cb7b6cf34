"""Benchmark: knowledge distillation on a small labelled budget (Hinton et al. 2015).

    python bench/distillation.py --threads 1      # 3 seeds, 1,000 labelled MNIST images
    python bench/distillation.py --quick          # smoke run

Per seed: a teacher (LeNet-GAP, the supervised recipe) is trained on ``--budget`` labelled
MNIST training images; a student with conv widths ``--student`` (at least 8x fewer parameters)
is trained on the same images twice with the same recipe and seed: on the hard labels alone
(``source_only``) and with the teacher's softened outputs (``distill``, T and alpha below).
Columns: test accuracy on the bundled MNIST test split (mean ± sample std over seeds), the KD
gain over hard labels (points), and the CAM agreement with the teacher: the mean per-image
Pearson correlation between the teacher's and the student's class activation map of the true
class, over the test images.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    import torch


def cam_agreement(a: torch.nn.Module, b: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over images of the Pearson correlation of two models' CAMs of the true class."""
    from vizcore.explain.cam import class_activation_maps

    ma = class_activation_maps(a, images, labels).maps.flatten(1)
    mb = class_activation_maps(b, images, labels).maps.flatten(1)
    ma, mb = ma - ma.mean(1, keepdim=True), mb - mb.mean(1, keepdim=True)
    r = (ma * mb).sum(1) / (ma.norm(dim=1) * mb.norm(dim=1)).clamp_min(1e-12)
    return float(r.mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 256 images, 1 epoch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=1000, help="labelled training images")
    ap.add_argument("--student", default="8,16", help="conv widths of the student")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from vizcore.core.numbers import mean_std
    from vizcore.methods.recipes import recommended_config
    from vizcore.models import count_parameters
    from vizcore.store.runs import RunStore
    from vizcore.train.data import load_split
    from vizcore.train.loop import completed, train

    if a.threads:
        torch.set_num_threads(a.threads)
    widths = tuple(int(w) for w in a.student.split(","))
    seeds, over = a.seeds, {"train_limit": a.budget, "device": "cpu"}
    if a.quick:
        seeds, over = 1, {"train_limit": 256, "test_limit": 256, "epochs": 1, "device": "cpu"}
    if a.epochs:
        over["epochs"] = a.epochs
    teacher_cfg = recommended_config("source_only", "mnist", **over)
    student_cfg = teacher_cfg.replace(widths=widths)
    kd = {"temperature": a.temperature, "alpha": a.alpha}
    print(f"# distillation ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {over.get('train_limit')} labelled images, {seeds} seed(s), "
          f"T = {a.temperature}, alpha = {a.alpha})", flush=True)  # fmt: skip
    res: dict[str, list[float]] = {"teacher": [], "hard": [], "kd": [], "cam_hard": [], "cam_kd": []}
    sizes: dict[str, int] = {}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vizcore-kd-") as tmp:
        store = RunStore(tmp, demo_root=None)
        test = load_split(teacher_cfg.replace(input_shape=(1, 28, 28)), "mnist", "test")
        for seed in range(seeds):
            t_end = completed(train(teacher_cfg.replace(seed=seed), store))
            h_end = completed(train(student_cfg.replace(seed=seed), store))
            k_cfg = student_cfg.replace(seed=seed, method="distill", teacher=t_end.run_id, method_params=kd)
            k_end = completed(train(k_cfg, store))
            (t_vals, t_id), (h_vals, h_id), (k_vals, k_id) = ((e.values, e.run_id) for e in (t_end, h_end, k_end))
            teacher, hard, soft = (store.get(i).load_model() for i in (t_id, h_id, k_id))
            sizes = {"teacher": count_parameters(teacher), "student": count_parameters(hard)}
            res["teacher"].append(t_vals["source_acc"])
            res["hard"].append(h_vals["source_acc"])
            res["kd"].append(k_vals["source_acc"])
            res["cam_hard"].append(cam_agreement(teacher, hard, test.images, test.labels))
            res["cam_kd"].append(cam_agreement(teacher, soft, test.images, test.labels))
            print(f"seed {seed}: teacher {100 * t_vals['source_acc']:.1f} %, student hard labels "
                  f"{100 * h_vals['source_acc']:.1f} %, student KD {100 * k_vals['source_acc']:.1f} %; CAM "
                  f"agreement {res['cam_hard'][-1]:.3f} / {res['cam_kd'][-1]:.3f}", flush=True)  # fmt: skip
    ratio = sizes["teacher"] / sizes["student"]
    gain = 100 * (statistics.mean(res["kd"]) - statistics.mean(res["hard"]))
    print()
    print("| model | parameters | MNIST test acc % | gain vs hard labels | CAM agreement with teacher |")
    print("|---|---|---|---|---|")
    print(f"| teacher (LeNet-GAP 32,64) | {sizes['teacher']:,} | {mean_std(res['teacher'])} |  |  |")
    print(f"| student {a.student}, hard labels | {sizes['student']:,} (÷{ratio:.1f}) | {mean_std(res['hard'])} |  "
          f"| {mean_std(res['cam_hard'], 1, 2)} |")  # fmt: skip
    print(f"| student {a.student}, KD | {sizes['student']:,} (÷{ratio:.1f}) | {mean_std(res['kd'])} | {gain:+.1f} "
          f"| {mean_std(res['cam_kd'], 1, 2)} |")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
