"""Stage 01: collect the cultural references from Wikidata, and their reference images (docs/method.md §1).

This module is the stage's front door; the querying side is :mod:`~iconicity_utils.collect.querying`
(query text in :mod:`~iconicity_utils.collect.queries`, parsing in :mod:`~iconicity_utils.collect.parse`,
labels and slugs in :mod:`~iconicity_utils.collect.labels`, raw responses in
:mod:`~iconicity_utils.collect.recording`), the image side (Commons downloads, user stills, pHash
dedup, the per-image table) is :mod:`iconicity_utils.collect.reference_images`.

One front door, :func:`collect_references` (and ``python -m iconicity_utils collect --config
configs/demo.yaml [--use-saved-responses]``).  It:

1. queries a SPARQL endpoint (``collection.endpoint``) with the polite client of
   :mod:`iconicity_utils.collect.sparql`.  ``endpoint: local`` starts the demo's ``oxigraph`` server
   from PyPI (the ``sparql_endpoint`` provider ``local``) over ``collection.snapshot`` (a hand-written snapshot in Wikidata's vocabulary) on
   127.0.0.1 and stops it afterwards; the paper config queries https://query.wikidata.org/sparql.
   The same query text runs on both (every PREFIX declared, labels from ``rdfs:label`` /
   ``schema:description`` with LANG filters, never ``SERVICE wikibase:label``, a stable ORDER BY
   with LIMIT/OFFSET paging);
2. saves every raw response (query name and text, endpoint, UTC time, SPARQL-JSON) under
   ``<data>/raw/<run>/sparql/``; ``--use-saved-responses`` rebuilds the table from the latest
   complete run (one with a ``manifest.json``) without any network, and refuses a saved
   response whose query text differs from the one the config now produces;
3. builds the references table and writes it with :func:`iconicity_utils.core.io.write_table`;
4. puts the reference images in place (``cfg.reference_dir(kind, slug)``) with
   :func:`iconicity_utils.collect.reference_images.collect_reference_images` and writes the per-image
   table beside the references table;
5. with ``collection.controls``, does 3-4 for the matched non-iconic controls
   (:mod:`iconicity_utils.collect.controls`): ``cfg.controls_table`` and
   ``<data>/processed/control_images.parquet``.  Both tables are rewritten whole on every run;
   with controls off, stale control tables are removed.

Queries
-------
- ``candidates_<kind>_pNNN``: items that are an instance (``wdt:P31``) of one of the kind's classes
  (static: painting Q3305213 plus ``collection.static_classes``; dynamic: film Q11424 and
  television series Q5398426), with ``wikibase:sitelinks >= collection.min_sitelinks`` (static
  ones must also have a P18 image), ranked by sitelinks (``ORDER BY DESC(?sitelinks)
  ASC(STR(?item))``), paged by ``collection.page_size`` until ``top_k_<kind>`` usable items are in.
- ``properties_cNNN_pNNN``: for chunks of the selected items, one row per value of creator
  (P170), director (P57), inception (P571), publication date (P577), image (P18), depicts (P180),
  genre (P136) and main subject (P921), with the value's English label.  One row per value means
  no cross product between multi-valued properties.
- ``subjects_cNNN_pNNN``: for chunks of the depicts (P180) and main subject (P921) values, their
  ``wdt:P31`` and ``wdt:P279`` values: which are classes (:mod:`iconicity_utils.collect.subjects`).
- ``aliases_cNNN_pNNN``: for chunks of the selected items, English ``skos:altLabel`` values and
  titles (P1476, any language).
- ``homonyms_cNNN``: how many items of the endpoint carry exactly each selected English label
  (a textual-uniqueness measure for stage 06).  Labels enter this query as escaped string
  literals (:func:`iconicity_utils.collect.sparql.string_literal`); class ids are validated QIDs.
- with ``collection.controls``: ``controls_<class>_<genre>_pNNN`` (works of that class and genre
  with at most ``controls_max_sitelinks``), then ``control_properties_...``,
  ``control_subjects_...``, ``control_aliases_...`` and ``control_homonyms_...`` for the controls.

References table (``cfg.references_table``), one row per reference
------------------------------------------------------------------
==========================  ==========================================================================
``qid``                     Wikidata item id (``"Q45585"``), unique
``label``                   the English ``rdfs:label`` as stored on Wikidata
``label_clean``             the base prompt: NFC, control characters and runs of white space collapsed,
                            surrounding quotes and a trailing disambiguator such as ``" (1927 film)"``
                            removed
``slug``                    unique, filesystem-safe folder name (see :func:`slugify`, :func:`assign_slugs`)
``kind``                    ``"static"`` or ``"dynamic"``
``class_qid``               the class it was selected by (the first of its classes in config order)
``rank``                    1-based rank by sitelinks within its kind
``creator``                 English labels of the creators, ``"; "``-joined (static: P170; dynamic:
                            director P57, else creator P170); None when there is none with a label
``creator_qids``            list of their QIDs (also those without an English label)
``year``                    Int64; earliest year of inception P571 (static) or publication date P577
                            (dynamic), falling back on the other property; None when absent
``sitelinks``               int, ``wikibase:sitelinks``
``image_file``              P18 Commons file name (first in sorted order when several), or None
``image_url``               its ``https://commons.wikimedia.org/wiki/Special:FilePath/...`` URL, or None
``depicts``                 list of English labels of P180 values (sorted, unique; unlabelled values left out)
``genre``                   same for P136
``main_subject``            same for P921
``depicts_classes``         list; English labels of the P180 values that are classes (a P279
                            statement and not an instance of human), sorted, unique: what a
                            literal description may name (docs/method.md §1.5)
``main_subject_classes``    same for P921
``named_subjects``          list; every P180 / P921 value left out, as ``"Darth Vader (Q51752:
                            fictional character)"`` (``human``, ``fictional character`` or
                            ``individual``), sorted, unique
``aliases``                 list; English ``skos:altLabel`` values and P1476 titles (any
                            language), cleaned like ``label_clean``, sorted, unique, none equal
                            (casefold) to ``label_clean`` (stage 06 counts them)
``description``             English ``schema:description`` or None
``label_homonyms``          Int64; items in the endpoint whose English label equals ``label`` (>= 1;
                            None for a label holding a ``\\u`` sequence, which no query can carry portably)
``title_shared``            bool; another reference in this table has the same ``label_clean``
``n_before``                Int64; candidate reference images found (static: 1 when there is a P18 file)
``n_kept``                  Int64; reference images in ``reference_dir`` (used for scoring)
``n_removed``               Int64; near-duplicates removed by pHash (dynamic), else 0
``reference_dir``           the folder of its reference images, relative to the project root
``note``                    the stand-in label, for synthetic-image configs (added by ``write_table``)
==========================  ==========================================================================

Controls table (``cfg.controls_table``, ``collection.controls``), one row per matched control
--------------------------------------------------------------------------------------------
The references table's columns (``rank``: order within its kind in this table; ``title_shared``:
its title is another control's or a reference's), then ``control_for`` (the slug of the
reference it is matched to) and ``matched_genre`` (the English label of the shared genre).
Slugs are unique across both tables.  Rules: :mod:`iconicity_utils.collect.controls`.

``n_before`` ... ``reference_dir`` are filled by :mod:`iconicity_utils.collect.reference_images`, which
also describes the per-image table ``<data>/processed/reference_images.parquet``.

Edge cases (each has a test in ``tests/test_collection.py`` or ``tests/test_reference_images.py``)
-------------------------------------------------------------------------------------------------
- **Shared titles** (Manet's *Olympia* and Riefenstahl's *Olympia*): both are kept; every
  reference whose base slug is shared gets ``_<qid>`` appended (``olympia_q737062``), so slugs
  are unique and never depend on which work came first.  ``title_shared`` marks them.
- **Hostile labels** (unicode, ``/``, ``..``, leading dots, quotes, braces, newlines): slugs keep
  only ``[a-z0-9_]``, so a slug is one path component;
  :func:`~iconicity_utils.collect.reference_images.reference_dir_checked` also verifies that the resolved
  folder lies inside the data folder.  A label that slugs to nothing (e.g. ``七人の侍``) gets its
  QID as slug.  In queries, labels are escaped literals.
- **Missing optional fields** (creator, date, image, description, depicts/genre/main subject):
  None or an empty list; never an error.  A dynamic reference without P18 is normal.
- **No English label**: the base prompt is the English title, so the item is skipped and listed
  in the collection report (``skipped``); the next-ranked item takes its place in the top K.
- **Empty result**: an empty table with the full schema is written and a warning is printed
  and recorded; it is not an error (the next stages then have nothing to score).
- **Malformed or truncated JSON**: retried as a transient failure, then a clear
  :class:`~iconicity_utils.core.http.RequestFailed` naming endpoint, status, query and the JSON
  error; the previous table, images and raw runs are left as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from iconicity_utils.collect import sparql
from iconicity_utils.collect.controls import CONTROL_COLUMNS
from iconicity_utils.collect.parse import REFERENCE_COLUMNS
from iconicity_utils.collect.querying import kind_classes, open_endpoint, query_study
from iconicity_utils.collect.recording import RawRecorder, RecordingClient, ReplayClient
from iconicity_utils.collect.reference_images import STATUSES, collect_reference_images, images_table_path
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.io import atomic_write_json, utc_now, write_table

__all__ = [
    "CONTROL_COLUMNS",
    "REFERENCE_COLUMNS",
    "collect_references",
    "control_images_table_path",
    "plot_distributions",
    "report_path",
]


def report_path(cfg) -> Path:
    """Where the collection report goes: ``<data>/processed/collection_report.json``."""
    return cfg.path("data", "processed", "collection_report.json")


def control_images_table_path(cfg) -> Path:
    """Where the controls' per-image table goes: ``<data>/processed/control_images.parquet``."""
    return cfg.path("data", "processed", "control_images.parquet")


