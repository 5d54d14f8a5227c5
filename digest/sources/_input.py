"""What a person types as a source (a URL, a handle, a hashtag) made into a `NewSource`, and
when two sources are the same one."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from .. import config
from ..config import FeedSource, HashtagSource, MastodonSource, Settings, Source
from ..errors import FetchError, SourceError, one_line
from ..textnorm import strip_invisible
from ..urls import canonical_url

_BLUESKY_HANDLE = re.compile(r"^@?([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$")
_MASTODON_RSS = re.compile(r"^https?://([A-Za-z0-9.-]+)/@([A-Za-z0-9_]+)\.rss$", re.IGNORECASE)
_TAG_RSS = re.compile(r"^https?://([A-Za-z0-9.-]+)/tags/(\w+)\.rss(?:\?limit=\d+)?$", re.IGNORECASE)
_BLUESKY_RSS = re.compile(r"^https?://bsky\.app/profile/([^/?#]+)/rss$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NewSource:
    """A source to write into feeds.toml: its kind (feed, mastodon, hashtag, bluesky), the value
    of that key, and an optional display name and (for a hashtag) servers."""

    kind: str
    value: str
    name: str | None = None
    servers: tuple[str, ...] | None = None

    def entry(self) -> dict[str, Any]:
        """The ``[[sources]]`` table's keys, in the order they are written."""
        table: dict[str, Any] = {self.kind: self.value}
        if self.servers:
            table["servers"] = list(self.servers)
        if self.name:
            table["name"] = self.name
        return table

    def model(self) -> Source:
        """The validated config model of this source; `SourceError` with the reason when it is not valid."""
        try:
            return config.SOURCE_KINDS[self.kind].model_validate(self.entry())  # type: ignore[return-value]
        except ValidationError as exc:
            reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise SourceError(f"{self.value!r}: {reason}") from None

    def identities(self) -> set[str]:
        """Keys that make two sources the same subscription (see `source_identities`)."""
        return _identities(self.kind, self.value)

    def describe(self) -> str:
        """``feed https://...`` or ``mastodon @user@server``, with the name when there is one."""
        shown = f"#{self.value}" if self.kind == "hashtag" else self.value
        return f"{self.kind} {shown}" + (f' ("{self.name}")' if self.name else "")


def parse_source(text: str, *, name: str | None = None, servers: Sequence[str] | None = None) -> NewSource:
    """What the user typed as a source: a feed or website URL (``https://`` may be left out), a
    Mastodon handle ``@user@server``, a Bluesky handle (``name.bsky.social``, ``@custom.domain``, a
    DID) or a ``#hashtag``. Raise `SourceError` saying what is accepted otherwise."""
    raw = text.strip()
    name = _clean_name(name)
    if raw.startswith("#"):
        new = NewSource("hashtag", raw[1:], name, tuple(servers) if servers else None)
    elif servers:
        raise SourceError("--server is for hashtags only (#tag)")
    elif config._HANDLE.match(raw) and "://" not in raw:
        new = NewSource("mastodon", raw, name)
    elif raw.startswith("did:") or (
        _BLUESKY_HANDLE.match(raw) and (raw.startswith("@") or raw.lower().endswith(".bsky.social"))
    ):
        new = NewSource("bluesky", raw.lstrip("@"), name)
    else:
        url = _as_url(raw)
        if not url:
            raise SourceError(
                f"{raw!r} is not a feed or website URL, a Mastodon handle (@user@server), "
                "a Bluesky handle (name.bsky.social) or a #hashtag"
            )
        new = replace(from_feed_url(url), name=name)
    return _normalised(new)


def from_feed_url(url: str, title: str = "") -> NewSource:
    """The source a feed URL stands for: a Mastodon account's or hashtag's RSS (``/@user.rss``,
    ``/tags/TAG.rss``) or a Bluesky profile's (``bsky.app/profile/HANDLE/rss``) becomes that account
    or hashtag, read through its API (which falls back to the same RSS); anything else is a feed."""
    url = url.strip()
    name = _clean_name(title)
    candidates: list[NewSource] = []
    if match := _MASTODON_RSS.match(url):
        candidates.append(NewSource("mastodon", f"@{match.group(2)}@{match.group(1).lower()}", name))
    elif match := _TAG_RSS.match(url):
        candidates.append(NewSource("hashtag", match.group(2), name, (match.group(1).lower(),)))
    elif match := _BLUESKY_RSS.match(url):
        candidates.append(NewSource("bluesky", match.group(1), name))
    for candidate in candidates:
        try:
            found = _normalised(candidate)
        except SourceError:
            continue  # not a handle after all (an IP address, a port): read it as the feed it is
        return replace(found, name=_telling(name, found, url))
    return NewSource("feed", url, _telling(name, None, url))


