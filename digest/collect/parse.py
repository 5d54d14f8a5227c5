"""Bytes to posts, no I/O: RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 through feedparser, JSON Feed 1.0/1.1 here.

Every format fills the one `Post` shape. Runs in worker processes, so everything here is
picklable and free of shared state.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser

from .. import clock
from ..errors import PermanentFetchError, one_line
from ..models import Author, Media, Post
from ..urls import absolute, canonical_url, mastodon_identity, post_id
from .guard import Skipped, sound
from .html import plain, scan_html

__all__ = ["ParsedFeed", "parse_datetime", "parse_feed"]

_STATUS_LINK = re.compile(r"^https?://([^/]+)/@([^/@]+)/(\d+)$")
_EMAIL_NAME = re.compile(r"^\s*\S+@\S+\s+\((.+)\)\s*$")
_OPT_OUT = re.compile(r"#no(bot|index)\b", re.IGNORECASE)
_MEDIA_TYPES = ("image", "video", "audio")


@dataclass(slots=True)
class ParsedFeed:
    """A parsed feed: its title, home page, the posts, a warning when the XML was not clean, and
    the posts that could not be read (skipped, each costing only itself)."""

    title: str = ""
    link: str = ""
    posts: list[Post] = field(default_factory=list)
    warning: str = ""
    opted_out: bool = False
    skipped: Skipped = field(default_factory=Skipped)


def parse_feed(body: bytes, url: str, source: str, content_type: str = "", now: datetime | None = None) -> ParsedFeed:
    """Parse a feed document; raise `PermanentFetchError` when it is no feed at all."""
    now = now or clock.now()
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if "json" in content_type.lower() or head.startswith(b"{"):
        return _parse_json_feed(body, url, source, now)
    try:
        parsed = feedparser.parse(
            body,
            response_headers={"content-type": content_type or "application/xml", "content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser's own crashes on hostile bytes (a bad encoding name, odd media tags)
        raise PermanentFetchError(f"{url}: not a feed that can be read ({type(exc).__name__}: {exc})") from None
    if not parsed.entries and (parsed.get("bozo") or not parsed.get("version")):
        raise PermanentFetchError(_not_a_feed(body, parsed))
    feed = parsed.feed
    result = ParsedFeed(
        title=plain(feed.get("title", "")),
        link=absolute(feed.get("link", ""), url),
        warning=_bozo_warning(parsed) if parsed.bozo else "",
        opted_out=bool(_OPT_OUT.search(feed.get("subtitle", ""))),
    )
    default_author = _feed_author(feed, result)
    language = feed.get("language") or None
    for entry in parsed.entries:
        with result.skipped.guard():
            post = _entry_post(entry, result.link or url, url, source, default_author, language, now)
            if post is not None:
                result.posts.append(sound(post))
    if parsed.bozo and not result.posts and not result.skipped.count and parsed.entries:
        raise PermanentFetchError(_not_a_feed(body, parsed))
    return result


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a struct_time or an ISO 8601 string; None if unreadable."""
    if not value:
        return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _not_a_feed(body: bytes, parsed: Any) -> str:
    if not body.strip():
        return "empty response, not a feed"
    if re.search(rb"<html[\s>]", body[:4096], re.IGNORECASE):
        return "got a web page, not a feed (find its feed URL, e.g. with 'digest sources add')"
    reason = one_line(parsed.get("bozo_exception", "unknown format"), 160)
    return f"not a feed: {reason}"


def _bozo_warning(parsed: Any) -> str:
    return one_line(parsed.get("bozo_exception", ""), 160)


def _feed_author(feed: Any, result: ParsedFeed) -> Author:
    detail = feed.get("author_detail") or {}
    name = plain(detail.get("name") or feed.get("author") or result.title)
    handle = ""
    match = re.search(r"@([\w.-]+)@([\w.-]+\.\w+)", feed.get("subtitle", ""))
    if match:  # Mastodon: "Public posts from @user@server"
        handle = f"@{match.group(1)}@{match.group(2)}"
    return Author(name, handle, detail.get("href") or result.link)


