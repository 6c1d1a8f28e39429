"""Stage 05, prompt perturbation: the stage's front door and the comparison.

When the title's words change, or the title is replaced by a plain description of the picture,
does a model still produce the iconic image?  The prompt variants
(:mod:`iconicity_utils.perturb.prompts`) go through the stage 02 harness (:func:`generate_variants`)
and the stage 03-04 scorer as further variants; :func:`compare` pairs each with its title
(:func:`pair_table`, :func:`paired_changes`, :func:`persistence_table`).  :func:`setup` (WordNet)
and :func:`run` are the set-up and the whole stage; the figures are in
:mod:`iconicity_utils.perturb.figures`.  The method is docs/method.md §5.

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

from iconicity_utils.core.constants import BASE_VARIANT
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.generate import generate, run_subprocess
from iconicity_utils.perturb.prompts import build_prompts, prompts_path, variant_names, write_stage_table
from iconicity_utils.perturb.wordnet import setup_wordnet
from iconicity_utils.score import score
from iconicity_utils.score.tables import aggregate_references, bootstrap_ci
from iconicity_utils.score.writer import PER_IMAGE

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "PAIRS_TABLE",
    "PAIRED_TABLE",
    "PERSISTENCE_TABLE",
    "PAIRED_METRICS",
    "PerturbationResult",
    "images_per_variant",
    "generation_prompts",
    "generate_variants",
    "pair_table",
    "paired_changes",
    "persistence_table",
    "compare",
    "setup",
    "run",
]

#: stage 05's comparison tables, under the results root
PAIRS_TABLE = "perturbation_pairs.parquet"
PAIRED_TABLE = "perturbation_paired.parquet"
PERSISTENCE_TABLE = "perturbation_persistence.parquet"
#: the per-reference metrics whose change from the title is tested (docs/method.md §3.4-3.5)
PAIRED_METRICS = ("cra", "vr_all", "crt")


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
# The comparison
# ============================================================================================


def _reuses(vr: np.ndarray, rule: str, min_vr: float) -> bool:
    """Whether a group's images reuse the reference (``reuse_rule``)."""
    if rule == "mean_vr":
        return bool(np.mean(vr) >= min_vr)
    if rule == "any_image":
        return bool((vr >= min_vr).any())
    raise ValueError(f"unknown reuse rule {rule!r}; expected 'mean_vr' or 'any_image'")


def pair_table(per_image: pd.DataFrame, prompts: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """One row per (model, reference, variant): title and variant metrics, their change, reuse flags.

    Only images of the current prompts count (same slug, variant *and* prompt: images of an older
    prompt are ignored) and, for every variant and the title alike, the first
    :func:`images_per_variant` indices.  Per-reference metrics are those of stage 03-04
    (:func:`~iconicity_utils.score.tables.aggregate_references`): ``cra``, ``vr_all``, ``crt``.

    Raises:
        ValueError: a (model, reference) with variant images but no title images.
    """
    p = cfg.perturbation
    ok = prompts[prompts["status"] == "ok"]
    keys = ok[["slug", "variant", "prompt"]]
    images = per_image.merge(keys, on=["slug", "variant", "prompt"], how="inner")
    images = images[(images["index"] < images_per_variant(cfg)) & images["model"].isin(cfg.models)]
    per_ref = aggregate_references(images)
    reuse = {
        key: _reuses(g["vr"].to_numpy(float), p.reuse_rule, p.reuse_min_vr)
        for key, g in images.groupby(["model", "variant", "slug"], sort=True)
    }
    per_ref["reuse"] = [
        reuse[k] for k in zip(per_ref["model"], per_ref["variant"], per_ref["slug"], strict=True)
    ]
    title = per_ref[per_ref["variant"] == BASE_VARIANT].set_index(["model", "slug"])
    other = per_ref[per_ref["variant"] != BASE_VARIANT]
    lonely = sorted({(m, s) for m, s in zip(other["model"], other["slug"], strict=True)} - set(title.index))
    if lonely:
        raise ValueError(
            f"variant images without title images for (model, slug) {lonely[:5]}; run generate_variants"
        )
    info = ok.set_index(["slug", "variant"])
    rows = []
    for r in other.itertuples(index=False):
        t = title.loc[(r.model, r.slug)]
        meta = info.loc[(r.slug, r.variant)]
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
        rows.append(row)
    cols = [
        "model",
        "slug",
        "kind",
        "variant",
        "source",
        "leak",
        "in_comparison",
        "standin",
        "text_cosine",
        "text_distance",
    ]
    cols += ["n_title", "n_variant"] + [
        f"{m}_{s}" for m in PAIRED_METRICS for s in ("title", "variant", "change")
    ]
    cols += ["reuse_title", "reuse_variant"]
    return pd.DataFrame(rows, columns=cols)


def _wilcoxon(d: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test of the changes (scipy, two-sided, zeros dropped); NaN if all are zero."""
    from scipy.stats import wilcoxon

    if not np.any(d != 0):
        return float("nan"), float("nan")
    res = wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue)


def paired_changes(
    pairs: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Per (model, variant, kind, metric): the mean change from the title over the pairs in the
    comparison, its paired bootstrap CI and a Wilcoxon signed-rank test.

    The bootstrap resamples *references* (each keeps its title and variant values together), with
    :func:`~iconicity_utils.score.tables.bootstrap_ci` (percentile, ``default_rng(seed)``; one set
    of resamples per group, shared by its metrics).  Wilcoxon: ``scipy.stats.wilcoxon`` on the
    changes, two-sided, zero changes dropped (``zero_method="wilcox"``), ``method="auto"`` (exact
    for n <= 50 without zeros); statistic and p are NaN when every change is zero.  ``n_pairs``,
    ``n_nonzero`` and ``n_excluded`` (pairs left out: leaks) state the n.
    """
    cols = [
        "model", "variant", "kind", "metric", "n_pairs", "n_nonzero", "n_excluded", "mean_title",
        "mean_variant", "mean_change", "ci_low", "ci_high", "n_bootstrap", "seed", "wilcoxon_statistic",
        "wilcoxon_p",
    ]  # fmt: skip
    out = []
    for (model, variant, kind), g in pairs.groupby(["model", "variant", "kind"], sort=True):
        use = g[g["in_comparison"]]
        n = len(use)
        index = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n)) if n else None
        for metric in PAIRED_METRICS:
            d = use[f"{metric}_change"].to_numpy(float)
            mean, low, high = bootstrap_ci(d, n_bootstrap, seed, level, index=index) if n else (np.nan,) * 3
            stat, pvalue = _wilcoxon(d) if n else (np.nan, np.nan)
            out.append(
                {"model": model, "variant": variant, "kind": kind, "metric": metric, "n_pairs": n,
                 "n_nonzero": int(np.count_nonzero(d)), "n_excluded": int(len(g) - n),
                 "mean_title": float(use[f"{metric}_title"].mean()) if n else np.nan,
                 "mean_variant": float(use[f"{metric}_variant"].mean()) if n else np.nan,
                 "mean_change": mean, "ci_low": low, "ci_high": high, "n_bootstrap": n_bootstrap, "seed": seed,
                 "wilcoxon_statistic": stat, "wilcoxon_p": pvalue}
            )  # fmt: skip
    return pd.DataFrame(out, columns=cols)