def _telling(name: str | None, source: NewSource | None, url: str) -> str | None:
    """A name worth writing: not the URL again, nor the handle or ``#tag on server`` (as exported)."""
    if not name:
        return None
    plain = name.lower().lstrip("@#")
    if plain == url.lower() or (
        source
        and (
            plain == source.value.lower().lstrip("@")
            or (source.kind == "hashtag" and re.fullmatch(rf"{re.escape(source.value.lower())}( on \S+)?", plain))
        )
    ):
        return None
    return name


def source_identities(source: Source) -> set[str]:
    """What makes two sources the same subscription: the canonical feed URL (scheme, tracking
    parameters and a trailing slash aside), the handle (any case) or the hashtag (any case, any
    servers). A Mastodon or Bluesky RSS feed is the same subscription as the account."""
    if isinstance(source, FeedSource):
        converted = from_feed_url(source.feed)
        return _identities("feed", source.feed) | converted.identities()
    if isinstance(source, MastodonSource):
        return _identities("mastodon", source.mastodon)
    if isinstance(source, HashtagSource):
        return _identities("hashtag", source.hashtag)
    return _identities("bluesky", source.bluesky)


def _identities(kind: str, value: str) -> set[str]:
    if kind == "feed":
        parts = urlsplit(canonical_url(value))
        query = f"?{parts.query}" if parts.query else ""
        return {f"feed:{parts.netloc.lower()}{parts.path.rstrip('/')}{query}"}
    if kind == "mastodon":
        return {"mastodon:@" + value.lstrip("@").lower()}
    if kind == "hashtag":
        return {"hashtag:" + value.lstrip("#").lower()}
    return {"bluesky:" + value.lstrip("@").lower()}


def _normalised(new: NewSource) -> NewSource:
    model = new.model()
    value = getattr(model, new.kind)
    servers = getattr(model, "servers", None)
    return replace(new, value=value, servers=tuple(servers) if servers else None)


def _as_url(raw: str) -> str:
    if raw.lower().startswith("feed:"):
        rest = raw[5:]
        raw = rest if rest.lower().startswith(("http://", "https://")) else "http:" + rest
    if "://" not in raw and re.match(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?(/\S*)?$", raw):
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme.lower() in ("http", "https") and parts.netloc and " " not in raw:
        return raw
    return ""


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = " ".join(strip_invisible(name).split())[:200]
    return cleaned or None


def _existing(settings: Settings) -> dict[str, int]:
    """Each identity of the configured sources -> the source's index."""
    found: dict[str, int] = {}
    for i, source in enumerate(settings.sources):
        for identity in source_identities(source):
            found.setdefault(identity, i)
    return found


def _duplicate_reason(settings: Settings, new: NewSource, existing: Mapping[str, int]) -> str:
    """Why ``new`` is already followed (naming the file and line), or ''."""
    for identity in sorted(new.identities()):
        if identity in existing:
            index = existing[identity]
            line = _source_line(settings.path, index)
            source = settings.sources[index]
            kind = next(k for k in config.SOURCE_KINDS if isinstance(source, config.SOURCE_KINDS[k]))
            return f"already followed: {settings.path}:{line}: {kind} = {getattr(source, kind)!r}"
    return ""


def _source_line(path: Path, index: int) -> int:
    try:
        return config._KeyLines(path.read_text(encoding="utf-8")).find(("sources", index))
    except (OSError, UnicodeDecodeError):
        return 1


def _one_line(exc: FetchError | SourceError) -> str:
    """An error as a reason for refusing a source (a fetch error's advice, to remove it, does not apply)."""
    return one_line(exc.reason if isinstance(exc, FetchError) else str(exc), 400)
