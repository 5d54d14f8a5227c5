"""A week's editions as first composed, kept so that a re-run sends the same ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ._engine import Records, guarded
from ._schema import deliveries, editions
from ._sql import from_json, insert_new

__all__ = ["EditionRecords"]


class EditionRecords(Records):
    """Each week's editions."""

    @guarded("store editions")
    def save_editions(
        self, week: str, items: Sequence[tuple[str, Sequence[str], str, str, str]], now: datetime
    ) -> None:
        """Keep a week's editions as first composed: (path, topics, subject, html, text), html and text
        with their placeholders. A re-run of the week sends the same editions."""
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(editions.c.path).where(editions.c.week == week)).scalars())
            rows = [
                {
                    "week": week,
                    "path": path,
                    "topics": list(topics),
                    "subject": subject,
                    "html": html,
                    "text": text,
                    "created_at": now,
                }
                for path, topics, subject, html, text in items
                if path not in have
            ]
            insert_new(conn, editions, rows)  # a second run composing the week at once keeps the first set

    @guarded("read editions")
    def editions(self, week: str) -> dict[str, dict[str, Any]]:
        """A week's stored editions by path."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(editions).where(editions.c.week == week).order_by(editions.c.path))
            return {r.path: {**r._asdict(), "topics": tuple(from_json(r.topics))} for r in rows}

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
