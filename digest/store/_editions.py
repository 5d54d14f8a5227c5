"""A week's editions as first composed, kept so that a re-run sends the same ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ..models import Edition
from ._engine import Records, guarded
from ._schema import deliveries, editions
from ._sql import from_json, insert_new

__all__ = ["EditionRecords"]


class EditionRecords(Records):
    """Each week's editions."""

    @guarded("store editions")
    def save_editions(self, week: str, items: Sequence[Edition], now: datetime) -> None:
        """Keep a week's editions as first composed (html and text with their placeholders), by path.
        A re-run of the week sends the same editions."""
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(editions.c.path).where(editions.c.week == week)).scalars())
            rows = [
                {
                    "week": week,
                    "path": e.path,
                    "topics": list(e.topics),
                    "subject": e.subject,
                    "html": e.html,
                    "text": e.text,
                    "created_at": now,
                }
                for e in items
                if e.path not in have
            ]
            insert_new(conn, editions, rows)  # a second run composing the week at once keeps the first set

    @guarded("read editions")
    def editions(self, week: str) -> dict[str, Edition]:
        """A week's stored editions by path."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(editions).where(editions.c.week == week).order_by(editions.c.path))
            return {
                r.path: Edition(r.week, r.subject, r.html, r.text, tuple(from_json(r.topics)), r.path, r.created_at)
                for r in rows
            }

    @guarded("read the weeks with editions")
    def weeks(self) -> list[str]:
        """Every week with a stored edition, newest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(editions.c.week).distinct().order_by(editions.c.week.desc())).scalars())

    @guarded("read the weeks sent")
    def sent_weeks(self) -> list[str]:
        """Weeks whose editions went out (at least one delivery sent or handed over), newest first."""
        query = (
            sa.select(deliveries.c.week)
            .where(deliveries.c.status.in_(("sent", "handed_over")))
            .distinct()
            .order_by(deliveries.c.week.desc())
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())