def collect_references(
    cfg,
    *,
    use_saved_responses: bool | None = None,
    raw_run: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
):
    """Stage 01: query, save raw responses, build the references table, place the images.

    Args:
        cfg: the study config (its ``collection`` section decides everything).
        use_saved_responses: rebuild from saved raw responses instead of querying (default:
            ``collection.use_saved_responses``).
        raw_run: which saved run to replay (default: the latest complete one).
        sleep: the wait between retries (injectable for tests).
        log: where progress and warnings go.

    Returns:
        The references table, also written to ``cfg.references_table`` (with the per-image
        table and ``collection_report.json`` beside it).  ``df.attrs["report"]`` holds the report.
        With ``collection.controls`` the controls table goes to ``cfg.controls_table`` (its images
        to :func:`control_images_table_path`); without, stale copies of both are removed.

    Raises:
        RequestFailed: the endpoint failed for good (nothing already written is touched).
        SavedResponseError: replay asked for but no matching complete run exists.
        ValueError: a class id in the config is not a QID, or a response cannot be parsed.
    """
    t0 = time.perf_counter()
    replay = cfg.collection.use_saved_responses if use_saved_responses is None else use_saved_responses
    for kind in KINDS:
        kind_classes(cfg, kind)  # validate before any work
    if replay:
        refs, controls, report, origin = _replayed_references(cfg, raw_run, log)
    else:
        refs, controls, report, origin = _queried_references(cfg, sleep, log)
    t_query = time.perf_counter() - t0
    images, refs, missing_stills = collect_reference_images(cfg, refs, sleep=sleep, log=log)
    control_images = None
    if controls is not None:
        control_images, controls, missing_control_stills = collect_reference_images(
            cfg, controls, sleep=sleep, log=log
        )
        report["controls"]["missing_stills"] = missing_control_stills
    summary = {
        **origin,
        "replayed": bool(replay),
        "reference_images": cfg.collection.reference_images,
        "phash_threshold": cfg.collection.phash_threshold,
        "min_sitelinks": cfg.collection.min_sitelinks,
        "top_k": {"static": cfg.collection.top_k_static, "dynamic": cfg.collection.top_k_dynamic},
    }
    write_table(images, images_table_path(cfg), cfg, collection=summary)
    write_table(refs, cfg.references_table, cfg, collection=summary)
    _write_controls(cfg, controls, control_images, summary, log)
    report.update(
        summary,
        created_utc=utc_now(),
        n_images={s: int((images["status"] == s).sum()) for s in STATUSES},
        missing_stills=missing_stills,
        seconds={"query": round(t_query, 3), "total": round(time.perf_counter() - t0, 3)},
    )
    atomic_write_json(report_path(cfg), report)
    refs.attrs["report"] = report
    log(
        f"{len(refs)} references ({report['n_static']} static, {report['n_dynamic']} dynamic), "
        f"{report['n_images']['kept']} reference images -> {cfg.references_table}"
    )
    return refs


