"""Stage 06: which references does a model recognise?  Correlates of recognition (docs/method.md §6).

The paper reports that recognition (CRA) correlates with training-data frequency, textual
uniqueness, popularity and creation date; how it measured them is unknown.  This module measures
each, for any model and any reference set, in one features table, and relates them to the
per-reference scores of stages 03-04.

Features (:func:`build_features`, one row per reference, ``<results>/reference_features.parquet``)
--------------------------------------------------------------------------------------------------
=============================  ===================================================================
``caption_count``              captions of the corpus that contain the title (Int64; NA when
                               unknown) - :mod:`iconicity_utils.correlates.caption_counts`, or a CSV
``caption_count_log10``        ``log10(1 + caption_count)``
``exact_caption_count``        captions that *are* the title; ``exact_caption_count_log10`` likewise
``zipf_mean``, ``zipf_min``    mean and minimum wordfreq Zipf frequency of the title's words
                               (``wordfreq.tokenize``; 0 for a word wordfreq does not know)
``n_words``                    words of the title (wordfreq's tokens)
``homonyms``                   *other* Wikidata items whose English label is the title (Int64)
``sitelinks``                  Wikidata sitelinks (stage 01); ``sitelinks_log10``
``year``                       inception (artworks) or publication (films) year (stage 01)
``pageviews``                  Wikipedia page views summed over ``correlates.pageviews.start..end``
                               (only when ``correlates.pageviews.mode`` is not ``off``);
                               ``pageviews_log10`` = ``log10(1 + pageviews)``
=============================  ===================================================================

Every column's provenance (source, corpus, rows scanned, time, versions) is in the parquet
metadata: ``read_table(path).attrs["provenance"]["columns"][column]`` (:func:`column_provenance`).
:data:`FEATURE_LABELS` names each feature for axes and pickers.

Statistics
----------
- :func:`spearman_table` (``correlates_spearman.parquet``): Spearman ρ of each feature with each
  outcome (CRA; CRT and mean VR as secondary outcomes), per model and per kind (``static``,
  ``dynamic`` and ``all``), on the references where both are defined; scipy's p-value,
  Benjamini-Hochberg-adjusted within ``correlates.bh_family``; a percentile bootstrap CI over
  references (resamples with an undefined ρ are left out).
- :func:`glm_table` (``correlates_glm.parquet``): a binomial GLM (statsmodels) of recognised
  images out of ``n_images``, with standardised predictors (z-scores over the references in the
  fit), one fit per model and a pooled fit with model effects; coefficients with Wald CIs, n and
  the variance inflation factor of every predictor.  A fit that cannot be made (every image
  recognised, too few references, a constant predictor) says why in ``note``.

Figures (``06_*.png``): a ρ heatmap (model x feature), CRA against log frequency and against
year with a fitted line per model, and the GLM coefficients.  Each states n.

Page views (:func:`fetch_pageviews`) come from the Wikimedia REST API, online only, with the
collection's User-Agent and retry policy; every response (a 404 too) is cached under
``<cache>/http/``.  ``mode: cache`` uses the cache alone and fails, saying which responses are
missing, when it lacks one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import urllib.parse
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.collect import collection, sparql
from iconicity_utils.config.study import CORRELATE_FEATURES, CORRELATE_OUTCOMES
from iconicity_utils.core.io import atomic_write_json, read_table, utc_now, write_table
from iconicity_utils.correlates import caption_counts

__all__ = [
    "FEATURE_LABELS",
    "OUTCOME_LABELS",
    "FEATURES_TABLE",
    "SPEARMAN_TABLE",
    "GLM_TABLE",
    "PageviewsUnavailable",
    "FrequencyCounts",
    "features_table_path",
    "frequency_counts",
    "zipf_stats",
    "uniqueness_features",
    "homonym_counts",
    "fetch_pageviews",
    "build_features",
    "column_provenance",
    "analysis_table",
    "spearman_ci",
    "spearman_table",
    "bh_adjust",
    "vif",
    "glm_table",
    "plot_rho_heatmap",
    "plot_outcome_vs_feature",
    "plot_glm_coefficients",
    "CorrelatesResult",
    "run",
    "main",
]

FEATURES_TABLE = "reference_features.parquet"
SPEARMAN_TABLE = "correlates_spearman.parquet"
GLM_TABLE = "correlates_glm.parquet"

#: a short label for every feature column (axes, tables, a colleague's picker)
FEATURE_LABELS = {
    "caption_count": "captions containing the title",
    "caption_count_log10": "log10(1 + captions containing the title)",
    "exact_caption_count": "captions that are the title",
    "exact_caption_count_log10": "log10(1 + captions that are the title)",
    "zipf_mean": "mean Zipf frequency of the title's words",
    "zipf_min": "minimum Zipf frequency of the title's words",
    "n_words": "words in the title",
    "homonyms": "other Wikidata items with the title as English label",
    "sitelinks": "Wikidata sitelinks",
    "sitelinks_log10": "log10(Wikidata sitelinks)",
    "year": "creation year",
    "pageviews": "Wikipedia page views",
    "pageviews_log10": "log10(1 + Wikipedia page views)",
}
assert set(FEATURE_LABELS) == set(CORRELATE_FEATURES)
OUTCOME_LABELS = {"cra": "CRA", "crt": "CRT", "vr_all": "VR (all images)"}
assert set(OUTCOME_LABELS) == set(CORRELATE_OUTCOMES)
#: the kinds a statistic is computed for: each kind, and both together
SCOPES = ("static", "dynamic", "all")


def features_table_path(cfg) -> Path:
    """``<results>/reference_features.parquet``."""
    return cfg.results_dir / FEATURES_TABLE


# --------------------------------------------------------------------------------------------
# Training-data frequency
# --------------------------------------------------------------------------------------------


@dataclass
class FrequencyCounts:
    """Caption counts per reference and where they come from.

    Attributes:
        table: ``slug``, ``caption_count``, ``exact_caption_count`` (Int64, NA when unknown), or
            None for ``source: none``.
        provenance: the source, corpus, rows scanned, time, ... (for the features table).
        scan: the :class:`~iconicity_utils.correlates.caption_counts.ScanResult` when this call scanned.
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
    if f.synthetic_corpus:
        caption_counts.build_demo_corpus(cfg)
    scan = caption_counts.count_captions(cfg, workers=workers, log=log)
    if not scan.complete:
        raise caption_counts.IncompleteScan(
            f"{scan.shards_total - scan.shards_done} of {scan.shards_total} shards lack caption counts "
            f"(e.g. {scan.missing[0]}); finish the scan with python -m iconicity_utils.correlates.caption_counts"
        )
    table = scan.counts[["slug", "caption_count", "exact_caption_count"]]
    prov = {"source": "scan", "table": cfg.relative(caption_counts.counts_table_path(cfg)), **scan.provenance}
    return FrequencyCounts(table, prov, scan)


