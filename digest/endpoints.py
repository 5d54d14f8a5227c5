"""What the configuration asks to fetch: one endpoint per feed, account and hashtag on one server, named
by the key its state is stored under; from the settings alone, so `digest check` counts them without
loading the collectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from .config import BlueskySource, FeedSource, HashtagSource, MastodonSource, Settings, Source

__all__ = ["Endpoint", "endpoints"]

Kind = Literal["feed", "mastodon", "hashtag", "bluesky"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    key: str  # "mastodon:@user@server", "hashtag:#FHIR@server", "hashtag:#FHIR@bluesky", a feed's URL key
    kind: Kind
    source: Source
    server: str = ""  # the Mastodon server it is read from; "" for feeds and Bluesky


def endpoints(settings: Settings) -> list[Endpoint]:
    """Every endpoint in config order, each once (two sources naming one endpoint are one)."""
    found: dict[str, Endpoint] = {}
    for source in settings.sources:
        for endpoint in _of(settings, source):
            found.setdefault(endpoint.key, endpoint)
    return list(found.values())


def _of(settings: Settings, source: Source) -> Iterator[Endpoint]:
    if isinstance(source, FeedSource):
        yield Endpoint(source.key, "feed", source)
    elif isinstance(source, MastodonSource):
        yield Endpoint(f"mastodon:{source.mastodon}", "mastodon", source, source.mastodon.rsplit("@", 1)[1])
    elif isinstance(source, HashtagSource):
        if "mastodon" in source.networks:
            for server in source.servers or settings.collect.servers:
                yield Endpoint(f"hashtag:#{source.hashtag}@{server}", "hashtag", source, server)
        if "bluesky" in source.networks:
            yield Endpoint(f"hashtag:#{source.hashtag}@bluesky", "hashtag", source)
    elif isinstance(source, BlueskySource):
        yield Endpoint(f"bluesky:{source.bluesky}", "bluesky", source)
