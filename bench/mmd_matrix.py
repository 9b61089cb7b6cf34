"""Benchmark: the 10×10 class-by-class MMD matrix, the seed's double loop against vizcore.

    python bench/mmd_matrix.py            # full run: m = 100, 300, 1000 per class, d = 64
    python bench/mmd_matrix.py --quick    # smoke run (seconds)
    python bench/mmd_matrix.py --features feats.npz   # real features: arrays "features", "labels"

Methods (all on the same samples, drawn by ``vizcore.metrics.class_samples``):

- ``seed loop``: the group's first experiment, re-implemented here: a Python double loop over all
  10×10 class pairs; each pair concatenates its two samples, expands them to an (n, n, d) float32
  difference tensor, and sums 5 Gaussian kernels with base sum(D) / (n² - n). Off-diagonal entries
  compare two whole classes (m rows each); the diagonal compares two disjoint halves of a class.
- ``vizcore seed``: ``class_distance_matrix(..., estimator="seed", pairing="full")``: the same
  samples and formula, one chunked pass, float64. Its "max |diff|" column is against the seed loop.
- ``vizcore unbiased``: the dashboard's default (unbiased estimator, one shared bandwidth, disjoint
  halves of m/2 for every entry): a different, smaller computation, shown for its cost.

Every case runs in a fresh subprocess with ``torch.set_num_threads(--threads)`` (2 by default for
both sides). Peak memory is ``ru_maxrss`` (the kernel's high-water mark of the resident set, which
counts torch's allocations, unlike tracemalloc) after the case minus its value just before the case,
taken after imports, data generation and a small warm-up run. Times are the median of --repeats
runs (one run for the seed loop at m >= 1000). The machine is shared and noisy, so compare ratios
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout (the workers import vizcore)
K, D = 10, 64


# ------------------------------------------------------------------------------------------ data


def make_data(m: int, features: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian class clusters (float32, like GAP features), or features from a file.

    Shape:
        outputs: (K·m, d) and (K·m,).
    """
    import numpy as np

    if features:
        data = np.load(features)
        return data["features"].astype(np.float32), data["labels"].astype(np.int64)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(K, D)) * 0.5  # (K, d): overlapping classes, MMD of order 0.1
    f = np.concatenate([c + rng.normal(size=(m, D)) for c in centres]).astype(np.float32)
    return f, np.repeat(np.arange(K), m)


# ----------------------------------------------------------------------------------- the cases


def seed_mmd(x, y):  # noqa: ANN001, ANN201  (torch tensors, as in the original experiment)
    """The original formula: multi-kernel MMD via an expanded (n, n, d) difference tensor."""
    import torch

    total = torch.cat([x, y])
    n = total.shape[0]
    l2 = ((total[:, None, :] - total[None, :, :]) ** 2).sum(-1)  # (n, n, d) materialised
    bandwidth = l2.sum() / (n * n - n)
    kernels = sum(torch.exp(-l2 / (bandwidth * 2 ** (i - 2))) for i in range(5))
    b = x.shape[0]
    return (kernels[:b, :b] + kernels[b:, b:] - kernels[:b, b:] - kernels[b:, :b]).mean()


