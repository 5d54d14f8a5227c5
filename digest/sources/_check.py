"""The one-off fetch check: a new source fetched once with the collector's own code before it is added."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from ..collect import jobs_for
from ..collect.base import Context
from ..collect.fetch import Fetcher, FetchResult
from ..collect.parse import ParsedFeed, parse_feed
from ..config import Settings
from ..errors import FetchError, PermanentFetchError, SourceError
from ..models import SourceState
from ._discovery import PAGE_ACCEPT, Candidate, _common_urls, _looks_like_html, feed_links
from ._input import NewSource, _identities, _one_line, from_feed_url

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Checked:
    """A source that answered: what it is now (a permanent redirect updates the URL), the feed's
    title and how many posts it gave."""

    source: NewSource
    title: str = ""
    posts: int = 0


@dataclass(slots=True)
class _Probe:
    """What a URL turned out to be: a feed (``checked``) or a page offering ``candidates``."""

    checked: Checked | None = None
    page: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    tried_paths: bool = False


def _run(settings: Settings, now: datetime, work: Callable[[Context], Awaitable[_T]]) -> _T:
    """Run ``work`` with a fetcher and a one-page context (a check needs no paging back)."""
    checking = replace(settings, collect=settings.collect.model_copy(update={"page_limit": 1}))

    async def parse(body: bytes, url: str, source: str, content_type: str) -> ParsedFeed:
        return await asyncio.to_thread(parse_feed, body, url, source, content_type, now)

    async def main() -> _T:
        async with Fetcher(checking.collect, contact=checking.subscription.public_url) as fetcher:
            window = now - timedelta(days=checking.digest.window_days)
            return await work(Context(fetcher, checking, now, window, parse))

    return asyncio.run(main())


async def _check(ctx: Context, new: NewSource) -> Checked:
    """Fetch a source once with the collector's code; raise `FetchError` with the reason when it fails."""
    if new.kind == "feed":
        result = await ctx.fetcher.get(new.value)
        parsed = await _parse(ctx, result)
        return Checked(replace(new, value=result.moved_to or new.value), parsed.title, len(parsed.posts))
    settings = replace(ctx.settings, sources=(new.model(),))
    posts = 0
    for job in jobs_for(settings):
        try:
            outcome = await job.run(ctx, SourceState(key=job.key, kind=job.kind, url=job.url))
        except FetchError:
            raise
        except Exception as exc:  # a payload nobody foresaw: refuse it with the reason, as collect would
            raise PermanentFetchError(f"{job.url}: internal error: {type(exc).__name__}: {exc}") from None
        posts += len(outcome.posts)
    return Checked(new, "", posts)


async def _parse(ctx: Context, result: FetchResult) -> ParsedFeed:
    try:
        return await ctx.parse(result.body, result.url, "check", result.content_type)
    except PermanentFetchError as exc:
        exc.at(result.url)
        raise


async def _check_or_none(ctx: Context, new: NewSource) -> Checked | str:
    """`_check`, with the one-line reason instead of an exception."""
    try:
        return await _check(ctx, new)
    except FetchError as exc:
        return _one_line(exc)
    except SourceError as exc:
        return _one_line(exc)


async def _probe(ctx: Context, url: str) -> _Probe:
    """Fetch a URL the user gave: a feed is checked; a web page is searched for its feeds."""
    result = await ctx.fetcher.get(url, accept=PAGE_ACCEPT)
    try:
        parsed = await ctx.parse(result.body, result.url, "check", result.content_type)
    except PermanentFetchError as exc:
        if not _looks_like_html(result):
            raise PermanentFetchError(f"{result.url}: {exc}") from None
    else:
        source = from_feed_url(result.moved_to or url)
        if source.kind != "feed":  # a Mastodon or Bluesky RSS URL: check the account as it will be read
            return _Probe(await _check(ctx, source))
        return _Probe(Checked(source, parsed.title, len(parsed.posts)))
    candidates = feed_links(result.body, result.url, result.content_type)
    if candidates:
        return _Probe(page=result.url, candidates=candidates)
    found = await asyncio.gather(*(_try_path(ctx, u) for u in _common_urls(result.url)))
    unique: dict[str, Candidate] = {}
    for answered in found:
        if answered is not None:  # /rss redirecting to /feed is one feed, not two
            unique.setdefault(*answered)
    return _Probe(page=result.url, candidates=list(unique.values()), tried_paths=True)


async def _try_path(ctx: Context, url: str) -> tuple[str, Candidate] | None:
    """A common path that answers with a feed: (where it ended, after redirects; the candidate)."""
    try:
        result = await ctx.fetcher.get(url)
        parsed = await _parse(ctx, result)
    except FetchError:
        return None
    ended = next(iter(_identities("feed", result.url)))
    return ended, Candidate(result.moved_to or url, parsed.title, "feed", "path")
