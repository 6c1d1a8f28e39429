"""The package's architecture, read from its import graph: layers by stage, no cycles, pure metrics.

Every module of ``iconicity_utils`` is parsed with :mod:`ast` (nothing is imported), and every
import of a package module counts: at module level, inside functions, and under
``if TYPE_CHECKING:`` (layering is a design rule, not only a run-time one).

The subpackages form layers, lowest first (:data:`LAYERS`): ``core`` (constants, schema, file and
image helpers), ``registry`` (models, encoders and captioners as data), ``config`` (the study
config), ``metrics`` (pure maths), then the stages in study order (validation last), then the
tools over them.  A
module imports only from its own layer or the layers below.  ``demo`` (stand-ins, the local
endpoint, synthetic data) sits beside them: it may use anything, and only the command line, which
offers the demo's commands, imports it; the science code finds a demo provider by its registered
name (:mod:`iconicity_utils.core.plugins`), never by importing it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import iconicity_utils

PACKAGE = "iconicity_utils"
PKG_DIR = Path(iconicity_utils.__file__).resolve().parent

#: the layers, lowest first; a module imports only from its own layer and those below
LAYERS = [
    "core",
    "registry",
    "config",
    "metrics",
    "collect",
    "generate",
    "score",
    "perturb",
    "correlates",
    "validate",
    "explore",
    "pipeline",
    "cli",
    "__main__",
]
#: beside the layers: imported by nothing in them except these
DEMO = "demo"
DEMO_IMPORTERS = {"cli", "demo"}
#: what a metrics module may import from the package: the paper's constants and the other metrics
METRICS_MAY_IMPORT = {"core.constants"}
#: third-party modules that would make the metrics impure (file readers, encoders, model loaders)
IMPURE = {"PIL", "open_clip", "timm", "transformers", "diffusers", "pandas", "pyarrow", "requests", "urllib"}


def module_names(pkg_dir: Path) -> list[str]:
    """Dotted names relative to the package: ``core.io``; a subpackage's ``__init__`` is ``core``."""
    names = []
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(pkg_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] or ["__init__"]
        names.append(".".join(parts))
    return names


MODULES = module_names(PKG_DIR)


def module_path(module: str) -> Path:
    if module == "__init__":
        return PKG_DIR / "__init__.py"
    base = PKG_DIR.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _resolve(parts: list[str], modules: set[str]) -> str:
    """The longest module prefix of a dotted path inside the package."""
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in modules:
            return name
    return "__init__"


def package_imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` for every package import in ``module``."""
    modules = set(module_names(PKG_DIR))
    path = module_path(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.append((_resolve(parts[1:], modules), [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                here = [] if module == "__init__" else module.split(".")
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                parts = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == PACKAGE:
                parts = node.module.split(".")[1:]
            else:
                continue
            names = [alias.name for alias in node.names]
            target = _resolve(parts, modules) if parts else "__init__"
            submodules = [n for n in names if ".".join([*parts, n]) in modules]
            for name in submodules:  # from iconicity_utils.core import io: the module io
                found.append((".".join([*parts, name]), [], node.lineno))
            rest = [n for n in names if n not in submodules]
            if rest:
                found.append((target, rest, node.lineno))
    return found


def third_party_imports(module: str) -> set[str]:
    tree = ast.parse(module_path(module).read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {PACKAGE}


def import_graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in package_imports(m) if target != m} for m in MODULES}


def layer(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm)."""
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
        f"{module}:{line} imports {name} from {target}"
        for target, names, line in package_imports(module)
        if target != module
        for name in names
        if name.startswith("_")
    ]


def upward_imports(module: str) -> list[str]:
    """Imports of a layer above ``module``'s own (demo is checked separately)."""
    if layer(module) in (DEMO, "__init__"):
        return []
    mine = LAYERS.index(layer(module))
    return [
        f"{module}:{line} imports {target}"
        for target, _, line in package_imports(module)
        if layer(target) not in (DEMO, "__init__") and LAYERS.index(layer(target)) > mine
    ]


# ---- the checker itself ------------------------------------------------------------------------


def test_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_found_at_every_level(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PKG_DIR", tmp_path)
    for folder in ("core", "registry", "score"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    for name in ("core/io.py", "core/schema.py", "registry/lock.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "score" / "m.py").write_text(
        "from iconicity_utils.core import io\n"
        "from iconicity_utils.registry import _private, Registry\n"
        "def f():\n"
        "    import iconicity_utils.registry.lock\n"
        "    from ..core.schema import ConfigError\n"
        "    from . import m\n"
    )
    targets = {(t, tuple(n)) for t, n, _ in package_imports("score.m")}
    assert targets == {
        ("core.io", ()),
        ("registry", ("_private", "Registry")),
        ("registry.lock", ()),
        ("core.schema", ("ConfigError",)),
        ("score.m", ()),
    }
    assert private_imports("score.m") == ["score.m:2 imports _private from registry"]
    (tmp_path / "core" / "up.py").write_text("from iconicity_utils.score import m\n")
    assert upward_imports("core.up") == ["core.up:1 imports score.m"]


# ---- the layers ----------------------------------------------------------------------------------


def test_every_module_sits_in_a_layer():
    unplaced = sorted({layer(m) for m in MODULES} - set(LAYERS) - {DEMO, "__init__"})
    assert unplaced == [], f"subpackages not in LAYERS (add them in their place): {unplaced}"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_its_layer_and_below(module):
    assert upward_imports(module) == []


def test_science_code_never_imports_demo():
    found = [
        f"{m}:{line} imports {target}"
        for m in MODULES
        if layer(m) not in DEMO_IMPORTERS
        for target, _, line in package_imports(m)
        if layer(target) == DEMO
    ]
    assert found == [], "the science code reaches down for demo code; register a provider instead"


@pytest.mark.parametrize("module", [m for m in MODULES if layer(m) == "metrics"])
def test_metrics_are_pure(module):
    imported = {t for t, _, _ in package_imports(module) if layer(t) != "metrics"} - {"metrics"}
    assert imported <= METRICS_MAY_IMPORT, f"{module} imports {sorted(imported - METRICS_MAY_IMPORT)}"
    assert not third_party_imports(module) & IMPURE, (
        f"{module} imports {third_party_imports(module) & IMPURE}"
    )


# ---- the whole package ---------------------------------------------------------------------------


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert found == [], f"import cycles among package modules: {found}"


def test_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for m, targets in import_graph().items():
        graph.setdefault(layer(m), set()).update(layer(t) for t in targets if layer(t) != layer(m))
    assert cycles(graph) == []


@pytest.mark.parametrize("module", MODULES)
def test_no_private_names_imported_across_modules(module):
    assert private_imports(module) == []
