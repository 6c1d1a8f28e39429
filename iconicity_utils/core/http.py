"""Polite HTTP: one GET that retries as a public service asks, for SPARQL, Commons and page views.

:func:`http_get` sends a descriptive User-Agent and a timeout per request through urllib3, whose
:class:`urllib3.util.Retry` does the retrying; :class:`PoliteRetry` sets it to the
``collection.http`` policy (any object with the attributes of
:class:`iconicity_utils.config.sections.RetryPolicy`):

- a 5xx (429, 500, 502, 503, 504), a timeout, a refused or dropped connection, a truncated body,
  or a body that ``parse`` refuses (a ValueError) is retried, at most ``max_retries`` times
  (``max_retries + 1`` attempts in all; redirects are followed and not counted);
- failed attempt ``k`` (0-based) waits ``min(backoff_cap_s, backoff_base_s * 2**k)``, so the
  first retry waits too (urllib3's own formula does not wait before it: never hammer);
- ``Retry-After`` (delta-seconds or an HTTP date) is honoured on 429 and 503 instead of the
  backoff; a server asking for more than ``retry_after_cap_s`` is an error, not a shorter wait
  (urllib3's ``retry_after_max`` would shorten it; the Wikidata Query Service bans clients that
  ignore it);
- any other 4xx is not retried.

The final error, :class:`RequestFailed`, names the endpoint, the HTTP status and the request name.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from urllib3.exceptions import (
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3Timeout,
)
from urllib3.util import Retry

__all__ = ["EndpointError", "PoliteRetry", "RequestFailed", "http_get", "short_text"]

T = TypeVar("T")

RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_STATUSES = frozenset((429, 503))
MAX_REDIRECTS = 10  # as urllib.request
_POOL = urllib3.PoolManager()


class EndpointError(RuntimeError):
    """An endpoint could not be set up (e.g. a local server that would not start)."""


class RequestFailed(RuntimeError):
    """A request failed for good; the message names the endpoint, the status and the request name.

    Attributes:
        endpoint: the URL that was asked.
        name: the query (or request) name.
        status: the last HTTP status, or None when no HTTP answer came (timeout, refused, ...).
        reason: what went wrong last.
        attempts: how many attempts were made.
    """

    def __init__(self, endpoint: str, name: str, status: int | None, reason: str, attempts: int):
        self.endpoint = endpoint
        self.name = name
        self.status = status
        self.reason = reason
        self.attempts = attempts
        status_text = f"HTTP {status}" if status is not None else "no HTTP status"
        super().__init__(
            f"request {name!r} to {endpoint} failed after {attempts} attempt(s): {status_text}: {reason}"
        )


class MalformedBody(Exception):
    """A body that ``parse`` refused: retried like a truncated transfer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def short_text(body: bytes | str | None, n: int = 200) -> str:
    """``body`` on one line, cut to ``n`` characters (for error messages)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


class PoliteRetry(Retry):
    """:class:`urllib3.util.Retry` with our waits: see the module docstring.

    Args:
        endpoint, name: named in the log and in a :class:`RequestFailed`.
        retry_after_cap_s: the longest ``Retry-After`` honoured.
        wait: the sleep function (tests pass a recorder so nothing really sleeps).
        log: where each retry is reported (default: stderr).
        **kw: :class:`~urllib3.util.Retry`'s own arguments.
    """

    RETRY_AFTER_STATUS_CODES = RETRY_AFTER_STATUSES

    def __init__(
        self, *, endpoint="", name="", max_failures=0, retry_after_cap_s=0.0, wait=time.sleep, log=None, **kw
    ):
        super().__init__(**kw)
        self.endpoint, self.name = endpoint, name
        self.max_failures, self.retry_after_cap_s = max_failures, retry_after_cap_s
        self.wait = wait
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    @classmethod
    def from_policy(cls, policy, endpoint: str, name: str, wait=time.sleep) -> PoliteRetry:
        """The retries of ``policy`` (``collection.http``) for one request."""
        return cls(
            endpoint=endpoint,
            name=name,
            max_failures=policy.max_retries,
            retry_after_cap_s=policy.retry_after_cap_s,
            wait=wait,
            total=None,  # failures are counted by is_exhausted, so that redirects are not retries
            redirect=MAX_REDIRECTS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=policy.backoff_base_s,
            backoff_max=policy.backoff_cap_s,
            raise_on_status=False,  # the last 5xx comes back, and its body goes into the error
            respect_retry_after_header=True,
            retry_after_max=sys.float_info.max,  # over the cap is an error, not a shorter wait
        )

    def new(self, **kw: Any) -> PoliteRetry:
        own = {"endpoint": self.endpoint, "name": self.name, "max_failures": self.max_failures}
        return super().new(
            **own, retry_after_cap_s=self.retry_after_cap_s, wait=self.wait, log=self.log, **kw
        )

    @property
    def failures(self) -> int:
        """Failed attempts so far (redirects are not failures)."""
        return sum(h.redirect_location is None for h in self.history)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self.failures > self.max_failures

    def get_backoff_time(self) -> float:
        return min(self.backoff_max, self.backoff_factor * 2 ** max(0, self.failures - 1))

    def get_retry_after(self, response) -> float | None:
        """Seconds asked by ``Retry-After`` on a 429/503; None when absent or unreadable."""
        value = response.headers.get("Retry-After") if response is not None else None
        if value is None or response.status not in RETRY_AFTER_STATUSES:
            return None
        try:
            return float(self.parse_retry_after(value))
        except InvalidHeader:
            return None

    def sleep(self, response=None) -> None:
        """Wait the server's ``Retry-After``, else the backoff; refuse a ``Retry-After`` over the cap."""
        last = self.history[-1]
        status = last.status or getattr(last.error, "status", None)
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.retry_after_cap_s:
            raise RequestFailed(
                self.endpoint,
                self.name,
                status,
                f"server asked to wait {retry_after:g} s (Retry-After), more than "
                f"retry_after_cap_s = {self.retry_after_cap_s:g} s; try again later",
                self.failures,
            )
        wait = self.get_backoff_time() if retry_after is None else retry_after
        reason = _reason(last.error) if last.error else f"{response.reason if response else ''}"
        status_text = f"HTTP {status}" if status is not None else "no status"
        self.log(f"[retry] {self.name} @ {self.endpoint}: {status_text}: {reason}; waiting {wait:g} s")
        self.wait(wait)


