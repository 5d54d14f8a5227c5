"""Readers' signals ("not for me", "more like this") and the examples a topic accepted from them (issue 17)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ..feedback import Signal
from ..models import AcceptedExample
from ._engine import Records, guarded
from ._schema import examples, signals
from ._sql import insert_new

__all__ = ["SignalRecords"]


class SignalRecords(Records):
    """A reader has at most one signal per post and topic: pressing the other button replaces it, pressing
    the same one again (here or in another process at once) changes nothing."""

    @guarded("record a reader's signal")
    def record_signal(self, signal: Signal) -> None:
        row = {
            "email": signal.email.lower(),
            "post_id": signal.post_id,
            "topic": signal.topic,
            "kind": signal.kind,
            "text": signal.text,
            "author": signal.author,
            "created_at": signal.at,
        }
        mine = (signals.c.email == row["email"], signals.c.post_id == signal.post_id, signals.c.topic == signal.topic)
        with self.engine.begin() as conn:
            conn.execute(signals.delete().where(*mine, signals.c.kind != signal.kind))
            insert_new(conn, signals, [row])

    @guarded("undo a reader's signal")
    def undo_signal(self, email: str, post_id: str, topic: str) -> bool:
        mine = (signals.c.email == email.lower(), signals.c.post_id == post_id, signals.c.topic == topic)
        with self.engine.begin() as conn:
            return bool(conn.execute(signals.delete().where(*mine)).rowcount)

    @guarded("read readers' signals")
    def signals(self, *, email: str | None = None, post_id: str | None = None) -> list[Signal]:
        query = sa.select(signals).order_by(signals.c.created_at, signals.c.id)
        if email is not None:
            query = query.where(signals.c.email == email.lower())
        if post_id is not None:
            query = query.where(signals.c.post_id == post_id)
        with self.engine.connect() as conn:
            return [
                Signal(r.email or "", r.post_id, r.topic, r.kind, r.text, r.author, r.created_at)
                for r in conn.execute(query)
            ]

    @guarded("store accepted examples")
    def accept_examples(self, items: Sequence[tuple[str, str, str, bool]], origin: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            for topic, post_id, _, _ in items:
                conn.execute(examples.delete().where(examples.c.topic == topic, examples.c.post_id == post_id))
            rows = [
                {"topic": t, "post_id": p, "text": x, "label": y, "origin": origin, "accepted_at": now}
                for t, p, x, y in items
            ]
            insert_new(conn, examples, rows)

    @guarded("read accepted examples")
    def examples(self) -> list[AcceptedExample]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(examples).order_by(examples.c.topic, examples.c.accepted_at))
            return [AcceptedExample(**r._asdict()) for r in rows]