def persistence_table(pairs: pd.DataFrame, rule: str, min_vr: float, level: float = 0.95) -> pd.DataFrame:
    """Per (model, variant, kind): among the pairs in the comparison whose title images reuse the
    reference, the share whose variant images still reuse it, with a Wilson score interval.

    Columns: ``n_pairs``, ``n_title_reuse`` (the denominator), ``n_still_reuse``, ``share`` (NaN
    when no title reuses), ``ci_low``, ``ci_high``, and the rule.
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


@dataclass
class PerturbationResult:
    """The three comparison tables and where they were written."""

    pairs: Any
    paired: Any
    persistence: Any
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        used = int(self.pairs["in_comparison"].sum()) if len(self.pairs) else 0
        return (
            f"{len(self.pairs)} (model, reference, variant) pairs, {used} in the comparison "
            f"({int(self.pairs['leak'].sum()) if len(self.pairs) else 0} leaking); "
            f"{len(self.paired)} paired tests, {len(self.persistence)} persistence rows"
        )


def compare(
    cfg: StudyConfig,
    per_image: pd.DataFrame | None = None,
    prompts: pd.DataFrame | None = None,
    *,
    write: bool = True,
) -> PerturbationResult:
    """Pairs, paired changes and persistence from the per-image scores and the prompts table.

    Args:
        cfg: the study config (``perturbation``; bootstrap settings from ``realization``).
        per_image: the per-image scores (default: ``scores_per_image.parquet``).
        prompts: the prompts table (default: the one on disk).
        write: write the three tables to ``cfg.results_dir`` (rewritten whole on every run).
    """
    per_image = read_table(cfg.results_dir / PER_IMAGE) if per_image is None else per_image
    prompts = read_table(prompts_path(cfg)) if prompts is None else prompts
    p, r = cfg.perturbation, cfg.scoring
    pairs = pair_table(per_image, prompts, cfg)
    result = PerturbationResult(
        pairs=pairs,
        paired=paired_changes(pairs, r.n_bootstrap, r.bootstrap_seed),
        persistence=persistence_table(pairs, p.reuse_rule, p.reuse_min_vr),
    )
    if write:
        made_by_standin = set(pairs.loc[pairs["standin"], "variant"])  # a stand-in captioner's prompts
        for name, df in (
            (PAIRS_TABLE, result.pairs),
            (PAIRED_TABLE, result.paired.assign(standin=result.paired["variant"].isin(made_by_standin))),
            (
                PERSISTENCE_TABLE,
                result.persistence.assign(standin=result.persistence["variant"].isin(made_by_standin)),
            ),
        ):
            result.paths[name] = write_stage_table(df, cfg.results_dir / name, cfg)
    return result


# ============================================================================================
# Set-up and the whole stage
# ============================================================================================


def setup(cfg: StudyConfig, *, archive: str | Path | None = None, log=print) -> dict[str, Any]:
    """The stage's set-up (``run_all.sh`` calls it): WordNet when the config builds any variant
    besides the title.  Idempotent.  (The stand-in captioners are built with the other stand-ins:
    ``python -m iconicity_utils demo --config <config>``.)"""
    out: dict[str, Any] = {"wordnet": None}
    if variant_names(cfg) != [BASE_VARIANT]:
        loc = setup_wordnet(cfg, archive=archive)
        out["wordnet"] = loc
        log(f"WordNet ready: {loc.describe()}")
    return out


def run(cfg: StudyConfig, *, num_processes: int = 1, progress: bool = True) -> PerturbationResult:
    """The whole stage: prompts, generation, scoring (every variant), comparison."""
    prompts = build_prompts(cfg)
    generate_variants(cfg, prompts, num_processes=num_processes, progress=progress)
    return compare(cfg, score(cfg).per_image, prompts)
