"""Stage 06's covariates: what might explain recognition, one row per reference (docs/method.md §6).

The paper reports that recognition (CRA) correlates with training-data frequency, textual
uniqueness, popularity and creation date; how it measured them is unknown.  This module measures
each, for any reference set, in one table (:func:`build_covariates`,
``<results>/reference_features.parquet``, the file's historical name):

=============================  ===================================================================
``caption_count``              captions of the corpus that contain the title (Int64; NA when
                               unknown) - :func:`frequency_counts`: the scan of
                               :mod:`iconicity_utils.correlates.scan`, or a CSV
``caption_count_log10``        ``log10(1 + caption_count)``
``exact_caption_count``        captions that *are* the title; ``exact_caption_count_log10`` likewise
``caption_count_title_creator``  the count modes of :mod:`~iconicity_utils.correlates.modes`: the
``caption_count_title_context``  title with the creator's surname, with a kind word or the year;
``caption_count_aliases``      the title or another name of the work (and each ``_log10``; only
                               the modes of ``correlates.frequency.count_modes``);
                               ``caption_ambiguity``: the share of the title's captions with
                               neither; ``caption_samples``, ``alias_samples`` (scan only)
``zipf_mean``, ``zipf_min``    mean and minimum wordfreq Zipf frequency of the title's content words
                               (``wordfreq.tokenize``, :data:`FUNCTION_WORDS` left out under
                               ``correlates.zipf_words: content``; 0 for a word wordfreq does not know)
``zipf_phrase``                wordfreq's Zipf frequency of the whole title
``n_words``                    words of the title (wordfreq's tokens)
``homonyms``                   *other* Wikidata items whose English label is the title (Int64)
``sitelinks``                  Wikidata sitelinks (stage 01); ``sitelinks_log10``
``year``                       inception (artworks) or publication (films) year (stage 01)
``pageviews``                  Wikipedia page views summed over ``correlates.pageviews.start..end``
                               (only when ``correlates.pageviews.mode`` is not ``off``;
                               :mod:`iconicity_utils.correlates.pageviews`);
                               ``pageviews_log10`` = ``log10(1 + pageviews)``
=============================  ===================================================================

Every column's provenance (source, corpus, rows scanned, time, versions) is in the parquet
metadata: ``read_table(path).attrs["provenance"]["columns"][column]`` (:func:`column_provenance`).
:data:`COVARIATE_LABELS` names each column for axes and pickers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import wordfreq

from iconicity_utils.collect import sparql
from iconicity_utils.collect.parse import parse_homonyms
from iconicity_utils.collect.queries import VALUES_CHUNK, homonyms_query
from iconicity_utils.collect.querying import open_endpoint
from iconicity_utils.config.analysis import CORRELATE_FEATURES
from iconicity_utils.core.io import package_versions, read_table, utc_now, write_table
from iconicity_utils.correlates.corpus import prepare_corpus
from iconicity_utils.correlates.modes import COUNT_MODES
from iconicity_utils.correlates.normalise import normalise_texts
from iconicity_utils.correlates.pageviews import fetch_pageviews
from iconicity_utils.correlates.scan import IncompleteScan, count_captions, counts_table_path

__all__ = [
    "COVARIATES_TABLE",
    "COVARIATE_LABELS",
    "FrequencyCounts",
    "covariates_table_path",
    "frequency_counts",
    "zipf_stats",
    "zipf_phrase",
    "FUNCTION_WORDS",
    "homonym_counts",
    "uniqueness_covariates",
    "build_covariates",
    "column_provenance",
    "correlates_section",
]

#: the covariates table's file name (kept from the time it was called the features table)
COVARIATES_TABLE = "reference_features.parquet"
#: the count modes' columns beside ``caption_count`` (the ``title`` mode)
MODE_COLUMNS = tuple(f"caption_count_{m}" for m in COUNT_MODES[1:])

#: a short label for every covariate column (axes, tables, a colleague's picker)
COVARIATE_LABELS = {
    "caption_count": "captions containing the title",
    "caption_count_log10": "log10(1 + captions containing the title)",
    "exact_caption_count": "captions that are the title",
    "exact_caption_count_log10": "log10(1 + captions that are the title)",
    "caption_count_title_creator": "captions with the title and the creator's surname",
    "caption_count_title_creator_log10": "log10(1 + captions with the title and the creator's surname)",
    "caption_count_title_context": "captions with the title and a kind word or the year",
    "caption_count_title_context_log10": "log10(1 + captions with the title and a kind word or the year)",
    "caption_count_aliases": "captions with the title or another name of the work",
    "caption_count_aliases_log10": "log10(1 + captions with the title or another name of the work)",
    "caption_ambiguity": "share of the title's captions with neither creator nor context",
    "zipf_mean": "mean Zipf frequency of the title's (content) words",
    "zipf_min": "minimum Zipf frequency of the title's words",
    "zipf_phrase": "Zipf frequency of the whole title as a phrase",
    "n_words": "words in the title",
    "homonyms": "other Wikidata items with the title as English label",
    "sitelinks": "Wikidata sitelinks",
    "sitelinks_log10": "log10(Wikidata sitelinks)",
    "year": "creation year",
    "pageviews": "Wikipedia page views",
    "pageviews_log10": "log10(1 + Wikipedia page views)",
}
assert set(COVARIATE_LABELS) == set(CORRELATE_FEATURES)


def covariates_table_path(cfg) -> Path:
    """``<results>/reference_features.parquet``."""
    return cfg.results_dir / COVARIATES_TABLE


def correlates_section(cfg) -> dict[str, Any]:
    """The ``correlates`` section of the config, as recorded with every stage 06 table."""
    return cfg.section_dump("correlates")["correlates"]


# --------------------------------------------------------------------------------------------
# Training-data frequency
# --------------------------------------------------------------------------------------------


@dataclass
class FrequencyCounts:
    """Caption counts per reference and where they come from.

    Attributes:
        table: ``slug``, ``caption_count``, ``exact_caption_count`` (Int64, NA when unknown), or
            None for ``source: none``.
        provenance: the source, corpus, rows scanned, time, ... (for the covariates table).
        scan: the :class:`~iconicity_utils.correlates.scan.ScanResult` when this call scanned.
    """

    table: Any
    provenance: dict[str, Any]
    scan: Any = None


def frequency_counts(
    cfg, *, workers: int | None = None, log: Callable[[str], None] = print
) -> FrequencyCounts:
    """The caption counts named by ``correlates.frequency.source``.

    ``scan`` builds the demo corpus first when ``synthetic_corpus`` is set, then scans (resuming
    from saved partials; a finished scan re-reads nothing).  It needs every shard done: a scan
    split with ``--shard i/n`` must be finished by the command line first.  ``csv`` reads
    ``counts_csv``: a ``slug`` or a ``title`` column (matched to ``label_clean`` after
    normalisation) and ``caption_count``, optionally ``exact_caption_count``; a reference the CSV
    lacks gets NA, never 0.

    Raises:
        IncompleteScan: some shards have no counts yet.
        FileNotFoundError, ValueError: no shards, no CSV, or a CSV without the needed columns.
    """
    f = cfg.correlates.frequency
    if f.source == "none":
        return FrequencyCounts(None, {"source": "none"})
    if f.source == "csv":
        return _counts_from_csv(cfg)
    prepare_corpus(cfg)
    scan = count_captions(cfg, workers=workers, log=log)
    if not scan.complete:
        raise IncompleteScan(
            f"{scan.shards_total - scan.shards_done} of {scan.shards_total} shards lack caption counts "
            f"(e.g. {scan.missing[0]}); finish the scan with python -m iconicity_utils captions"
        )
    wanted = ["slug", "caption_count", "exact_caption_count", *MODE_COLUMNS, "caption_ambiguity",
              "caption_samples", "alias_samples"]  # fmt: skip
    table = scan.counts[[c for c in wanted if c in scan.counts.columns]]  # modes not counted: absent
    prov = {"source": "scan", "table": cfg.relative(counts_table_path(cfg)), **scan.provenance}
    return FrequencyCounts(table, prov, scan)


def _read_counts_csv(cfg) -> tuple[Path, pd.DataFrame]:
    f = cfg.correlates.frequency
    path = Path(f.counts_csv)
    if not path.is_absolute():
        path = cfg.data_dir / path
    if not path.is_file():
        raise FileNotFoundError(f"correlates.frequency.counts_csv not found: {path}")
    raw = pd.read_csv(path)
    if "caption_count" not in raw.columns or not ({"slug", "title"} & set(raw.columns)):
        raise ValueError(
            f"{path}: a counts CSV needs a 'slug' or 'title' column and 'caption_count'; it has {list(raw.columns)}"
        )
    return path, raw


def _counts_from_csv(cfg) -> FrequencyCounts:
    path, raw = _read_counts_csv(cfg)
    refs = read_table(cfg.references_table)[["slug", "label_clean"]]
    if "slug" in raw.columns:
        merged = refs.merge(
            raw.drop(columns=[c for c in ("title",) if c in raw.columns]), on="slug", how="left"
        )
    else:
        raw = raw.assign(_key=normalise_texts(raw["title"].astype(str).tolist()))
        if raw["_key"].duplicated().any():
            dupes = sorted(set(raw.loc[raw["_key"].duplicated(), "title"].astype(str)))[:5]
            raise ValueError(f"{path}: titles repeated after normalisation: {dupes}")
        keyed = refs.assign(_key=normalise_texts(refs["label_clean"].tolist()))
        merged = keyed.merge(raw.drop(columns=["title"]), on="_key", how="left").drop(columns="_key")
    out = pd.DataFrame({"slug": merged["slug"]})
    for col in ("caption_count", "exact_caption_count"):
        values = pd.to_numeric(merged[col], errors="raise") if col in merged.columns else None
        out[col] = (
            pd.array([pd.NA] * len(merged), dtype="Int64") if values is None else values.astype("Int64")
        )
    prov = {
        "source": "csv",
        "corpus": cfg.correlates.frequency.corpus,
        "file": cfg.relative(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "references_without_count": int(out["caption_count"].isna().sum()),
        "read_utc": utc_now(),
    }
    return FrequencyCounts(out, prov)


# --------------------------------------------------------------------------------------------
# Textual uniqueness
# --------------------------------------------------------------------------------------------


#: English function words (articles, prepositions, conjunctions, pronouns, auxiliaries): left out of
#: ``zipf_mean`` under ``correlates.zipf_words: content``; *The Son of Man* is *son*, *man*
FUNCTION_WORDS = frozenset(
    """a an the and or nor but if then than so as of in on at by for from to with without into onto
    upon over under about above below after before between through during against among around
    near off out up down de la le les el los das der die des du von van di da del et y und
    i me my mine we us our you your he him his she her hers it its they them their this that these
    those who whom whose which what is are was were be been being am do does did has have had will
    would shall should can could may might must not no""".split()  # noqa: SIM905
)


def zipf_stats(title: str, lang: str = "en", words: str = "all") -> tuple[float, float, int]:
    """``(mean, min, n_words)`` of the wordfreq Zipf frequencies of the title's words.

    Words are ``wordfreq.tokenize(title, lang)``; a word wordfreq does not know has Zipf 0.
    ``words="content"`` leaves out :data:`FUNCTION_WORDS`, unless nothing else is left (*Her*,
    *It*); ``n_words`` counts every word.  A title without words gives ``(nan, nan, 0)``.
    """
    tokens = wordfreq.tokenize(title or "", lang)
    if not tokens:
        return float("nan"), float("nan"), 0
    kept = [w for w in tokens if w not in FUNCTION_WORDS] if words == "content" else tokens
    z = [wordfreq.zipf_frequency(w, lang) for w in kept or tokens]
    return float(np.mean(z)), float(np.min(z)), len(tokens)


def zipf_phrase(title: str, lang: str = "en") -> float:
    """wordfreq's Zipf frequency of the whole title as a phrase (NaN for a title without words)."""
    if not wordfreq.tokenize(title or "", lang):
        return float("nan")
    return float(wordfreq.zipf_frequency(title, lang))


