"""Hand-made score tables for the explorer's tests (no encoder): per-image rows with known
similarities and per-cell maxima, the images they point at, and the per-reference and per-model
tables the stage 03-04 functions make from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from iconicity_utils.score import tables as score_tables

#: slug -> (kind, title, reference image sizes); 90x62 has grid remainders
REFS = {
    "starry_night": ("static", "The Starry Night", [(64, 64)]),
    "seventh_seal": ("dynamic", "The Seventh Seal", [(96, 64), (80, 80)]),
    "the_scream": ("static", "The Scream", [(90, 62)]),
}
PROMPTS = {"title": "{}", "synonym": "{} (a synonym)", "literal": "a literal description of {}"}
TAU = {"static": 0.70, "dynamic": 0.75}
TAU_REUSE = 0.60
#: the exact copy: model m1, variant title, starry_night, index 0 (s_i = 1, every cell maximum 1)
EXACT = ("m1", "title", "starry_night", 0)
#: an image whose s_i is exactly float32(0.70): fails ">" at τ = 0.70, passes ">="
TIE = ("m1", "title", "the_scream", 1)


def _image(path: Path, size, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def per_image_rows(
    root: Path,
    models=("m1", "m2"),
    variants=("title",),
    n_images: int = 5,
    seed: int = 0,
    store=str,
    comparison: str = ">",
):
    """The per-image table (as the scoring engine writes it) and its images under ``root``.

    ``store`` turns a file path into the stored path (default: absolute, as the folder scorer).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    refs = {}
    for s, (slug, (_kind, _title, sizes)) in enumerate(REFS.items()):
        refs[slug] = [
            _image(root / "ref" / slug / f"{j:02d}.png", size, 100 + 10 * s + j)
            for j, size in enumerate(sizes)
        ]
    rows = []
    for m, model in enumerate(models):
        for v, variant in enumerate(variants):
            for s, (slug, (kind, title, _sizes)) in enumerate(REFS.items()):
                sims = rng.uniform(0.55, 0.97, n_images).astype(np.float32)
                cells = rng.uniform(0.30, 0.90, (n_images, 16)).astype(np.float32)
                for i in range(n_images):
                    key = (model, variant, slug, i)
                    gen = root / "gen" / model / variant / slug / f"{i:03d}.png"
                    if key == EXACT:
                        gen.parent.mkdir(parents=True, exist_ok=True)
                        Image.open(refs[slug][0]).save(gen)
                        sims[i], cells[i] = 1.0, 1.0
                    else:
                        _image(gen, (64, 64), 1000 * m + 100 * v + 10 * s + i)
                    if key == TIE:
                        sims[i] = np.float32(0.70)
                    tau = TAU[kind]
                    ok = sims[i] > np.float32(tau) if comparison == ">" else sims[i] >= np.float32(tau)
                    reused = (
                        cells[i] > np.float32(TAU_REUSE)
                        if comparison == ">"
                        else cells[i] >= np.float32(TAU_REUSE)
                    )
                    vr = float(reused.mean())
                    rows.append(
                        {
                            "model": model, "variant": variant, "slug": slug, "kind": kind, "index": i,
                            "seed": 1000 * m + i, "prompt": PROMPTS.get(variant, "{}").format(title),
                            "path": store(gen), "n_ref": len(refs[slug]), "ref_paths": [store(p) for p in refs[slug]],
                            "cra_sim": float(sims[i]), "cra_ref": store(refs[slug][0]), "cra_tau": tau,
                            "cra_pass": bool(ok), "vr": vr, "vr_tau": TAU_REUSE, "vr_mean": float(cells[i].mean()),
                            "vr_max": float(cells[i].max()), "vr_p90": float(np.quantile(cells[i], 0.9)), "vi": 1.0 - vr,
                            "vr_cells": cells[i].tolist(), "comparison": comparison, "grid": "4x4",
                            "vr_cells_mode": "crop", "vr_pool": "mean_all", "cra_encoder": "tiny-clip",
                            "vr_encoder": "tiny-dino", "sscd_encoder": None,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def write_results(folder: Path, per_image, n_bootstrap: int = 200, seed: int = 0, features: bool = False):
    """Write the three score tables (and, with ``features``, a stage 06 feature table) to ``folder``."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    groups = per_image[["model", "variant", "slug"]].drop_duplicates().reset_index(drop=True)
    consistency = groups.assign(consistency=np.linspace(0.2, 0.8, len(groups)))
    per_reference = score_tables.aggregate_references(per_image, consistency)
    per_model = score_tables.model_table(per_reference, n_bootstrap, seed)
    per_image.to_parquet(folder / "scores_per_image.parquet")
    per_reference.to_parquet(folder / "scores_per_reference.parquet")
    per_model.to_parquet(folder / "scores_per_model.parquet")
    if features:
        slugs = list(REFS)
        pd.DataFrame(
            {
                "slug": slugs,
                "sitelinks": [170, 40, 104],
                "year": [1889.0, 1957.0, np.nan],
                "uniqueness": [0.9, 0.4, 0.7],
                "label": ["a", "b", "c"],
                "title_shared": [False, True, False],
            }
        ).to_parquet(folder / "reference_features.parquet")
    return per_reference, per_model


def hand_results(root: Path, **kwargs):
    """Images and score tables under ``root``; returns ``(results folder, per_image)``."""
    features = kwargs.pop("features", False)
    per_image = per_image_rows(root, **kwargs)
    folder = root / "results"
    write_results(folder, per_image, features=features)
    return folder, per_image


def by_hand(per_image, static: float, dynamic: float, reuse: float):
    """CRA, VI over recognised images, CRT and mean VR per (model, variant, slug), in plain numpy."""
    out = {}
    for key, g in per_image.groupby(["model", "variant", "slug"]):
        sim = g["cra_sim"].to_numpy(np.float32)
        tau = np.float32(static if g["kind"].iloc[0] == "static" else dynamic)
        strict = g["comparison"].iloc[0] == ">"
        ok = sim > tau if strict else sim >= tau
        cells = np.stack([np.asarray(c, np.float32) for c in g["vr_cells"]])
        reused = cells > np.float32(reuse) if strict else cells >= np.float32(reuse)
        vi = 1.0 - reused.mean(axis=1)
        out[key] = {
            "cra": ok.mean(),
            "vi_mean": vi[ok].mean() if ok.any() else np.nan,
            "crt": (ok * vi).mean(),
            "vr_all": (1.0 - vi).mean(),
            "n_recognised": int(ok.sum()),
        }
    return out
