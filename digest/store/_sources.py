"""The sources' table: each endpoint's remembered state, and the claims and leases that let several
collect runs share the sources."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import SourceState
from . import leases
from ._engine import Records, guarded
from ._schema import post_sources, posts, sources
from ._sql import ON_CONFLICT, existing, insert_new, select_in

__all__ = ["SourceClaims", "SourceRecords", "save_states", "source_state"]


@dataclass(slots=True)
class SourceClaims:
    """What `Store.claim_sources` got: the claimed sources' states, those held by other runs (key ->
    why), and the claimed ones taken over from a run that died or whose lease lapsed (key -> its owner)."""

    claimed: dict[str, SourceState] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    taken_over: dict[str, str] = field(default_factory=dict)


_STATE_FIELDS = tuple(f.name for f in fields(SourceState))


def source_state(row: Any) -> SourceState:
    m = row._mapping
    return SourceState(**{name: m[name] for name in _STATE_FIELDS})


class SourceRecords(Records):
    """Each source's state, and claims on sources for collect runs."""

    @guarded("read the sources")
    def source_states(self) -> dict[str, SourceState]:
        """Every source's remembered state, by key."""
        with self.engine.connect() as conn:
            return {row.key: source_state(row) for row in conn.execute(sa.select(sources))}

    @guarded("store a source's state")
    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace one source's state."""
        with self._writing() as conn:
            save_states(conn, [state])

    @guarded("claim sources")
    def claim_sources(
        self,
        wanted: Sequence[tuple[str, str, str]],
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        fetched_after: datetime | None = None,
        gone: Callable[[str], bool] = leases.is_gone,
    ) -> SourceClaims:
        """Claim up to ``limit`` of the ``wanted`` sources (key, kind, url) for ``owner`` to fetch now,
        until ``now + lease``. A source is free unless another run holds a live claim on it (its lease
        has not lapsed and its owner is not gone, see `leases`) or, when ``fetched_after`` is given, a
        run fetched it after that moment; a new key gets its row first.

        Safe between processes and machines: on PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``
        (a row another claim is deciding on is skipped, and stays wanted for the next call); on SQLite
        the whole claim is one ``BEGIN IMMEDIATE`` transaction. Each row is taken by a compare-and-set
        on the owner read. Returns the claimed sources' states as stored and, for the others that
        are not free, why.
        """
        claims = SourceClaims()
        kinds = {key: (kind, url) for key, kind, url in wanted}

        def verdict(row: Any) -> str:
            """Why ``row`` is not free for ``owner`` now, or "" when it is."""
            if row.owner and row.owner != owner and row.lease_until and row.lease_until > now and not gone(row.owner):
                return f"being fetched by another run ({row.owner}) until {row.lease_until:%H:%M:%S} UTC"
            if not row.owner and fetched_after and row.last_attempt and row.last_attempt > fetched_after:
                return f"fetched by another run at {row.last_attempt:%H:%M:%S} UTC"
            return ""

        with self._writing() as conn:
            rows = select_in(conn, sources, sources.c.key, set(kinds))
            missing = sorted(set(kinds) - {row.key for row in rows})
            if missing:  # new sources get their row (another process may be adding the same ones)
                insert_new(conn, sources, [{"key": k, "kind": kinds[k][0], "url": kinds[k][1]} for k in missing])
                rows.extend(select_in(conn, sources, sources.c.key, set(missing)))
            free = []
            for row in sorted(rows, key=lambda row: row.key):
                why = verdict(row)
                if why:
                    claims.held[row.key] = why
                else:
                    free.append(row.key)
            if not free:
                return claims
            # Lock the first free rows no other claim is deciding on right now; read them again, locked.
            locking = (
                sa.select(sources)
                .where(sources.c.key.in_(free))
                .order_by(sources.c.key)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for row in conn.execute(locking).all():
                why = verdict(row)
                if why:  # another run claimed or fetched it since the first read
                    claims.held[row.key] = why
                    continue
                taken = conn.execute(
                    sources.update()
                    .where(sources.c.key == row.key, sources.c.owner == row.owner)
                    .values(owner=owner, lease_until=now + lease)
                )
                if taken.rowcount == 1:
                    claims.claimed[row.key] = source_state(row)
                    if row.owner and row.owner != owner:
                        claims.taken_over[row.key] = row.owner
        return claims

    @guarded("renew the claims on sources")
    def renew_sources(self, owner: str, until: datetime) -> None:
        """Extend the lease on every source ``owner`` is fetching."""
        with self._writing() as conn:
            conn.execute(sources.update().where(sources.c.owner == owner).values(lease_until=until))

    @guarded("release the claims on sources")
    def release_sources(self, owner: str, keys: Collection[str] | None = None) -> None:
        """Give back ``owner``'s claims (on ``keys``, or all of them) without recording a fetch."""
        query = sources.update().where(sources.c.owner == owner)
        if keys is not None:
            query = query.where(sources.c.key.in_(list(keys)))
        with self._writing() as conn:
            conn.execute(query.values(owner="", lease_until=None))

    @guarded("read the sources' activity")
    def source_activity(self, since: datetime) -> dict[str, tuple[int, datetime | None]]:
        """Per source key: (posts published since ``since``, the newest post's publication time)."""
        recent = sa.func.sum(sa.case((posts.c.published >= since, 1), else_=0))
        query = (
            sa.select(post_sources.c.source, recent, sa.func.max(posts.c.published))
            .join(posts, posts.c.id == post_sources.c.post_id)
            .group_by(post_sources.c.source)
        )
        with self.engine.connect() as conn:
            return {key: (int(count or 0), newest) for key, count, newest in conn.execute(query)}


def save_states(conn: Connection, states: Sequence[SourceState]) -> None:
    """Insert or replace each source's state (the last one given for a key wins)."""
    if not states:
        return
    upsert = ON_CONFLICT.get(conn.dialect.name)
    if upsert is not None:
        rows = sorted({s.key: asdict(s) for s in states}.values(), key=lambda row: row["key"])
        statement = upsert(sources)
        replace = {c: statement.excluded[c] for c in _STATE_FIELDS if c != "key"}  # a claim is not state
        conn.execute(statement.on_conflict_do_update(index_elements=[sources.c.key], set_=replace), rows)
        return
    stored = existing(conn, sources.c.key, {s.key for s in states})
    rows = [asdict(s) for s in states]
    updates = [{"_key": row["key"], **row} for row in rows if row["key"] in stored]
    if updates:
        conn.execute(sources.update().where(sources.c.key == sa.bindparam("_key")), updates)
    inserts = [row for row in rows if row["key"] not in stored]
    if inserts:
        conn.execute(sources.insert(), inserts)
