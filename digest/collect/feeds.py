"""Plain feeds (RSS, Atom, JSON Feed), fetched conditionally and parsed off the event loop."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import PermanentFetchError
from ..models import SourceState
from .base import Context, Outcome

__all__ = ["FeedJob"]


@dataclass(slots=True)
class FeedJob:
    """Fetch one feed URL with ETag/Last-Modified and parse it into posts."""

    key: str
    kind: str
    url: str
    opt_out_check: bool = False

    async def run(self, ctx: Context, state: SourceState) -> Outcome:
        url = state.url or self.url
        result = await ctx.fetcher.get(url, etag=state.etag, last_modified=state.last_modified)
        outcome = Outcome(etag=result.etag, last_modified=result.last_modified, moved_to=result.moved_to)
        body_hash = "" if result.not_modified else _hash(result.url, result.body)
        if result.not_modified or body_hash == state.body_hash:
            # 304, or a server that ignores conditional requests sent the body read last time (from the same
            # address): its posts are stored already, so feedparser does not read it again
            outcome.not_modified = True
            outcome.etag = outcome.etag or state.etag
            outcome.last_modified = outcome.last_modified or state.last_modified
            return outcome
        outcome.body_hash = body_hash
        try:
            parsed = await ctx.parse(result.body, result.url, self.key, result.content_type)
        except PermanentFetchError as exc:
            raise PermanentFetchError(f"{result.url}: {exc}") from None
        if self.opt_out_check and parsed.opted_out:
            raise PermanentFetchError(f"{url}: the author asks not to be read by bots (#nobot/#noindex in profile)")
        if parsed.warning:
            outcome.notes.append(f"feed is not well-formed, read anyway: {parsed.warning}")
        if parsed.skipped.count:
            outcome.notes.append(parsed.skipped.note())
        outcome.posts = parsed.posts
        outcome.title = parsed.title
        return outcome


def _hash(url: str, body: bytes) -> str:
    """What identifies a body as read: its bytes and the address they came from (relative links resolve there)."""
    return hashlib.blake2b(url.encode() + b"\0" + body, digest_size=16).hexdigest()
