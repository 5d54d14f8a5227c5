"""Deliveries: one edition to one subscriber for one week, claimed by the run sending it, and
`DeliveryLog`, which records each one's states as the run goes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import LostClaim
from ..models import Delivery, DeliveryStatus
from . import leases
from ._engine import Records, guarded, store_error
from ._schema import deliveries
from ._sql import insert_new

__all__ = ["DeliveryLog", "DeliveryRecords"]


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.week, row.email, row.path, row.status, row.message_id, row.attempts, row.answer, row.error, row.uncertain
    )


# Built once: a delivery changes state twice per message, and building the statement each time costs more than running it.
# Only the run holding a delivery's claim may move it.
_MARK_DELIVERY = deliveries.update().where(
    deliveries.c.week == sa.bindparam("_week"),
    deliveries.c.email == sa.bindparam("_email"),
    deliveries.c.owner == sa.bindparam("_owner"),
)
_UNFINISHED = ("queued", "sending", "handed_over")


class DeliveryLog:
    """Records one run's delivery states, each change its own transaction, only on rows the run holds.

    Durable changes go through a connection with ``synchronous=FULL`` (on SQLite: they survive a power
    loss once recorded); the others through one with ``NORMAL``, which survives a crash but may roll
    back on power loss. Safe to use from several threads (one message on each SMTP connection): each
    change holds the log's lock while it runs."""

    def __init__(self, engine: Engine, owner: str = "") -> None:
        self.engine, self.owner = engine, owner
        self._lock = threading.Lock()
        self.durable, self.fast = engine.connect(), engine.connect()
        if engine.dialect.name == "sqlite":
            self.durable.exec_driver_sql("PRAGMA synchronous=FULL")
            self.fast.exec_driver_sql("PRAGMA synchronous=NORMAL")
        self.durable.commit()
        self.fast.commit()

    def mark(
        self, delivery: Delivery, status: DeliveryStatus, now: datetime, *, durable: bool = True, **values: Any
    ) -> Delivery:
        """Move one delivery to ``status`` (with answer, error, attempts or lease) and commit.

        Raises `LostClaim` when the run no longer holds the delivery (its lease lapsed and another run
        took it over): the caller must not hand the message over.
        """
        try:
            with self._lock:
                return self._mark(delivery, status, now, durable, values)
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(self.engine, "record a delivery", exc) from exc

    def _mark(
        self, delivery: Delivery, status: DeliveryStatus, now: datetime, durable: bool, values: dict[str, Any]
    ) -> Delivery:
        conn = self.durable if durable else self.fast
        params = {
            "_week": delivery.week,
            "_email": delivery.email,
            "_owner": self.owner,
            "status": status,
            "updated_at": now,
            **values,
        }
        if conn.execute(_MARK_DELIVERY, params).rowcount != 1:
            conn.rollback()
            raise LostClaim(f"{delivery.email}: another run took this delivery over; it sends it")
        conn.commit()
        known = {k: v for k, v in values.items() if k in Delivery.__dataclass_fields__}
        return Delivery(**{**asdict(delivery), "status": status, **known})

    def close(self) -> None:
        self.durable.close()
        self.fast.close()

    def __enter__(self) -> DeliveryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DeliveryRecords(Records):
    """The deliveries of each week, and claims on them for the runs sending."""

    @guarded("queue deliveries")
    def queue_deliveries(self, week: str, items: Sequence[tuple[str, str, str]], now: datetime) -> int:
        """Queue (email, path, message id) for a week unless already queued (by this run or another at the
        same moment); return how many this call queued."""
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(deliveries.c.email).where(deliveries.c.week == week)).scalars())
            rows = [
                {
                    "week": week,
                    "email": email,
                    "path": path,
                    "status": "queued",
                    "message_id": mid,
                    "attempts": 0,
                    "answer": "",
                    "error": "",
                    "queued_at": now,
                    "updated_at": now,
                    "owner": "",
                    "lease_until": None,
                    "uncertain": 0,
                }
                for email, path, mid in items
                if email not in have
            ]
            return len(insert_new(conn, deliveries, rows, deliveries.c.email))

    @guarded("claim deliveries")
    def claim_deliveries(
        self,
        week: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        limit: int,
        only: Collection[str] | None = None,
        gone: Callable[[str], bool] = leases.is_gone,
    ) -> list[tuple[Delivery, DeliveryStatus]]:
        """Claim up to ``limit`` of the week's unfinished deliveries for ``owner``: queued ones, and those
        whose holder's lease lapsed or whose holder is gone (see `leases`). Each row is taken by a
        compare-and-set on the status and owner read, so two runs never hold the same delivery.

        Returns each claimed delivery (now ``sending``) with the status it had: ``handed_over`` means
        its last holder died between recording the handover and the server's answer (uncertain).
        """
        open_rows = (
            sa.select(deliveries.c.email, deliveries.c.status, deliveries.c.owner, deliveries.c.lease_until)
            .where(deliveries.c.week == week, deliveries.c.status.in_(_UNFINISHED))
            .order_by(deliveries.c.email)
        )
        # Rows free by their columns alone first, a few batches' worth: reading every open row for each
        # batch made a week of 10,000 deliveries read 2.5 million rows. Only when those run short are all
        # open rows read, to find the ones whose holder is gone.
        plainly_free = open_rows.where(
            sa.or_(
                deliveries.c.status == "queued",
                deliveries.c.owner == "",
                deliveries.c.lease_until.is_(None),
                deliveries.c.lease_until <= now,
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(plainly_free.limit(limit * 4)).all()
            if only is not None:
                rows = [r for r in rows if r.email in only]
            if len(rows) < limit:
                rows = conn.execute(open_rows).all()
        verdicts: dict[str, bool] = {}

        def free(row: Any) -> bool:
            if only is not None and row.email not in only:
                return False
            if row.status == "queued" or not row.owner or row.lease_until is None or row.lease_until <= now:
                return True
            if row.owner not in verdicts:
                verdicts[row.owner] = row.owner != owner and gone(row.owner)
            return verdicts[row.owner]

        chosen = [r for r in rows if free(r)]
        if not chosen:
            return []
        claimed: dict[str, DeliveryStatus] = {}
        with self.engine.begin() as conn:  # the first statement writes: SQLite takes its write lock at once
            for r in chosen:  # past the rows another run took since they were read, up to the limit
                if len(claimed) >= limit:
                    break
                taken = conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.week == week,
                        deliveries.c.email == r.email,
                        deliveries.c.status == r.status,
                        deliveries.c.owner == r.owner,
                    )
                    .values(
                        status="sending",
                        owner=owner,
                        lease_until=now + lease,
                        updated_at=now,
                        uncertain=deliveries.c.uncertain + (1 if r.status == "handed_over" else 0),
                    )
                )
                if taken.rowcount == 1:
                    claimed[r.email] = r.status
        mine = sa.select(deliveries).where(
            deliveries.c.week == week, deliveries.c.owner == owner, deliveries.c.email.in_(list(claimed))
        )
        with self.engine.connect() as conn:
            got = [_delivery(row) for row in conn.execute(mine.order_by(deliveries.c.email))]
        return [(d, claimed[d.email]) for d in got if d.status == "sending"]

    @guarded("renew the claims on deliveries")
    def renew_deliveries(self, week: str, owner: str, until: datetime) -> None:
        """Extend the lease on every delivery of the week that ``owner`` still holds."""
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.week == week,
                    deliveries.c.owner == owner,
                    deliveries.c.status.in_(("sending", "handed_over")),
                )
                .values(lease_until=until)
            )

    @guarded("release deliveries")
    def release_deliveries(self, week: str, owner: str, now: datetime) -> int:
        """Give back the deliveries ``owner`` claimed but did not hand over: queued again for any run."""
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.week == week, deliveries.c.owner == owner, deliveries.c.status == "sending")
                .values(status="queued", owner="", lease_until=None, updated_at=now)
            )
        return int(result.rowcount or 0)

    @guarded("read deliveries")
    def deliveries(self, week: str) -> list[Delivery]:
        """A week's deliveries, by address."""
        query = sa.select(deliveries).where(deliveries.c.week == week).order_by(deliveries.c.email)
        with self.engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    @guarded("open the delivery log")
    def delivery_log(self, owner: str = "") -> DeliveryLog:
        """A connection for recording ``owner``'s sends one by one (see `DeliveryLog`)."""
        return DeliveryLog(self.engine, owner)
