"""Benchmark: 2-D embeddings of 64-d features, speed and layout quality in one table.

    python bench/embeddings.py                      # full run: N = 2k, 5k, 10k
    python bench/embeddings.py --quick              # smoke run (N = 600, 1500)
    python bench/embeddings.py --features f.npz     # real features: arrays "x" (N, D), "y" (N,)
    python bench/embeddings.py --features rotated   # digits rotated +-30 degrees, noise sigma 2
    python bench/embeddings.py --large              # t-SNE at N = 20k, 60k: openTSNE defaults vs vizcore

Features: by default 64-d raw pixels of scikit-learn's UCI handwritten digits
(``load_digits``: 1,797 real 8x8 images, values 0..16), augmented to N points by seeded
random sub-pixel shifts (uniform in +-1 px, bilinear) and Gaussian pixel noise (sigma 0.5),
clipped to 0..16. With ``--features`` the first N rows of a seeded permutation are used.

Rows per N:

- t-SNE ``sklearn default``: ``sklearn.manifold.TSNE(random_state=0)`` (Barnes-Hut, 1000
  iterations, OpenMP on all cores): the baseline, measured in the same run.
- t-SNE ``vizcore``: ``vizcore.embed.methods.embed(x, "tsne")`` (openTSNE, the settings chosen in ``vizcore.embed.tsne``).
- t-SNE ``sklearn default, 1 OpenMP thread``: the baseline again, limited by threadpoolctl
  (on a busy machine its OpenMP threads can be slower than one). Ratios are against the
  faster of these two runs.
- t-SNE ``openTSNE default``: ``openTSNE.TSNE(random_state=0, n_jobs=1).fit(x)`` (750 iterations, one thread).
- t-SNE ``sklearn fast``: scikit-learn with ``max_iter=500, n_jobs=-1`` (its minimum
  sensible schedule: 250 exaggerated + 250) and one OpenMP thread, to show what
  scikit-learn alone can do.
- UMAP (``vizcore.embed.methods.embed(x, "umap")``), each in a fresh subprocess:
  ``first call, cold``: empty numba cache dir (``NUMBA_CACHE_DIR``), time includes
  ``import umap``; ``later call``: a second call in that process; ``first call, numba
  cache``: a new process reusing the cache dir the cold run filled; ``after warm-up``: a new
  process with an empty cache dir that ran ``warm_up_umap()`` first (its cost in the notes).
- PCA: ``vizcore.embed.methods.embed(x, "pca")``.

Quality: trustworthiness (k=10) is computed on a fixed seeded subsample of 2,000 of the N
points (features and layout restricted to them; exact for N <= 2000) to keep it cheap; the
2-D kNN class accuracy (leave-one-out, k=10) uses all N points.

Finally the time to re-open a cached 10k x 2 layout from ``.npy`` and ``.npz``.

``--large`` (N = 20k and 60k by default, ``--sizes`` to change): t-SNE only, two rows per N, one
after the other in the same process, both on one thread (openTSNE's ``n_jobs=1``, vizcore's thread
choice fixed at 1, BLAS limited to 1 by threadpoolctl): ``openTSNE default`` is
``openTSNE.TSNE(random_state=0, n_jobs=1).fit(x)`` (perplexity 30 on 90 Annoy neighbours, 250
early-exaggeration iterations + 500, its own learning rates: the baseline) and ``vizcore`` is
``vizcore.embed.methods.embed(x, "tsne")`` (up to ``TSNE_LARGE_N`` points perplexity 30 on exact
neighbours; above, a uniform kernel on 15 Annoy neighbours; 125 + 250 iterations). Reported: CPU
seconds (``time.process_time``) and wall seconds, vizcore's CPU time as a fraction of the
baseline's, trustworthiness on the same fixed 2,000-point subsample, kNN on all N, and for N above
``TSNE_LARGE_N`` whether each goal holds (10-NN accuracy within 1 point of the baseline,
trustworthiness within 0.003, at most 1/3 of its CPU time).

The machine is shared and noisy: read the "x sklearn" ratios (same run, against the faster
of scikit-learn's all-threads and one-thread default runs), and the CPU seconds (all threads
of the process), which suffer less from other people's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    import numpy as np

TRUST_SUBSAMPLE = 2000
SEED = 0


# ------------------------------------------------------------------------------------------ data


def digits_features(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """N augmented copies of the 1,797 UCI digits, as 64-d pixel vectors.

    Every digit is used before any is repeated; each copy gets its own shift and noise.

    Shape:
        outputs: (n, 64) float32 and (n,) int.
    """
    import numpy as np
    from scipy import ndimage
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    rounds = n // len(images) + 1
    idx = np.concatenate([rng.permutation(len(images)) for _ in range(rounds)])[:n]
    shifts = rng.uniform(-1.0, 1.0, size=(n, 2))
    noise = rng.normal(0.0, 0.5, size=(n, 8, 8)).astype(np.float32)
    out = np.empty((n, 64), np.float32)
    for i, j in enumerate(idx):
        moved = ndimage.shift(images[j], shifts[i], order=1, mode="constant")
        out[i] = np.clip(moved + noise[i], 0.0, 16.0).ravel()
    return out, digits.target[idx]


def rotated_digits(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """N copies of the 1,797 UCI digits drawn with replacement, each rotated by a seeded angle in
    +-30 degrees (bilinear) with Gaussian pixel noise (sigma 2 of 16), clipped to 0..16.

    Shape:
        outputs: (n, 64) float32 and (n,) int.
    """
    import numpy as np
    from scipy import ndimage
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)
    rng = np.random.default_rng([seed, 30])
    idx = rng.integers(0, len(images), n)
    angles = rng.uniform(-30.0, 30.0, n)
    noise = rng.normal(0.0, 2.0, size=(n, 8, 8)).astype(np.float32)
    out = np.stack([np.clip(ndimage.rotate(images[j], a, reshape=False, order=1) + e, 0.0, 16.0).ravel()
                    for j, a, e in zip(idx, angles, noise, strict=True)])  # fmt: skip
    return out.astype(np.float32), digits.target[idx]


def load_features(n: int, path: str | None) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if not path:
        return digits_features(n)
    if path == "rotated":
        return rotated_digits(n)
    data = np.load(path)
    x, y = np.asarray(data["x"], np.float32), np.asarray(data["y"])
    if n > len(x):
        raise SystemExit(f"{path} holds {len(x)} points; asked for {n}")
    pick = np.random.default_rng(SEED).permutation(len(x))[:n]
    return x[pick], y[pick]


def features_label(path: str | None) -> str:
    if path == "rotated":
        return "64-d pixels of the UCI digits drawn with replacement, seeded rotations of +-30 degrees and noise (sigma 2 of 16)"
    if path:
        return f"features from {path} (seeded subsets)"
    return (
        "64-d pixels of the 1,797 real UCI digits (sklearn load_digits), augmented to N by "
        "seeded +-1 px shifts and noise (sigma 0.5 of 16)"
    )


def quality(x: np.ndarray, y: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    import numpy as np

    from vizcore.metrics.domain import knn_class_accuracy_2d, layout_trustworthiness

    sub = np.random.default_rng(1).permutation(len(x))[: min(len(x), TRUST_SUBSAMPLE)]
    trust = layout_trustworthiness(x[sub], xy[sub], k=10)
    return trust, knn_class_accuracy_2d(xy, y, k=10)


# ---------------------------------------------------------------------------- in-process cases


def case_sklearn_default(x: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(random_state=SEED).fit_transform(x)


def case_sklearn_one_thread(x: np.ndarray) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    # scikit-learn's Barnes-Hut gradient uses every core through OpenMP; on a busy machine
    # that can be slower than one thread, so this row keeps the baseline honest.
    with threadpool_limits(limits=1, user_api="openmp"):
        return case_sklearn_default(x)


def case_sklearn_fast(x: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return TSNE(random_state=SEED, max_iter=500, n_jobs=-1).fit_transform(x)


def case_opentsne_default(x: np.ndarray) -> np.ndarray:
    import numpy as np
    from openTSNE import TSNE

    return np.asarray(TSNE(random_state=SEED, n_jobs=1).fit(x))


def case_vizcore(method: str) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        from vizcore.embed.methods import embed

        return embed(x, method, SEED)

    return run


# Order matters: the fast variant runs right after its baseline, under the same load.
IN_PROCESS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "tsne-sklearn-default": ("t-SNE  sklearn default (baseline)", case_sklearn_default),
    "tsne-vizcore": ("t-SNE  vizcore (openTSNE fast)", case_vizcore("tsne")),
    "tsne-sklearn-1thread": ("t-SNE  sklearn default, 1 OMP thread", case_sklearn_one_thread),
    "tsne-opentsne-default": ("t-SNE  openTSNE default", case_opentsne_default),
    "tsne-sklearn-fast": ("t-SNE  sklearn 500 iter, 1 OMP thread", case_sklearn_fast),
    "pca": ("PCA    vizcore", case_vizcore("pca")),
}


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


# ------------------------------------------------------------------------ UMAP in subprocesses


def umap_worker(n: int, mode: str, features: str | None) -> None:
    """Run in a fresh process; print one JSON line per measured call."""
    import numpy as np

    x, y = load_features(n, features)
    rows = []
    if mode == "warmup":
        from vizcore.embed.methods import warm_up_umap

        _, wall, cpu = timed(lambda: np.array([warm_up_umap()]))
        rows.append({"case": "warm-up", "wall": wall, "cpu": cpu})
    from vizcore.embed.methods import embed

    def first() -> np.ndarray:
        import umap  # noqa: F401  (counted: a page pays it on its first UMAP)

        return embed(x, "umap", SEED)

    xy, wall, cpu = timed(first)
    trust, knn = quality(x, y, xy)
    rows.append({"case": "first", "wall": wall, "cpu": cpu, "trust": trust, "knn": knn})
    if mode == "cold":
        again, wall, cpu = timed(lambda: embed(x, "umap", SEED))
        trust, knn = quality(x, y, again)
        rows.append({"case": "later", "wall": wall, "cpu": cpu, "trust": trust, "knn": knn})
        rows[-1]["identical"] = bool(np.array_equal(again, xy))
    print(json.dumps(rows))


def run_umap(n: int, mode: str, cache_dir: str, features: str | None) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", mode, "--n", str(n)]
    if features:
        cmd += ["--features", features]
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"UMAP worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- reporting


def fmt_row(n: int, label: str, r: dict, base: float | None) -> str:
    ratio = f"{base / r['wall']:6.2f}x" if base else "      -"
    trust = f"{r['trust']:.4f}" if "trust" in r else "     -"
    knn = f"{100 * r['knn']:6.2f}" if "knn" in r else "     -"
    return (
        f"{n:>6,} | {label:<40} | {r['wall']:7.2f} | {r['cpu']:7.2f} | {ratio} | "
        f"{trust} | {knn} | {r.get('note', '')}"
    )


def reopen_time(n: int, tmp: Path) -> dict[str, float]:
    """Seconds to load a cached (n, 2) layout back, best of 5 (file in the page cache)."""
    import numpy as np

    xy = np.random.default_rng(0).normal(size=(n, 2))
    np.save(tmp / "layout.npy", xy)
    np.savez_compressed(tmp / "layout.npz", xy=xy, y=np.zeros(n, np.int64))
    out = {}
    for name, load in {
        ".npy": lambda: np.load(tmp / "layout.npy"),
        ".npz (compressed)": lambda: np.load(tmp / "layout.npz")["xy"],
    }.items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            load()
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    return out


def large(sizes: list[int], path: str | None) -> None:
    """t-SNE beyond TSNE_LARGE_N points: openTSNE's defaults against vizcore, one thread each."""
    from threadpoolctl import threadpool_limits

    import vizcore.embed.methods as vembed
    import vizcore.embed.tsne as vtsne

    vtsne._n_jobs = lambda: 1  # the same threads as the baseline's n_jobs=1, whatever the load
    print(f"# t-SNE at large N: {features_label(path)}; {os.cpu_count()} CPUs, load average at start "
          f"{os.getloadavg()[0]:.1f}; TSNE_LARGE_N = {vtsne.TSNE_LARGE_N:,}; one thread each\n")  # fmt: skip
    print("| N | t-SNE | CPU s | wall s | CPU / openTSNE default | trust | kNN % |\n|---|---|---|---|---|---|---|")
    cases = {
        "openTSNE default": case_opentsne_default,
        "vizcore": lambda x: vembed.embed(x, "tsne", SEED),
    }
    verdicts = []
    for n in sizes:
        x, y = load_features(n, path)
        rows = {}
        with threadpool_limits(limits=1):
            for label, fn in cases.items():
                xy, wall, cpu = timed(lambda fn=fn, x=x: fn(x))
                rows[label] = (cpu, wall, *quality(x, y, xy))
        base_cpu, _, base_trust, base_knn = rows["openTSNE default"]
        for label, (cpu, wall, trust, knn) in rows.items():
            print(f"| {n:,} | {label} | {cpu:.1f} | {wall:.1f} | {cpu / base_cpu:.2f} | {trust:.4f} | {100 * knn:.2f} |",
                  flush=True)  # fmt: skip
        cpu, _, trust, knn = rows["vizcore"]
        if n > vtsne.TSNE_LARGE_N:
            verdicts.append(
                f"N={n:,}: 10-NN {100 * (knn - base_knn):+.2f} pts (goal >= -1: {'met' if knn >= base_knn - 0.01 else 'NOT met'}), "
                f"trust {trust - base_trust:+.4f} (goal >= -0.003: {'met' if trust >= base_trust - 0.003 else 'NOT met'}), "
                f"CPU {cpu / base_cpu:.2f} of the baseline's (goal <= 1/3: {'met' if cpu <= base_cpu / 3 else 'NOT met'})"
            )  # fmt: skip
    print("\n".join(verdicts))
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 600, 1500")
    ap.add_argument("--sizes", default=None, help="comma-separated N (default 2000,5000,10000)")
    ap.add_argument("--features", default=None, help='.npz with arrays x (N, D) and y (N,), or "rotated"')
    ap.add_argument("--no-umap", action="store_true", help="skip the UMAP subprocesses")
    ap.add_argument("--large", action="store_true", help="t-SNE at N = 20k, 60k: openTSNE's defaults against vizcore")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    import numpy as np

    # loaded before any case is timed, in every mode (a case's time does not include them)
    import vizcore.metrics.domain  # noqa: F401
    from vizcore.embed.tsne import _n_jobs

    if args.worker:
        umap_worker(args.n, args.worker, args.features)
        return
    if args.large:
        large([int(s) for s in (args.sizes or "20000,60000").split(",")], args.features)
        return
    sizes = [
        int(s) for s in (args.sizes or ("600,1500" if args.quick else "2000,5000,10000")).split(",")
    ]

    import openTSNE
    import sklearn

    from vizcore.embed.methods import embed

    embed(np.random.default_rng(0).normal(size=(100, 8)), "tsne", n_iter=50)  # load libraries
    print(
        f"# 2-D embeddings: {features_label(args.features)}\n"
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.1f}; scikit-learn {sklearn.__version__}, "
        f"openTSNE {openTSNE.__version__}\n"
        f"# seconds = wall clock, CPU = CPU seconds of all threads; x sklearn = wall time of "
        f"the faster of sklearn's two default t-SNE runs / this row's, same N, same run\n"
        f"# trust = trustworthiness (k=10) on a fixed subsample of {TRUST_SUBSAMPLE:,} points; "
        f"kNN = leave-one-out 2-D kNN class accuracy (k=10, %) on all N points\n"
    )
    print(
        f"{'N':>6} | {'method':<40} | {'seconds':>7} | {'CPU s':>7} | x sklearn | trust  | kNN %  | notes"
    )
    print("-" * 120)
    verdicts = []
    for n in sizes:
        x, y = load_features(n, args.features)
        results: dict[str, dict] = {}
        for key, (_, fn) in IN_PROCESS.items():
            threads = _n_jobs()  # what vizcore's t-SNE picks now
            xy, wall, cpu = timed(lambda fn=fn, x=x: fn(x))
            trust, knn = quality(x, y, xy)
            results[key] = {"wall": wall, "cpu": cpu, "trust": trust, "knn": knn}
            if key == "tsne-vizcore":
                results[key]["note"] = f"{threads} thread(s), chosen from the load"
        # The faster of scikit-learn's two default runs: the stricter baseline.
        base = min(results["tsne-sklearn-default"]["wall"], results["tsne-sklearn-1thread"]["wall"])
        for key, (label, _) in IN_PROCESS.items():
            print(fmt_row(n, label, results[key], base), flush=True)
        if not args.no_umap:
            with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as warm:
                cold_rows = run_umap(n, "cold", cold, args.features)
                cached = run_umap(n, "cached", cold, args.features)
                warmed = run_umap(n, "warmup", warm, args.features)
            first, later = cold_rows
            first["note"] = "incl. import umap; empty numba cache"
            later["note"] = f"same process; identical layout: {later['identical']}"
            cached[0]["note"] = "new process, numba cache from the cold run; incl. import"
            warmed[1]["note"] = f"new process; warm_up_umap() took {warmed[0]['wall']:.1f} s before"
            for label, row in [
                ("UMAP   first call, cold process", first),
                ("UMAP   later call", later),
                ("UMAP   first call, numba on-disk cache", cached[0]),
                ("UMAP   after warm-up", warmed[1]),
            ]:
                print(fmt_row(n, label, row, base), flush=True)
        fast, ref = results["tsne-vizcore"], results["tsne-sklearn-default"]
        one = results["tsne-sklearn-1thread"]
        verdicts.append(
            f"N={n:,}: vizcore t-SNE vs sklearn default: {ref['wall'] / fast['wall']:.1f}x faster "
            f"(all threads), {one['wall'] / fast['wall']:.1f}x (1 thread), CPU seconds "
            f"{min(ref['cpu'], one['cpu']) / fast['cpu']:.1f}x fewer; trustworthiness "
            f"{fast['trust'] - ref['trust']:+.4f}, 2-D kNN {100 * (fast['knn'] - ref['knn']):+.2f} pts"
        )
        print("-" * 120, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in reopen_time(10_000, Path(tmp)).items():
            print(f"re-open a cached 10,000 x 2 layout from {name}: {1000 * seconds:.2f} ms")
    print("\n".join(verdicts))
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