def _homonyms_from_references(cfg, refs) -> tuple[Any, dict[str, Any]]:
    values = refs["label_homonyms"].astype("Int64") - 1
    stage01 = read_table(cfg.references_table).attrs.get("provenance", {})
    prov = {
        "source": "stage 01 references table: label_homonyms - 1",
        "query": "homonyms_query (collection.py): items whose rdfs:label@en equals the label",
        "endpoint": stage01.get("collection", {}).get("endpoint"),
        "created_utc": stage01.get("created_utc"),
    }
    return values.reset_index(drop=True), prov


def _homonyms_by_query(cfg, refs, sleep: Callable[[float], None]) -> tuple[Any, dict[str, Any]]:
    labels = sorted({t for t in refs["label_clean"] if t and sparql.is_portable_literal(t)})
    found: dict[str, int] = {}
    with open_endpoint(cfg) as (endpoint, info):
        client = sparql.SparqlClient(endpoint, cfg.collection.http, sleep)
        for k in range(0, len(labels), VALUES_CHUNK):
            name = f"homonyms_clean_c{k // VALUES_CHUNK:03d}"
            found.update(
                parse_homonyms(client.select(name, homonyms_query(labels[k : k + VALUES_CHUNK])), name)
            )
    out = []
    for label, clean in zip(refs["label"], refs["label_clean"], strict=True):
        if not clean or not sparql.is_portable_literal(clean):
            out.append(pd.NA)
            continue
        out.append(max(0, found.get(clean, 0) - (1 if label == clean else 0)))
    prov = {
        "source": "SPARQL count on the stage 01 endpoint: items whose rdfs:label@en equals label_clean, less the reference",
        "endpoint": endpoint,
        "endpoint_info": info,
        "queried_utc": utc_now(),
    }
    return pd.array(out, dtype="Int64"), prov


