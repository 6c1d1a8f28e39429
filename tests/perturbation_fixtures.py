"""Hand-made inputs for the stage 05 tests: a small references table with Wikidata-style labels and
reference images, per-image score rows with known values, and a pairs table with known changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scoring_fixtures import photo

#: slug -> (kind, title, creator, depicts, genre, main subject, class, image)
REFERENCES = {
    "the_starry_night": (
        "static", "The Starry Night", "Vincent van Gogh", ["church building", "Moon", "sky"],
        ["landscape art"], [], "Q3305213", "astronaut",
    ),
    "mona_lisa": ("static", "Mona Lisa", "Leonardo da Vinci", ["woman"], ["portrait"], [], "Q3305213", "coffee"),
    "titanic": (
        "dynamic", "Titanic", "James Cameron", [], ["drama film"], ["RMS Titanic"], "Q11424", "rocket",
    ),
    "the_son_of_man": ("static", "The Son of Man", "René Magritte", [], [], [], "Q3305213", "camera"),
}  # fmt: skip
#: stage 01's named subjects (not classes: left out of ``depicts_classes`` / ``main_subject_classes``)
NAMED_SUBJECTS = {
    "the_starry_night": ["Moon (Q405: natural satellite)"],
    "titanic": ["RMS Titanic (Q25173: ship)"],
}


def _classes(labels: list[str], slug: str) -> list[str]:
    named = {n.split(" (")[0] for n in NAMED_SUBJECTS.get(slug, [])}
    return [x for x in labels if x not in named]


def references_table(slugs=None) -> pd.DataFrame:
    """The references table stage 01 would write (the columns stage 05 reads)."""
    rows = []
    for i, (slug, (kind, title, creator, depicts, genre, subject, cls, _)) in enumerate(REFERENCES.items()):
        if slugs is not None and slug not in slugs:
            continue
        rows.append(
            {"qid": f"Q{i + 1}", "label": title, "label_clean": title, "slug": slug, "kind": kind,
             "class_qid": cls, "creator": creator, "depicts": depicts, "genre": genre, "main_subject": subject,
             "sitelinks": 100 + 10 * i, "year": 1880 + 20 * i, "depicts_classes": _classes(depicts, slug),
             "main_subject_classes": _classes(subject, slug), "named_subjects": NAMED_SUBJECTS.get(slug, [])}
        )  # fmt: skip
    return pd.DataFrame(rows)


def make_references(cfg, slugs=None) -> pd.DataFrame:
    """Write the references table and one reference image per reference (two stills if dynamic)."""
    from iconicity_utils.core.io import write_table

    refs = references_table(slugs)
    for r in refs.itertuples(index=False):
        folder = cfg.reference_dir(r.kind, r.slug)
        folder.mkdir(parents=True, exist_ok=True)
        image = REFERENCES[r.slug][-1]
        photo(image, (64, 64)).save(folder / "00.png")
        if r.kind == "dynamic":
            photo("chelsea", (64, 64)).save(folder / "01.png")
    cfg.references_table.parent.mkdir(parents=True, exist_ok=True)
    write_table(refs, cfg.references_table, cfg)
    return refs


#: hand-made matched controls: slug -> (kind, title, creator, depicts, genre, control_for, image)
CONTROLS = {
    "harbour_at_dusk": (
        "static", "Harbour at Dusk", "Jan Kowalski", ["boat", "sea"], ["landscape art"], "the_starry_night", "moon",
    ),
    "portrait_of_a_merchant": (
        "static", "Portrait of a Merchant", "Anna Berg", ["man"], ["portrait"], "mona_lisa", "clock",
    ),
}  # fmt: skip


def make_controls(cfg) -> pd.DataFrame:
    """Write the controls table stage 01 would write (``collection.controls``) and its reference images."""
    from iconicity_utils.core.io import write_table

    rows = []
    for i, (slug, (kind, title, creator, depicts, genre, control_for, image)) in enumerate(CONTROLS.items()):
        rows.append(
            {"qid": f"Q90{i}", "label": title, "label_clean": title, "slug": slug, "kind": kind,
             "class_qid": "Q3305213", "creator": creator, "depicts": depicts, "genre": genre, "main_subject": [],
             "sitelinks": 2, "year": 1900 + i, "control_for": control_for, "matched_genre": genre[0],
             "depicts_classes": depicts, "main_subject_classes": [], "named_subjects": []}
        )  # fmt: skip
        folder = cfg.reference_dir(kind, slug)
        folder.mkdir(parents=True, exist_ok=True)
        photo(image, (64, 64)).save(folder / "00.png")
    table = pd.DataFrame(rows)
    write_table(table, cfg.controls_table, cfg)
    return table


GROUP_MODES = {
    "cra_tau": 0.7, "vr_tau": 0.6, "comparison": ">", "grid": "4x4", "vr_cells_mode": "crop",
    "vr_pool": "mean_all", "cra_encoder": "tiny-clip", "vr_encoder": "tiny-dino",
}  # fmt: skip


def per_image_rows(spec: dict) -> pd.DataFrame:
    """Per-image score rows from ``{(model, slug, kind, variant, prompt): [(cra_pass, vr), ...]}``."""
    rows = []
    for (model, slug, kind, variant, prompt), images in spec.items():
        for index, (passed, vr) in enumerate(images):
            rows.append(
                {"model": model, "variant": variant, "slug": slug, "kind": kind, "index": index,
                 "prompt": prompt, "path": f"{model}/{variant}/{slug}/{index}.png", "cra_pass": passed,
                 "cra_sim": 0.9 if passed else 0.1, "vr": vr, "vi": 1.0 - vr, "vr_mean": vr, **GROUP_MODES}
            )  # fmt: skip
    return pd.DataFrame(rows)


def prompts_rows(rows: list[tuple]) -> pd.DataFrame:
    """A prompts table from ``(slug, kind, variant, prompt, leak, text_cosine)`` tuples (all ok)."""
    out = pd.DataFrame(rows, columns=["slug", "kind", "variant", "prompt", "leak", "text_cosine"])
    out["status"] = "ok"
    out["source"] = "hand-made"
    out["in_comparison"] = ~out["leak"]
    out["text_distance"] = 1.0 - out["text_cosine"]
    return out


def pairs_table(seed: int = 3) -> pd.DataFrame:
    """A pairs table with known changes: two models x two variants x two kinds, some pairs left out,
    one group whose changes are all zero."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("m-a", "m-b"):
        for variant in ("literal", "synonym"):
            for kind, n in (("static", 9), ("dynamic", 6)):
                for i in range(n):
                    t = rng.uniform(0, 1, size=3)
                    v = np.clip(t + rng.normal(0.1 if variant == "literal" else -0.05, 0.2, size=3), 0, 1)
                    if model == "m-b" and variant == "synonym" and kind == "dynamic":
                        v = t.copy()  # all changes zero
                    row = {"model": model, "slug": f"{kind}{i}", "kind": kind, "variant": variant,
                           "leak": i == 0, "in_comparison": i != 0}  # fmt: skip
                    for metric, a, b in zip(("cra", "vr_all", "crt"), t, v, strict=True):
                        row.update({f"{metric}_title": a, f"{metric}_variant": b, f"{metric}_change": b - a})
                    row["reuse_title"] = bool(t[1] >= 0.5)
                    row["reuse_variant"] = bool(v[1] >= 0.5)
                    rows.append(row)
    return pd.DataFrame(rows)


def load_wn(cfg):
    """WordNet as the project's set-up provides it (nltk's copy, else the project copy)."""
    from iconicity_utils.perturb.wordnet import load_wordnet, setup_wordnet

    setup_wordnet(cfg)
    return load_wordnet(cfg)


def make_study(folder, arms: bool = False):
    """A hand-made study: four references with labels and images (outputs in ``folder``); with
    ``arms``, the noise floor (``title-reseed``) and the matched controls arm too (two controls)."""
    from study_configs import write_study_config

    variants = ["title", "title-reseed", "synonym", "literal"] if arms else ["title", "synonym", "literal"]
    cfg = write_study_config(
        folder,
        "perturbation-test",
        models=["tiny-sd-a"],
        generation={"n_images": 1, "batch_size": 4},
        scoring={"n_bootstrap": 200, "baselines": False},
        perturbation={"max_references": None, "n_images": 1, "controls": arms, "variants": variants},
    )
    make_references(cfg)
    if arms:
        make_controls(cfg)
    return cfg