def case_seed_loop(f: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    import numpy as np
    import torch

    from vizcore.metrics import class_samples

    plan = class_samples(f, y, n_per_class=m, pairing="full", seed=0)
    k = plan.shape[0]
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            x, z = plan.pair(i, j)
            out[i, j] = float(seed_mmd(torch.from_numpy(x).float(), torch.from_numpy(z).float()))
    return out


def case_vizcore_seed(f: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    from vizcore.metrics import class_distance_matrix

    return class_distance_matrix(f, y, n_per_class=m, estimator="seed", pairing="full").values


def case_vizcore_unbiased(f: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    from vizcore.metrics import class_distance_matrix

    return class_distance_matrix(f, y, n_per_class=m).values


def case_perm_unbiased(f: np.ndarray, y: np.ndarray, m: int, n_perm: int) -> np.ndarray:
    from vizcore.metrics import class_distance_matrix

    return class_distance_matrix(f, y, n_per_class=m, n_perm=n_perm).p_values


def case_perm_seed(f: np.ndarray, y: np.ndarray, m: int, n_perm: int) -> np.ndarray:
    from vizcore.metrics import class_distance_matrix

    res = class_distance_matrix(
        f, y, n_per_class=m, n_perm=n_perm, estimator="seed", pairing="full"
    )
    return res.p_values


CASES: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "seed": ("seed loop (n×n×d, float32)", case_seed_loop),
    "vz-seed": ("vizcore seed mode (full)", case_vizcore_seed),
    "vz-unbiased": ("vizcore unbiased (halves)", case_vizcore_unbiased),
    "perm-unbiased": ("p-values, unbiased (halves)", case_perm_unbiased),
    "perm-seed": ("p-values, seed mode (full)", case_perm_seed),
}


# ---------------------------------------------------------------------------------- the worker


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    fn = CASES[args.case][1]
    extra = (args.n_perm,) if args.case.startswith("perm") else ()
    f, y = make_data(args.m, args.features)
    small_f, small_y = make_data(8, None)
    fn(small_f, small_y, 8, *([5] if extra else []))  # warm-up: lazy init, thread pools
    before = peak_kb()
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        values = fn(f, y, args.m, *extra)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    np.save(args.out, values)
    report = {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu),
        "peak_mb": (peak_kb() - before) / 1024,
    }
    print(json.dumps(report))


def run_case(case: str, m: int, args: argparse.Namespace, repeats: int) -> dict:
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "values.npy"
        cmd = [sys.executable, __file__, "--worker", case, "--m", str(m), "--out", str(out)]
        cmd += [
            "--threads",
            str(args.threads),
            "--repeats",
            str(repeats),
            "--n-perm",
            str(args.n_perm),
        ]
        if args.features:
            cmd += ["--features", args.features]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"case {case} m={m} failed:\n{proc.stderr}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        report["values"] = np.load(out)
        return report


# ---------------------------------------------------------------------------------- the driver


COLUMNS = [
    ("m", 5),
    ("method", 30),
    ("seconds", 9),
    ("cpu s", 8),
    ("speed-up", 9),
    ("peak MB", 8),
    ("max |diff| vs seed", 19),
]


def fmt_row(cells: list[str]) -> str:
    widths = [w for _, w in COLUMNS]
    return "  ".join(
        c.ljust(w) if i == 1 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table_row(m: int, case: str, r: dict, seed: dict) -> str:
    import numpy as np

    same_formula = case in ("seed", "vz-seed")
    diff = (
        f"{np.abs(r['values'] - seed['values']).max():.1e}"
        if same_formula
        else "n/a (other estimator)"
    )
    speed_up = f"{seed['seconds'] / r['seconds']:.0f}×"
    cells = [
        str(m),
        CASES[case][0],
        f"{r['seconds']:.3f}",
        f"{r['cpu_seconds']:.2f}",
        speed_up,
        f"{r['peak_mb']:.0f}",
        diff,
    ]
    return fmt_row(cells)


def header(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    omp = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(
        f"# python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, torch threads {args.threads}, OMP_WAIT_POLICY={omp}"
    )
    data = args.features or f"seeded Gaussian clusters, K={K}, d={D}"
    print(
        f"# data: {data}; times: median of {args.repeats} runs; peak MB: ru_maxrss delta in a fresh process"
    )
    # other work on a shared machine inflates wall times; niceness < 0 means this run was favoured
    print(f"# load average at start: {os.getloadavg()[0]:.1f}, niceness {os.nice(0)}")
    print(fmt_row([name for name, _ in COLUMNS]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="m = 100 only, one repeat: a smoke run")
    p.add_argument("--features", help="npz with 'features' (N, d) and integer 'labels' (N,)")
    p.add_argument("--sizes", type=int, nargs="+", help="samples per class (default 100 300 1000)")
    p.add_argument("--perm-m", type=int, help="samples per class for the permutation timing (300)")
    p.add_argument("--n-perm", type=int, help="permutations (200)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", choices=sorted(CASES), help=argparse.SUPPRESS)
    p.add_argument("--m", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    import numpy as np

    if args.worker:
        args.case = args.worker
        worker(args)
        return
    sizes = args.sizes or ([100] if args.quick else [100, 300, 1000])
    perm_m = args.perm_m or (100 if args.quick else 300)
    args.n_perm = args.n_perm or (50 if args.quick else 200)
    args.repeats = 1 if args.quick else args.repeats
    if args.features:
        smallest = int(np.bincount(make_data(0, args.features)[1]).min())
        sizes = [m for m in sizes if m <= smallest] or [smallest]
        perm_m = min(perm_m, smallest)
    header(args)
    for m in sizes:
        seed = run_case("seed", m, args, 1 if m >= 1000 else args.repeats)  # ~1 min at m = 1000
        print(table_row(m, "seed", seed, seed), flush=True)
        for case in ("vz-seed", "vz-unbiased"):
            print(table_row(m, case, run_case(case, m, args, args.repeats), seed), flush=True)
    for case in ("perm-unbiased", "perm-seed"):
        r = run_case(case, perm_m, args, args.repeats)
        print(
            f"# {CASES[case][0]}: m={perm_m}, {args.n_perm} permutations, whole {K}×{K} matrix with values: "
            f"{r['seconds']:.2f} s (cpu {r['cpu_seconds']:.2f} s), peak +{r['peak_mb']:.0f} MB",
            flush=True,
        )
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
