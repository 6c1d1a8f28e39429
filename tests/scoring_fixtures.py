"""Hand-made image fixtures for the scoring tests (stages 03-04): real photos from scikit-image,
exact copies, cell-permuted copies, and unrelated noise, laid out as a study or as the authors'
folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from study_configs import write_study_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    """A scikit-image sample photo, RGB, resized to ``size`` = (width, height)."""
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3].astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def permuted(image: Image.Image, grid: tuple[int, int] = (4, 4), seed: int = 0) -> Image.Image:
    """The image with its grid cells shuffled (needs width and height divisible by the grid)."""
    rows, cols = grid
    w, h = image.width // cols, image.height // rows
    assert w * cols == image.width and h * rows == image.height, "use a size divisible by the grid"
    cells = [image.crop((c * w, r * h, (c + 1) * w, (r + 1) * h)) for r in range(rows) for c in range(cols)]
    order = np.random.default_rng(seed).permutation(len(cells))
    assert (order != np.arange(len(cells))).any()
    out = Image.new("RGB", image.size)
    for k, src in enumerate(order):
        r, c = divmod(k, cols)
        out.paste(cells[src], (c * w, r * h))
    return out


#: slug -> (kind, list of (skimage name, size)) ; sizes include grid remainders (90x62)
REFERENCES = {
    "starry_night": ("static", [("astronaut", (96, 96))]),
    "persistence": ("static", [("coffee", (90, 62)), ("rocket", (80, 80))]),  # static: first file only
    "seventh_seal": ("dynamic", [("chelsea", (96, 64)), ("rocket", (64, 96)), ("camera", (80, 80))]),
}


def write_references(root: Path) -> dict[str, list[Path]]:
    """``root/<kind>/<slug>/NN.png``; returns slug -> files."""
    out = {}
    for slug, (kind, items) in REFERENCES.items():
        folder = root / kind / slug
        folder.mkdir(parents=True, exist_ok=True)
        out[slug] = []
        for i, (name, size) in enumerate(items):
            p = folder / f"{i:02d}_{name}.png"
            photo(name, size).save(p)
            out[slug].append(p)
    return out


def generations_for(slug: str, seed: int) -> list[Image.Image]:
    """Three generations per reference: an exact copy of the first reference, a copy with its
    cells permuted (of the first reference itself when its size is divisible by 4x4), and noise."""
    kind, items = REFERENCES[slug]
    name, size = items[0]
    first = photo(name, size)
    divisible = size[0] % 4 == 0 and size[1] % 4 == 0
    perm_src = first if divisible else photo(name, (96, 96))
    return [first, permuted(perm_src, seed=seed), noise((64, 64), seed)]


def make_study(cfg, models=("tiny-sd-a", "tiny-sd-b")) -> None:
    """Write a references table, reference images, generated images and a manifest for ``cfg``."""
    import pandas as pd

    from iconicity_utils.core.io import write_table

    refs = write_references(cfg.path("data", "references"))
    rows = []
    for slug, (kind, _) in REFERENCES.items():
        rows.append(
            {
                "qid": f"Q{len(rows) + 1}",
                "label": slug,
                "label_clean": slug.replace("_", " "),
                "slug": slug,
                "kind": kind,
            }
        )
    cfg.references_table.parent.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame(rows), cfg.references_table, cfg)
    manifest = []
    for m, model in enumerate(models):
        for slug in REFERENCES:
            for i, im in enumerate(generations_for(slug, seed=m)):
                p = cfg.generated_path(model, "title", slug, i)
                p.parent.mkdir(parents=True, exist_ok=True)
                im.save(p)
                manifest.append(
                    {
                        "model": model,
                        "variant": "title",
                        "slug": slug,
                        "index": i,
                        "seed": 1000 * m + i,
                        "prompt": slug.replace("_", " "),
                        "path": cfg.relative(p),
                    }
                )
    write_table(pd.DataFrame(manifest), cfg.generations_manifest, cfg)
    assert refs


def make_folders(root: Path, models=("model_a", "model_b"), n_noise: int = 0) -> tuple[Path, Path, Path]:
    """The authors' layout: ``root/ref/<Slug>/*``, ``root/gen/<model>/<slug>/*``, ``root/prompts.csv``."""
    import pandas as pd

    refdir, gendir = root / "ref", root / "gen"
    for slug, (_kind, items) in REFERENCES.items():
        folder = refdir / slug.replace("_", " ").title().replace(" ", "_")  # e.g. Starry_Night
        folder.mkdir(parents=True, exist_ok=True)
        for i, (name, size) in enumerate(items):
            photo(name, size).save(folder / f"{i:02d}_{name}.png")
    for m, model in enumerate(models):
        for slug in REFERENCES:
            folder = gendir / model / slug
            folder.mkdir(parents=True, exist_ok=True)
            ims = generations_for(slug, seed=m) + [noise((48, 48), 100 + j) for j in range(n_noise)]
            for i, im in enumerate(ims):
                im.save(folder / f"img_{i:03d}.png")
    prompts = root / "prompts.csv"
    pd.DataFrame(
        {"label_clean": [s.replace("_", " ").title() for s in REFERENCES] + ["Not Generated"]}
    ).to_csv(prompts, index=False)
    return refdir, gendir, prompts


def study_config(root: Path, name: str = "scoring-test", **sections):
    """A demo-like study config whose data/results/figures/cache live under ``root``.

    ``sections`` are merged into the YAML sections (``scoring={"batch_size": 16}``); stand-ins
    come from the repository's ``.cache/standins`` unless ``paths`` says otherwise.
    """
    return write_study_config(root, name, **sections)
