"""How each source fares (`digest sources status`): read from the store, never written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..collect import jobs_for
from ..config import Settings
from ..errors import REMOVE_IT
from ..models import SourceState
from ..store import Store, database_exists

NOISE_SHARE = 0.6  # a source whose posts the filter drops this often ...
NOISE_MIN_POSTS = 5  # ... out of at least this many is mostly noise
QUIET_DAYS = 30  # no post for this long: probably dead


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
        return "dead", f"gone: {row.last_error or 'HTTP 410 Gone'}; {REMOVE_IT}"  # collect stores the reason alone
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
