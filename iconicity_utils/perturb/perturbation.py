"""Stage 05, prompt perturbation: the stage's front door and the pairing of each variant with its title.

When the title's words change, or the title is replaced by a plain description of the picture,
does a model still produce the iconic image?  The prompt variants
(:mod:`iconicity_utils.perturb.prompts`) go through the stage 02 harness (:func:`generate_variants`)
and the stage 03-04 scorer as further variants; :func:`compare` pairs each with its title
(:func:`pair_table`, :func:`persistence_table`) and hands the pairs to the inference
(:mod:`~iconicity_utils.perturb.inference`), the noise floor (:mod:`~iconicity_utils.perturb.noise_floor`),
the coverage (:mod:`~iconicity_utils.perturb.coverage`) and the controls arm
(:mod:`~iconicity_utils.perturb.controls`).  :func:`setup` (WordNet) and :func:`run` are the set-up
and the whole stage; the figures are in :mod:`iconicity_utils.perturb.figures`.  The method is
docs/method.md §5.

Command line (:mod:`iconicity_utils.perturb.cli`)::

    python -m iconicity_utils perturb --setup --config configs/demo.yaml   # WordNet
    python -m iconicity_utils perturb --run --config configs/demo.yaml     # the whole stage
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT, CONTROL_VARIANT, RESEED_VARIANT
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.generate import generate, run_subprocess
from iconicity_utils.perturb.controls import compare_controls, read_controls
from iconicity_utils.perturb.coverage import coverage_counts, reference_status, selection_table, status_counts
from iconicity_utils.perturb.inference import PAIRED_METRICS, InferenceSettings, paired_changes
from iconicity_utils.perturb.noise_floor import add_noise_floor, add_persistence_floor
from iconicity_utils.perturb.prompts import build_prompts, prompts_path, variant_names, write_stage_table
from iconicity_utils.perturb.wordnet import setup_wordnet
from iconicity_utils.score import score
from iconicity_utils.score.tables import aggregate_references
from iconicity_utils.score.writer import PER_IMAGE

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "PAIRS_TABLE",
    "PAIRED_TABLE",
    "PERSISTENCE_TABLE",
    "COVERAGE_TABLE",
    "STATUS_TABLE",
    "SELECTION_TABLE",
    "CONTROLS_TABLE",
    "PAIRED_METRICS",
    "PerturbationResult",
    "images_per_variant",
    "generation_prompts",
    "generate_variants",
    "reference_metrics",
    "title_metrics",
    "pair_table",
    "persistence_table",
    "compare",
    "LEAK_SENSITIVITY_COLUMNS",
    "leak_sensitivity",
    "setup",
    "run",
]

#: stage 05's comparison tables, under the results root
PAIRS_TABLE = "perturbation_pairs.parquet"
PAIRED_TABLE = "perturbation_paired.parquet"
PERSISTENCE_TABLE = "perturbation_persistence.parquet"
#: counts of references by model, variant, kind and coverage status
COVERAGE_TABLE = "perturbation_coverage.parquet"
#: the status of every (model, reference, variant), with its reason
STATUS_TABLE = "perturbation_status.parquet"
#: the included references against the excluded ones (sitelinks, year, the title's CRA)
SELECTION_TABLE = "perturbation_selection.parquet"
#: the literal arm on iconic references against their matched non-iconic controls
CONTROLS_TABLE = "perturbation_controls.parquet"


# ============================================================================================
# Generation and scoring through the stage 02-04 machinery
# ============================================================================================


def images_per_variant(cfg: StudyConfig) -> int:
    """``perturbation.n_images``, or ``generation.n_images`` when it is not set."""
    return cfg.perturbation.n_images or cfg.generation.n_images


def generation_prompts(cfg: StudyConfig, prompts: pd.DataFrame) -> pd.DataFrame:
    """``slug, variant, prompt`` of every usable row (status ok; leaking ones too: they are flagged,
    not dropped), titles included, so a title's images exist even where stage 02 did not make them."""
    usable = prompts[prompts["status"] == "ok"]
    return usable[["slug", "variant", "prompt"]].reset_index(drop=True)


