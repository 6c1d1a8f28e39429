"""Popularity for stage 06: Wikipedia page views per reference, from a cached HTTP client.

Page views (:func:`fetch_pageviews`) come from the Wikimedia REST API, online only, with the
collection's User-Agent and retry policy (``collection.http``); every response (a 404 too) is
cached under ``<cache>/http/``.  ``correlates.pageviews.mode: cache`` uses the cache alone and fails,
saying which responses are missing, when it lacks one; ``off`` skips page views.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from iconicity_utils.core.http import RequestFailed, http_get
from iconicity_utils.core.io import atomic_write_json, utc_now

__all__ = ["PageviewsUnavailable", "fetch_pageviews"]


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
        body = http_get(url, None, policy=cfg.collection.http, name=name, parse=json.loads, sleep=sleep)
        record = {"url": url, "status": 200, "retrieved_utc": utc_now(), "body": body}
    except RequestFailed as exc:
        if exc.status != 404:
            raise
        record = {"url": url, "status": 404, "retrieved_utc": utc_now(), "body": None}
    atomic_write_json(path, record)
    stats["fetched"] += 1
    return record


def _article_titles(
    cfg, qids: list[str], mode: str, sleep, stats, missing: list[str]
) -> dict[str, str | None]:
    """Each item's article title on ``correlates.pageviews.site`` (None: no article), 50 items a request."""
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


def _views(cfg, qids: list[str], titles: dict[str, str | None], sleep, stats, missing: list[str]):
    """``(views per item, items without an article)``: the monthly views summed, NA when unknown."""
    p = cfg.correlates.pageviews
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
    return views, no_article


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
    p = cfg.correlates.pageviews
    if p.mode == "off":
        return None
    stats = {"cached": 0, "fetched": 0}
    missing: list[str] = []
    qids = list(refs["qid"])
    titles = _article_titles(cfg, qids, p.mode, sleep, stats, missing)
    views, no_article = _views(cfg, qids, titles, sleep, stats, missing)
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
