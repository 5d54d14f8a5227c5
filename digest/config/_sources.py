"""The ``[[sources]]`` kinds: a feed, a Mastodon account, a hashtag on some servers, a Bluesky account."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ._fields import _http_url, _Model

_HANDLE = re.compile(r"^@?([A-Za-z0-9_.-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,}|localhost)(:\d+)?$")
_HASHTAG = re.compile(r"^#?(\w+)$")


class FeedSource(_Model):
    """A feed: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 or JSON Feed."""

    feed: str = Field(description="The feed's URL (http or https).")
    name: str | None = Field(None, description="A display name; the feed's own title is used otherwise.")

    _url = field_validator("feed")(classmethod(lambda cls, v: _http_url(v)))

    @property
    def key(self) -> str:
        """The endpoint's key in the store (``feed:URL``)."""
        return f"feed:{self.feed}"


class MastodonSource(_Model):
    """A Mastodon account, ``@user@server``."""

    mastodon: str = Field(description="The account, as @user@server.")
    name: str | None = Field(None, description="A display name for summaries.")
    via: Literal["auto", "api", "rss"] | None = Field(
        None, description="Overrides [collect] mastodon_via for this source."
    )

    @field_validator("mastodon")
    @classmethod
    def _handle(cls, value: str) -> str:
        if not _HANDLE.match(value.strip()):
            raise ValueError("not a Mastodon handle such as '@someone@mastodon.social'")
        return "@" + value.strip().lstrip("@")


class HashtagSource(_Model):
    """A hashtag, looked up on Mastodon servers (and Bluesky when logged in)."""

    hashtag: str = Field(description="The hashtag, with or without #.")
    servers: tuple[str, ...] | None = Field(
        None, description="Mastodon servers to look it up on; [collect] servers otherwise."
    )
    networks: tuple[Literal["mastodon", "bluesky"], ...] = Field(
        ("mastodon",), description='Where to look: "mastodon", and "bluesky" (needs a [bluesky] login).'
    )
    name: str | None = Field(None, description="A display name for summaries.")
    via: Literal["auto", "api", "rss"] | None = Field(
        None, description="Overrides [collect] mastodon_via for this source."
    )

    @field_validator("hashtag")
    @classmethod
    def _tag(cls, value: str) -> str:
        match = _HASHTAG.match(value.strip())
        if not match:
            raise ValueError("not a hashtag such as 'HITsm' or '#FHIR'")
        return match.group(1)

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for server in value or ():
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", server):
                raise ValueError(f"{server!r} is not a server name such as 'mastodon.social'")
        return value


class BlueskySource(_Model):
    """A Bluesky account, by handle (``someone.bsky.social``) or DID."""

    bluesky: str = Field(description="The account's handle (someone.bsky.social) or DID.")
    name: str | None = Field(None, description="A display name for summaries.")

    @field_validator("bluesky")
    @classmethod
    def _handle(cls, value: str) -> str:
        value = value.strip().lstrip("@")
        if not (value.startswith("did:") or re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value)):
            raise ValueError("not a Bluesky handle such as 'someone.bsky.social'")
        return value


Source = FeedSource | MastodonSource | HashtagSource | BlueskySource
SOURCE_KINDS: dict[str, type[_Model]] = {
    "feed": FeedSource,
    "mastodon": MastodonSource,
    "hashtag": HashtagSource,
    "bluesky": BlueskySource,
}
