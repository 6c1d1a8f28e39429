"""Wikimedia Commons for stage 01: what the ``imageinfo`` API says about a file, and its download.

:class:`CommonsClient` asks ``collection.commons_api`` (``prop=imageinfo&iiprop=url|extmetadata``)
and downloads the scaled file, both through the polite client of :mod:`iconicity_utils.core.http`
with the ``collection.http`` policy (shared with the SPARQL client).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iconicity_utils.config.sections import RetryPolicy
from iconicity_utils.core.http import http_get

__all__ = ["CommonsClient", "CommonsFile"]


def _strip_html(value: str | None) -> str | None:
    if not value:
        return None
    text = html.unescape(re.sub(r"<[^>]+>", " ", value))
    return " ".join(text.split()) or None


@dataclass
class CommonsFile:
    """What the Commons API says about one file."""

    file_name: str
    download_url: str
    description_url: str | None
    licence: str | None
    licence_url: str | None
    author: str | None
    raw: dict[str, Any]


class CommonsClient:
    """The Commons ``imageinfo`` API and file downloads, with the polite retry policy.

    Args:
        api: the ``api.php`` URL (``collection.commons_api``).
        policy: User-Agent, timeout and retries (``collection.http``, shared with the SPARQL client).
        sleep: the wait function between retries (injectable for tests).
    """

    def __init__(self, api: str, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep):
        self.api = api
        self.policy = policy
        self.sleep = sleep

    def describe(self, file_name: str, width: int) -> CommonsFile:
        """Look a file up (``prop=imageinfo&iiprop=url|extmetadata&iiurlwidth=width``).

        Raises:
            RequestFailed: the API could not be reached or answered malformed JSON.
            LookupError: the file does not exist on Commons, or has no URL.
        """
        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "prop": "imageinfo",
            "iiprop": "url|extmetadata",
            "iiurlwidth": str(int(width)),
            "titles": f"File:{file_name}",
        }
        data = http_get(
            self.api,
            params,
            policy=self.policy,
            name=f"imageinfo {file_name}",
            parse=json.loads,
            sleep=self.sleep,
        )
        return self._commons_file(file_name, data)

    def _commons_file(self, file_name: str, data: dict[str, Any]) -> CommonsFile:
        """The :class:`CommonsFile` of an ``imageinfo`` answer; LookupError when it has none."""
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1
            pages = list(pages.values())
        if not pages or pages[0].get("missing") or pages[0].get("invalid") or not pages[0].get("imageinfo"):
            raise LookupError(f"Commons has no file {file_name!r} (api {self.api})")
        info = pages[0]["imageinfo"][0]
        url = info.get("thumburl") or info.get("url")
        if not url:
            raise LookupError(f"Commons gave no URL for {file_name!r}")
        meta = info.get("extmetadata") or {}

        def meta_value(key: str) -> str | None:
            entry = meta.get(key)
            return entry.get("value") if isinstance(entry, dict) else None

        return CommonsFile(
            file_name=file_name,
            download_url=url,
            description_url=info.get("descriptionurl"),
            licence=_strip_html(meta_value("LicenseShortName")),
            licence_url=meta_value("LicenseUrl"),
            author=_strip_html(meta_value("Artist")),
            raw=data,
        )

    def download(self, url: str) -> bytes:
        """The bytes of ``url`` (retried as any request)."""
        return http_get(url, None, policy=self.policy, name=f"download {url}", sleep=self.sleep)