def _counts_from_csv(cfg) -> FrequencyCounts:
    import pandas as pd

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
    refs = read_table(cfg.references_table)[["slug", "label_clean"]]
    if "slug" in raw.columns:
        merged = refs.merge(
            raw.drop(columns=[c for c in ("title",) if c in raw.columns]), on="slug", how="left"
        )
    else:
        raw = raw.assign(_key=caption_counts.normalise_texts(raw["title"].astype(str).tolist()))
        if raw["_key"].duplicated().any():
            dupes = sorted(set(raw.loc[raw["_key"].duplicated(), "title"].astype(str)))[:5]
            raise ValueError(f"{path}: titles repeated after normalisation: {dupes}")
        keyed = refs.assign(_key=caption_counts.normalise_texts(refs["label_clean"].tolist()))
        merged = keyed.merge(raw.drop(columns=["title"]), on="_key", how="left").drop(columns="_key")
    out = pd.DataFrame({"slug": merged["slug"]})
    for col in ("caption_count", "exact_caption_count"):
        values = pd.to_numeric(merged[col], errors="raise") if col in merged.columns else None
        out[col] = (
            pd.array([pd.NA] * len(merged), dtype="Int64") if values is None else values.astype("Int64")
        )
    prov = {
        "source": "csv",
        "corpus": f.corpus,
        "file": cfg.relative(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "references_without_count": int(out["caption_count"].isna().sum()),
        "read_utc": utc_now(),
    }
    return FrequencyCounts(out, prov)


# --------------------------------------------------------------------------------------------
# Textual uniqueness
# --------------------------------------------------------------------------------------------


def zipf_stats(title: str, lang: str = "en") -> tuple[float, float, int]:
    """``(mean, min, n_words)`` of the wordfreq Zipf frequencies of the title's words.

    Words are ``wordfreq.tokenize(title, lang)``; a word wordfreq does not know has Zipf 0.
    A title without words gives ``(nan, nan, 0)``.
    """
    import wordfreq

    words = wordfreq.tokenize(title or "", lang)
    if not words:
        return float("nan"), float("nan"), 0
    z = [wordfreq.zipf_frequency(w, lang) for w in words]
    return float(np.mean(z)), float(np.min(z)), len(words)


def homonym_counts(cfg, refs, *, sleep: Callable[[float], None] = time.sleep) -> tuple[Any, dict[str, Any]]:
    """How many *other* Wikidata items carry each reference's title as their English label.

    ``correlates.ambiguity: references`` reads stage 01's ``label_homonyms`` (the items of the
    stage 01 endpoint whose English label equals ``label``, the reference itself included) and
    subtracts the reference.  ``query`` asks the stage 01 endpoint again
    (:func:`iconicity_utils.collect.collection.homonyms_query`) for ``label_clean``, the prompt, and
    subtracts the reference only when its own label is that title.  Returns ``(Int64 series
    aligned with refs, provenance)``.
    """
    import pandas as pd

    if cfg.correlates.ambiguity == "references":
        values = refs["label_homonyms"].astype("Int64") - 1
        stage01 = read_table(cfg.references_table).attrs.get("provenance", {})
        prov = {
            "source": "stage 01 references table: label_homonyms - 1",
            "query": "homonyms_query (collection.py): items whose rdfs:label@en equals the label",
            "endpoint": stage01.get("collection", {}).get("endpoint"),
            "created_utc": stage01.get("created_utc"),
        }
        return values.reset_index(drop=True), prov
    labels = sorted({t for t in refs["label_clean"] if t and sparql.is_portable_literal(t)})
    found: dict[str, int] = {}
    with collection.open_endpoint(cfg) as (endpoint, info):
        client = sparql.SparqlClient(endpoint, cfg.collection.http, sleep)
        for k in range(0, len(labels), collection.VALUES_CHUNK):
            name = f"homonyms_clean_c{k // collection.VALUES_CHUNK:03d}"
            chunk = labels[k : k + collection.VALUES_CHUNK]
            found.update(
                collection.parse_homonyms(client.select(name, collection.homonyms_query(chunk)), name)
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


def uniqueness_features(cfg, refs) -> tuple[Any, dict[str, dict[str, Any]]]:
    """``zipf_mean``, ``zipf_min``, ``n_words`` and ``homonyms`` per reference, with provenance."""
    import pandas as pd

    from iconicity_utils.core.io import package_versions

    stats = [zipf_stats(t) for t in refs["label_clean"]]
    out = pd.DataFrame(
        {
            "zipf_mean": [s[0] for s in stats],
            "zipf_min": [s[1] for s in stats],
            "n_words": pd.array([s[2] for s in stats], dtype="Int64"),
        }
    )
    homonyms, hprov = homonym_counts(cfg, refs)
    out["homonyms"] = pd.array(homonyms, dtype="Int64")
    wf = {
        "source": "wordfreq zipf_frequency of wordfreq.tokenize(label_clean, 'en'), wordlist 'best'",
        "version": package_versions(("wordfreq",))["wordfreq"],
        "time_utc": utc_now(),
    }
    return out, {"zipf_mean": wf, "zipf_min": wf, "n_words": wf, "homonyms": hprov}


# --------------------------------------------------------------------------------------------
# Popularity: page views
# --------------------------------------------------------------------------------------------


class PageviewsUnavailable(RuntimeError):
    """Page views were asked for from the cache, and the cache lacks some responses."""


def _cache_file(cfg, url: str) -> Path:
    return cfg.path("cache", "http", hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".json")


def _cached_get(cfg, url: str, name: str, mode: str, sleep, stats: dict[str, int]) -> dict[str, Any] | None:
    """The cached response of ``url`` (fetched first in ``online`` mode); None when missing in ``cache``.

    A response is ``{"status": int, "body": parsed JSON or None}``; a 404 is cached like any answer.
    """
    path = _cache_file(cfg, url)
    if path.is_file():
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("url") == url:
            stats["cached"] += 1
            return record
    if mode == "cache":
        return None
    try:
        body = sparql.http_get(
            url, None, policy=cfg.collection.http, name=name, parse=json.loads, sleep=sleep
        )
        record = {"url": url, "status": 200, "retrieved_utc": utc_now(), "body": body}
    except sparql.RequestFailed as exc:
        if exc.status != 404:
            raise
        record = {"url": url, "status": 404, "retrieved_utc": utc_now(), "body": None}
    atomic_write_json(path, record)
    stats["fetched"] += 1
    return record


def _article_titles(
    cfg, qids: list[str], mode: str, sleep, stats, missing: list[str]
) -> dict[str, str | None]:
    p = cfg.correlates.pageviews
    titles: dict[str, str | None] = {}
    for k in range(0, len(qids), 50):
        chunk = sorted(qids[k : k + 50])
        params = {
            "action": "wbgetentities",
            "ids": "|".join(chunk),
            "props": "sitelinks",
            "sitefilter": p.site,
            "format": "json",
        }
        url = f"{p.wikidata_api}?{urllib.parse.urlencode(params)}"
        record = _cached_get(cfg, url, f"sitelinks_{k // 50:03d}", mode, sleep, stats)
        if record is None:
            missing.append(url)
            continue
        entities = (record.get("body") or {}).get("entities", {})
        for q in chunk:
            link = entities.get(q, {}).get("sitelinks", {}).get(p.site)
            titles[q] = link.get("title") if isinstance(link, dict) else None
    return titles


def fetch_pageviews(
    cfg, refs, *, sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print
) -> tuple[Any, dict[str, Any]] | None:
    """Wikipedia page views per reference (``correlates.pageviews``), or None when ``mode: off``.

    Each reference's article is its ``site`` sitelink (Wikidata ``wbgetentities``); its views are
    the sum of the monthly views from ``start`` to ``end`` (REST ``per-article``).  A reference
    without an article, or whose article the API does not know (404), gets NA.  Requests send
    ``collection.http.user_agent`` and follow its retry policy.

    Raises:
        PageviewsUnavailable: ``mode: cache`` and some responses are not cached (lists them).
        RequestFailed: ``mode: online`` and a request failed for good (network, 5xx, ...).
    """
    import pandas as pd

    p = cfg.correlates.pageviews
    if p.mode == "off":
        return None
    stats = {"cached": 0, "fetched": 0}
    missing: list[str] = []
    qids = list(refs["qid"])
    titles = _article_titles(cfg, qids, p.mode, sleep, stats, missing)
    views: list[Any] = []
    no_article = 0
    for q in qids:
        title = titles.get(q)
        if title is None:
            no_article += q in titles
            views.append(pd.NA)
            continue
        article = urllib.parse.quote(title.replace(" ", "_"), safe="")
        url = f"{p.api}/{p.project}/{p.access}/{p.agent}/{article}/monthly/{p.start}00/{p.end}00"
        record = _cached_get(cfg, url, f"pageviews_{q}", p.mode, sleep, stats)
        if record is None:
            missing.append(url)
            views.append(pd.NA)
        elif record["status"] == 404 or not record.get("body"):
            views.append(pd.NA)
        else:
            views.append(int(sum(int(item.get("views", 0)) for item in record["body"].get("items", []))))
    if missing:
        raise PageviewsUnavailable(
            f"correlates.pageviews.mode is 'cache' and {len(missing)} response(s) are not cached under "
            f"{_cache_file(cfg, 'x').parent} (first: {missing[0]}); run once with mode 'online' "
            "(needs the network) or set mode 'off'"
        )
    prov = {
        "source": f"Wikimedia REST API per-article page views ({p.api})",
        "project": p.project,
        "access": p.access,
        "agent": p.agent,
        "start": p.start,
        "end": p.end,
        "article": f"{p.site} sitelink via {p.wikidata_api}",
        "mode": p.mode,
        "responses_cached": stats["cached"],
        "responses_fetched": stats["fetched"],
        "references_without_article": no_article,
        "user_agent": cfg.collection.http.user_agent,
        "time_utc": utc_now(),
    }
    log(f"page views: {stats['fetched']} fetched, {stats['cached']} from the cache")
    return pd.array(views, dtype="Int64"), prov


# --------------------------------------------------------------------------------------------
# The features table
# --------------------------------------------------------------------------------------------


def _log10_1p(values) -> np.ndarray:
    v = np.asarray(values, dtype="float64")
    return np.log10(1.0 + v)


def build_features(
    cfg,
    frequency: FrequencyCounts | None = None,
    *,
    write: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
):
    """The features table: one row per reference of stage 01, every feature of the module docstring.

    Args:
        cfg: the study config.
        frequency: caption counts (default: :func:`frequency_counts`).
        write: also write it to :func:`features_table_path`, with per-column provenance.

    Returns:
        The table; ``df.attrs["columns"]`` holds each column's provenance.
    """
    import pandas as pd

    refs = read_table(cfg.references_table).reset_index(drop=True)
    ref_prov = refs.attrs.get("provenance", {})
    frequency = frequency if frequency is not None else frequency_counts(cfg, log=log)
    out = refs[["slug", "qid", "kind", "label_clean"]].copy()
    columns: dict[str, dict[str, Any]] = {}

    if frequency.table is not None:
        counts = refs[["slug"]].merge(frequency.table, on="slug", how="left")
        for col in ("caption_count", "exact_caption_count"):
            out[col] = counts[col].astype("Int64").to_numpy()
            out[f"{col}_log10"] = _log10_1p(
                out[col].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            )
            columns[col] = dict(frequency.provenance)
            columns[f"{col}_log10"] = {**frequency.provenance, "transform": f"log10(1 + {col})"}

    unique, uprov = uniqueness_features(cfg, refs)
    for col in unique.columns:
        out[col] = unique[col].to_numpy()
    columns.update(uprov)

    stage01 = {
        "source": "stage 01 references table",
        "table": cfg.relative(cfg.references_table),
        "endpoint": ref_prov.get("collection", {}).get("endpoint"),
        "created_utc": ref_prov.get("created_utc"),
    }
    out["sitelinks"] = refs["sitelinks"].astype("Int64").to_numpy()
    sl = out["sitelinks"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
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

    views = fetch_pageviews(cfg, refs, sleep=sleep, log=log)
    if views is not None:
        out["pageviews"] = pd.array(views[0], dtype="Int64")
        out["pageviews_log10"] = _log10_1p(
            out["pageviews"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        )
        columns["pageviews"] = views[1]
        columns["pageviews_log10"] = {**views[1], "transform": "log10(1 + pageviews)"}

    out.attrs["columns"] = columns
    if write:
        write_table(out, features_table_path(cfg), cfg, columns=columns, correlates=_section(cfg))
        log(
            f"{len(out)} references, {len(columns)} feature columns -> {cfg.relative(features_table_path(cfg))}"
        )
    return out


def _section(cfg) -> dict[str, Any]:
    return cfg.section_dump("correlates")["correlates"]


def column_provenance(features) -> Any:
    """The per-column provenance of a features table (from ``attrs``) as a small DataFrame."""
    import pandas as pd

    cols = features.attrs.get("columns") or features.attrs.get("provenance", {}).get("columns", {})
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


# --------------------------------------------------------------------------------------------
# Scores joined with features
# --------------------------------------------------------------------------------------------


def analysis_table(cfg, features=None, scores=None):
    """Per-reference scores of ``correlates.variant`` joined with the features (one row per model x reference).

    Raises:
        ValueError: the scores have no row for the configured variant (the message lists those they have).
    """
    from iconicity_utils.score.scoring import PER_REFERENCE

    features = features if features is not None else read_table(features_table_path(cfg))
    scores = scores if scores is not None else read_table(cfg.results_dir / PER_REFERENCE)
    variant = cfg.correlates.variant
    have = sorted(set(scores["variant"]))
    part = scores[scores["variant"] == variant]
    if part.empty:
        raise ValueError(
            f"no per-reference scores for variant {variant!r} (correlates.variant); the scores have {have}"
        )
    keep = ["model", "variant", "slug", "kind", "n_images", "n_recognised", *CORRELATE_OUTCOMES]
    feats = features.drop(columns=[c for c in ("kind", "note") if c in features.columns])
    data = part[keep].merge(feats, on="slug", how="inner", validate="many_to_one")
    data.attrs = {}
    return data.reset_index(drop=True)


def _floats(series) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


# --------------------------------------------------------------------------------------------
# Spearman with bootstrap CIs and BH
# --------------------------------------------------------------------------------------------


def spearman_ci(
    x, y, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float, float, int]:
    """Spearman ρ of paired values, scipy's p-value and a percentile bootstrap CI.

    Pairs with a NaN are left out.  The resamples are ``default_rng(seed).integers(0, n,
    (n_bootstrap, n))``, those of ``scipy.stats.bootstrap(..., paired=True, method="percentile")``,
    and the interval is scipy's (tested); a resample whose x or y is constant has no ρ and is
    left out (scipy would return NaN for the whole interval).

    Returns:
        ``(rho, p, ci_low, ci_high, n)``; NaNs when n < 3 or x or y is constant.
    """
    from scipy import stats

    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(x.size)
    nan = float("nan")
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return nan, nan, nan, nan, n
    res = stats.spearmanr(x, y)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_b = (rx * ry).sum(axis=1) / den
    rho_b = rho_b[np.isfinite(rho_b)]
    alpha = (1 - level) / 2
    low, high = np.quantile(rho_b, [alpha, 1 - alpha]) if rho_b.size else (nan, nan)
    return float(res.statistic), float(res.pvalue), float(low), float(high), n


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``); NaN stays NaN."""
    from scipy import stats

    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


SPEARMAN_COLUMNS = [
    "outcome", "model", "variant", "kind", "feature", "n", "rho", "p", "p_bh", "ci_low", "ci_high",
    "n_bootstrap", "seed", "ci_level", "bh_family", "note",
]  # fmt: skip


def spearman_table(cfg, data, features: Sequence[str] | None = None):
    """Spearman ρ of every feature with every outcome, per model and kind (``static``, ``dynamic``, ``all``).

    ``features`` defaults to ``correlates.spearman_features``; features the table lacks (e.g.
    page views when they are off, counts for ``source: none``) are left out.  ``p_bh`` is
    Benjamini-Hochberg-adjusted over ``correlates.bh_family`` (every ρ of one outcome, or all).
    """
    import pandas as pd

    c = cfg.correlates
    wanted = list(features) if features is not None else list(c.spearman_features)
    feats = [f for f in wanted if f in data.columns and not data[f].isna().all()]
    rows = []
    for outcome in c.outcomes:
        for model in _ordered(data["model"], cfg.models):
            for scope in SCOPES:
                part = data[data["model"] == model]
                if scope != "all":
                    part = part[part["kind"] == scope]
                if part.empty:
                    continue
                y = _floats(part[outcome])
                for feat in feats:
                    x = _floats(part[feat])
                    rho, p, lo, hi, n = spearman_ci(x, y, c.n_bootstrap, c.bootstrap_seed, c.ci_level)
                    note = ""
                    if np.isnan(rho):
                        ok = ~(np.isnan(x) | np.isnan(y))
                        note = (
                            "fewer than 3 references"
                            if n < 3
                            else f"{OUTCOME_LABELS[outcome]} is constant"
                            if np.all(y[ok] == y[ok][0])
                            else f"{feat} is constant"
                        )
                    rows.append(
                        {
                            "outcome": outcome, "model": model, "variant": c.variant, "kind": scope, "feature": feat,
                            "n": n, "rho": rho, "p": p, "ci_low": lo, "ci_high": hi, "n_bootstrap": c.n_bootstrap,
                            "seed": c.bootstrap_seed, "ci_level": c.ci_level, "bh_family": c.bh_family, "note": note,
                        }
                    )  # fmt: skip
    table = pd.DataFrame(rows, columns=[col for col in SPEARMAN_COLUMNS if col != "p_bh"])
    table["p_bh"] = np.nan
    if len(table):
        groups = (
            [np.arange(len(table))] if c.bh_family == "all" else table.groupby("outcome").indices.values()
        )
        for idx in groups:
            table.loc[table.index[idx], "p_bh"] = bh_adjust(table["p"].to_numpy()[idx])
    table.attrs["left_out"] = [f for f in wanted if f not in feats]
    return table[SPEARMAN_COLUMNS]


def _ordered(values, preferred: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(values))
    return [m for m in preferred if m in present] + sorted(m for m in present if m not in preferred)


# --------------------------------------------------------------------------------------------
# Binomial GLM with VIFs
# --------------------------------------------------------------------------------------------


def vif(design, columns: Sequence[str]) -> dict[str, float]:
    """Variance inflation factors of ``columns`` of a design DataFrame (which holds the constant).

    statsmodels' ``variance_inflation_factor``: ``1 / (1 - R²)`` of each column regressed on all
    the others.
    """
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    values = design.to_numpy(dtype="float64")
    names = list(design.columns)
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in columns:
            out[col] = float(variance_inflation_factor(values, names.index(col)))
    return out


GLM_COLUMNS = [
    "fit", "model", "variant", "term", "coef", "se", "z", "p", "ci_low", "ci_high", "vif",
    "predictor_mean", "predictor_sd", "n_refs", "n_rows", "n_images", "n_recognised", "converged",
    "ci_level", "note",
]  # fmt: skip


def _glm_fit(part, predictors: Sequence[str], dummies: dict[str, Any], level: float) -> list[dict[str, Any]]:
    """One binomial GLM of ``n_recognised`` out of ``n_images``; one row per term."""
    import pandas as pd
    import statsmodels.api as sm

    notes: list[str] = []
    usable = []
    for p in predictors:
        if p not in part.columns or part[p].isna().all():
            notes.append(f"{p}: no values, left out")
        else:
            usable.append(p)
    frame = part.copy()
    for p in usable:
        frame[p] = _floats(frame[p])
    complete = frame.dropna(subset=usable) if usable else frame
    if len(complete) < len(frame):
        notes.append(f"{len(frame) - len(complete)} row(s) with a missing predictor left out")
    kept = []
    for p in usable:
        if complete[p].nunique() < 2:
            notes.append(f"{p}: constant, left out")
        else:
            kept.append(p)
    means = {p: float(complete[p].mean()) for p in kept}
    sds = {p: float(complete[p].std(ddof=1)) for p in kept}
    design = pd.DataFrame({"const": np.ones(len(complete))}, index=complete.index)
    for p in kept:
        design[p] = (complete[p] - means[p]) / sds[p]
    for name, column in dummies.items():
        values = column.loc[complete.index].astype("float64")
        if values.nunique() > 1:
            design[name] = values
    succ = complete["n_recognised"].to_numpy(dtype="float64")
    trials = complete["n_images"].to_numpy(dtype="float64")
    base = {
        "n_refs": int(complete["slug"].nunique()) if len(complete) else 0,
        "n_rows": len(complete),
        "n_images": int(trials.sum()),
        "n_recognised": int(succ.sum()),
        "ci_level": level,
    }
    terms = list(design.columns)

    def empty(reason: str) -> list[dict[str, Any]]:
        return [
            {**base, "term": t, "converged": False, "note": "; ".join([*notes, reason]),
             "predictor_mean": means.get(t, np.nan), "predictor_sd": sds.get(t, np.nan)}
            for t in terms
        ]  # fmt: skip

    if len(complete) <= len(terms):
        return empty(f"{len(complete)} rows for {len(terms)} terms: not estimable")
    if succ.sum() == 0 or succ.sum() == trials.sum():
        return empty(
            "outcome constant: " + ("no image recognised" if succ.sum() == 0 else "every image recognised")
        )
    endog = np.column_stack([succ, trials - succ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = sm.GLM(endog, design, family=sm.families.Binomial()).fit()
        except (np.linalg.LinAlgError, ValueError) as exc:
            return empty(f"fit failed: {type(exc).__name__}: {exc}")
    notes += sorted(
        {f"{type(w.message).__name__}: {w.message}" for w in caught if issubclass(w.category, Warning)}
    )
    ci = res.conf_int(alpha=1 - level)
    vifs = vif(design, [t for t in terms if t != "const"]) if len(terms) > 2 else {t: 1.0 for t in terms[1:]}
    rows = []
    for t in terms:
        rows.append(
            {
                **base, "term": t, "coef": float(res.params[t]), "se": float(res.bse[t]), "z": float(res.tvalues[t]),
                "p": float(res.pvalues[t]), "ci_low": float(ci.loc[t, 0]), "ci_high": float(ci.loc[t, 1]),
                "vif": vifs.get(t, np.nan), "predictor_mean": means.get(t, np.nan), "predictor_sd": sds.get(t, np.nan),
                "converged": bool(res.converged), "note": "; ".join(notes),
            }
        )  # fmt: skip
    return rows


def glm_table(cfg, data):
    """Binomial GLMs of recognised images out of n: one per model, and one pooled with model effects.

    Predictors are ``correlates.glm.predictors``, each standardised over the rows of its fit
    (``predictor_mean`` and ``predictor_sd`` undo it); ``kind_static`` (1 for static references)
    joins when ``correlates.glm.kind_effect`` is set; the pooled fit adds ``model_<id>`` indicators
    against the first model.  Rows with a missing predictor are left out, and ``note`` says how many.
    """
    import pandas as pd

    g = cfg.correlates.glm
    models = _ordered(data["model"], cfg.models)
    rows = []
    kind = {"kind_static": (data["kind"] == "static").astype(int)} if g.kind_effect else {}
    for model in models:
        part = data[data["model"] == model]
        for r in _glm_fit(part, g.predictors, {k: v.loc[part.index] for k, v in kind.items()}, g.ci_level):
            rows.append({"fit": "per_model", "model": model, "variant": cfg.correlates.variant, **r})
    if len(models) > 1:
        dummies = {f"model_{m}": (data["model"] == m).astype(int) for m in models[1:]}
        for r in _glm_fit(data, g.predictors, {**kind, **dummies}, g.ci_level):
            rows.append({"fit": "pooled", "model": "pooled", "variant": cfg.correlates.variant, **r})
    table = pd.DataFrame(rows)
    for col in GLM_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    return table[GLM_COLUMNS]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_rho_heatmap(spearman, kind: str = "all", outcomes: Sequence[str] | None = None):
    """Spearman ρ as a model x feature heatmap, one panel per outcome; ``*`` marks p_bh < 0.05."""
    plt = _plt()
    part = spearman[spearman["kind"] == kind]
    outcomes = [o for o in (outcomes or list(dict.fromkeys(part["outcome"])))]
    feats = list(dict.fromkeys(part["feature"]))
    models = list(dict.fromkeys(part["model"]))
    fig, axes = plt.subplots(
        1, max(1, len(outcomes)), figsize=(1.0 + 0.9 * len(feats) * max(1, len(outcomes)), 2.9 + 0.45 * len(models)),
        squeeze=False,
    )  # fmt: skip
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#dddddd")
    image = None
    for ax, outcome in zip(axes[0], outcomes, strict=False):
        d = part[part["outcome"] == outcome]
        grid = d.pivot_table(index="model", columns="feature", values="rho", aggfunc="first", dropna=False)
        grid = grid.reindex(index=models, columns=feats)
        sig = d.pivot_table(index="model", columns="feature", values="p_bh", aggfunc="first", dropna=False)
        sig = sig.reindex(index=models, columns=feats)
        image = ax.imshow(
            np.ma.masked_invalid(grid.to_numpy(dtype=float)), cmap=cmap, vmin=-1, vmax=1, aspect="auto"
        )
        for i in range(len(models)):
            for j in range(len(feats)):
                v, q = grid.iat[i, j], sig.iat[i, j]
                text = (
                    "n/a"
                    if not np.isfinite(v)
                    else f"{v:+.2f}" + ("*" if np.isfinite(q) and q < 0.05 else "")
                )
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
        ns = d["n"].to_numpy()
        n_text = (
            f"n = {int(ns.min())}"
            if len(ns) and ns.min() == ns.max()
            else f"n = {int(ns.min())}-{int(ns.max())}"
        )
        ax.set_title(f"{OUTCOME_LABELS.get(outcome, outcome)} ({kind}; {n_text} references)", fontsize=9)
        ax.set_xticks(range(len(feats)), feats, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.grid(False)
    fig.subplots_adjust(top=0.86, bottom=0.42, wspace=0.35)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="Spearman ρ")
    fig.text(
        0.01, 0.01, "Spearman ρ per model and feature; * BH-adjusted p < 0.05; grey: undefined (see the table's note)",
        fontsize=8, ha="left", va="bottom",
    )  # fmt: skip
    return fig


def plot_outcome_vs_feature(data, feature: str, outcome: str = "cra"):
    """One point per (model, reference): ``outcome`` against ``feature``, with a least-squares line per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    if feature not in data.columns or outcome not in data.columns:
        missing = feature if feature not in data.columns else outcome
        ax.text(0.5, 0.5, f"{missing} was not computed in this run (n = 0)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for model in list(dict.fromkeys(data["model"])):
        d = data[data["model"] == model]
        x, y = _floats(d[feature]), _floats(d[outcome])
        ok = ~(np.isnan(x) | np.isnan(y))
        points = ax.scatter(x[ok], y[ok], s=18, alpha=0.7, label=f"{model} (n={int(ok.sum())})")
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            slope, intercept = np.polyfit(x[ok], y[ok], 1)
            xs = np.linspace(x[ok].min(), x[ok].max(), 50)
            ax.plot(xs, intercept + slope * xs, color=points.get_facecolor()[0], lw=1.5)
    ax.set(
        xlabel=FEATURE_LABELS.get(feature, feature),
        ylabel=OUTCOME_LABELS.get(outcome, outcome),
        title=f"{OUTCOME_LABELS.get(outcome, outcome)} against {feature} (lines: least squares per model)",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_glm_coefficients(glm, terms: Sequence[str] | None = None):
    """Standardised GLM coefficients with their CIs, one row per predictor and one colour per fit."""
    plt = _plt()
    fits = list(dict.fromkeys(glm["model"]))
    predictors = terms or [
        t for t in dict.fromkeys(glm["term"]) if t != "const" and not t.startswith("model_")
    ]
    fig, ax = plt.subplots(figsize=(6.8, 1.4 + 0.55 * max(1, len(predictors))))
    height = 0.8 / max(1, len(fits))
    notes = []
    for k, fit in enumerate(fits):
        d = glm[(glm["model"] == fit)].set_index("term").reindex(predictors)
        ypos = np.arange(len(predictors)) + (k - (len(fits) - 1) / 2) * height
        coef = d["coef"].to_numpy(dtype=float)
        err = np.vstack([coef - d["ci_low"].to_numpy(dtype=float), d["ci_high"].to_numpy(dtype=float) - coef])
        n_rows = glm.loc[glm["model"] == fit, "n_rows"].max()
        ax.errorbar(
            coef, ypos, xerr=np.nan_to_num(err), fmt="o", capsize=3, label=f"{fit} (n={int(n_rows)} rows)"
        )
        if not np.isfinite(coef).any():
            notes.append(f"{fit}: {str(glm.loc[glm['model'] == fit, 'note'].iloc[0]).split('; ')[-1]}")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(predictors)), predictors, fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel="log-odds per SD of the predictor (kind_static: static vs dynamic); Wald CI",
        title="Binomial GLM of recognised images out of n",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="best")
    if notes:
        ax.text(
            0.5, 0.5, "not estimable:\n" + "\n".join(notes), transform=ax.transAxes, fontsize=8,
            ha="center", va="center", color="#b00020", bbox={"facecolor": "white", "edgecolor": "#b00020"},
        )  # fmt: skip
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Front door
# --------------------------------------------------------------------------------------------


@dataclass
class CorrelatesResult:
    """Everything stage 06 computed, and where it was written."""

    frequency: FrequencyCounts
    features: Any
    data: Any
    spearman: Any
    glm: Any
    paths: dict[str, Path]
    seconds: float

    def summary(self) -> str:
        n_refs = self.data["slug"].nunique() if len(self.data) else 0
        return (
            f"{len(self.features)} references with features, {n_refs} scored "
            f"({', '.join(dict.fromkeys(self.data['model']))}); {len(self.spearman)} Spearman rows, "
            f"{len(self.glm)} GLM rows; {self.seconds:.1f} s"
        )


def run(
    cfg,
    frequency: FrequencyCounts | None = None,
    *,
    workers: int | None = None,
    log: Callable[[str], None] = print,
) -> CorrelatesResult:
    """Stage 06 end to end: counts, features, the joined table, Spearman and GLM tables (all written).

    Args:
        cfg: the study config.
        frequency: caption counts already read (default: :func:`frequency_counts`).
        workers: caption-scan processes (default: ``correlates.frequency.workers``).
    """
    t0 = time.perf_counter()
    freq = frequency if frequency is not None else frequency_counts(cfg, workers=workers, log=log)
    features = build_features(cfg, freq, log=log)
    data = analysis_table(cfg, features)
    spearman = spearman_table(cfg, data)
    glm = glm_table(cfg, data)
    section = _section(cfg)
    paths = {
        "features": features_table_path(cfg),
        "spearman": write_table(spearman, cfg.results_dir / SPEARMAN_TABLE, cfg, correlates=section),
        "glm": write_table(glm, cfg.results_dir / GLM_TABLE, cfg, correlates=section),
    }
    return CorrelatesResult(freq, features, data, spearman, glm, paths, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.correlates.correlates --config FILE [--workers N]``: write the stage 06 tables."""
    from iconicity_utils.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.correlates.correlates", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="caption-scan processes (default: config)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    try:
        result = run(cfg, workers=args.workers)
    except (
        FileNotFoundError,
        ValueError,
        caption_counts.IncompleteScan,
        PageviewsUnavailable,
        sparql.RequestFailed,
    ) as exc:
        print(f"stage 06 failed: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
