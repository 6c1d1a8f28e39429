"""The explorer in a real browser: notebook 07 served by Voilà, driven in Debian's Chromium by
Playwright for Python (../shared/docs/offline-recipes.md §8).

- On a small scored study (the scoring fixtures: exact copies, permuted copies, noise): type a
  τ_CRA into the slider and drag its handle, and check that the displayed CRA is what the stored
  similarities give at the slider's value; toggle the overlay and count the pink cells of an exact
  copy (all 16); click a point of the overview and see the reference open in the gallery.
- On the demo results (``./run_all.sh`` writes them; CI runs it before the tests): the same slider
  check, and the pink count of a known image against its stored per-cell maxima.
- Hostile addresses (issue 21): ``?results=`` outside the served roots (absolute, ``../../``, a
  symlink in ``results/`` leading out, a missing folder, a NUL, 5000 characters) each get the
  refusal on the page, no traceback and no explorer; a folder inside the roots still opens.  The
  server serves the project's ``configs/`` and ``results/`` plus one temporary folder
  (``ICONICITY_EXPLORER_ROOTS``), which holds the scored study.

Screenshots go to ``results/test-artifacts/explorer/`` (git-ignored; ``$ICONICITY_TEST_ARTIFACTS``
overrides the folder).  In CI (``CI=true``) nothing here is skipped: a missing Chromium, Playwright
or demo run fails.  Elsewhere the tests skip, saying why, when Chromium or Playwright is absent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import browser_harness as bh
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "notebooks" / "07_explorer.ipynb"
ARTIFACTS = (
    Path(os.environ.get("ICONICITY_TEST_ARTIFACTS", REPO_ROOT / "results" / "test-artifacts")) / "explorer"
)
PAGE_TIMEOUT_MS = 120_000
UPDATE_TIMEOUT_MS = 30_000
PINK = "rgba(236, 64, 160, 0.45)"
GREEN = "rgba(46, 160, 67, 0.45)"

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if bh.in_ci():
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs Chromium)")
    print(f"\nSKIPPED browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = bh.find_chromium()
    if path is None:
        _unavailable("Chromium not found (/usr/bin/chromium); install it with `apt-get install -y chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e .[dev])")
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=bh.CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def served_root(tmp_path_factory) -> Path:
    """The one folder beyond configs/ and results/ that the test server may serve."""
    return tmp_path_factory.mktemp("served").resolve()


@pytest.fixture(scope="module")
def voila(tmp_path_factory, chromium, served_root):
    from iconicity_utils.explore.served import ROOTS_ENV

    server = bh.VoilaServer(NOTEBOOK, tmp_path_factory.mktemp("voila"), env={ROOTS_ENV: str(served_root)})
    with server:
        print(f"\nvoila ready on {server.base} in {server.startup_s:.1f} s")
        yield server


@pytest.fixture(scope="module")
def study(served_root, standins):
    """A small study scored with the stand-in encoders: index 0 of every group is an exact copy."""
    import scoring_fixtures as sf

    from iconicity_utils.score import score

    cfg = sf.study_config(served_root / "browser-study", scoring={"n_bootstrap": 200})
    sf.make_study(cfg)
    result = score(cfg)
    return cfg, result.per_image


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.locator(".ic-explorer").screenshot(path=str(path))
    return path


def _open(page, url: str) -> float:
    """Load the explorer; a cold kernel that misses the deadline gets one reload.  Returns seconds."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    t0 = time.monotonic()
    for attempt in (1, 2):
        try:
            page.goto(url, timeout=PAGE_TIMEOUT_MS, wait_until="domcontentloaded")
            page.wait_for_selector(".ic-metrics[data-slug]", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector(".ic-tau-static .widget-readout", timeout=PAGE_TIMEOUT_MS)
            return time.monotonic() - t0
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _search(page, text: str, slug: str) -> None:
    page.locator(".ic-search input").fill(text)
    page.wait_for_selector(f'.ic-metrics[data-slug="{slug}"]', timeout=UPDATE_TIMEOUT_MS)


def _type_slider(page, cls: str, value: float) -> float:
    """Type a value into a slider's readout and press Enter; returns the seconds until the
    displayed metrics carry the new τ (one round trip through the kernel)."""
    readout = page.locator(f".{cls} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value:.3f}")
    t0 = time.monotonic()
    page.keyboard.press("Enter")
    attr = "data-tau-reuse" if cls == "ic-tau-reuse" else "data-tau-cra"
    page.wait_for_selector(f'.ic-metrics[{attr}="{value:.3f}"]', timeout=UPDATE_TIMEOUT_MS)
    return time.monotonic() - t0


def _drag_slider(page, cls: str, dx: float) -> float:
    """Drag a slider's handle by ``dx`` pixels with the mouse; returns the value it lands on."""
    before = page.locator(f".{cls} .widget-readout").inner_text()
    box = page.locator(f".{cls} .noUi-handle").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=12)
    page.mouse.up()
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).innerText !== before",
        arg=[f".{cls} .widget-readout", before],
        timeout=UPDATE_TIMEOUT_MS,
    )
    value = float(page.locator(f".{cls} .widget-readout").inner_text())
    page.wait_for_selector(f'.ic-metrics[data-tau-cra="{value:.3f}"]', timeout=UPDATE_TIMEOUT_MS)
    return value


