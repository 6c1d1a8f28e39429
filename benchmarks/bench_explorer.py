"""How fast the explorer (notebook 07) answers a slider: the kernel-side update time.

Loads a results folder (default: the demo's, ``results/demo``), builds the explorer, then moves
each slider through values it has not seen (so nothing comes from the explorer's cache) and times
:meth:`Explorer.update`: re-thresholding (``score_tables.rescore`` + ``aggregate_references``),
the model table with its bootstrap CIs (``model_table``), the reference list, the numbers and the
gallery HTML; both wall-clock and CPU time are printed (on a shared machine the wall clock also
counts waiting for a core).  The browser's part (a websocket round trip and a redraw) is measured by
``tests/test_explorer_browser.py``, which prints it.

``--synthetic N`` adds a paper-sized run made in memory (N references x 50 images for the selected
model; no image files, so the gallery shows placeholders) to see how the update scales.

Usage::

    .venv/bin/python benchmarks/bench_explorer.py                 # the demo results
    .venv/bin/python benchmarks/bench_explorer.py --synthetic 200 # and a 200-reference run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe_machine  # noqa: E402


def _timed(action) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one action (CPU time is what a quiet machine would see when
    other jobs share the cores)."""
    w, c = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - w, time.process_time() - c


def measure(ex, repeats: int) -> dict[str, list[tuple[float, float]]]:
    rng = np.random.default_rng(0)
    out: dict[str, list[tuple[float, float]]] = {
        "τ_CRA static": [],
        "τ_CRA dynamic": [],
        "τ_reuse": [],
        "reference": [],
    }
    sliders = {"τ_CRA static": ex.tau_static, "τ_CRA dynamic": ex.tau_dynamic, "τ_reuse": ex.tau_reuse}
    slugs = [v for _, v in ex.reference.options]
    ex.overlay.value = True
    for _ in range(repeats):
        for name, slider in sliders.items():
            if slider.disabled:
                continue
            value = float(np.round(rng.uniform(0.4, 0.95), 3))
            out[name].append(_timed(lambda s=slider, v=value: setattr(s, "value", v)))  # the observer updates
        slug = slugs[int(rng.integers(len(slugs)))]
        out["reference"].append(_timed(lambda s=slug: setattr(ex.reference, "value", s)))
    return out


def recompute_only(ex, repeats: int) -> list[tuple[float, float]]:
    from iconicity_utils.explore import tables

    r = ex.results
    rows = ex._scoring[ex._scoring["model"] == ex.model.value]
    return [
        _timed(
            lambda t=tau: tables.recompute(
                rows,
                tables.Thresholds(t, t, 0.6),
                consistency=r.consistency(),
                n_bootstrap=r.n_bootstrap,
                seed=r.seed,
            )
        )
        for tau in np.linspace(0.5, 0.9, repeats)
    ]


def synthetic(folder: Path, n_refs: int, n_images: int = 50):
    import pandas as pd

    from iconicity_utils.score import tables as score_tables

    rng = np.random.default_rng(1)
    rows = []
    for r in range(n_refs):
        kind = "static" if r % 2 == 0 else "dynamic"
        sims = rng.uniform(0.5, 0.98, n_images)
        cells = rng.uniform(0.3, 0.9, (n_images, 16)).astype(np.float32)
        for i in range(n_images):
            vr = float((cells[i] > np.float32(0.6)).mean())
            rows.append(
                {
                    "model": "m", "variant": "title", "slug": f"ref_{r:04d}", "kind": kind, "index": i,
                    "prompt": f"Reference {r}", "path": f"/nonexistent/{r}/{i}.png", "ref_paths": [f"/nonexistent/{r}.png"],
                    "cra_ref": f"/nonexistent/{r}.png", "cra_sim": float(sims[i]),
                    "cra_tau": 0.70 if kind == "static" else 0.75, "cra_pass": bool(sims[i] > 0.7), "vr": vr,
                    "vr_tau": 0.6, "vr_mean": float(cells[i].mean()), "vi": 1 - vr, "vr_cells": cells[i].tolist(),
                    "comparison": ">", "grid": "4x4", "vr_cells_mode": "crop", "vr_pool": "mean_all",
                    "cra_encoder": "clip", "vr_encoder": "dino",
                }
            )  # fmt: skip
    per_image = pd.DataFrame(rows)
    per_reference = score_tables.aggregate_references(per_image)
    per_image.to_parquet(folder / "scores_per_image.parquet")
    per_reference.to_parquet(folder / "scores_per_reference.parquet")
    score_tables.model_table(per_reference).to_parquet(folder / "scores_per_model.parquet")
    return folder


def report(name: str, ex, repeats: int) -> None:
    per = measure(ex, repeats)
    every = [t for v in per.values() for t in v]
    rec = recompute_only(ex, 10)
    n_rows = int((ex.results.per_image["model"] == ex.model.value).sum())
    print(
        f"\n{name}: {n_rows} images of the selected model, {ex.results.per_image['slug'].nunique()} references"
    )
    print(
        f"  {'event':<16} {'n':>4} {'wall median':>12} {'wall max':>9} {'CPU median':>11} {'CPU max':>8}  (ms)"
    )
    for event, times in [*per.items(), ("all updates", every), ("recompute only", rec)]:
        if times:
            ms = 1000 * np.asarray(times)
            print(
                f"  {event:<16} {len(ms):>4} {np.median(ms[:, 0]):>12.1f} {ms[:, 0].max():>9.1f} "
                f"{np.median(ms[:, 1]):>11.1f} {ms[:, 1].max():>8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--results", default=None, help="a results folder (default: the config's)")
    parser.add_argument("--repeats", type=int, default=10, help="moves of each slider")
    parser.add_argument(
        "--synthetic", type=int, default=0, help="also time a run of N references x 50 images"
    )
    args = parser.parse_args()

    from iconicity_utils.explore import app

    print(describe_machine())
    t0 = time.perf_counter()
    ex = app.Explorer.load(args.config, args.results)
    print(f"explorer built in {time.perf_counter() - t0:.2f} s ({ex.results.folder})")
    report("results", ex, args.repeats)
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            ex = app.Explorer.load(None, synthetic(Path(tmp), args.synthetic))
            report(f"synthetic ({args.synthetic} references x 50 images)", ex, max(2, args.repeats // 3))


if __name__ == "__main__":
    main()
