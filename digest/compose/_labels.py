"""Dates, zones and paths as a reader sees them: ``16–22 November 2026``, ``New York time``, an edition's path."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _zone(timezone: str | tzinfo) -> tzinfo:
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def zone_label(zone: str | tzinfo) -> str:
    """A time zone as a reader says it: ``New York time`` for ``America/New_York``, ``UTC`` for UTC."""
    key = str(zone)
    if key.upper() in {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z"}:
        return "UTC"
    if "/" not in key or key.startswith("Etc/"):
        return key
    return key.rsplit("/", 1)[1].replace("_", " ") + " time"


def _period_label(start: datetime, end: datetime, zone: tzinfo) -> str:
    """``16–22 November 2026`` for [start, end) in ``zone``: the last day shown is the one before ``end``
    at midnight (an edition sent Friday 07:00 shows that Friday)."""
    last = (end.astimezone(zone) - timedelta(microseconds=1)).date()
    first = start.astimezone(zone).date()
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {_MONTHS[last.month - 1]} {last.year}"
    if first.year == last.year:
        return f"{first.day} {_MONTHS[first.month - 1]} – {last.day} {_MONTHS[last.month - 1]} {last.year}"
    return f"{first.day} {_MONTHS[first.month - 1]} {first.year} – {last.day} {_MONTHS[last.month - 1]} {last.year}"


def _time_label(moment: datetime) -> str:
    """``Tue 17 Nov, 09:05``: English names whatever the process locale, so editions never vary with it."""
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1][:3]}, {moment:%H:%M}"


def selection(topics: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
    """A topic selection in its one canonical form: no repeats, in the configured order."""
    rank = {name: i for i, name in enumerate(order)}
    return tuple(sorted(dict.fromkeys(topics), key=lambda t: (rank.get(t, len(rank)), t)))


def edition_path(week: str, topics: Sequence[str]) -> str:
    """Where an edition's web copy lives under the public URL: ``editions/2026-W47/fhir+privacy``."""
    slug = "+".join(re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-") or "topic" for t in topics)
    if len(slug) > 80 or not slug:
        slug = "t-" + hashlib.sha256("\x1f".join(topics).encode()).hexdigest()[:12]
    return f"editions/{week}/{slug}"