def _replayed_references(cfg, raw_run: str | None, log):
    """:func:`query_study` answered by a saved run: ``(refs, controls, report, origin)``."""
    client = ReplayClient.latest(cfg.path("data", "raw"), raw_run)
    refs, controls, report = query_study(client, cfg, log=log)
    log(f"rebuilt from saved responses {client.run_dir}")
    origin = {
        "endpoint": client.endpoint,
        "endpoint_info": client.endpoint_info,
        "raw_run": client.run_dir.name,
    }
    return refs, controls, report, origin


def _queried_references(cfg, sleep, log):
    """:func:`query_study` against the endpoint, every response saved: ``(refs, controls, report, origin)``.

    The run is marked complete only when every query has succeeded.
    """
    with open_endpoint(cfg) as (endpoint, info):
        recorder = RawRecorder(cfg.path("data", "raw"), endpoint, info)
        client = RecordingClient(sparql.SparqlClient(endpoint, cfg.collection.http, sleep), recorder)
        refs, controls, report = query_study(client, cfg, log=log)
        recorder.finish(config=cfg.name, queries=report["queries"])
    log(
        f"queried {endpoint} ({info.get('kind')}): {report['queries']} queries, raw responses in {recorder.run_dir}"
    )
    return refs, controls, report, {"endpoint": endpoint, "endpoint_info": info, "raw_run": recorder.run_id}


