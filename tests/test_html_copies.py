"""The HTML copy of an executed notebook renders its formulas with the network off.

``write_html`` copies MathJax (from the ``jupyter-server-mathjax`` package) beside the HTML files
and points to it by a relative URL.  The browser test opens a copy from ``file://`` in headless
Chromium with every non-file request aborted, and checks that a display formula was typeset (no
raw ``$$`` left).  Its screenshot goes to ``results/test-artifacts/html/`` (git-ignored;
``$ICONICITY_TEST_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import browser_harness as bh
import nbformat
import pytest

from iconicity_utils.pipeline.runner import MATHJAX_DIR, local_mathjax, write_html

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = (
    Path(os.environ.get("ICONICITY_TEST_ARTIFACTS", REPO_ROOT / "results" / "test-artifacts")) / "html"
)
FORMULA = r"$$m_{ik} = \max_{j,m} \cos\left(g_{ik}, r_{jm}\right), \qquad VR_i = \tfrac{1}{16}\sum_k [m_{ik} > \tau]$$"


def _executed_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Realization\n\nThe best match of a cell:\n\n{FORMULA}\n")]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "04_realization.ipynb"
    nbformat.write(nb, path)
    return path


def test_html_copy_points_to_a_local_mathjax(tmp_path):
    html = write_html(_executed_notebook(tmp_path)).read_text(encoding="utf-8")
    src = re.search(r'<script[^>]+src="([^"]*MathJax\.js[^"]*)"', html)
    assert src is not None, "no MathJax script in the HTML copy"
    assert src.group(1).startswith(f"{MATHJAX_DIR}/MathJax.js?config="), src.group(1)
    assert not re.search(r"https?://[^\"']*mathjax", html, re.IGNORECASE), (
        "MathJax still comes from the network"
    )
    assert (tmp_path / MATHJAX_DIR / "MathJax.js").is_file()
    assert (tmp_path / MATHJAX_DIR / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()


def test_local_mathjax_is_copied_once(tmp_path):
    first = local_mathjax(tmp_path)
    marker = first / "MathJax.js"
    before = marker.stat().st_mtime_ns
    assert local_mathjax(tmp_path) == first
    assert marker.stat().st_mtime_ns == before, "an up-to-date copy was replaced"
    (first / "VERSION").write_text("an older copy\n")
    local_mathjax(tmp_path)
    assert (first / "VERSION").read_text().startswith("jupyter-server-mathjax ")


@pytest.mark.slow
def test_formula_renders_offline_in_a_browser(tmp_path):
    chromium = bh.find_chromium()
    if chromium is None:
        if bh.in_ci():
            pytest.fail("Chromium not found (CI=true: .ci/run installs it)")
        pytest.skip("Chromium not found; install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    # the copy is moved after it is written: the relative MathJax URL must still resolve
    written = write_html(_executed_notebook(tmp_path / "run"))
    moved = tmp_path / "moved"
    shutil.copytree(written.parent, moved)
    blocked: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=bh.CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_files)
            page.goto((moved / written.name).as_uri())
            page.wait_for_selector(".MathJax_Display", timeout=60_000)
            page.wait_for_function("() => !document.querySelector('#MathJax_Message') || "
                                   "getComputedStyle(document.querySelector('#MathJax_Message')).display === 'none'",
                                   timeout=60_000)  # fmt: skip
            text = page.inner_text("#notebook-container, body")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "offline_formula.png"), full_page=True)
        finally:
            browser.close()
    assert "$$" not in text and r"\max_{j,m}" not in text, f"the formula stayed raw: {text[:300]}"
    assert "mathjax" not in " ".join(blocked).lower(), f"MathJax was asked of the network: {blocked}"