def generate_variants(
    cfg: StudyConfig,
    prompts: pd.DataFrame | None = None,
    *,
    num_processes: int = 1,
    in_process: bool = False,
    progress: bool = True,
):
    """Generate :func:`images_per_variant` images of every usable prompt and model (stage 02 harness).

    The prompts go to :func:`iconicity_utils.generate.generate` as a prompt table (written to the
    cache); units already on disk (the title's, from stage 02) are verified and skipped; the
    manifest is rebuilt from every PNG, so it keeps stage 02's rows and gains the variants'.

    Args:
        cfg: the study config.
        prompts: the prompts table (default: the one on disk).
        num_processes: processes (``> 1``: ``accelerate launch``).
        in_process: run in this process (tests) instead of a subprocess (notebooks).
        progress: show the progress bar.
    """
    prompts = read_table(prompts_path(cfg)) if prompts is None else prompts
    table = generation_prompts(cfg, prompts)
    n = images_per_variant(cfg)
    if in_process:
        return generate(cfg.with_overrides(generation={"n_images": n}), prompts=table, progress=progress)
    path = cfg.path("cache", "perturbation", "generation_prompts.parquet")
    write_table(table, path, cfg, stage="05 perturbation: prompts handed to generation")
    args = ["--prompts", str(path), "--n-images", str(n)] + ([] if progress else ["--no-progress"])
    return run_subprocess(cfg, num_processes=num_processes, args=args)


# ============================================================================================
# Pairing each variant with its title
# ============================================================================================


def _reuses(vr: np.ndarray, rule: str, min_vr: float) -> bool:
    """Whether a group's images reuse the reference (``reuse_rule``)."""
    if rule == "mean_vr":
        return bool(np.mean(vr) >= min_vr)
    if rule == "any_image":
        return bool((vr >= min_vr).any())
    raise ValueError(f"unknown reuse rule {rule!r}; expected 'mean_vr' or 'any_image'")


