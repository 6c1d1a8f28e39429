"""The sections of a study config for stages 01-04 and the paths, one validated class each (docs/method.md
§9 lists every key; the analysis stages 05, 06 and 08 are in :mod:`iconicity_utils.config.analysis`).

:class:`~iconicity_utils.config.study.StudyConfig` puts them together; the paper's constants are
their defaults (:mod:`iconicity_utils.core.constants`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from iconicity_utils.core.constants import (
    CELL_MODES,
    COMPARISONS,
    GRID,
    K_GEN,
    PHASH_MAX_DISTANCE,
    POOLS,
    PRECISIONS,
    TAU_CRA,
    TAU_REUSE,
)
from iconicity_utils.core.schema import KeyProblem, Positive, Section, Unit, fixed_length

__all__ = [
    "CollectionConfig",
    "EncoderChoice",
    "GenerationConfig",
    "PathsConfig",
    "RealizationConfig",
    "RetryPolicy",
    "ScoringConfig",
    "Thresholds",
]

#: the User-Agent sent to Wikidata and Commons unless ``collection.http.user_agent`` says otherwise
DEFAULT_USER_AGENT = "iconicity/0.1 (research compendium; https://arxiv.org/abs/2511.11435) urllib3"


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class Thresholds(Section):
    """Decision thresholds of the paper (docs/method.md §3.2, §3.3, §9); defaults from constants."""

    tau_cra_static: Unit = TAU_CRA["static"]
    tau_cra_dynamic: Unit = TAU_CRA["dynamic"]
    tau_reuse: Unit = TAU_REUSE
    #: ``">"`` as in the paper's figure (default), ``">="`` as in the authors' released script.
    comparison: Literal[COMPARISONS] = COMPARISONS[0]  # type: ignore[valid-type]


#: the keys that moved from ``realization:`` to ``scoring:`` (named in the error an old config gets)
MOVED_TO_SCORING = (
    "batch_size", "num_workers", "baselines", "ssim_size", "n_bootstrap", "bootstrap_seed",
    "on_bad_image", "on_bad_reference", "cache_dtype", "flush_every",
)  # fmt: skip


class RealizationConfig(Section):
    """How Visual Reuse cuts and embeds cells (docs/method.md §3.3): the method, not the engine."""

    #: ``(rows, cols)``; written as a list of two integers in YAML
    grid: Annotated[tuple[Positive, Positive], fixed_length(2)] = GRID
    #: ``"crop"`` embeds every cell as its own image (faithful); ``"tokens"`` pools ViT tokens (fast, ours).
    cells: Literal[CELL_MODES] = CELL_MODES[0]  # type: ignore[valid-type]
    #: ``"mean_all"`` averages every token of ``forward_features`` (authors' script); ``"cls"`` takes CLS.
    pool: Literal[POOLS] = POOLS[0]  # type: ignore[valid-type]
    #: at most this many generated images per (model, variant, reference), in index / file-name order
    k_gen: Positive = K_GEN

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in MOVED_TO_SCORING:
                if key in data:
                    raise KeyProblem(key, f"moved to the scoring section: write it as scoring.{key}")
        return data


class ScoringConfig(Section):
    """How the scoring engine runs (stages 03-04; docs/method.md §3.8, §9): batches, workers, the
    feature cache, bad inputs, the baselines it adds and the bootstrap of the model tables."""

    #: encoder inputs per forward pass (images are never split across batches)
    batch_size: Positive = 32
    #: DataLoader workers that decode and crop while the encoders run (0: in the main process)
    num_workers: int = Field(0, ge=0)
    #: also compute the similarity baselines (global CLIP / DINO / SSCD cosine, pHash, SSIM)
    baselines: bool = True
    #: side of the square greyscale thumbnails SSIM compares (SSIM's window is 7 pixels)
    ssim_size: int = Field(256, ge=7)
    #: bootstrap resamples over references for the model-level 95 % confidence intervals
    n_bootstrap: Positive = 1000
    bootstrap_seed: int = 0
    #: a generated image that fails the input check (docs/method.md §3.8): ``"skip"`` records it in
    #: ``scores_skipped.parquet`` and scores the rest; ``"stop"`` checks every input, then raises
    #: listing every problem; ``"strict"`` raises at the first problem.  Either way before any encoder runs.
    on_bad_image: Literal["skip", "stop", "strict"] = "skip"
    #: a reference whose image is bad or missing: ``"drop"`` leaves that reference out (its generated
    #: images are recorded as not scored, with the reason); ``"stop"``; ``"strict"`` (as above)
    on_bad_reference: Literal["drop", "stop", "strict"] = "drop"
    #: storage dtype of cached encoder features: ``"float32"`` (exact) or ``"float16"`` (half the size)
    cache_dtype: Literal["float32", "float16"] = "float32"
    #: images between feature-cache flushes: a stopped run loses at most this many; distributed
    #: scoring gives processes whole blocks of this many images (so 1 and N processes agree)
    flush_every: Positive = 256


class EncoderChoice(Section):
    """Which registered encoder plays which role, and where the encoders run."""

    #: CLIP image encoder f (CRA, docs/method.md §3.2)
    recognition: str
    #: DINO encoder g (VR, docs/method.md §3.3)
    realization: str
    #: SSCD baseline; None skips that baseline, and says so
    copy_detection: str | None = None
    #: explicit device for scoring (``"cpu"``, ``"cuda"``, ``"cuda:1"``); nothing is guessed
    device: str = "cpu"
    #: ``"fp32"``; ``"fp16"`` / ``"bf16"`` run the encoders under CUDA autocast (CUDA devices only)
    precision: Literal[PRECISIONS] = PRECISIONS[0]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _autocast_needs_cuda(self) -> EncoderChoice:
        if self.precision != "fp32" and not self.device.startswith("cuda"):
            raise KeyProblem(
                "precision",
                f"{self.precision!r} autocast needs a CUDA device, but encoders.device is "
                f"{self.device!r}; use 'fp32' on CPU",
            )
        return self


class GenerationConfig(Section):
    """Images per reference and seeding (docs/method.md §2)."""

    n_images: Positive = 10
    #: ``"hash"``: seed = stable hash of (variant, slug, index); ``"index"``: seed = base_seed + index.
    seed_mode: Literal["hash", "index"] = "hash"
    base_seed: int = 0
    batch_size: Positive = 1
    #: explicit device; ``"cuda"`` on a GPU machine, ``"cpu"`` otherwise.  Nothing is guessed.
    device: str = "cpu"
    variants: list[str] = Field(default_factory=lambda: ["title"])
    #: how a resumed run checks an existing image: ``"decode"`` decodes it fully; ``"header"`` reads its
    #: metadata and checks the final PNG ``IEND`` chunk only (faster for large runs).
    verify: Literal["decode", "header"] = "decode"
    #: CPU threads per process (``torch.set_num_threads``); null keeps torch's default.  CPU pixel values
    #: depend on it (float accumulation order), so it is recorded in every image.
    num_threads: int | None = Field(None, ge=1)


class RetryPolicy(Section):
    """How requests are sent and retried (the ``collection.http`` section).

    Used for the SPARQL endpoint, the Commons API and page views alike (:mod:`iconicity_utils.core.http`).
    After a 5xx, a timeout, a dropped connection or a malformed body, failed attempt ``k``
    (0-based) waits :meth:`backoff` seconds; a ``Retry-After`` (429/503) is honoured instead,
    up to ``retry_after_cap_s``.

    Attributes:
        user_agent: a descriptive User-Agent (tool, version, contact), required by Wikimedia.
        timeout_s: timeout of one request, in seconds.
        max_retries: retries after the first attempt (``max_retries + 1`` attempts in all).
        backoff_base_s: first backoff; attempt ``k`` (0-based) waits ``base * 2**k``...
        backoff_cap_s: ...but never longer than this.
        retry_after_cap_s: the longest ``Retry-After`` honoured; a server asking for more is an
            error, not a wait.
    """

    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_cap_s: float = Field(60.0, ge=0)
    retry_after_cap_s: float = Field(300.0, ge=0)

    @field_validator("user_agent")
    @classmethod
    def _descriptive(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a descriptive User-Agent is required (tool/version and a contact)")
        return value

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))


class CollectionConfig(Section):
    """Wikidata collection (stage 01, docs/method.md §1)."""

    #: a SPARQL endpoint URL, or ``"local"`` to serve ``snapshot`` with the bundled oxigraph server.
    endpoint: str = "https://query.wikidata.org/sparql"
    snapshot: str | None = None
    static_classes: list[str] = Field(default_factory=lambda: ["Q3305213"])
    dynamic_classes: list[str] = Field(default_factory=lambda: ["Q11424", "Q5398426"])
    min_sitelinks: int = 30
    top_k_static: Positive = 380
    top_k_dynamic: Positive = 387
    page_size: Positive = 500
    #: ``"commons"`` downloads P18 files; ``"synthetic"`` draws labelled stand-ins (demo only).
    reference_images: Literal["commons", "synthetic"] = "commons"
    image_width: Positive = 1024
    #: folder with one sub-folder of user-provided stills per dynamic slug (relative to data root).
    stills_dir: str = "stills"
    #: stills within this 64-bit pHash Hamming distance of a kept still are dropped (§1.1)
    phash_threshold: int = Field(PHASH_MAX_DISTANCE, ge=0, le=64)
    use_saved_responses: bool = False
    #: the MediaWiki API that describes Commons files (``reference_images: commons``).
    commons_api: str = "https://commons.wikimedia.org/w/api.php"
    #: User-Agent, timeouts, retries and backoff of every request to the endpoint and Commons.
    http: RetryPolicy = Field(default_factory=RetryPolicy)
    #: also collect matched non-iconic controls (``cfg.controls_table``; docs/method.md §1.6)
    controls: bool = False
    controls_per_reference: int = Field(1, ge=1)  #: at most this many controls per reference
    #: a control's most sitelinks; below ``min_sitelinks`` (checked when ``controls`` is on)
    controls_max_sitelinks: int = Field(10, ge=0)

    @model_validator(mode="after")
    def _local_needs_snapshot(self) -> CollectionConfig:
        if self.endpoint == "local" and not self.snapshot:
            raise KeyProblem("snapshot", "endpoint 'local' needs a snapshot file")
        if self.controls and self.controls_max_sitelinks >= self.min_sitelinks:
            raise KeyProblem("controls_max_sitelinks", f"must be below min_sitelinks ({self.min_sitelinks})")
        return self


class PathsConfig(Section):
    """Where things are read and written, relative to the project root."""

    data: str = "data"
    results: str = "results"
    figures: str = "figures"
    #: where stand-in models are built (git-ignored)
    standins: str = ".cache/standins"
    cache: str = ".cache"
    #: project root, relative to the config file's folder
    root: str = ".."
