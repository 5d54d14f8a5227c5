"""What every collector shares: the run's context, a job per endpoint, and what a job returns."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..config import Settings
from ..errors import PermanentFetchError
from ..models import Post, SourceState
from .fetch import Fetcher, FetchResult
from .parse import ParsedFeed

__all__ = ["Context", "Job", "Outcome", "read_json"]


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a job may use: the fetcher, settings, the run's clock and an off-loop parser;
    ``deadline`` is the event-loop time the run ends by (None: no deadline)."""

    fetcher: Fetcher
    settings: Settings
    now: datetime
    window_start: datetime
    parse: Callable[[bytes, str, str, str], Awaitable[ParsedFeed]]
    deadline: float | None = None


@dataclass(slots=True)
class Outcome:
    """What one job brought back. ``complete`` is True when paging reached posts already stored
    or the start of the window, so no gap is possible; ``cursor`` None leaves it unchanged."""

    posts: list[Post] = field(default_factory=list)
    not_modified: bool = False
    etag: str = ""
    last_modified: str = ""
    cursor: str | None = None
    moved_to: str | None = None
    complete: bool = False
    notes: list[str] = field(default_factory=list)
    body_hash: str | None = None  # the body read, hashed (None: leave the stored one)
    title: str = ""  # the feed's own title ("": leave the stored one)


class Job(Protocol):
    """One endpoint to collect: a feed, an account or a hashtag on one server."""

    key: str
    kind: str
    url: str

    async def run(self, ctx: Context, state: SourceState) -> Outcome: ...


def read_json(result: FetchResult, expect: type) -> Any:
    """Decode an API answer, insisting on the expected top-level type."""
    try:
        data = json.loads(result.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PermanentFetchError(f"invalid JSON from {result.url}: {exc}") from None
    if not isinstance(data, expect):
        raise PermanentFetchError(f"unexpected answer from {result.url}: a {expect.__name__} was expected")
    return data


def load_cursor(state: SourceState) -> dict[str, Any]:
    """A job's saved paging position (JSON in the source's ``cursor`` column)."""
    try:
        value = json.loads(state.cursor) if state.cursor else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
