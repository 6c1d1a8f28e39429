"""run_all.sh / the runner: notebooks run in order; a failure names notebook and cell, exits 1."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from iconicity_utils.pipeline.runner import list_notebooks, run_notebooks


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        nbformat.v4.new_code_cell(
            'config = "configs/demo.yaml"\nmarker = "none"', metadata={"tags": ["parameters"]}
        )
    ]
    cells += [nbformat.v4.new_code_cell(src) for src in sources]
    nb.cells = cells
    nbformat.write(nb, path)


@pytest.fixture
def books(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    out = tmp_path / "out"
    _notebook(d / "01_first.ipynb", f"open({str(out / 'ran_01')!r}, 'w').write(marker)")
    _notebook(d / "02_second.ipynb", "x = 1", "raise ValueError('boom in cell two')", "y = 2")
    _notebook(d / "03_third.ipynb", f"open({str(out / 'ran_03')!r}, 'w').write(marker)")
    out.mkdir()
    return d, out


def test_list_notebooks_from(books):
    d, _ = books
    assert [p.stem for p in list_notebooks("02", d)] == ["02_second", "03_third"]
    with pytest.raises(ValueError, match="matches no notebook.*01_first"):
        list_notebooks("09", d)


def test_failure_names_notebook_and_cell_and_stops(books, tmp_path):
    d, out = books
    lines = []
    failure = run_notebooks(
        "configs/demo.yaml",
        parameters={"marker": "hello"},
        out_dir=tmp_path / "exec",
        notebooks_dir=d,
        log=lines.append,
    )
    assert failure is not None
    assert failure.notebook == "02_second.ipynb"
    assert failure.cell_index == 2  # 0-based among the source's code cells: parameters, x = 1, raise
    assert "raise ValueError" in failure.source_first_line
    assert "boom in cell two" in failure.error
    assert (out / "ran_01").read_text() == "hello"  # -p parameter reached the notebook
    assert not (out / "ran_03").exists()  # stopped at the first failure
    assert any("FAILED: notebook 02_second.ipynb, code cell 3" in line for line in lines)


def test_run_all_sh_exit_code_message_and_from(books, tmp_path, repo_root):
    d, out = books
    env = {**os.environ, "ICONICITY_VENV": str(repo_root / ".venv")}
    cmd = [str(repo_root / "run_all.sh"), "--notebooks", str(d), "--executed-dir", str(tmp_path / "exec")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1
    assert "FAILED: notebook 02_second.ipynb, code cell 3" in res.stdout
    assert "boom in cell two" in res.stdout
    res = subprocess.run([*cmd, "--from", "03"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (out / "ran_03").exists()
    assert "all 1 notebooks ran" in res.stdout


def test_run_all_sh_help_and_bad_arguments(repo_root):
    res = subprocess.run([str(repo_root / "run_all.sh"), "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for word in ("--config", "--from", "-p NAME VALUE", "results/executed"):
        assert word in res.stdout
    res = subprocess.run([str(repo_root / "run_all.sh"), "--frobnicate"], capture_output=True, text=True)
    assert res.returncode == 2 and "unknown argument" in res.stderr


def test_runner_rejects_missing_config(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "iconicity_utils", "run", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "none.yaml" in res.stderr


# -- HTML copies and INTERACTIVE (issue 11) ----------------------------------------------------------


def test_each_executed_notebook_gets_an_html_copy_and_interactive_false(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            'config = "configs/demo.yaml"\nINTERACTIVE = True', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_markdown_cell("# A heading the reader sees"),
        nbformat.v4.new_code_cell('print(f"INTERACTIVE is {INTERACTIVE}")'),
    ]
    nbformat.write(nb, d / "01_widgets.ipynb")
    _notebook(d / "02_plain.ipynb", "print('second notebook ran')")
    out = tmp_path / "exec"
    lines = []
    assert run_notebooks("configs/demo.yaml", out_dir=out, notebooks_dir=d, log=lines.append) is None
    first = (out / "01_widgets.html").read_text()
    assert first.lstrip().lower().startswith("<!doctype html>")
    assert "A heading the reader sees" in first and "INTERACTIVE is False" in first  # run_all.sh's default
    assert "second notebook ran" in (out / "02_plain.html").read_text()
    assert any("html copy ->" in line and "02_plain.html" in line for line in lines)
    failure = run_notebooks(
        "configs/demo.yaml", parameters={"INTERACTIVE": True}, out_dir=out, notebooks_dir=d, log=lines.append
    )
    assert failure is None
    assert "INTERACTIVE is True" in (out / "01_widgets.html").read_text()  # -p INTERACTIVE True wins


def test_a_failed_notebook_also_gets_its_html_copy(books, tmp_path):
    d, _ = books
    out = tmp_path / "exec"
    failure = run_notebooks("configs/demo.yaml", out_dir=out, notebooks_dir=d, log=lambda line: None)
    assert failure is not None and failure.notebook == "02_second.ipynb"
    assert "boom in cell two" in (out / "02_second.html").read_text()  # the traceback, readable
    assert (out / "01_first.html").is_file() and not (out / "03_third.html").exists()
