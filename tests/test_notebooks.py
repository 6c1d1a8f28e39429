"""Committed notebooks: no outputs, a `parameters` cell first, the config as a parameter."""

from __future__ import annotations

import nbformat
import pytest

from iconicity_utils.pipeline.runner import list_notebooks

NOTEBOOKS = list_notebooks()


def test_the_six_stage_notebooks_exist():
    stems = [p.stem for p in NOTEBOOKS]
    expected = ["01_data_collection", "02_generation", "03_recognition", "04_realization", "05_perturbation"]
    assert stems[:5] == expected
    assert "06_correlates" in stems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell lacks the tag"
    assert 'config = "configs/demo.yaml"' in first.source
    assert nb.metadata["kernelspec"]["name"] == "python3"


#: the most top-level statements a notebook code cell may hold (imports and display lines included)
MAX_STATEMENTS = 12


def thin_cell_problems(source: str) -> list[str]:
    """What makes a code cell more than thin narrative: definitions, or too many statements.

    The cell is parsed with ``ast`` (IPython magics and shell escapes are blanked first), so a
    ``def`` or ``class`` anywhere in the cell is found, not only on its first line.
    """
    import ast

    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    tree = ast.parse(code)
    problems = [
        f"defines {type(node).__name__.replace('Def', '').lower()} {node.name!r} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    problems += [f"defines a lambda (line {n.lineno})" for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(tree.body) > MAX_STATEMENTS:
        problems.append(f"has {len(tree.body)} statements (at most {MAX_STATEMENTS})")
    return problems


def test_the_thin_cell_check_catches_what_it_should():
    assert thin_cell_problems("import x\n%matplotlib inline\nx.run(cfg)\ndf.head()") == []
    assert thin_cell_problems("y = 1\nif y:\n    def helper():\n        pass") == [
        "defines function 'helper' (line 3)"
    ]
    assert thin_cell_problems("class A:\n    pass") == ["defines class 'A' (line 1)"]
    assert thin_cell_problems("f = df.apply(lambda r: r.x)") == ["defines a lambda (line 1)"]
    assert thin_cell_problems("\n".join(f"a{i} = {i}" for i in range(MAX_STATEMENTS + 1))) == [
        f"has {MAX_STATEMENTS + 1} statements (at most {MAX_STATEMENTS})"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_stay_thin(path):
    """Logic lives in iconicity_utils: no function, class or lambda in a notebook, and short cells."""
    nb = nbformat.read(path, as_version=4)
    problems = [
        f"code cell {i}: {problem}"
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code")
        for problem in thin_cell_problems(cell.source)
    ]
    assert not problems, f"{path.name}: move logic to the package: {problems}"