def _write_controls(cfg, controls, images, summary: dict, log) -> None:
    """Write the controls table and its per-image table, or remove stale ones when controls are off."""
    if controls is None:
        for path in (cfg.controls_table, control_images_table_path(cfg)):
            if path.exists():
                path.unlink()
                log(f"collection.controls is off: removed the stale {cfg.relative(path)}")
        return
    c = cfg.collection
    settings = {
        "controls_per_reference": c.controls_per_reference,
        "controls_max_sitelinks": c.controls_max_sitelinks,
    }
    write_table(images, control_images_table_path(cfg), cfg, collection={**summary, **settings})
    write_table(controls, cfg.controls_table, cfg, collection={**summary, **settings})


def plot_distributions(refs):
    """Histograms of sitelinks and of years, per kind (a matplotlib figure)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    all_years = refs["year"].dropna().astype(int).to_numpy()
    # shared bin edges, so the two kinds are comparable bar for bar
    sitelink_bins = np.histogram_bin_edges(refs["sitelinks"].to_numpy(), bins=12) if len(refs) else 12
    year_bins = np.histogram_bin_edges(all_years, bins=12) if len(all_years) else 12
    for kind in KINDS:
        part = refs[refs["kind"] == kind]
        axes[0].hist(part["sitelinks"], bins=sitelink_bins, alpha=0.6, label=f"{kind} (n={len(part)})")
        years = part["year"].dropna().astype(int)
        axes[1].hist(years, bins=year_bins, alpha=0.6, label=f"{kind} (n={len(years)} with a year)")
    axes[0].set(xlabel="Wikidata sitelinks", ylabel="references", title="Popularity (sitelinks)")
    axes[1].set(xlabel="year (P571 inception / P577 publication)", ylabel="references", title="Creation date")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