def _shown_cra(page) -> tuple[float, str]:
    span = page.locator('.ic-metrics [data-metric="cra"]')
    return float(span.get_attribute("data-value")), span.locator("b").inner_text()


def _expected_cra(sims: np.ndarray, tau: float, comparison: str = ">") -> float:
    s, t = np.asarray(sims, np.float32), np.float32(tau)
    return float((s > t if comparison == ">" else s >= t).mean())


def _tau_that_changes(sims: np.ndarray, current: float) -> float:
    """A τ (3 decimals, as the slider) strictly between two stored similarities, so that CRA
    differs from its value at ``current``."""
    s = np.unique(np.asarray(sims, np.float32))
    for lo, hi in zip(s[:-1], s[1:], strict=True):
        tau = round(float(lo + hi) / 2, 3)
        if np.float32(lo) < np.float32(tau) < np.float32(hi) and _expected_cra(sims, tau) != _expected_cra(
            sims, current
        ):
            return tau
    tau = round(float(s[0]) - 0.01, 3)  # every image passes below the smallest similarity
    assert _expected_cra(sims, tau) != _expected_cra(sims, current), "no τ changes CRA for this group"
    return tau


def _group(per_image, model: str, slug: str, variant: str = "title"):
    g = per_image[
        (per_image["model"] == model) & (per_image["variant"] == variant) & (per_image["slug"] == slug)
    ]
    return g.sort_values("index")


def _known_reference(per_image, model: str) -> str:
    """A static demo reference whose similarities differ (so a τ between them changes CRA) and
    whose first image mixes reused and independent cells (so both colours are counted)."""
    best, score = None, None
    for slug, g in per_image[(per_image["model"] == model) & (per_image["kind"] == "static")].groupby("slug"):
        g = g.sort_values("index")
        sims = np.sort(g["cra_sim"].to_numpy(np.float32))
        if len(sims) < 2 or np.diff(sims).max() < 0.003:
            continue
        pink = int((np.asarray(g["vr_cells"].iloc[0], np.float32) > np.float32(g["vr_tau"].iloc[0])).sum())
        if score is None or abs(pink - 8) < score:
            best, score = str(slug), abs(pink - 8)
    assert best is not None, "no static demo reference with distinct similarities"
    return best


def _pink_count(page, index: int) -> tuple[int, int]:
    card = f'figure.ic-gen[data-index="{index}"]'
    return page.locator(f"{card} .ic-cell.ic-reused").count(), page.locator(
        f"{card} .ic-cell.ic-independent"
    ).count()