def homonym_counts(cfg, refs, *, sleep: Callable[[float], None] = time.sleep) -> tuple[Any, dict[str, Any]]:
    """How many *other* Wikidata items carry each reference's title as their English label.

    ``correlates.ambiguity: references`` reads stage 01's ``label_homonyms`` (the items of the
    stage 01 endpoint whose English label equals ``label``, the reference itself included) and
    subtracts the reference.  ``query`` asks the stage 01 endpoint again
    (:func:`iconicity_utils.collect.queries.homonyms_query`) for ``label_clean``, the prompt, and
    subtracts the reference only when its own label is that title.  Returns ``(Int64 series
    aligned with refs, provenance)``.
    """
    if cfg.correlates.ambiguity == "references":
        return _homonyms_from_references(cfg, refs)
    return _homonyms_by_query(cfg, refs, sleep)


def uniqueness_covariates(cfg, refs) -> tuple[Any, dict[str, dict[str, Any]]]:
    """``zipf_mean``, ``zipf_min``, ``n_words`` and ``homonyms`` per reference, with provenance."""
    words = cfg.correlates.zipf_words
    stats = [zipf_stats(t, words=words) for t in refs["label_clean"]]
    out = pd.DataFrame(
        {
            "zipf_mean": [s[0] for s in stats],
            "zipf_min": [s[1] for s in stats],
            "zipf_phrase": [zipf_phrase(t) for t in refs["label_clean"]],
            "n_words": pd.array([s[2] for s in stats], dtype="Int64"),
        }
    )
    homonyms, hprov = homonym_counts(cfg, refs)
    out["homonyms"] = pd.array(homonyms, dtype="Int64")
    wf = {
        "source": "wordfreq zipf_frequency of wordfreq.tokenize(label_clean, 'en'), wordlist 'best'"
        + (", function words left out (FUNCTION_WORDS)" if words == "content" else ", every word"),
        "version": package_versions(("wordfreq",))["wordfreq"],
        "time_utc": utc_now(),
    }
    phrase = {**wf, "source": "wordfreq zipf_frequency of label_clean as a phrase, 'en', wordlist 'best'"}
    return out, {"zipf_mean": wf, "zipf_min": wf, "zipf_phrase": phrase, "n_words": wf, "homonyms": hprov}


