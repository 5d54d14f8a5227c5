"""Managing sources: add one (finding a website's feeds), import and export OPML, and say how each fares.

Adding checks a source by fetching it once with the collector's own code (a feed through the
`Fetcher` and `parse_feed`, an account or hashtag through its job), refuses duplicates, and
writes the new ``[[sources]]`` table into feeds.toml right after the last one, leaving every
other byte of the file as it was. The result is validated before and after it is written; a
file that would not load is never left behind.

`source_status` reads the store (never writes it) to say, per endpoint, how the last fetch
went, how many posts came this week, how many of them the topic filter dropped, and whether
the source looks dead or mostly noise.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree
from pydantic import ValidationError

from . import config
from .collect import jobs_for
from .collect.base import Context
from .collect.fetch import Fetcher, FetchResult
from .collect.parse import ParsedFeed, parse_feed
from .collect.urls import canonical_url
from .config import BlueskySource, FeedSource, HashtagSource, MastodonSource, Settings, Source
from .errors import ChoiceNeeded, ConfigError, FetchError, PermanentFetchError, SourceError, one_line
from .models import SourceState
from .opml import OpmlFeed, OpmlGroup, read_opml, write_opml
from .store import Store, database_exists
from .textnorm import strip_invisible

__all__ = [
    "COMMON_PATHS",
    "AddReport",
    "Candidate",
    "Checked",
    "ChoiceNeeded",
    "ExportReport",
    "ImportReport",
    "NewSource",
    "SourceStatus",
    "add_source",
    "append_sources",
    "export_opml",
    "feed_links",
    "from_feed_url",
    "import_opml",
    "insert_sources",
    "parse_source",
    "source_identities",
    "source_status",
    "status_of",
]

# Where sites commonly serve their feed, tried when a page names none with <link rel="alternate">.
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/atom.xml", "/index.xml", "/rss.xml", "/feed.json")
# <link type> values that announce a feed, and how to call them.
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/rdf+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/x-atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
}
PAGE_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/html;q=0.8, */*;q=0.7"
)
NOISE_SHARE = 0.6  # a source whose posts the filter drops this often ...
NOISE_MIN_POSTS = 5  # ... out of at least this many is mostly noise
QUIET_DAYS = 30  # no post for this long: probably dead

_BLUESKY_HANDLE = re.compile(r"^@?([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$")
_MASTODON_RSS = re.compile(r"^https?://([A-Za-z0-9.-]+)/@([A-Za-z0-9_]+)\.rss$", re.IGNORECASE)
_TAG_RSS = re.compile(r"^https?://([A-Za-z0-9.-]+)/tags/(\w+)\.rss(?:\?limit=\d+)?$", re.IGNORECASE)
_BLUESKY_RSS = re.compile(r"^https?://bsky\.app/profile/([^/?#]+)/rss$", re.IGNORECASE)
_T = TypeVar("_T")


# -- what a source is -------------------------------------------------------------------------


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


# -- finding a website's feeds ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A feed a page offers: its URL, title (may be empty), type (RSS, Atom, JSON Feed, feed) and
    how it was found (``link``: a ``<link rel="alternate">``, ``path``: a common path that answered)."""

    url: str
    title: str = ""
    type: str = "feed"
    via: str = "link"

    def describe(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        return f"{self.type}{title} <{self.url}>"


def feed_links(body: bytes, url: str, content_type: str = "") -> list[Candidate]:
    """The feeds a web page announces with ``<link rel="alternate" type=...>`` (RSS, Atom, JSON
    Feed), in document order, hrefs resolved against ``<base href>`` or the page's URL. No I/O."""
    charset = re.search(r"charset=([\w.:-]+)", content_type, re.IGNORECASE)
    try:
        parser = lxml.html.HTMLParser(encoding=charset.group(1) if charset else None, no_network=True)
    except LookupError:
        parser = lxml.html.HTMLParser(no_network=True)
    try:
        document = lxml.html.document_fromstring(body, parser=parser)
    except (etree.ParserError, ValueError, LookupError):
        return []
    base = url
    for element in document.iter("base"):
        if element.get("href", "").strip():
            base = urljoin(url, element.get("href", "").strip())
            break
    found: dict[str, Candidate] = {}
    for link in document.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = FEED_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or not kind or not href:
            continue
        target = _as_url(urljoin(base, href))
        if target and target not in found:
            title = " ".join((link.get("title") or "").split())
            found[target] = Candidate(target, title, kind, "link")
    return list(found.values())


def _common_urls(page: str) -> list[str]:
    """The common feed paths at the site's root and, for a page below it, under the page too."""
    urls = [urljoin(page, path) for path in COMMON_PATHS]
    parts = urlsplit(page)
    if parts.path.strip("/"):
        folder = page.split("?")[0].split("#")[0].rstrip("/") + "/"
        urls += [urljoin(folder, path.lstrip("/")) for path in COMMON_PATHS]
    return list(dict.fromkeys(urls))


def _looks_like_html(result: FetchResult) -> bool:
    if "html" in result.content_type.lower():
        return True
    head = result.body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


# -- checking by fetching once --------------------------------------------------------------


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
        raise PermanentFetchError(f"{result.url}: {exc}") from None


async def _check_or_none(ctx: Context, new: NewSource) -> Checked | str:
    """`_check`, with the one-line reason instead of an exception."""
    try:
        return await _check(ctx, new)
    except FetchError as exc:
        return _one_line(str(exc))
    except SourceError as exc:
        return _one_line(str(exc))


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


# -- adding one source -----------------------------------------------------------------------


@dataclass(slots=True)
class AddReport:
    """What `add_source` did: the sources written, where they were found, and those left out."""

    path: Path
    added: list[Checked] = field(default_factory=list)
    page: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    checked: bool = True


Chooser = Callable[[str, list[Candidate]], list[int]]


def add_source(
    settings: Settings,
    text: str,
    *,
    now: datetime,
    name: str | None = None,
    servers: Sequence[str] | None = None,
    check: bool = True,
    pick: int | None = None,
    pick_all: bool = False,
    choose: Chooser | None = None,
) -> AddReport:
    """Add one source to the settings' feeds.toml, after checking it answers (unless ``check`` is
    False). A website's feeds are discovered; when it offers several, ``pick`` (1-based),
    ``pick_all`` or ``choose(page, candidates) -> indexes`` decides, else `ChoiceNeeded` is raised.
    Raise `SourceError` for a duplicate or a source that does not answer with a feed."""
    new = parse_source(text, name=name, servers=servers)
    existing = _existing(settings)
    report = AddReport(settings.path, checked=check)
    if reason := _duplicate_reason(settings, new, existing):
        raise SourceError(f"{new.describe()}: {reason}")
    if not check:
        report.added.append(Checked(new))
        append_sources(settings.path, [new.entry()])
        return report
    if new.kind != "feed":
        checked = _run(settings, now, lambda ctx: _check_or_none(ctx, new))
        if isinstance(checked, str):
            raise SourceError(f"not added: {checked} (--no-check adds it anyway)")
        report.added.append(checked)
    else:
        report.added = _add_url(settings, new, report, now, pick, pick_all, choose, existing)
    append_sources(settings.path, [c.source.entry() for c in report.added])
    return report


def _add_url(
    settings: Settings,
    new: NewSource,
    report: AddReport,
    now: datetime,
    pick: int | None,
    pick_all: bool,
    choose: Chooser | None,
    existing: Mapping[str, int],
) -> list[Checked]:
    """Check a URL; for a web page, pick among its feeds and check those. The sources to write."""
    try:
        probe = _run(settings, now, lambda ctx: _probe(ctx, new.value))
    except FetchError as exc:
        raise SourceError(f"not added: {_one_line(str(exc))} (--no-check adds it anyway)") from None
    if probe.checked is not None:
        return [_named(probe.checked, new.name, settings, existing)]
    report.page = probe.page
    if not probe.candidates:
        paths = ", ".join(COMMON_PATHS)
        raise SourceError(
            f'not added: {probe.page} is a web page with no feed: it has no <link rel="alternate"> to one, '
            f"and none of {paths} answered with a feed"
        )
    # the feeds already followed are marked, never offered: a choice is only among the new ones
    followed = {
        c.url: reason
        for c in probe.candidates
        if (reason := _duplicate_reason(settings, from_feed_url(c.url), existing))
    }
    if len(followed) == len(probe.candidates):
        listed = "".join(f"\n  {c.describe()}: {followed[c.url]}" for c in probe.candidates)
        found = 'its <link rel="alternate">' if not probe.tried_paths else "common paths"
        raise SourceError(f"not added: every feed {probe.page} offers ({found}) is followed already:{listed}")
    report.skipped += [(c.url, followed[c.url]) for c in probe.candidates if c.url in followed]
    fresh = replace(probe, candidates=[c for c in probe.candidates if c.url not in followed])
    marked = [f"{c.describe()}: {followed[c.url]}" for c in probe.candidates if c.url in followed]
    chosen = _choose(fresh, pick, pick_all, choose, marked)
    name = new.name if len(chosen) == 1 else None
    wanted = [replace(from_feed_url(c.url), name=name) for c in chosen]  # named by the feed's title once checked
    results = _run(settings, now, lambda ctx: asyncio.gather(*(_check_or_none(ctx, s) for s in wanted)))
    added = []
    for source, result in zip(wanted, results, strict=True):
        if isinstance(result, str):
            report.skipped.append((source.value, result))
        else:
            added.append(_named(result, source.name, settings, existing))
    if not added:
        raise SourceError(f"not added: {report.skipped[-1][1]} (--no-check adds it anyway)")
    return added


def _choose(
    probe: _Probe, pick: int | None, pick_all: bool, choose: Chooser | None, followed: Sequence[str] = ()
) -> list[Candidate]:
    """The candidates to add: --all, --pick N, the only one, or the chooser's; ``followed`` (described)
    are listed beside them when a choice is needed."""
    candidates = probe.candidates
    if pick_all:
        return candidates
    if pick is not None:
        if not 1 <= pick <= len(candidates):
            problem = f"--pick {pick} is not one of 1 to {len(candidates)}"
            raise ChoiceNeeded(probe.page, candidates, problem, followed)
        return [candidates[pick - 1]]
    if len(candidates) == 1:
        return candidates
    if choose is None:
        raise ChoiceNeeded(probe.page, candidates, followed=followed)
    indexes = choose(probe.page, candidates)
    if not indexes:
        raise SourceError("nothing chosen; nothing added")
    return [candidates[i] for i in dict.fromkeys(indexes)]


def _named(checked: Checked, name: str | None, settings: Settings, existing: Mapping[str, int]) -> Checked:
    """The checked source with its display name (given, or the feed's title), refused if it is a
    duplicate after all (the URL moved to one already followed)."""
    source = replace(checked.source, name=_clean_name(name) or checked.source.name or _clean_name(checked.title))
    if reason := _duplicate_reason(settings, source, existing):
        raise SourceError(f"{source.describe()}: {reason}")
    return replace(checked, source=source)


def _one_line(text: str) -> str:
    """A fetch error as a reason for refusing a source (collect's advice to remove it does not apply)."""
    return one_line(text.replace("; remove it from feeds.toml", ""), 400)


# -- importing and exporting OPML -----------------------------------------------------------


@dataclass(slots=True)
class ImportReport:
    """What `import_opml` did: the sources added, and those skipped as (source, why, reason) where
    ``why`` is ``followed`` (already in feeds.toml), ``twice`` (listed twice), ``dead`` or ``invalid``."""

    file: str
    added: list[NewSource] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many were skipped for each reason, in a fixed order, zeros left out."""
        order = ("followed", "twice", "dead", "invalid")
        return {why: n for why in order if (n := sum(1 for _, w, _ in self.skipped if w == why))}

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` summary."""
        return {
            "file": self.file,
            "added": [s.entry() for s in self.added],
            "skipped": [{"source": s, "why": w, "reason": r} for s, w, r in self.skipped],
        }


def import_opml(
    settings: Settings, path: str | os.PathLike[str], *, now: datetime, check: bool = False
) -> ImportReport:
    """Add every feed of an OPML file to feeds.toml in one write, skipping those already followed
    (or listed twice). With ``check``, each is fetched once first and the dead ones are skipped
    with the reason. A bad file raises `OpmlError` and nothing is written."""
    document = read_opml(path)
    report = ImportReport(str(path))
    report.skipped += [(f"{path}:{line}", "invalid", reason) for line, reason in document.ignored]
    existing = _existing(settings)
    pending: dict[str, NewSource] = {}  # by identity, in file order
    for feed in document.feeds:
        _take(feed, settings, existing, pending, report)
    fresh = list(pending.values())
    if check and fresh:
        results = _run(settings, now, lambda ctx: asyncio.gather(*(_check_or_none(ctx, s) for s in fresh)))
        kept = []
        for source, result in zip(fresh, results, strict=True):
            if isinstance(result, str):
                report.skipped.append((source.value, "dead", result))
            else:
                kept.append(replace(result.source, name=source.name or _clean_name(result.title)))
        fresh = kept
    if fresh:
        append_sources(settings.path, [s.entry() for s in fresh])
    report.added = fresh
    return report


def _take(
    feed: OpmlFeed, settings: Settings, existing: Mapping[str, int], pending: dict[str, NewSource], report: ImportReport
) -> None:
    """Queue one OPML feed unless it is followed already or was listed before in the file; the same
    hashtag's RSS on several servers becomes one hashtag with those servers."""
    try:
        new = from_feed_url(feed.url, feed.title)
        new.model()
    except SourceError as exc:
        report.skipped.append((feed.url, "invalid", str(exc)))
        return
    if reason := _duplicate_reason(settings, new, existing):
        report.skipped.append((feed.url, "followed", reason))
        return
    identity = next(iter(new.identities()))
    earlier = pending.get(identity)
    if earlier is None:
        pending[identity] = new
    elif new.kind == "hashtag" and not set(new.servers or ()) <= set(earlier.servers or ()):
        merged = replace(earlier, servers=(*(earlier.servers or ()), *(new.servers or ())))
        pending[identity] = merged
    else:
        report.skipped.append((feed.url, "twice", f"listed twice in the file (again on line {feed.line})"))


@dataclass(slots=True)
class ExportReport:
    """What `export_opml` wrote: how many feeds, and the sources that have no feed to export."""

    file: str
    feeds: int = 0
    left_out: list[str] = field(default_factory=list)


def export_opml(settings: Settings, path: str | os.PathLike[str], *, now: datetime) -> ExportReport:
    """Write the configured sources as an OPML 2.0 file that feed readers import: feeds as they
    are, Mastodon accounts and hashtags (one per server) and Bluesky accounts as their public RSS,
    each group in its own folder."""
    groups: dict[str, list[OpmlFeed]] = {"Feeds": [], "Mastodon accounts": [], "Hashtags": [], "Bluesky accounts": []}
    report = ExportReport(str(path))
    for source in settings.sources:
        if isinstance(source, FeedSource):
            groups["Feeds"].append(OpmlFeed(source.feed, source.name or ""))
        elif isinstance(source, MastodonSource):
            user, server = source.mastodon.lstrip("@").split("@", 1)
            home = f"https://{server}/@{user}"
            groups["Mastodon accounts"].append(OpmlFeed(f"{home}.rss", source.name or source.mastodon, home))
        elif isinstance(source, HashtagSource):
            if "mastodon" in source.networks:
                for server in source.servers or settings.collect.servers:
                    page = f"https://{server}/tags/{source.hashtag}"
                    title = f"#{source.hashtag} on {server}"
                    groups["Hashtags"].append(OpmlFeed(f"{page}.rss", title, page))
            if "bluesky" in source.networks:
                report.left_out.append(f"#{source.hashtag} on Bluesky (a search, with no feed)")
        elif isinstance(source, BlueskySource):
            page = f"https://bsky.app/profile/{source.bluesky}"
            groups["Bluesky accounts"].append(OpmlFeed(f"{page}/rss", source.name or source.bluesky, page))
    report.feeds = write_opml(
        path,
        [OpmlGroup(name, feeds) for name, feeds in groups.items()],
        title=f"{settings.digest.title}: sources",
        now=now,
    )
    return report


# -- writing feeds.toml -----------------------------------------------------------------------


def append_sources(path: Path, entries: Sequence[Mapping[str, Any]]) -> str:
    """Write ``[[sources]]`` tables into a config file after its last one (at the end when it has
    none), leaving every other byte as it was; return the text inserted. The result is checked to
    load as before plus the new entries; after writing, the file is loaded again and put back as it
    was if that fails. Raise `SourceError` when nothing could be written."""
    try:
        original = path.read_bytes()
        text = original.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot be read: {exc}") from None
    new_text, inserted = insert_sources(text, entries)
    _verify(path, text, new_text, entries)
    _replace(path, new_text.encode("utf-8"), expect=original)
    try:
        config.load(path)
    except ConfigError as exc:
        _replace(path, original)
        raise SourceError(f"{path}: left as it was: with the new entry it did not load: {exc.problems[0]}") from None
    return inserted


def insert_sources(text: str, entries: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The config text with ``[[sources]]`` tables for ``entries`` inserted after the last
    ``[[sources]]`` table's content (its last key and any comment lines right under it) or at the
    end, and the inserted text. Pure."""
    nl = "\r\n" if "\r\n" in text else "\n"
    tables = nl.join(_sources_table(e, nl) for e in entries)
    offset = _end_of_last_sources(text)
    before, after = text[:offset], text[offset:]
    lead = "" if not before or before.endswith(nl) else nl
    if (before + lead).strip() and not (before + lead).endswith(nl + nl):
        lead += nl
    tail = nl if after.strip() and not after.startswith(nl) else ""
    inserted = lead + tables + tail
    return before + inserted + after, inserted


def _sources_table(entry: Mapping[str, Any], nl: str) -> str:
    """One ``[[sources]]`` table as tomlkit writes it (bare keys, basic strings), written directly:
    tomlkit takes a millisecond a table, which was most of a 100,000-feed import. The values are
    strings and lists of strings; a JSON string is a TOML basic string once DEL is escaped too, and
    `_verify` reads the result back before anything is written."""

    def value(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False).replace("\x7f", "\\u007f")

    return nl.join(["[[sources]]", *(f"{key} = {value(v)}" for key, v in entry.items())]) + nl


def _end_of_last_sources(text: str) -> int:
    """Offset just after the last ``[[sources]]`` table's content; the text's end when there is none."""
    lines = _classify(text)
    headers = [i for i, (_, kind, name) in enumerate(lines) if kind == "aot" and name == "sources"]
    if not headers:
        return len(text)
    start = headers[-1]
    end = next((i for i in range(start + 1, len(lines)) if lines[i][1] in ("aot", "table")), len(lines))
    last = max((i for i in range(start, end) if lines[i][1] == "content"), default=start)
    run = last
    while run + 1 < end and lines[run + 1][1] == "comment":
        run += 1
    if run + 1 >= len(lines) or lines[run + 1][1] == "blank":
        last = run  # comments right under the last key, then a blank line or the end: the table's own
    return lines[last + 1][0] if last + 1 < len(lines) else len(text)


def _classify(text: str) -> list[tuple[int, str, str]]:
    """Each line's offset and kind (blank, comment, content, table, aot) with a header's table name.
    Lines inside multi-line strings and arrays count as content."""
    result: list[tuple[int, str, str]] = []
    offset, state, depth = 0, "", 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if state or depth:
            kind, name = "content", ""
        elif not stripped:
            kind, name = "blank", ""
        elif stripped.startswith("#"):
            kind, name = "comment", ""
        elif header := re.match(r"^\s*(\[\[?)\s*(.+?)\s*\]", line):
            kind = "aot" if header.group(1) == "[[" else "table"
            name = re.sub(r"\s*\.\s*", ".", header.group(2)).replace('"', "").replace("'", "")
            result.append((offset, kind, name))
            offset += len(line)
            continue
        else:
            kind, name = "content", ""
        result.append((offset, kind, name))
        state, depth = _scan_line(line, state, depth)
        offset += len(line)
    return result


def _scan_line(line: str, state: str, depth: int) -> tuple[str, int]:
    """Carry the multi-line string (``\"\"\"``/``'''``) and bracket depth across one line."""
    i = 0
    while i < len(line):
        if state:
            if state == '"""' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(state[0] * 3, i):
                run = len(line[i:]) - len(line[i:].lstrip(state[0]))
                state, i = "", i + run
                continue
            i += 1
            continue
        ch = line[i]
        if ch == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            state, i = line[i : i + 3], i + 3
        elif ch in "\"'":
            i = _string_end(line, i)
        else:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            i += 1
    return state, max(depth, 0)


def _string_end(line: str, start: int) -> int:
    quote, i = line[start], start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return i


def _verify(path: Path, text: str, new_text: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """The new text must read as the old plus the new entries, and be a valid configuration."""
    try:
        before, after = tomllib.loads(text), tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"{path}: left as it was: the entry could not be appended: {exc}") from None
    expected = {**before, "sources": [*before.get("sources", []), *(dict(e) for e in entries)]}
    if after != expected:
        raise SourceError(
            f"{path}: left as it was: its [[sources]] cannot be extended in place "
            "(sources written as an inline array?); add the entry by hand"
        )
    try:
        config.parse_data(after, new_text, path)  # the TOML read once: a large import's file is big
    except ConfigError as exc:
        raise SourceError(f"{path}: left as it was: with the new entry it would not load: {exc.problems[0]}") from None


def _replace(path: Path, data: bytes, expect: bytes | None = None) -> None:
    """Write a file atomically, keeping its permissions; refuse if it changed since it was read."""
    try:
        if expect is not None and path.read_bytes() != expect:
            raise SourceError(f"{path}: changed while sources were being added; nothing written, try again")
        mode = path.stat().st_mode & 0o7777
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, mode)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SourceError(f"{path}: cannot be written: {exc.strerror or exc}") from None


# -- how each source fares -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One endpoint's record: its last fetch, this week's posts, the filter's drops and a hint.

    ``hint_kind`` is ``dead`` (gone, resting after failures, or silent for `QUIET_DAYS`),
    ``failing``, ``quiet`` (answers but has had no post), ``noise`` (the filter drops most of it)
    or '' when nothing stands out."""

    kind: str
    key: str
    name: str
    url: str
    status: str
    last_error: str
    failures: int
    last_attempt: datetime | None
    last_success: datetime | None
    resting_until: datetime | None
    newest_post: datetime | None
    posts_week: int
    filtered: int
    dropped: int
    hint_kind: str = ""
    hint: str = ""
    note: str = ""  # the last run's notes: posts skipped as unreadable, a move, a fallback to RSS

    @property
    def dropped_share(self) -> float | None:
        """The share of its posts the last filter run dropped, or None when it judged none."""
        return self.dropped / self.filtered if self.filtered else None

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` record: times as ISO 8601 (UTC) or null."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "url": self.url,
            "status": self.status,
            "last_error": self.last_error,
            "failures": self.failures,
            "last_attempt": iso(self.last_attempt),
            "last_success": iso(self.last_success),
            "resting_until": iso(self.resting_until),
            "newest_post": iso(self.newest_post),
            "posts_week": self.posts_week,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "dropped_share": round(self.dropped_share, 3) if self.dropped_share is not None else None,
            "hint_kind": self.hint_kind or None,
            "hint": self.hint or None,
            "note": self.note or None,
        }


def source_status(settings: Settings, store: Store | None, *, now: datetime) -> list[SourceStatus]:
    """Every configured endpoint (as `jobs_for` names them) in config order, with what the store
    knows of it; ``store`` None (no database yet) gives every source as new. Reads only."""
    states = store.source_states() if store else {}
    activity = store.source_activity(now - timedelta(days=settings.digest.window_days)) if store else {}
    drops = store.source_drops() if store else {}
    rows = []
    for key, (url, kind, name) in _endpoints(settings).items():
        state = states.get(key) or SourceState(key=key, kind=kind, url=url)
        posts, newest_stored = activity.get(key, (0, None))
        filtered, dropped = drops.get(key, (0, 0))
        newest = max((d for d in (state.newest_post, newest_stored) if d), default=None)
        resting = state.next_attempt if state.next_attempt and state.next_attempt > now else None
        row = SourceStatus(
            kind=kind,
            key=key,
            name=name,
            url=state.url or url,
            status=state.status,
            last_error=state.last_error,
            failures=state.failures,
            last_attempt=state.last_attempt,
            last_success=state.last_success,
            resting_until=resting,
            newest_post=newest,
            posts_week=posts,
            filtered=filtered,
            dropped=dropped,
            note=state.note,
        )
        hint_kind, hint = _hint(row, now, settings.collect.failure_threshold)
        rows.append(replace(row, hint_kind=hint_kind, hint=hint))
    return rows


def status_of(settings: Settings, *, now: datetime) -> list[SourceStatus]:
    """`source_status` over the configured store, without creating a database that is not there yet."""
    url = settings.database_url
    if not database_exists(url):
        return source_status(settings, None, now=now)
    with Store.open(url, read_only=True) as store:
        return source_status(settings, store, now=now)


def _endpoints(settings: Settings) -> dict[str, tuple[str, str, str]]:
    """Each endpoint key -> (URL, kind, the source's display name), in config order."""
    found: dict[str, tuple[str, str, str]] = {}
    for source in settings.sources:
        for job in jobs_for(replace(settings, sources=(source,))):
            found.setdefault(job.key, (job.url, job.kind, source.name or ""))
    return found


def _hint(row: SourceStatus, now: datetime, threshold: int) -> tuple[str, str]:
    """What a curator should know about a source at a glance: (kind, sentence), or ('', '')."""
    if row.status == "dead":
        error = row.last_error or "HTTP 410 Gone"
        return "dead", f"gone: {error}" + ("" if "remove it" in error else "; remove it from feeds.toml")
    if row.resting_until and row.failures >= threshold:
        return "dead", (
            f"resting until {row.resting_until:%Y-%m-%d %H:%M} UTC after {row.failures} failures in a row: "
            f"{row.last_error}"
        )
    if row.failures:
        return "failing", f"{row.failures} failure{'s' if row.failures > 1 else ''} in a row: {row.last_error}"
    if row.newest_post and row.newest_post < now - timedelta(days=QUIET_DAYS):
        days = (now - row.newest_post).days
        return "dead", f"no post in {days} days (the last on {row.newest_post:%Y-%m-%d}); still worth following?"
    if row.filtered >= NOISE_MIN_POSTS and row.dropped >= NOISE_SHARE * row.filtered:
        return "noise", (
            f"mostly noise: the filter dropped {row.dropped} of its {row.filtered} posts "
            f"({row.dropped / row.filtered:.0%}); worth unfollowing?"
        )
    if row.last_success and not row.newest_post:
        return "quiet", "answers, but no post collected from it yet"
    return "", ""
