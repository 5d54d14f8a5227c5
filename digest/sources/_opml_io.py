"""Importing and exporting OPML: every feed checked like an added one, written in one edit of feeds.toml."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..config import BlueskySource, FeedSource, HashtagSource, MastodonSource, Settings
from ..errors import SourceError
from ..opml import OpmlFeed, OpmlGroup, read_opml, write_opml
from ._check import _check_or_none, _run
from ._editor import append_sources
from ._input import NewSource, _clean_name, _duplicate_reason, _existing, from_feed_url


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