# --------------------------------------------------------------------------------------------
# The covariates table
# --------------------------------------------------------------------------------------------


def _log10_1p(values) -> np.ndarray:
    v = np.asarray(values, dtype="float64")
    return np.log10(1.0 + v)


def _floats_of(column) -> np.ndarray:
    return column.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _add_frequency(out, refs, frequency: FrequencyCounts, columns: dict) -> None:
    if frequency.table is None:
        return
    counts = refs[["slug"]].merge(frequency.table, on="slug", how="left")
    for col in ("caption_count", "exact_caption_count", *MODE_COLUMNS):
        if col not in counts.columns:  # a counts CSV without the count modes
            continue
        out[col] = counts[col].astype("Int64").to_numpy()
        out[f"{col}_log10"] = _log10_1p(_floats_of(out[col]))
        columns[col] = dict(frequency.provenance)
        columns[f"{col}_log10"] = {**frequency.provenance, "transform": f"log10(1 + {col})"}
    for col, what in (
        ("caption_samples", "matched captions"),
        ("alias_samples", "captions only an alias matched"),
    ):
        if col in counts.columns:
            out[col] = counts[col].to_numpy()
            columns[col] = {**frequency.provenance, "transform": f"bottom-k sample of {what}"}
    if "caption_ambiguity" in counts.columns:
        out["caption_ambiguity"] = _floats_of(counts["caption_ambiguity"])
        columns["caption_ambiguity"] = {
            **frequency.provenance,
            "transform": "title matches without evidence / all",
        }


