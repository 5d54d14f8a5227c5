"""One bad post is one bad post: every parser builds each post under `Skipped.guard`.

A post a parser cannot read (a field of the wrong type, a URL no parser accepts, an absurd
length, a payload nobody foresaw) is skipped and counted; the source's other posts are kept and
its note says how many were skipped and why the first one was. `sound` checks what a parser
built before it reaches the store, so a value the database would refuse (a NUL character, a
naive date, a URL too long to index) costs that post, never the batch it is stored with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from ..errors import FetchError, one_line
from ..models import Author, Media, Post

__all__ = ["MAX_TEXT", "MAX_URL", "Skipped", "sound"]

MAX_URL = 2048  # longer identities and links are junk, and too long for a PostgreSQL index entry
MAX_TEXT = 2_000_000  # characters of a post's text or HTML; a full-text article is far below it
MAX_SHORT = 10_000  # a title, a name, a handle, a tag


@dataclass(slots=True)
class Skipped:
    """Posts left out of a source because they could not be read: how many, and the first reason."""

    count: int = 0
    first: str = ""

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run one post's reading; an exception skips that post (counted) instead of the source.
        A `FetchError` is the parser's verdict on the whole source and goes on."""
        try:
            yield
        except FetchError:
            raise
        except Exception as exc:  # any failure of one post's payload costs only that post
            self.add(f"{type(exc).__name__}: {exc}")

    def add(self, reason: str) -> None:
        self.count += 1
        self.first = self.first or one_line(reason, 160)

    def merge(self, other: Skipped) -> None:
        if other.count:
            self.count += other.count
            self.first = self.first or other.first

    def note(self) -> str:
        """The source's note, or "" when nothing was skipped."""
        if not self.count:
            return ""
        posts = "post" if self.count == 1 else "posts"
        return f"{self.count} {posts} skipped as unreadable (first: {self.first})"


def sound(post: Post) -> Post:
    """The post ready to store, or `ValueError` naming what is wrong with it.

    NUL characters (which PostgreSQL refuses) are dropped from every text, links too long to be
    links are dropped; a missing or naive date, an identity or URL past `MAX_URL`, or a text past
    its limit rejects the post.
    """
    post = _clean(post)
    if not isinstance(post.published, datetime) or post.published.tzinfo is None:
        raise ValueError("no readable date")
    for name in ("id", "uri", "url"):
        _text(post, name, MAX_URL, required=name != "url")
    for name in ("source", "title", "in_reply_to", "boosted_by", "content_warning"):
        _text(post, name, MAX_SHORT if name == "title" else MAX_URL)
    for name in ("text", "html"):
        _text(post, name, MAX_TEXT)
    if post.language is not None and not (isinstance(post.language, str) and len(post.language) <= 64):
        raise ValueError(f"language is not a language tag: {post.language!r:.40}")
    for part in (post.author.name, post.author.handle, post.author.url, *post.tags, *post.mentions):
        if not isinstance(part, str) or len(part) > MAX_SHORT:
            raise ValueError(f"not a short text: {part!r:.40}")
    for count in (post.engagement.replies, post.engagement.boosts, post.engagement.likes, post.engagement.quotes):
        if count is not None and (type(count) is not int or not 0 <= count < 2**63):
            raise ValueError(f"engagement count is not a count: {count!r:.40}")
    return replace(
        post,
        links=tuple(link for link in post.links if isinstance(link, str) and len(link) <= MAX_URL),
        media=tuple(m for m in post.media if isinstance(m.url, str) and len(m.url) <= MAX_URL),
    )


def _text(post: Post, name: str, limit: int, *, required: bool = False) -> None:
    value = getattr(post, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} is not text: {value!r:.40}")
    if required and not value:
        raise ValueError(f"no {name}")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value):,} characters long (at most {limit:,})")


def _clean(post: Post) -> Post:
    """The post with NUL characters removed from every text in it."""
    return replace(
        post,
        **{f.name: _no_nul(getattr(post, f.name)) for f in fields(post) if f.name not in ("published", "engagement")},
    )


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, tuple):
        return tuple(_no_nul(v) for v in value)
    if isinstance(value, Author):
        return Author(_no_nul(value.name), _no_nul(value.handle), _no_nul(value.url))
    if isinstance(value, Media):
        return Media(_no_nul(value.url), _no_nul(value.type), _no_nul(value.alt))
    return value
