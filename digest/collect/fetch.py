"""HTTP only: a polite, bounded, retrying client shared by every collector.

httpx's API over aiohttp's connections (the ``httpx-aiohttp`` transport): httpx's own transport
costs about three times the CPU per request, which at a thousand feeds is the run's ceiling.
Limits in-flight requests in all and per host, sends conditional headers, caps redirects and
body size (decompressing itself so a gzip bomb is refused early), honours Retry-After and
retries transient failures with backoff. It never parses what it fetches.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base

from .. import clock
from ..config import CollectSettings
from ..errors import REMOVE_IT, FetchError, PermanentFetchError, TransientFetchError, one_line
from ..wording import plural

__all__ = ["FetchResult", "Fetcher", "default_user_agent"]

_PERMANENT_REDIRECTS = {301, 308}
_RETRY_STATUSES = {429, 502, 503, 504}


def default_user_agent(contact: str | None = None) -> str:
    """``digest/VERSION (weekly digest reader; +URL)``, the URL saying who reads: ``contact`` (the
    deployment's public address), else the project's homepage from the installed distribution's
    metadata (``[project.urls]``); no URL when neither is known, never another project's."""
    from importlib import metadata

    from .. import __version__

    url = contact
    if not url:
        try:
            urls = metadata.metadata("digest").get_all("Project-URL") or []
        except metadata.PackageNotFoundError:
            urls = []
        url = next((u.split(",", 1)[1].strip() for u in urls if u.lower().startswith("homepage,")), None)
    return f"digest/{__version__} (weekly digest reader{f'; +{url}' if url else ''})"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A fetched body. ``status`` is 200 or 304 (not modified, empty body); ``moved_to`` is set
    when every redirect on the way was permanent, so the source's URL can be updated."""

    url: str
    status: int
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    moved_to: str | None = None
    link_next: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _Inflater:
    """Decode gzip/deflate bodies incrementally, never producing more than ``limit`` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, auto-detected
        else:
            raise PermanentFetchError(f"unsupported Content-Encoding {encoding!r}")
        self.limit = limit
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            out = data
        else:
            try:
                out = self._z.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise PermanentFetchError(f"corrupt compressed body: {exc}") from None
        self.size += len(out)
        if self.size > self.limit:
            raise PermanentFetchError(f"response larger than {_mb(self.limit)} (max_bytes); refused")
        return out


class Fetcher:
    """Shared HTTP clients with global and per-host limits; use as ``async with Fetcher(...)``."""

    def __init__(
        self,
        settings: CollectSettings,
        *,
        user_agent: str | None = None,
        clients: int | None = None,
        contact: str | None = None,
    ) -> None:
        self.settings = settings
        count = clients or max(1, min(5, settings.concurrency // 10))
        per_client = max(1, -(-settings.concurrency // count))
        timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout)
        headers = {
            "User-Agent": user_agent or settings.user_agent or default_user_agent(contact),
            "Accept-Encoding": "gzip, deflate",
        }
        tls = httpx.create_ssl_context()  # loading the CA bundle costs ~25 ms: once, shared by every client
        self._clients = [
            httpx.AsyncClient(
                transport=AiohttpTransport(
                    verify=tls,
                    limits=httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client),
                ),
                timeout=timeout,
                headers=headers,
                follow_redirects=True,
                max_redirects=settings.max_redirects,
            )
            for _ in range(count)
        ]
        self._all = asyncio.Semaphore(settings.concurrency)
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(settings.per_host))

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def get(
        self,
        url: str,
        *,
        etag: str = "",
        last_modified: str = "",
        headers: dict[str, str] | None = None,
        accept: str = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8",
    ) -> FetchResult:
        """GET a URL with retries; raise `FetchError` subclasses with a one-line reason."""
        extra = {"Accept": accept, **(headers or {})}
        if etag:
            extra["If-None-Match"] = etag
        if last_modified:
            extra["If-Modified-Since"] = last_modified
        return await self._retrying("GET", url, extra, None)

    async def post_json(self, url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> FetchResult:
        """POST a JSON body (used to log in); same limits and error handling as `get`."""
        extra = {"Accept": "application/json", **(headers or {})}
        return await self._retrying("POST", url, extra, payload)

    async def _retrying(self, method: str, url: str, headers: dict[str, str], payload: Any) -> FetchResult:
        budget = _Budget(self.settings.total_timeout)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1) | budget,
            wait=self._backoff,
            retry=retry_if_exception_type(TransientFetchError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, url, headers, payload, budget)
        except FetchError as exc:
            exc.at(url)  # every failure names the URL it came from
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, FetchError) and exc.retry_after is not None:
            return float(exc.retry_after)
        attempt: int = retry_state.attempt_number
        return min(8.0, 0.5 * 2.0 ** (attempt - 1)) + random.uniform(0, 0.25)

    async def _once(self, method: str, url: str, headers: dict[str, str], payload: Any, budget: _Budget) -> FetchResult:
        host = urlsplit(url).netloc
        client = self._clients[hash(host) % len(self._clients)]
        async with self._all, self._hosts[host]:
            try:
                async with asyncio.timeout_at(budget.deadline()):
                    request = client.build_request(method, url, headers=headers, json=payload)
                    response = await client.send(request, stream=True)
                    try:
                        return await self._read(url, response)
                    finally:
                        await response.aclose()
            except TimeoutError:
                raise TransientFetchError(
                    f"timed out after {self.settings.total_timeout:g} s in all (total_timeout, "
                    f"{plural(budget.tries, 'try', 'tries')})"
                ) from None
            except httpx.TransportError as exc:
                if isinstance(exc.__cause__, aiohttp.ClientError):
                    raise _aiohttp_failure(exc.__cause__) from None
                raise _transport_failure(exc) from None
            except aiohttp.ClientError as exc:  # what the transport leaves unmapped: a malformed answer
                raise _aiohttp_failure(exc) from None
            except httpx.TooManyRedirects:
                raise PermanentFetchError(f"more than {self.settings.max_redirects} redirects (a loop?)") from None
            except httpx.InvalidURL as exc:
                raise PermanentFetchError(f"invalid URL: {exc}") from None

    async def _read(self, url: str, response: httpx.Response) -> FetchResult:
        status = response.status_code
        if status >= 400:
            raise _status_error(response, self.settings.max_retry_after)
        moved = None
        if response.history and all(r.status_code in _PERMANENT_REDIRECTS for r in response.history):
            moved = str(response.url)
        common = {
            "url": str(response.url),
            "status": status,
            "content_type": response.headers.get("content-type", ""),
            "etag": response.headers.get("etag", ""),
            "last_modified": response.headers.get("last-modified", ""),
            "moved_to": moved,
            "link_next": response.links.get("next", {}).get("url"),
        }
        if status == 304:
            return FetchResult(body=b"", **common)
        limit = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "")
        if declared.isdigit() and int(declared) > limit and not encoding:
            raise PermanentFetchError(
                f"response of {_mb(int(declared))} is larger than {_mb(limit)} (max_bytes); refused"
            )
        inflater = _Inflater(encoding, limit)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += inflater.feed(chunk)
        return FetchResult(body=bytes(body), **common)


class _Budget(stop_base):
    """The time one request may take over all its tries (``total_timeout``), counted from the start
    of its first try: waiting for a free connection slot before it is not the source's fault.
    As a tenacity stop it allows no retry whose backoff would end past the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tries = 0
        self._deadline: float | None = None

    def deadline(self) -> float:
        """The loop time this request must end by; the first call (the first try) starts the clock."""
        self.tries += 1
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self.seconds
        return self._deadline

    def __call__(self, retry_state: Any) -> bool:
        left = (self._deadline or 0.0) - asyncio.get_running_loop().time()
        return bool(left <= retry_state.upcoming_sleep)


def _status_error(response: httpx.Response, max_wait: float) -> FetchError:
    status = response.status_code
    phrase = f"HTTP {status} {response.reason_phrase}".strip()
    if status in _RETRY_STATUSES:
        wait = parse_retry_after(response.headers.get("retry-after", ""))
        if wait is not None and wait > max_wait:
            return FetchError(f"{phrase}; server asks to retry after {wait:.0f} s", status=status, retry_after=wait)
        return TransientFetchError(phrase, status=status, retry_after=wait)
    if status == 410:
        return PermanentFetchError(f"{phrase}: the feed is gone", status=status, advice=REMOVE_IT)
    if status >= 500:
        return TransientFetchError(phrase, status=status)
    return PermanentFetchError(phrase, status=status)


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or clock.now())).total_seconds())


def _transport_failure(exc: httpx.TransportError) -> FetchError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientFetchError(f"timed out ({_timeout_kind(exc)})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return PermanentFetchError(f"unsupported URL: {exc}")
    return TransientFetchError(f"connection failed: {_reason(exc)}")


def _aiohttp_failure(exc: aiohttp.ClientError) -> FetchError:
    """One line for what aiohttp raised (the transport's own mapping calls a refused connection a timeout)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransientFetchError("timed out (connecting)")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return TransientFetchError("timed out (waiting for data)")
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return PermanentFetchError(f"unsupported URL: {exc}")
    if isinstance(exc, aiohttp.InvalidUrlClientError):
        return PermanentFetchError(f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):  # not an HTTP answer, or one past aiohttp's limits
        return TransientFetchError(f"connection failed: malformed HTTP answer: {one_line(exc.message or '', 200)}")
    return TransientFetchError(f"connection failed: {_reason(exc)}")


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for data",
        httpx.WriteTimeout: "sending",
        httpx.PoolTimeout: "waiting for a free connection",
    }.get(type(exc), "timeout")


def _reason(exc: Exception) -> str:
    return one_line(str(exc) or exc.__class__.__name__)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
