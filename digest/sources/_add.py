"""Adding one source: parse it, find its feeds, check it, refuse a duplicate, write it into feeds.toml."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..errors import ChoiceNeeded, FetchError, SourceError
from ._check import Checked, _check_or_none, _Probe, _probe, _run
from ._discovery import COMMON_PATHS, Candidate
from ._editor import append_sources
from ._input import NewSource, _clean_name, _duplicate_reason, _existing, _one_line, from_feed_url, parse_source


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
        raise SourceError(f"not added: {_one_line(exc)} (--no-check adds it anyway)") from None
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
