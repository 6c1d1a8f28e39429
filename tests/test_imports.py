"""The package's import graph: no cycles, no private names across modules, a layered base.

Every module of ``iconicity_utils`` is parsed with :mod:`ast` (nothing is imported), and every
import of a package module counts: at module level, inside functions, and under
``if TYPE_CHECKING:`` (layering is a design rule, not only a run-time one).

The base layer is ``constants <- schema <- registry <- config``, with ``io`` and ``images`` beside
``config``: each base module imports only the base modules below it, so the configuration and the
file helpers can be used (and tested) without the stages above them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import iconicity_utils

PACKAGE = "iconicity_utils"
PKG_DIR = Path(iconicity_utils.__file__).resolve().parent
MODULES = sorted(p.stem for p in PKG_DIR.glob("*.py"))

#: what each base module may import from the package
BASE_LAYER: dict[str, set[str]] = {
    "constants": set(),
    "schema": {"constants"},
    "registry": {"constants", "schema"},
    "config": {"constants", "schema", "registry"},
    "io": {"constants", "schema", "registry"},
    "images": {"constants", "schema", "registry"},
}


def package_imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` for every package import in ``module``."""
    tree = ast.parse((PKG_DIR / f"{module}.py").read_text(encoding="utf-8"), filename=f"{module}.py")
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.append((parts[1] if len(parts) > 1 else "__init__", [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                parts = [PACKAGE, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")
            else:
                continue
            names = [alias.name for alias in node.names]
            if len(parts) > 1:
                found.append((parts[1], names, node.lineno))
                continue
            for name in names:  # from iconicity_utils import x: a module, or a name of __init__
                if name in MODULES:
                    found.append((name, [], node.lineno))
                else:
                    found.append(("__init__", [name], node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in package_imports(m) if target != m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def private_imports(module: str) -> list[str]:
    return [
        f"{module}.py:{line} imports {name} from {target}"
        for target, names, line in package_imports(module)
        if target != module
        for name in names
        if name.startswith("_")
    ]


# ---- the checker itself ------------------------------------------------------------------------


def test_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_found_at_every_level(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PKG_DIR", tmp_path)
    (tmp_path / "m.py").write_text(
        "from iconicity_utils import config\n"
        "from iconicity_utils.registry import _private, Registry\n"
        "def f():\n"
        "    import iconicity_utils.io\n"
        "    from .schema import ConfigError\n"
    )
    targets = {(t, tuple(n)) for t, n, _ in package_imports("m")}
    assert targets == {
        ("config", ()),
        ("registry", ("_private", "Registry")),
        ("io", ()),
        ("schema", ("ConfigError",)),
    }
    assert private_imports("m") == ["m.py:2 imports _private from registry"]


# ---- the base layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(BASE_LAYER))
def test_base_module_imports_only_downward(module):
    assert module in MODULES, f"base module {module}.py is missing"
    imported = {target for target, _, _ in package_imports(module) if target not in ("__init__", module)}
    assert imported <= BASE_LAYER[module], (
        f"{module}.py imports {sorted(imported - BASE_LAYER[module])}; "
        f"the base layer allows only {sorted(BASE_LAYER[module]) or 'nothing from the package'}"
    )


@pytest.mark.parametrize("module", sorted(BASE_LAYER))
def test_base_module_imports_no_private_names(module):
    assert private_imports(module) == []


def test_base_layer_has_no_cycle():
    graph = import_graph()
    assert cycles({m: graph[m] & set(BASE_LAYER) for m in BASE_LAYER}) == []


# ---- the whole package ---------------------------------------------------------------------------


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert found == [], f"import cycles among package modules: {found}"


@pytest.mark.parametrize("module", MODULES)
def test_no_private_names_imported_across_modules(module):
    assert private_imports(module) == []
