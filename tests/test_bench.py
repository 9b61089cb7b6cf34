"""Every benchmark script starts from a plain checkout (`python bench/x.py`), as the README says,
and parses its arguments before it imports anything heavy."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))

# What a script imports only once its arguments are parsed: --help and a mistyped flag answer at
# once, without loading PyTorch (seconds) or anything else heavy.
HEAVY = {"torch", "numpy", "scipy", "sklearn", "pandas", "PIL", "vizcore", "streamlit", "playwright", "pytest"}

# Runs a script as `python bench/<script>` does (its folder first on sys.path, its path as argv[0]),
# with --help and then with a mistyped flag, in one fresh interpreter; then prints one JSON line:
# the exit codes, the top-level packages imported, and where `import vizcore` would now load from.
PROBE = """
import importlib.util, json, os, runpy, sys
path = sys.argv[1]
sys.path[0] = os.path.dirname(path)
codes = []
for arg in ("--help", "--no-such-flag"):
    sys.argv = [path, arg]
    try:
        runpy.run_path(path, run_name="__main__")
        codes.append(None)
    except SystemExit as e:
        codes.append(e.code)
spec = importlib.util.find_spec("vizcore")
print(json.dumps({"codes": codes, "modules": sorted({m.split(".")[0] for m in sys.modules}),
                  "vizcore": spec and spec.origin}))
"""


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs_from_a_checkout(script: str, tmp_path: Path) -> None:
    # from another working directory, with nothing installed: the script must find vizcore itself
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(BENCH / script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    *shown, last = out.stdout.splitlines()
    res = json.loads(last)
    assert res["codes"] == [0, 2], out.stderr[-2000:]
    assert "usage" in "\n".join(shown).lower()
    assert "unrecognized arguments: --no-such-flag" in out.stderr
    # the arguments are parsed before anything heavy is imported
    assert sorted(HEAVY & set(res["modules"])) == [], "imported before the arguments were parsed"
    assert res["vizcore"] == str(ROOT / "vizcore" / "__init__.py")


def _imports_of(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) of every `from m import name` and `import m` in a file, at any depth."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
    return out


def _top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    return names | {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_imports_resolve(script: str) -> None:
    """The imports --help no longer reaches (inside main() and the functions) name what exists:
    vizcore's modules and names, the browser-test helpers, and the other bench scripts' functions."""
    for module, name in _imports_of(BENCH / script):
        if (BENCH / f"{module}.py").is_file():  # another bench script: read, not run
            assert name in _top_level_names(BENCH / f"{module}.py"), f"{script}: from {module} import {name}"
        elif module.split(".")[0] in ("vizcore", "tests"):
            mod = importlib.import_module(module)
            is_submodule = hasattr(mod, "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None
            assert name is None or hasattr(mod, name) or is_submodule, f"{script}: from {module} import {name}"


def _load_bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mnistm_polarity_groups_follow_the_blend() -> None:
    """|patch - digit| on a dark patch keeps MNIST's bright stroke; on a bright patch it inverts it."""
    import torch

    from vizcore.data.sources.mnist_m import blend_mnist_m

    polarity = _load_bench("mnistm_polarity")
    digit = torch.zeros(1, 1, 8, 8)
    digit[..., 2:6, 3:5] = 1.0  # a bar
    digits = digit.expand(3, 3, 8, 8)
    levels = torch.tensor([0.1, 0.9, 0.45])  # dark, bright, just below the middle
    patches = levels[:, None, None, None].expand(3, 3, 8, 8)
    blended = blend_mnist_m(digits, patches)
    assert polarity.inverted_polarity(blended, digits).tolist() == [False, True, False]


def test_hard_shift_table_combines_records_seed_by_seed(tmp_path: Path) -> None:
    """Records from two runs of the benchmark make one table: mean ± sample std per row, the gain
    over the same shift's source-only, and a seed repeated in a later file replacing the earlier."""
    hard = _load_bench("hard_shift")
    first = [{"row": "p2m:source_only", "seed": 0, "run": "a", "status": "complete", "source_acc": 0.98,
              "target_acc": 0.70},
             {"row": "p2m:dann", "seed": 0, "run": "b", "status": "complete", "source_acc": 0.97,
              "target_acc": 0.50}]  # fmt: skip
    second = [{"row": "p2m:source_only", "seed": 1, "run": "c", "status": "complete", "source_acc": 0.96,
               "target_acc": 0.80},
              {"row": "p2m:dann", "seed": 0, "run": "d", "status": "complete", "source_acc": 0.97,
               "target_acc": 0.90}]  # fmt: skip
    paths = []
    for i, records in enumerate((first, second)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(records), encoding="utf-8")
    results = hard.from_records([str(p) for p in paths])
    assert [r["target_acc"] for r in results["p2m:dann"]] == [0.90]  # seed 0 of the later file
    text = hard.table(results)
    assert "| printed → MNIST | dann | 90.0" in text and "| +15.0 |" in text  # 90 - mean(70, 80)
    assert "75.0 ± 7.1" in text  # source-only over seeds 0 and 1