def _entry_post(
    entry: Any, base: str, feed_url: str, source: str, default: Author, language: str | None, now: datetime
) -> Post | None:
    explicit_base = _xml_base(entry, feed_url)
    link = absolute(entry.get("link", ""), explicit_base or base)
    guid = (entry.get("id") or "").strip()
    html = _entry_html(entry)
    title = plain(entry.get("title", ""))
    if not (guid or link or title or html.strip()):
        return None
    scanned = scan_html(html, explicit_base or link or base)
    author = _entry_author(entry, link, default)
    identity = _identity(guid, link, base, title, html, author)
    published = (
        parse_datetime(entry.get("published_parsed"))
        or parse_datetime(entry.get("updated_parsed"))
        or parse_datetime(entry.get("created_parsed"))
        or now
    )
    tags = list(scanned.tags)
    for tag in entry.get("tags") or ():
        term = plain(tag.get("term") or tag.get("label") or "").lstrip("#")
        if term and term.lower() not in (t.lower() for t in tags):
            tags.append(term)
    links = list(scanned.links)
    if link and not _STATUS_LINK.match(link):
        links.insert(0, canonical_url(link))  # an article's own URL, so shares of it are recognised
    return Post(
        id=post_id(identity),
        uri=identity,
        source=source,
        url=link or (guid if guid.startswith("http") else base),
        published=published,
        author=author,
        title="" if title and scanned.text.startswith(title[:40]) else title,
        text=scanned.text or title,
        html=scanned.html,
        language=entry.get("language") or language,
        tags=tuple(tags),
        mentions=tuple(scanned.mentions),
        links=tuple(dict.fromkeys(links)),
        media=merge_media(_entry_media(entry, base) + scanned.images),
        sensitive=_is_adult(entry),
    )


def _xml_base(entry: Any, feed_url: str) -> str:
    """The xml:base in force for an entry's content when the document sets one (feedparser
    otherwise reports the feed's own URL), or ""."""
    for detail in (*(entry.get("content") or ()), entry.get("summary_detail") or {}):
        base = detail.get("base") or ""
        if base and base != feed_url:
            return base
    return ""


def merge_media(items: list[Media]) -> tuple[Media, ...]:
    """One entry per URL, keeping the alt text wherever one of the duplicates had it."""
    merged: dict[str, Media] = {}
    for item in items:
        seen = merged.get(item.url)
        if seen is None or (not seen.alt and item.alt):
            merged[item.url] = item if seen is None else Media(item.url, seen.type, item.alt)
    return tuple(merged.values())


def _entry_html(entry: Any) -> str:
    contents = entry.get("content") or []
    for item in contents:
        if "html" in (item.get("type") or ""):
            return item.get("value") or ""
    summary = entry.get("summary") or entry.get("description") or ""
    if contents and not (summary and _media_descriptions(entry)):
        return contents[0].get("value") or ""
    return summary


def _media_descriptions(entry: Any) -> list[str]:
    """feedparser files each <media:description> as a text/plain `content` item; with media
    present and a summary beside them, those items are alt texts, not the body."""
    contents = entry.get("content") or []
    if not entry.get("media_content") or not all((c.get("type") or "") == "text/plain" for c in contents):
        return []
    return [plain(c.get("value") or "") for c in contents]


def _entry_author(entry: Any, link: str, default: Author) -> Author:
    detail = entry.get("author_detail") or {}
    raw = entry.get("author") or ""
    email_and_name = _EMAIL_NAME.match(raw)  # RSS 2.0 "editor@example.org (Jo Lee)"
    name = plain(email_and_name.group(1) if email_and_name else detail.get("name") or raw)
    status = _STATUS_LINK.match(link)
    if status:  # Mastodon status URL: https://server/@user/123
        handle = f"@{status.group(2)}@{status.group(1)}"
        profile = f"https://{status.group(1)}/@{status.group(2)}"
        same = default.handle == handle
        return Author(name or (default.name if same else status.group(2)), handle, profile)
    if name and name != default.name:
        return Author(name, "", detail.get("href") or "")
    return default


def _identity(guid: str, link: str, base: str, title: str, html: str, author: Author) -> str:
    if _STATUS_LINK.match(link):
        return mastodon_identity("", link)
    if guid.lower().startswith(("http://", "https://")):
        return canonical_url(guid)
    if guid.startswith(("tag:", "urn:", "at://")):
        return guid
    if guid:
        return f"{canonical_url(base)}#{guid}"  # a bare guid is only unique within its feed
    if link:
        return canonical_url(link)
    return f"{canonical_url(base)}#{post_id(title + html + author.name)}"


