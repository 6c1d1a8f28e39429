"""Execute the numbered notebooks in order with papermill (the engine behind ``run_all.sh``).

``run_all.sh`` sets up the environment, then calls ``python -m iconicity_utils run``.  Each
notebook ``notebooks/NN_*.ipynb`` is executed with the study config injected as the ``config``
parameter (plus any ``-p name value`` overrides); executed copies go to
``results/executed/<config name>/``, each with an HTML copy beside it (``NN_name.html``, nbconvert),
so a whole run can be read in a browser without a kernel.  Notebooks run with ``INTERACTIVE =
False`` unless ``-p INTERACTIVE True`` says otherwise: widget cells build but never wait for input.
The run stops at the first failing notebook, names it and the cell that failed, and exits
non-zero.  ``--from 03`` resumes from notebook 03.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jupyter_server_mathjax
import nbformat
from nbconvert import HTMLExporter
from papermill.cli import _resolve_type

from iconicity_utils.config import load_config
from iconicity_utils.core.io import atomic_dir, atomic_write_text
from iconicity_utils.registry import PROJECT_ROOT

__all__ = ["NotebookFailure", "list_notebooks", "local_mathjax", "main", "run_notebooks", "write_html"]

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


@dataclass
class NotebookFailure:
    """Where a run stopped."""

    notebook: str
    #: 0-based index among the source notebook's code cells (reported 1-based)
    cell_index: int | None
    execution_count: int | None
    source_first_line: str
    error: str
    executed_copy: Path

    def describe(self) -> str:
        where = f"code cell {self.cell_index + 1}" if self.cell_index is not None else "an unknown cell"
        if self.execution_count is not None:
            where += f" (In [{self.execution_count}])"
        return (
            f"FAILED: notebook {self.notebook}, {where}: {self.source_first_line!r}\n"
            f"  {self.error}\n"
            f"  executed copy with the traceback: {self.executed_copy}"
        )


def list_notebooks(start: str | None = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks in order, from the one whose number (``03``) or name starts ``start``."""
    books = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if start is None:
        return books
    for i, book in enumerate(books):
        if book.name.startswith(start) or book.stem == start:
            return books[i:]
    names = ", ".join(b.stem for b in books)
    raise ValueError(f"--from {start!r} matches no notebook; the notebooks are: {names}")


def _parse_value(raw: str) -> Any:
    """Type a ``-p`` value as papermill's own CLI does (int, float, bool, None, else str): its
    ``_resolve_type`` is the parser behind ``papermill -p``, so both read a value the same way."""
    return _resolve_type(raw)


#: where the HTML copies find MathJax: a copy beside them, so that formulas render offline
MATHJAX_DIR = "mathjax"
#: MathJax 2.7's combined config that ships with jupyter-server-mathjax (there is no TeX-AMS_CHTML-full)
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


def _mathjax_source() -> Path:
    """The MathJax 2.7 tree that the ``jupyter-server-mathjax`` package ships (no network needed)."""
    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def local_mathjax(folder: Path) -> Path:
    """Copy MathJax beside the HTML copies (``<folder>/mathjax/``, once per version), atomically."""
    target = folder / MATHJAX_DIR
    stamp = f"jupyter-server-mathjax {version('jupyter-server-mathjax')}\n"
    if (target / "VERSION").is_file() and (target / "VERSION").read_text() == stamp:
        return target
    with atomic_dir(target) as tmp:
        shutil.copytree(_mathjax_source(), tmp, dirs_exist_ok=True)
        (tmp / "VERSION").write_text(stamp)
    return target


