"""Every benchmark script starts from a plain checkout (`python bench/x.py`), as the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_bench_script_runs_from_a_checkout(script: str, tmp_path: Path) -> None:
    # from another working directory, with nothing installed: the script must find vizcore itself
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()


def _load_bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnistm_polarity_groups_follow_the_blend() -> None:
    """|patch - digit| on a dark patch keeps MNIST's bright stroke; on a bright patch it inverts it."""
    import torch

    from vizcore.data import blend_mnist_m

    polarity = _load_bench("mnistm_polarity")
    digit = torch.zeros(1, 1, 8, 8)
    digit[..., 2:6, 3:5] = 1.0  # a bar
    digits = digit.expand(3, 3, 8, 8)
    levels = torch.tensor([0.1, 0.9, 0.45])  # dark, bright, just below the middle
    patches = levels[:, None, None, None].expand(3, 3, 8, 8)
    blended = blend_mnist_m(digits, patches)
    assert polarity.inverted_polarity(blended, digits).tolist() == [False, True, False]