def _entry_media(entry: Any, base: str) -> list[Media]:
    found: dict[str, Media] = {}
    contents = entry.get("media_content") or []
    alts = _media_descriptions(entry) if entry.get("summary") else []
    alts = alts if len(alts) == len(contents) else []  # pair them only when they line up one to one
    for i, item in enumerate(contents):
        url = item.get("url")
        if url:
            kind = _media_type(item.get("medium") or item.get("type"))
            found.setdefault(url, Media(absolute(url, base), kind, alts[i] if alts else ""))
    for item in entry.get("enclosures") or ():
        url = item.get("href") or item.get("url")
        if url:
            found.setdefault(url, Media(absolute(url, base), _media_type(item.get("type")), ""))
    for item in entry.get("media_thumbnail") or ():
        url = item.get("url")
        if url and not found:
            found.setdefault(url, Media(absolute(url, base), "image", ""))
    return list(found.values())


def _media_type(value: str | None) -> str:
    value = (value or "").lower()
    if value == "gifv":
        return "video"
    for kind in _MEDIA_TYPES:
        if value.startswith(kind):
            return kind
    return "other"


def _is_adult(entry: Any) -> bool:
    rating = entry.get("media_rating") or {}
    return isinstance(rating, dict) and (rating.get("content") or "").lower() in ("adult", "nonadult=false")


# -- JSON Feed 1.0 / 1.1 -----------------------------------------------------------------------


def _parse_json_feed(body: bytes, url: str, source: str, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PermanentFetchError(f"not a feed: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise PermanentFetchError("not a feed: JSON without a JSON Feed 'version'")
    items = doc.get("items")
    if not isinstance(items, list):
        raise PermanentFetchError("not a feed: JSON Feed without 'items'")
    home = absolute(str(doc.get("home_page_url") or ""), url)
    result = ParsedFeed(title=plain(str(doc.get("title", ""))), link=home)
    default = _json_author(doc, Author(result.title, "", home))
    language = _language(doc)
    for item in items:
        with result.skipped.guard():
            if not isinstance(item, dict):
                raise ValueError(f"an item is a {type(item).__name__}, not an object")
            result.posts.append(sound(_json_item_post(item, home or url, url, source, default, language, now)))
    return result


def _language(obj: dict[str, Any]) -> str | None:
    value = obj.get("language")
    return value if isinstance(value, str) and value else None


def _json_author(obj: dict[str, Any], default: Author) -> Author:
    authors = obj.get("authors")
    if not isinstance(authors, list) or not authors:
        authors = [obj["author"]] if isinstance(obj.get("author"), dict) else []
    first = authors[0] if authors and isinstance(authors[0], dict) else None
    if not first:
        return default
    return Author(plain(str(first.get("name") or default.name)), "", str(first.get("url") or default.url))


def _json_item_post(
    item: dict[str, Any], base: str, url: str, source: str, default: Author, language: str | None, now: datetime
) -> Post:
    link = absolute(str(item.get("url") or ""), base)
    html = str(item.get("content_html") or "")
    text_only = str(item.get("content_text") or item.get("summary") or "")
    scanned = scan_html(html or text_only, link or base)
    guid = str(item.get("id") or "")
    title = plain(str(item.get("title") or ""))
    identity = _identity(guid, link, url, title, html or text_only, default)
    media = [
        Media(absolute(str(a.get("url")), base), _media_type(a.get("mime_type")), plain(str(a.get("title") or "")))
        for a in item.get("attachments") or ()
        if isinstance(a, dict) and a.get("url")
    ]
    if item.get("image"):
        media.insert(0, Media(absolute(str(item["image"]), base), "image", ""))
    links = list(scanned.links)
    for extra in (link, str(item.get("external_url") or "")):
        if extra:
            links.insert(0, canonical_url(absolute(extra, base)))
    tags = [str(t).lstrip("#") for t in item.get("tags") or () if str(t).strip()]
    return Post(
        id=post_id(identity),
        uri=identity,
        source=source,
        url=link or base,
        published=parse_datetime(item.get("date_published")) or parse_datetime(item.get("date_modified")) or now,
        author=_json_author(item, default),
        title=title,
        text=scanned.text or title,
        html=scanned.html if html else "",
        language=_language(item) or language,
        tags=tuple(dict.fromkeys(tags + scanned.tags)),
        links=tuple(dict.fromkeys(links)),
        media=tuple(media) + tuple(scanned.images),
    )