def write_html(executed: Path) -> Path:
    """Write an HTML copy of an executed notebook beside it (``NN_name.html``; nbconvert's lab
    template, outputs and embedded figures included), atomically.

    Formulas render with no network: MathJax is loaded from a copy beside the HTML files
    (:func:`local_mathjax`), by a relative URL, so the folder still reads once it is moved.
    """
    local_mathjax(executed.parent)
    nb = nbformat.read(executed, as_version=4)
    exporter = HTMLExporter(mathjax_url=f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": executed.stem}})
    return atomic_write_text(executed.with_suffix(".html"), body)


def _html_copy(executed: Path, log) -> None:
    """The HTML copy of one executed notebook; a failure to write it is reported, not fatal."""
    if not executed.is_file():
        return
    try:
        log(f"    html copy -> {write_html(executed)}")
    except Exception as exc:  # the notebook ran; only its reading copy is missing
        log(f"    WARNING: no HTML copy of {executed.name}: {type(exc).__name__}: {exc}")


def _failure_from_executed(book: Path, executed: Path, exc: Exception) -> NotebookFailure:
    cell_index = getattr(exc, "cell_index", None)
    exec_count = getattr(exc, "exec_count", None)
    source = getattr(exc, "source", "") or ""
    error = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    if executed.is_file():
        nb = nbformat.read(executed, as_version=4)
        # count code cells as in the source notebook: papermill's injected cell is not there
        code_cells = [
            c
            for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
        ]
        for i, cell in enumerate(code_cells):
            errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errs:
                cell_index = i
                exec_count = cell.get("execution_count")
                source = cell.source
                error = f"{errs[0].get('ename')}: {errs[0].get('evalue')}"
                break
    first = next((line for line in source.splitlines() if line.strip()), "")
    return NotebookFailure(book.name, cell_index, exec_count, first, error, executed)


def run_notebooks(
    config: str,
    start: str | None = None,
    parameters: dict[str, Any] | None = None,
    out_dir: Path | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    cwd: Path = PROJECT_ROOT,
    log=print,
) -> NotebookFailure | None:
    """Execute the notebooks; return None on success or the first failure."""
    import papermill as pm

    cfg = load_config(config if Path(config).is_absolute() else cwd / config)
    out_dir = out_dir or (PROJECT_ROOT / "results" / "executed" / cfg.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"config": str(config), "INTERACTIVE": False, **(parameters or {})}
    books = list_notebooks(start, notebooks_dir)
    total = time.perf_counter()
    for book in books:
        executed = out_dir / book.name
        t0 = time.perf_counter()
        log(f"--> {book.name}")
        try:
            pm.execute_notebook(
                str(book),
                str(executed),
                parameters=params,
                cwd=str(cwd),
                kernel_name="python3",
                progress_bar=False,
                request_save_on_cell_execute=True,
            )
        except Exception as exc:  # papermill's execution error, or a kernel that died
            failure = _failure_from_executed(book, executed, exc)
            _html_copy(executed, log)
            log(failure.describe())
            return failure
        log(f"    ok in {time.perf_counter() - t0:.1f} s -> {executed}")
        _html_copy(executed, log)
    log(f"all {len(books)} notebooks ran in {time.perf_counter() - total:.1f} s (config {cfg.name})")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="iconicity run",
        description=(
            "Execute the numbered notebooks in order with papermill, with INTERACTIVE = False.  "
            "Executed copies, each with an HTML copy beside it, go to results/executed/<config name>/.  "
            "Stops at the first failing notebook, naming it and the cell that failed, and exits non-zero."
        ),
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--from", dest="start", metavar="NN", help="resume from notebook NN (e.g. 03)")
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=NOTEBOOKS_DIR,
        help="folder of numbered notebooks (default: notebooks/)",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a notebook parameter (repeatable), as papermill's -p",
    )
    parser.add_argument(
        "--executed-dir",
        type=Path,
        default=None,
        help="where executed copies go (default: results/executed/<config name>/)",
    )
    args = parser.parse_args(argv)
    params = {name: _parse_value(value) for name, value in args.parameter}
    try:
        failure = run_notebooks(
            args.config,
            start=args.start,
            parameters=params,
            notebooks_dir=args.notebooks,
            out_dir=args.executed_dir,
        )
    except (ValueError, FileNotFoundError) as exc:  # bad --from, missing or invalid config
        print(f"run_all.sh: {exc}", file=sys.stderr)
        return 2
    return 1 if failure else 0