def _reason(error: BaseException) -> str:
    """What one failed attempt came to, in words."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, NewConnectionError):
        return f"connection failed: {error}"
    if isinstance(error, Urllib3Timeout):
        return f"timed out: {error}"
    if isinstance(error, ProtocolError):
        return f"connection error or truncated response: {error}"
    return str(error)


def _response(url: str, retry: PoliteRetry, policy, headers: Mapping[str, str]):
    """One GET with its retries; a status >= 400 or a failure for good is :class:`RequestFailed`."""
    try:
        response = _POOL.request(
            "GET", url, headers={"User-Agent": policy.user_agent, **headers},
            timeout=policy.timeout_s, retries=retry,
        )  # fmt: skip
    except MaxRetryError as exc:  # connection or body failures, every attempt
        status = getattr(exc.reason, "status", None)
        raise RequestFailed(retry.endpoint, retry.name, status, _reason(exc), retry.max_failures + 1) from exc
    if response.status >= 400:
        reason = f"{response.reason} {short_text(response.data)}".strip()
        attempts = response.retries.failures + 1 if response.retries else 1
        raise RequestFailed(retry.endpoint, retry.name, response.status, reason, attempts)
    return response


def http_get(
    url: str,
    params: Mapping[str, str] | None,
    *,
    policy,
    name: str,
    parse: Callable[[bytes], T] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    headers: Mapping[str, str] | None = None,
) -> T | bytes:
    """GET ``url?params`` politely; return the body, or ``parse(body)`` (a ValueError is retried).

    Raises:
        RequestFailed: no success within ``policy.max_retries`` retries, an error that is not
            retried (e.g. HTTP 400), or a ``Retry-After`` longer than ``policy.retry_after_cap_s``.
    """
    full = url if not params else f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
    retry = PoliteRetry.from_policy(policy, url, name, sleep)
    while True:
        response = _response(full, retry, policy, headers or {})
        if parse is None:
            return response.data
        try:
            return parse(response.data)
        except ValueError as exc:
            reason = f"malformed response ({exc}); body: {short_text(response.data)}"
            try:
                retry = response.retries.increment("GET", full, error=MalformedBody(response.status, reason))
            except MaxRetryError:
                raise RequestFailed(url, name, response.status, reason, policy.max_retries + 1) from exc
            retry.sleep()