def _run(page, server, steps):
    """Run ``steps(page)``; on failure keep a screenshot and the server's log in the message."""
    try:
        return steps(page)
    except Exception as exc:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        raise AssertionError(f"{exc}\n--- voila log ---\n{server.log_tail()}") from exc


def test_explorer_in_the_browser_on_a_scored_study(browser, voila, study):
    cfg, per_image = study
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    timings = {}

    def steps(page):
        timings["load"] = _open(page, voila.url(config=str(cfg.source), results=str(cfg.results_dir)))
        assert "tiny-sd-a" in page.locator(".ic-model select").input_value()
        _search(page, "starry", "starry_night")
        g = _group(per_image, "tiny-sd-a", "starry_night")
        sims, comparison = g["cra_sim"].to_numpy(), str(g["comparison"].iloc[0])
        assert page.locator(".ic-metrics").get_attribute("data-tau-cra") == "0.700"
        cra0, _ = _shown_cra(page)
        assert cra0 == _expected_cra(sims, 0.70, comparison)
        _shot(page, "study_initial.png")

        # type a τ_CRA between two stored similarities: CRA changes exactly as they say
        tau = _tau_that_changes(sims, 0.70)
        timings["slider round trip"] = _type_slider(page, "ic-tau-static", tau)
        cra1, text = _shown_cra(page)
        assert cra1 == _expected_cra(sims, tau, comparison) != cra0
        assert text == f"{cra1:.3f}"
        _shot(page, "study_tau_typed.png")

        # drag the handle with the mouse: whatever value it lands on, CRA follows the similarities
        value = _drag_slider(page, "ic-tau-static", dx=-60)
        assert value < tau
        assert _shown_cra(page)[0] == _expected_cra(sims, value, comparison)

        # the overlay: the exact copy (index 0) is all pink; the others as their stored maxima say
        assert page.locator(".ic-cell").count() == 0
        page.locator(".ic-overlay input[type=checkbox]").check()
        page.wait_for_selector('.ic-gallery[data-overlay="1"]', timeout=UPDATE_TIMEOUT_MS)
        assert _pink_count(page, 0) == (16, 0)
        for row in g.itertuples():
            flags = np.asarray(row.vr_cells, np.float32) > np.float32(row.vr_tau)
            assert _pink_count(page, row.index) == (int(flags.sum()), 16 - int(flags.sum())), row.index
        cell = page.locator('figure.ic-gen[data-index="0"] .ic-cell').first
        assert cell.evaluate("e => getComputedStyle(e).backgroundColor") == PINK
        noise = page.locator('figure.ic-gen[data-index="2"] .ic-cell.ic-independent')
        if noise.count():
            assert noise.first.evaluate("e => getComputedStyle(e).backgroundColor") == GREEN
        _shot(page, "study_overlay.png")

        # the overview: clicking a point opens that reference in the gallery
        page.locator(".ic-search input").fill("")
        page.locator(".ic-tabs .lm-TabBar-tab", has_text="Overview").click()
        point = page.locator('.ic-point[title*="(seventh_seal)"]')
        point.wait_for(timeout=UPDATE_TIMEOUT_MS)
        _shot(page, "study_overview.png")
        point.click()
        page.wait_for_selector('.ic-gallery[data-slug="seventh_seal"]', timeout=UPDATE_TIMEOUT_MS)
        assert page.locator(".ic-metrics").get_attribute("data-slug") == "seventh_seal"

    try:
        _run(page, voila, steps)
    finally:
        page.close()
    print("\n" + ", ".join(f"{k}: {v:.2f} s" for k, v in timings.items()))


