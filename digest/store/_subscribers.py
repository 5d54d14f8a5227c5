"""Subscribers, and the suppressions: all that is kept of an address that unsubscribed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Recipient
from ._engine import Records, guarded
from ._schema import deliveries, signals, subscribers, suppression_hash, suppressions
from ._sql import from_json

__all__ = ["SubscriberRecords"]


def _recipient(row: Any) -> Recipient:
    topics = from_json(row.topics) if row.topics is not None else None
    return Recipient(
        row.email, row.name, tuple(topics) if topics is not None else None, row.status, row.origin, row.bounces
    )


class SubscriberRecords(Records):
    """Subscribers and suppressed addresses."""

    @guarded("store feeds.toml's subscribers")
    def sync_config_subscribers(self, listed: Sequence[Recipient], now: datetime) -> None:
        """Make the store's subscribers match those listed in feeds.toml: add new ones as confirmed,
        refresh names and topics, and never revive one who unsubscribed (a suppressed address) or
        keeps bouncing."""
        with self.engine.begin() as conn:
            known = {r.email: r for r in conn.execute(sa.select(subscribers))}
            suppressed = set(conn.execute(sa.select(suppressions.c.hash)).scalars())
            for item in listed:
                email = item.email.lower()
                if suppression_hash(email) in suppressed:
                    continue
                row = {"name": item.name, "topics": list(item.topics) if item.topics is not None else None}
                if email not in known:
                    conn.execute(
                        subscribers.insert().values(
                            email=email,
                            status="confirmed",
                            origin="config",
                            bounces=0,
                            created_at=now,
                            updated_at=now,
                            **row,
                        )
                    )
                elif known[email].origin == "config":
                    conn.execute(subscribers.update().where(subscribers.c.email == email).values(updated_at=now, **row))

    @guarded("store a subscriber")
    def add_subscriber(self, recipient: Recipient, now: datetime) -> None:
        """Insert or replace one subscriber (the subscription pages use this)."""
        values = {
            "email": recipient.email.lower(),
            "name": recipient.name,
            "status": recipient.status,
            "topics": list(recipient.topics) if recipient.topics is not None else None,
            "origin": recipient.origin,
            "bounces": recipient.bounces,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            done = conn.execute(subscribers.update().where(subscribers.c.email == values["email"]).values(values))
            if done.rowcount == 0:
                conn.execute(subscribers.insert().values(created_at=now, **values))

    @guarded("read subscribers")
    def subscribers(self, status: str | None = None) -> list[Recipient]:
        """Every subscriber (or those with one status), by address."""
        query = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_recipient(row) for row in conn.execute(query)]

    @guarded("read a subscriber")
    def subscriber(self, email: str) -> Recipient | None:
        """One subscriber by address, or None."""
        query = sa.select(subscribers).where(subscribers.c.email == email.strip().lower())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _recipient(row) if row else None

    @guarded("count subscribers")
    def subscriber_counts(self) -> dict[str, int]:
        """How many subscribers are in each state; ``unsubscribed`` counts the suppressions."""
        counts = dict.fromkeys(("pending", "confirmed", "unsubscribed", "bouncing"), 0)
        with self.engine.connect() as conn:
            query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
            for status, n in conn.execute(query):
                counts[status] = counts.get(status, 0) + int(n)
            counts["unsubscribed"] += int(
                conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar_one()
            )
        return counts

    @guarded("forget unconfirmed subscriptions")
    def drop_pending(self, before: datetime) -> int:
        """Forget subscriptions still unconfirmed since before ``before``; return how many."""
        query = subscribers.delete().where(subscribers.c.status == "pending", subscribers.c.updated_at < before)
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount)

    @guarded("unsubscribe an address")
    def unsubscribe(self, email: str, now: datetime) -> bool:
        """Forget an address and keep only its suppression (hash and date), in one transaction: the
        subscriber row goes, and its past deliveries keep only a pseudonym (so the archive still
        knows which weeks went out) and its signals only as anonymous counts. True when it was a subscriber."""
        email = email.strip().lower()
        with self.engine.begin() as conn:
            gone = conn.execute(subscribers.delete().where(subscribers.c.email == email)).rowcount
            conn.execute(
                deliveries.update()
                .where(deliveries.c.email == email)
                .values(email="unsubscribed:" + suppression_hash(email)[:32], message_id="", answer="", error="")
            )
            conn.execute(signals.update().where(signals.c.email == email).values(email=None))  # counts only
            self._suppress(conn, email, now)
        return bool(gone)

    @guarded("suppress an address")
    def suppress(self, email: str, now: datetime) -> None:
        """Add an address to the suppression list (kept as its hash), if it is not there yet."""
        with self.engine.begin() as conn:
            self._suppress(conn, email, now)

    def _suppress(self, conn: Connection, email: str, now: datetime) -> None:
        digest = suppression_hash(email)
        if conn.execute(sa.select(suppressions.c.hash).where(suppressions.c.hash == digest)).first() is None:
            conn.execute(suppressions.insert().values(hash=digest, created_at=now))

    @guarded("read the suppressions")
    def suppressed(self, email: str) -> datetime | None:
        """When an address was suppressed, or None when it is not."""
        query = sa.select(suppressions.c.created_at).where(suppressions.c.hash == suppression_hash(email))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    @guarded("lift a suppression")
    def lift_suppression(self, email: str) -> None:
        """Take an address off the suppression list (the person subscribed again and confirmed)."""
        with self.engine.begin() as conn:
            conn.execute(suppressions.delete().where(suppressions.c.hash == suppression_hash(email)))

    @guarded("record a bounce")
    def record_bounce(self, email: str, limit: int, now: datetime) -> bool:
        """Count a hard bounce; at ``limit`` the address is marked bouncing. True when it now is."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email.lower())).first()
            if row is None:
                return False
            bounces = row.bounces + 1
            status = "bouncing" if bounces >= limit and row.status == "confirmed" else row.status
            conn.execute(
                subscribers.update()
                .where(subscribers.c.email == row.email)
                .values(bounces=bounces, status=status, updated_at=now)
            )
            return status == "bouncing"