def _compared_images(images: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """The images the comparison reads: the config's models, the first :func:`images_per_variant` indices."""
    return images[(images["index"] < images_per_variant(cfg)) & images["model"].isin(cfg.models)]


def reference_metrics(per_image: pd.DataFrame, prompts: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Per (model, variant, reference): stage 03-04's ``cra``, ``vr_all``, ``crt`` and ``n_images``
    (:func:`~iconicity_utils.score.tables.aggregate_references`) and ``reuse``, from the images of
    the *current* prompts (same slug, variant and prompt; images of an older prompt are ignored),
    the config's models, and the first :func:`images_per_variant` indices of every variant alike."""
    p = cfg.perturbation
    keys = prompts.loc[prompts["status"] == "ok", ["slug", "variant", "prompt"]]
    images = _compared_images(per_image.merge(keys, on=["slug", "variant", "prompt"], how="inner"), cfg)
    per_ref = aggregate_references(images)
    reuse = {
        key: _reuses(g["vr"].to_numpy(float), p.reuse_rule, p.reuse_min_vr)
        for key, g in images.groupby(["model", "variant", "slug"], sort=True)
    }
    per_ref["reuse"] = [
        reuse[k] for k in zip(per_ref["model"], per_ref["variant"], per_ref["slug"], strict=True)
    ]
    return per_ref


def title_metrics(per_image: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """``model, slug, kind, cra, vr_all, crt`` of the title of *every* scored reference (perturbed or
    not; the first :func:`images_per_variant` indices): what the coverage compares."""
    images = _compared_images(per_image[per_image["variant"] == BASE_VARIANT], cfg)
    return aggregate_references(images)[["model", "slug", "kind", *PAIRED_METRICS]]


def _pair_row(r, t, meta) -> dict[str, Any]:
    row = {
        "model": r.model, "slug": r.slug, "kind": r.kind, "variant": r.variant, "source": meta["source"],
        "leak": bool(meta["leak"]), "in_comparison": bool(meta["in_comparison"]),
        "standin": bool(meta.get("standin", False)), "text_cosine": meta["text_cosine"], "text_distance": meta["text_distance"],
        "n_title": int(t["n_images"]), "n_variant": int(r.n_images),
    }  # fmt: skip
    for metric in PAIRED_METRICS:
        row[f"{metric}_title"] = float(t[metric])
        row[f"{metric}_variant"] = float(getattr(r, metric))
        row[f"{metric}_change"] = row[f"{metric}_variant"] - row[f"{metric}_title"]
    row["reuse_title"], row["reuse_variant"] = bool(t["reuse"]), bool(r.reuse)
    return row


def pair_table(per_image: pd.DataFrame, prompts: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """One row per (model, reference, variant): title and variant metrics, their change, reuse flags.

    Per-reference metrics are :func:`reference_metrics`'.  The ``control-literal`` rows (their own
    references, no title) are not paired; ``title-reseed`` is paired like any variant.

    Raises:
        ValueError: a (model, reference) with variant images but no title images.
    """
    return _pairs(reference_metrics(per_image, prompts, cfg), prompts)


def _pairs(per_ref: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """:func:`pair_table` from the per-reference metrics already aggregated."""
    per_ref = per_ref[per_ref["variant"] != CONTROL_VARIANT]
    title = per_ref[per_ref["variant"] == BASE_VARIANT].set_index(["model", "slug"])
    other = per_ref[per_ref["variant"] != BASE_VARIANT]
    lonely = sorted({(m, s) for m, s in zip(other["model"], other["slug"], strict=True)} - set(title.index))
    if lonely:
        raise ValueError(
            f"variant images without title images for (model, slug) {lonely[:5]}; run generate_variants"
        )
    info = prompts[prompts["status"] == "ok"].set_index(["slug", "variant"])
    rows = [
        _pair_row(r, title.loc[(r.model, r.slug)], info.loc[(r.slug, r.variant)])
        for r in other.itertuples(index=False)
    ]
    cols = ["model", "slug", "kind", "variant", "source", "leak", "in_comparison", "standin", "text_cosine",
            "text_distance", "n_title", "n_variant"]  # fmt: skip
    cols += [f"{m}_{s}" for m in PAIRED_METRICS for s in ("title", "variant", "change")]
    cols += ["reuse_title", "reuse_variant"]
    return pd.DataFrame(rows, columns=cols)


def persistence_table(pairs: pd.DataFrame, rule: str, min_vr: float, level: float = 0.95) -> pd.DataFrame:
    """Per (model, variant, kind): among the pairs in the comparison whose title images reuse the
    reference, the share whose variant images still reuse it, with a Wilson score interval.

    Columns: ``n_pairs``, ``n_title_reuse`` (the denominator), ``n_still_reuse``, ``share`` (NaN
    when no title reuses), ``ci_low``, ``ci_high``, and the rule.  The re-seeded title's share is
    the floor (:func:`~iconicity_utils.perturb.noise_floor.add_persistence_floor`).
    """
    from statsmodels.stats.proportion import proportion_confint

    cols = ["model", "variant", "kind", "reuse_rule", "reuse_min_vr", "n_pairs", "n_title_reuse"]
    cols += ["n_still_reuse", "share", "ci_low", "ci_high"]
    out = []
    for (model, variant, kind), g in pairs.groupby(["model", "variant", "kind"], sort=True):
        use = g[g["in_comparison"]]
        base = use[use["reuse_title"]]
        n, k = len(base), int(base["reuse_variant"].sum())
        low, high = proportion_confint(k, n, alpha=1 - level, method="wilson") if n else (np.nan, np.nan)
        out.append(
            {"model": model, "variant": variant, "kind": kind, "reuse_rule": rule, "reuse_min_vr": min_vr,
             "n_pairs": len(use), "n_title_reuse": n, "n_still_reuse": k, "share": k / n if n else np.nan,
             "ci_low": float(low), "ci_high": float(high)}
        )  # fmt: skip
    return pd.DataFrame(out, columns=cols)


# ============================================================================================
# The comparison
# ============================================================================================


@dataclass
class PerturbationResult:
    """The comparison tables and where they were written (``controls`` is None without the arm)."""

    pairs: Any
    paired: Any
    persistence: Any
    status: Any = None
    coverage: Any = None
    selection: Any = None
    controls: Any = None
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        used = int(self.pairs["in_comparison"].sum()) if len(self.pairs) else 0
        tested = int(self.paired["p"].notna().sum()) if len(self.paired) else 0
        text = (
            f"{len(self.pairs)} (model, reference, variant) pairs, {used} in the comparison "
            f"({int(self.pairs['leak'].sum()) if len(self.pairs) else 0} leaking); "
            f"{len(self.paired)} paired rows ({tested} tested), {len(self.persistence)} persistence rows"
        )
        if self.controls is not None:
            text += f"; {len(self.controls)} controls rows ({int(self.controls['p'].notna().sum())} tested)"
        return text


def _with_empty_groups(paired: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Rows for the (model, variant, kind) groups with references but no pair at all (every variant
    missing, say), so that the paired table counts them too."""
    have = set(zip(paired["model"], paired["variant"], paired["kind"], strict=True))
    empty = [
        {"model": m, "variant": v, "kind": k, "metric": metric, "n_pairs": 0, "n_nonzero": 0, "n_excluded": 0,
         "reason": "no pair in the comparison: no estimate, interval or test",
         "floor_reason": "no pair in the comparison"}
        for m, v, k in zip(counts["model"], counts["variant"], counts["kind"], strict=True)
        if (m, v, k) not in have and v != RESEED_VARIANT
        for metric in PAIRED_METRICS
    ]  # fmt: skip
    if not empty:
        return paired
    out = pd.concat([paired, pd.DataFrame(empty)], ignore_index=True)
    return out.sort_values(["model", "variant", "kind"], kind="stable").reset_index(drop=True)


def _coverage(cfg, result: PerturbationResult, per_image, prompts, references) -> None:
    models = list(cfg.models)
    result.status = reference_status(prompts, result.pairs, references, models)
    result.coverage = coverage_counts(result.status)
    result.selection = selection_table(result.status, references, title_metrics(per_image, cfg))
    counts = status_counts(result.status)
    paired = _with_empty_groups(result.paired, counts)
    result.paired = paired.merge(counts, on=["model", "variant", "kind"], how="left")


def _write(cfg: StudyConfig, result: PerturbationResult) -> None:
    made_by_standin = set(result.pairs.loc[result.pairs["standin"], "variant"])  # a stand-in captioner's
    tables = {PAIRS_TABLE: result.pairs, PAIRED_TABLE: result.paired, PERSISTENCE_TABLE: result.persistence,
              STATUS_TABLE: result.status, COVERAGE_TABLE: result.coverage, SELECTION_TABLE: result.selection,
              CONTROLS_TABLE: result.controls}  # fmt: skip
    for name, df in tables.items():
        if df is None:
            continue
        if "variant" in df and "standin" not in df:
            df = df.assign(standin=df["variant"].isin(made_by_standin))
        result.paths[name] = write_stage_table(df, cfg.results_dir / name, cfg)


def compare(
    cfg: StudyConfig,
    per_image: pd.DataFrame | None = None,
    prompts: pd.DataFrame | None = None,
    *,
    references: pd.DataFrame | None = None,
    write: bool = True,
) -> PerturbationResult:
    """Pairs, paired changes (with the noise floor and the coverage counts), persistence (with its
    floor), the coverage tables and, with ``perturbation.controls``, the controls comparison.

    Args:
        cfg: the study config (``perturbation``; bootstrap settings from ``scoring``).
        per_image: the per-image scores (default: ``scores_per_image.parquet``).
        prompts: the prompts table (default: the one on disk).
        references: the references table (default: stage 01's).
        write: write the tables to ``cfg.results_dir`` (rewritten whole on every run).
    """
    per_image = read_table(cfg.results_dir / PER_IMAGE) if per_image is None else per_image
    prompts = read_table(prompts_path(cfg)) if prompts is None else prompts
    references = read_table(cfg.references_table) if references is None else references
    p, s = cfg.perturbation, InferenceSettings.from_config(cfg)
    per_ref = reference_metrics(per_image, prompts, cfg)  # once, for the pairs and the controls
    pairs = _pairs(per_ref, prompts)
    result = PerturbationResult(
        pairs=pairs,
        paired=add_noise_floor(paired_changes(pairs, s), pairs, s),
        persistence=add_persistence_floor(persistence_table(pairs, p.reuse_rule, p.reuse_min_vr)),
    )
    _coverage(cfg, result, per_image, prompts, references)
    if p.controls:
        iconic = prompts.loc[prompts["variant"] == BASE_VARIANT, "slug"]
        controls = read_controls(cfg, iconic)
        result.controls = compare_controls(per_ref, prompts, controls, s)
    if write:
        _write(cfg, result)
    return result


#: the columns of :func:`leak_sensitivity`
LEAK_SENSITIVITY_COLUMNS = [
    "leaks", "model", "variant", "kind", "metric", "n_pairs", "mean_change", "ci_low", "ci_high", "p_adjusted",
    "beyond_floor", "reason",
]  # fmt: skip


def leak_sensitivity(
    cfg: StudyConfig,
    per_image: pd.DataFrame,
    prompts: pd.DataFrame,
    *,
    references: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The paired changes with leaking variants left out (the ``exclude_leaks: true`` rule) and let
    in, one above the other (column ``leaks``), for every variant but the re-seeded title, whatever
    ``exclude_leaks`` the prompts table was built with.

    A synonym variant that keeps a rare title word (*Liberty Guiding the People*) is flagged as a
    leak and left out by default, so the synonym arm may see few titles; this shows what letting
    them in changes.  Leaking prompts are generated and scored anyway, so nothing is recomputed but
    the comparison (the controls arm is not run).  Rows that name someone stay out as
    ``exclude_named`` says.  Nothing is written.
    """
    named = prompts["named"] if "named" in prompts else pd.Series(False, index=prompts.index)
    usable = (prompts["status"] == "ok") & ~(named.eq(True) & cfg.perturbation.exclude_named)
    leak = prompts["leak"].eq(True)
    c = cfg.with_overrides(perturbation={"controls": False})
    out = []
    for label, in_comparison in (("left out", usable & ~leak), ("let in", usable)):
        table = prompts.assign(in_comparison=in_comparison)
        paired = compare(c, per_image, table, references=references, write=False).paired
        out.append(paired[paired["variant"] != RESEED_VARIANT].assign(leaks=label))
    return pd.concat(out, ignore_index=True)[LEAK_SENSITIVITY_COLUMNS]


# ============================================================================================
# Set-up and the whole stage
# ============================================================================================


def setup(cfg: StudyConfig, *, archive: str | Path | None = None, log=print) -> dict[str, Any]:
    """The stage's set-up (``run_all.sh`` calls it): WordNet when the config builds any variant
    besides the title and its re-seeded copy.  Idempotent.  (The stand-in captioners are built with the other stand-ins:
    ``python -m iconicity_utils demo --config <config>``.)"""
    out: dict[str, Any] = {"wordnet": None}
    if set(variant_names(cfg)) - {BASE_VARIANT, RESEED_VARIANT} or cfg.perturbation.controls:
        loc = setup_wordnet(cfg, archive=archive)
        out["wordnet"] = loc
        log(f"WordNet ready: {loc.describe()}")
    return out


def run(cfg: StudyConfig, *, num_processes: int = 1, progress: bool = True) -> PerturbationResult:
    """The whole stage: prompts, generation, scoring (every variant), comparison."""
    prompts = build_prompts(cfg)
    generate_variants(cfg, prompts, num_processes=num_processes, progress=progress)
    return compare(cfg, score(cfg).per_image, prompts)