def test_explorer_in_the_browser_on_the_demo_results(browser, voila):
    folder = REPO_ROOT / "results" / "demo"
    if not (folder / "scores_per_image.parquet").is_file():
        _unavailable(f"no demo results in {folder} (./run_all.sh writes them)")
    from iconicity_utils.explore import load_results

    res = load_results("configs/demo.yaml")
    per_image = res.per_image
    model = sorted(set(per_image["model"]))[0]
    slug = _known_reference(per_image, model)
    g = _group(per_image, model, slug)
    sims, comparison = g["cra_sim"].to_numpy(), str(g["comparison"].iloc[0])
    tau0 = float(g["cra_tau"].iloc[0])
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    timings = {}

    def steps(page):
        timings["load"] = _open(page, voila.url())  # the notebook's own parameters: configs/demo.yaml
        _search(page, slug, slug)
        assert _shown_cra(page)[0] == _expected_cra(sims, tau0, comparison)
        tau = _tau_that_changes(sims, tau0)
        timings["slider round trip"] = _type_slider(page, "ic-tau-static", tau)
        cra, text = _shown_cra(page)
        assert cra == _expected_cra(sims, tau, comparison) != _expected_cra(sims, tau0, comparison)
        assert text == f"{cra:.3f}"
        page.locator(".ic-overlay input[type=checkbox]").check()
        page.wait_for_selector('.ic-gallery[data-overlay="1"]', timeout=UPDATE_TIMEOUT_MS)
        first = g.iloc[0]
        flags = np.asarray(first["vr_cells"], np.float32) > np.float32(first["vr_tau"])
        assert _pink_count(page, int(first["index"])) == (int(flags.sum()), 16 - int(flags.sum()))
        path = _shot(page, "demo_explorer.png")
        print(f"\nscreenshot of the explorer on the demo results: {path}")

    try:
        _run(page, voila, steps)
    finally:
        page.close()
    print(", ".join(f"{k}: {v:.2f} s" for k, v in timings.items()))


@pytest.fixture
def hostile(tmp_path_factory, served_root):
    """Scored tables outside every served root, a symlink to them inside results/, and scored
    tables inside the served root; the link is removed afterwards."""
    import explorer_fixtures as ef

    outside, _ = ef.hand_results(tmp_path_factory.mktemp("not-served"))
    inside, _ = ef.hand_results(served_root / "hand")
    link = REPO_ROOT / "results" / f"explorer-escape-{os.getpid()}"
    link.symlink_to(outside, target_is_directory=True)
    try:
        yield (
            {
                "absolute path outside the root": str(outside),
                "../../": "../../",
                "symlink in results/ leading out": f"results/{link.name}",
                "missing folder": "results/no-such-run",
                "NUL (%00)": "results/\x00../../etc",
                "5000 characters": "results/" + "a" * 5000,
            },
            inside,
        )
    finally:
        link.unlink()


def _refused(page, url: str) -> str:
    page.goto(url, timeout=PAGE_TIMEOUT_MS, wait_until="domcontentloaded")
    page.wait_for_selector(".ic-refused", timeout=PAGE_TIMEOUT_MS)
    return page.locator(".ic-refused").inner_text()


def test_explorer_in_the_browser_refuses_what_it_may_not_serve(browser, voila, hostile):
    cases, inside = hostile
    page = browser.new_page(viewport={"width": 1400, "height": 1200})

    def steps(page):
        for case, value in cases.items():
            message = _refused(page, voila.url(results=value))
            body = page.locator("body").inner_text()
            assert "The explorer did not open results=" in message, case
            assert "a served explorer opens only the study configs and results folders" in message, case
            assert "Nothing was loaded" in message, case
            assert page.locator(".ic-explorer").count() == 0, case
            assert page.locator(".ic-gallery").count() == 0, case
            assert "Traceback" not in body and "Error" not in body, case
            assert "hand/results" not in body and str(inside.parent.parent) not in body, case
            _page_shot(page, f"refused_{case.split()[0].strip('./%()')}.png")
        # a folder inside the served roots still opens
        _open(page, voila.url(results=str(inside)))
        assert page.locator(".ic-refused").count() == 0
        assert "m1" in page.locator(".ic-model select").input_value()

    try:
        _run(page, voila, steps)
    finally:
        page.close()


def _page_shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
