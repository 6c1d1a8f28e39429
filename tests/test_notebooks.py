"""Committed notebooks: no outputs, a `parameters` cell first, the config as a parameter."""

from __future__ import annotations

import nbformat
import pytest

from iconicity_utils.runner import list_notebooks

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_stay_thin(path):
    """Logic lives in iconicity_utils: no class definitions, and no long functions, in notebooks."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        assert "class " not in cell.source.split("\n")[0], f"{path.name} cell {i} defines a class"
        assert len(cell.source.splitlines()) <= 40, (
            f"{path.name}: code cell {i} is long; move logic to the package"
        )
