"""Which posts an edition covers: the week arithmetic, written once.

Editions are contiguous periods. The edition labelled with an ISO week (``2026-W47``, the week of
its send time) covers ``[the previous edition's send time, its own send time)``, the send time
being ``[digest] send_on`` in ``[digest] timezone``. So every post belongs to exactly one edition,
whatever day a command runs on:

- `last_completed` is the edition whose send time has passed most recently: what ``digest send``
  and ``digest run`` send (before Friday's send time, that is last Friday's edition, which a re-run
  finds already sent);
- `in_progress` is the next one, its period ending now: what ``digest preview`` shows by default;
- `edition_for` resolves a ``--week``: a week whose period has not started yet is refused, and so,
  for sending, is the one still in progress.

The schedule (``schedule.py``: `send_due`, `next_send`), the pipeline (``pipeline.py``) and the composer
(`week_bounds`, its labels) all read these functions; nothing else computes a send time or an ISO week.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from .config import Settings
from .errors import UsageError

__all__ = [
    "Period",
    "describe",
    "edition_for",
    "in_progress",
    "last_completed",
    "next_send",
    "parse_week",
    "send_due",
    "send_time",
    "week_bounds",
    "week_of",
]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Period:
    """One edition's span, in UTC: posts published in ``[since, until)``. ``due`` is its send time;
    ``until`` is ``due`` once the edition is complete, and now while it is in progress."""

    week: str
    since: datetime
    until: datetime
    due: datetime

    @property
    def complete(self) -> bool:
        return self.until >= self.due


def _zone(timezone: str | tzinfo) -> tzinfo:
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def week_of(moment: datetime | date, timezone: str | tzinfo = UTC) -> str:
    """The ISO week a moment (in ``timezone``) or a date falls in: ``"2026-W47"``."""
    day = moment.astimezone(_zone(timezone)).date() if isinstance(moment, datetime) else moment
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> tuple[int, int]:
    """``"2026-W47"`` -> (2026, 47); anything else is a `UsageError` naming the expected form."""
    match = _WEEK.match(text)
    try:
        if not match:
            raise ValueError
        year, week = int(match.group(1)), int(match.group(2))
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise UsageError(f"--week {text!r}: not an ISO week such as 2026-W47") from None
    return year, week


def send_time(settings: Settings, year: int, week: int) -> datetime:
    """The send time (UTC) of ISO week ``year-Wweek``: ``send_on`` in ``timezone``."""
    weekday, at = settings.digest.schedule
    local = datetime.combine(date.fromisocalendar(year, week, weekday + 1), at, _zone(settings.digest.timezone))
    return local.astimezone(UTC)


def _send_of(settings: Settings, day: date) -> datetime:
    year, week, _ = day.isocalendar()
    return send_time(settings, year, week)


def _period(settings: Settings, due: datetime, until: datetime | None = None) -> Period:
    """The edition sent at ``due``: from the previous week's send time (one ISO week back, so a
    change of summer time moves neither end) to ``due``."""
    zone = _zone(settings.digest.timezone)
    day = due.astimezone(zone).date()
    since = _send_of(settings, day - timedelta(days=7))
    return Period(week_of(day), since, due if until is None else min(until, due), due)


def last_completed(settings: Settings, now: datetime) -> Period:
    """The edition whose send time is the latest one at or before ``now``."""
    today = now.astimezone(_zone(settings.digest.timezone)).date()
    due = _send_of(settings, today)
    if due > now:
        due = _send_of(settings, today - timedelta(days=7))
    return _period(settings, due)


def in_progress(settings: Settings, now: datetime) -> Period:
    """The edition after `last_completed`: its period started at the last send time and runs to now."""
    last = last_completed(settings, now)
    next_day = last.due.astimezone(_zone(settings.digest.timezone)).date() + timedelta(days=7)
    return _period(settings, _send_of(settings, next_day), until=now)


def edition_for(settings: Settings, week: str | None, now: datetime, *, complete: bool) -> Period:
    """The edition a command means. No ``week``: the last completed one when ``complete`` (sending),
    else the one in progress (previewing). A named week whose period has not begun is refused, and
    so, when ``complete``, is the one still in progress: sending it early would leave the rest of its
    week's posts in no edition."""
    if week is None:
        return last_completed(settings, now) if complete else in_progress(settings, now)
    year, number = parse_week(week)
    period = _period(settings, send_time(settings, year, number), until=now)
    label = period.week
    if period.since > now:
        raise UsageError(
            f"--week {label}: that edition's period has not begun (it starts {describe(settings, period.since)})"
        )
    if complete and not period.complete:
        raise UsageError(
            f"--week {label}: that edition is not complete until {describe(settings, period.due)} (send_on); "
            "`digest preview` shows it so far"
        )
    return period


def describe(settings: Settings, moment: datetime) -> str:
    """``Fri 27 Nov 2026 07:00 UTC``: a send time in the schedule's zone, English whatever the locale."""
    local = moment.astimezone(_zone(settings.digest.timezone))
    day, month = _DAYS[local.weekday()], _MONTHS[local.month - 1]
    return f"{day} {local.day} {month} {local.year} {local:%H:%M} {settings.digest.timezone}"


def send_due(settings: Settings, now: datetime) -> str | None:
    """The ISO week (``2026-W47``) whose weekly job is due at ``now``: the last completed edition
    (`periods.last_completed`), until the ISO week of its send time ends. None before the send time."""
    last = last_completed(settings, now)
    return last.week if week_of(now, settings.digest.timezone) == last.week else None


def next_send(settings: Settings, now: datetime) -> datetime:
    """The next send time after ``now`` (this week's, or next week's when it has passed)."""
    return in_progress(settings, now).due


def week_bounds(week: str, timezone: str | tzinfo) -> tuple[datetime, datetime]:
    """An ISO week (``"2026-W47"``) as the calendar week [Monday 00:00, next Monday 00:00) in ``timezone``:
    the period of a `Composer` given none (an edition's real period comes from `periods`)."""
    monday = date.fromisocalendar(*parse_week(week), 1)
    zone = _zone(timezone)
    return datetime.combine(monday, time(), zone), datetime.combine(monday + timedelta(days=7), time(), zone)
