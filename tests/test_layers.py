"""The layers of ARCHITECTURE.md as an import contract: folders are the layers, data flows down,
nothing imports upwards.

Every import counts, the ones inside functions too (the store once reached up into the trainer
that way, which made an import cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vizcore"

# Highest first: a module may import its own layer and the layers below it, never above. Each
# entry is a folder of the package (its modules and sub-folders); the package's own modules are
# listed by name.
LAYERS: list[tuple[str, ...]] = [
    ("vizcore.app", "vizcore.__main__"),
    ("vizcore.views",),
    ("vizcore.train",),
    ("vizcore.store", "vizcore.methods", "vizcore.explain"),
    ("vizcore.models", "vizcore.metrics", "vizcore.embed", "vizcore.figures"),
    ("vizcore.data",),
    ("vizcore.core", "vizcore"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every vizcore module ``path`` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m == "vizcore" or m.startswith("vizcore.")}


def _layer_of(module: str) -> int | None:
    """Index of the layer of the longest listed prefix of ``module``."""
    best: tuple[int, int] | None = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    return None if best is None else best[0]


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (names of objects dropped).

    A registry package's ``__init__`` imports its own submodules so that they register
    themselves, and they import the registry back: that edge (a package to its own child) is
    how registration works, not a cycle between layers, and is left out.
    """
    return {
        m: {i for i in _imports(p) if i in MODULES and i != m and not i.startswith(m + ".")}
        for m, p in MODULES.items()
    }


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_layer_and_imports_only_downwards(module: str) -> None:
    mine = _layer_of(module)
    assert mine is not None, f"{module} is in no layer of tests/test_layers.py: add it where it belongs"
    upward = sorted(i for i in _imports(MODULES[module]) if (_layer_of(i) or len(LAYERS)) < mine)
    assert upward == [], f"{module} (layer {LAYERS[mine]}) imports from a higher layer: {upward}"


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n] if n in path else [m, n]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_package_never_imports_streamlit() -> None:
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(x == "streamlit" or x.startswith("streamlit.") for x in names), m


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a runs.py that imports the trainer is reported."""
    fake = tmp_path / "runs.py"
    fake.write_text("def f():\n    from vizcore.train.loop import build_model\n")
    assert "vizcore.train.loop" in _imports(fake)
    assert _layer_of("vizcore.train.loop") < _layer_of("vizcore.store.runs")


# Tests that cover the project as a whole, not one folder of it, sit at the top of tests/.
WHOLE_PROJECT_TESTS = {"test_layers.py", "test_bench.py"}


def test_the_tests_mirror_the_packages() -> None:
    """tests/<folder>/ for each folder of the package (and pages/), so a module's tests are found
    where the module is: vizcore/metrics/mmd.py -> tests/metrics/test_mmd.py."""
    tests = ROOT / "tests"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {p.name for p in tests.glob("test_*.py")} <= WHOLE_PROJECT_TESTS
    for path in tests.glob("*/**/test_*.py"):
        folder = path.relative_to(tests).parts[0]
        assert folder in folders | {"pages"}, f"{path}: tests/{folder}/ matches no package folder"
