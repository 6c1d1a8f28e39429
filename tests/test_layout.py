"""The house by stage: rooms a newcomer can find, of a size one can read.

- every module is at most :data:`MAX_MODULE_LINES` lines, and every function at most
  :data:`MAX_FUNCTION_CODE_LINES` lines of code (docstrings, comments and blank lines not counted);
- every subpackage says in its docstring what it holds, and exports its front doors in ``__all__``;
- no module runs as a script: the one command line is ``python -m iconicity_utils <command>``.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

import iconicity_utils

PKG_DIR = Path(iconicity_utils.__file__).resolve().parent
MODULES = sorted(PKG_DIR.rglob("*.py"))
SUBPACKAGES = sorted(p.parent for p in PKG_DIR.glob("*/__init__.py"))
MAX_MODULE_LINES = 600
MAX_FUNCTION_CODE_LINES = 60


def _name(path: Path) -> str:
    return str(path.relative_to(PKG_DIR.parent))


def code_lines(source: str, node: ast.AST) -> int:
    """Lines of ``node`` that hold code: its docstring, comments and blank lines are not counted."""
    skip: set[int] = set()
    body = getattr(node, "body", [])
    if ast.get_docstring(node, clean=False) is not None:
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    ignored = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in ignored:
            continue
        lines.update(
            n
            for n in range(tok.start[0], tok.end[0] + 1)
            if node.lineno <= n <= node.end_lineno and n not in skip
        )
    return len(lines)


def test_code_lines_counts_code_only():
    source = (
        'def f(x):\n    """Doc\n\n    more."""\n    # a comment\n\n    y = (x +\n         1)\n    return y\n'
    )
    node = ast.parse(source).body[0]
    assert code_lines(source, node) == 4  # def, the two lines of y = ..., return


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_is_of_a_readable_size(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_MODULE_LINES, f"{_name(path)} has {n} lines (at most {MAX_MODULE_LINES}): split it by job"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_are_short(path):
    source = path.read_text(encoding="utf-8")
    long = [
        f"{node.name} (line {node.lineno}): {n} lines of code"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (n := code_lines(source, node)) > MAX_FUNCTION_CODE_LINES
    ]
    assert long == [], f"{_name(path)}: functions over {MAX_FUNCTION_CODE_LINES} lines of code: {long}"


@pytest.mark.parametrize("folder", SUBPACKAGES, ids=lambda p: p.name)
def test_subpackage_says_what_it_holds(folder):
    tree = ast.parse((folder / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    assert len(doc.split()) >= 8, f"{folder.name}/__init__.py needs a docstring saying what the room holds"
    names = [
        n
        for n in tree.body
        if (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets))
        or (isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "__all__")
    ]
    assert names, f"{folder.name}/__init__.py has no __all__ (its front doors)"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_runs_as_a_script(path):
    if path.name == "__main__.py":
        return
    assert 'if __name__ == "__main__"' not in path.read_text(encoding="utf-8"), (
        f"{_name(path)} runs as a script; give its stage a command in iconicity_utils/cli.py instead"
    )