def _add_stage01(cfg, out, refs, columns: dict) -> None:
    ref_prov = refs.attrs.get("provenance", {})
    stage01 = {
        "source": "stage 01 references table",
        "table": cfg.relative(cfg.references_table),
        "endpoint": ref_prov.get("collection", {}).get("endpoint"),
        "created_utc": ref_prov.get("created_utc"),
    }
    out["sitelinks"] = refs["sitelinks"].astype("Int64").to_numpy()
    sl = _floats_of(out["sitelinks"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sitelinks_log10"] = np.where(sl > 0, np.log10(np.where(sl > 0, sl, 1.0)), np.nan)
    out["year"] = refs["year"].astype("Int64").to_numpy()
    columns["sitelinks"] = {**stage01, "property": "wikibase:sitelinks"}
    columns["sitelinks_log10"] = {
        **stage01,
        "property": "wikibase:sitelinks",
        "transform": "log10(sitelinks)",
    }
    columns["year"] = {**stage01, "property": "P571 inception (static) / P577 publication date (dynamic)"}


def _add_pageviews(cfg, out, refs, columns: dict, sleep, log) -> None:
    views = fetch_pageviews(cfg, refs, sleep=sleep, log=log)
    if views is None:
        return
    out["pageviews"] = pd.array(views[0], dtype="Int64")
    out["pageviews_log10"] = _log10_1p(_floats_of(out["pageviews"]))
    columns["pageviews"] = views[1]
    columns["pageviews_log10"] = {**views[1], "transform": "log10(1 + pageviews)"}


def build_covariates(
    cfg,
    frequency: FrequencyCounts | None = None,
    *,
    write: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
):
    """The covariates table: one row per reference of stage 01, every column of the module docstring.

    Args:
        cfg: the study config.
        frequency: caption counts (default: :func:`frequency_counts`).
        write: also write it to :func:`covariates_table_path`, with per-column provenance.

    Returns:
        The table; ``df.attrs["columns"]`` holds each column's provenance.
    """
    refs = read_table(cfg.references_table).reset_index(drop=True)
    frequency = frequency if frequency is not None else frequency_counts(cfg, log=log)
    out = refs[["slug", "qid", "kind", "label_clean"]].copy()
    columns: dict[str, dict[str, Any]] = {}
    _add_frequency(out, refs, frequency, columns)
    unique, uprov = uniqueness_covariates(cfg, refs)
    for col in unique.columns:
        out[col] = unique[col].to_numpy()
    columns.update(uprov)
    _add_stage01(cfg, out, refs, columns)
    _add_pageviews(cfg, out, refs, columns, sleep, log)
    out.attrs["columns"] = columns
    if write:
        path = covariates_table_path(cfg)
        write_table(out, path, cfg, columns=columns, correlates=correlates_section(cfg))
        log(f"{len(out)} references, {len(columns)} covariate columns -> {cfg.relative(path)}")
    return out


def column_provenance(covariates) -> Any:
    """The per-column provenance of a covariates table (from ``attrs``) as a small DataFrame."""
    cols = covariates.attrs.get("columns") or covariates.attrs.get("provenance", {}).get("columns", {})
    rows = []
    for name, record in cols.items():
        rows.append(
            {
                "column": name,
                "source": record.get("source"),
                "corpus": record.get("corpus"),
                "rows_scanned": record.get("rows_scanned"),
                "time": record.get("scan_finished_utc") or record.get("time_utc") or record.get("created_utc")
                or record.get("read_utc") or record.get("queried_utc"),
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["column", "source", "corpus", "rows_scanned", "time"])
