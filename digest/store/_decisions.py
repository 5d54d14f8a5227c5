"""The topic filter's record: each run, and every post's decision in it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..models import Decision
from ._engine import Records, guarded
from ._schema import decisions, filter_runs, post_sources
from ._sql import from_json

__all__ = ["DecisionRecords", "FilterRun"]


@dataclass(frozen=True, slots=True)
class FilterRun:
    """One run of the topic filter: when, over which window, and each post's decision in batch order."""

    id: int
    ran_at: datetime
    since: datetime
    until: datetime
    topics: tuple[str, ...]
    verdicts: list[tuple[str, Decision]]

    def decision(self, post_id: str) -> Decision | None:
        return next((d for pid, d in self.verdicts if pid == post_id), None)


class _Serialised(sa.types.UserDefinedType[str]):
    """A JSON column's value as JSON text already: the run's decisions are serialised here, each distinct
    topic tuple and threshold table once, instead of three times per row by SQLAlchemy's JSON type."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "JSON"


# every decision of a run in one executemany, its JSON columns bound as text
_INSERT = decisions.insert().values(
    {name: sa.bindparam(f"_{name}", type_=_Serialised()) for name in ("topics", "scores", "thresholds")}
)


class _Dumps:
    """JSON text of the values a run repeats (the kept topics, the thresholds), each serialised once."""

    def __init__(self) -> None:
        self._topics: dict[tuple[str, ...], str] = {}
        self._thresholds: dict[tuple[tuple[str, float], ...], str] = {}

    def topics(self, topics: tuple[str, ...]) -> str:
        text = self._topics.get(topics)
        if text is None:
            text = self._topics[topics] = json.dumps(list(topics))
        return text

    def thresholds(self, thresholds: dict[str, float]) -> str:
        key = tuple(thresholds.items())
        text = self._thresholds.get(key)
        if text is None:
            text = self._thresholds[key] = json.dumps(thresholds)
        return text


class DecisionRecords(Records):
    """The filter's runs and decisions."""

    @guarded("store a filter run")
    def save_filter_run(
        self,
        ran_at: datetime,
        since: datetime,
        until: datetime,
        topics: Sequence[str],
        verdicts: Sequence[tuple[str, Decision]],
    ) -> int:
        """Record one filter run: each post's decision, in batch order; return the run's id."""
        kept = sum(1 for _, d in verdicts if d.topics)
        with self.engine.begin() as conn:
            run = conn.execute(
                filter_runs.insert()
                .values(ran_at=ran_at, since=since, until=until, topics=list(topics), posts=len(verdicts), kept=kept)
                .returning(filter_runs.c.id)
            ).scalar_one()
            dumped = _Dumps()
            rows = [
                {
                    "run_id": run,
                    "post_id": pid,
                    "position": i,
                    "_topics": dumped.topics(d.topics),
                    "_scores": json.dumps(d.scores),
                    "_thresholds": dumped.thresholds(d.thresholds),
                    "noise_score": d.noise_score,
                }
                for i, (pid, d) in enumerate(verdicts)
            ]
            if rows:
                conn.execute(_INSERT, rows)
        return int(run)

    @guarded("read the last filter run")
    def last_filter_run(self, at_or_before: datetime | None = None) -> FilterRun | None:
        """The newest filter run (that ran at or before a moment, when given) with its decisions in
        batch order, or None before the first."""
        query = sa.select(filter_runs).order_by(filter_runs.c.id.desc()).limit(1)
        if at_or_before is not None:
            query = query.where(filter_runs.c.ran_at <= at_or_before)
        with self.engine.connect() as conn:
            run = conn.execute(query).first()
            if run is None:
                return None
            rows = conn.execute(
                sa.select(decisions).where(decisions.c.run_id == run.id).order_by(decisions.c.position)
            ).all()
        verdicts = [
            (
                r.post_id,
                Decision(tuple(from_json(r.topics)), from_json(r.scores), from_json(r.thresholds), r.noise_score),
            )
            for r in rows
        ]
        return FilterRun(run.id, run.ran_at, run.since, run.until, tuple(from_json(run.topics)), verdicts)

    @guarded("read the filter's drops by source")
    def source_drops(self, run_id: int | None = None) -> dict[str, tuple[int, int]]:
        """Per source key: (posts judged, posts dropped as off-topic) in one filter run (default: the last)."""
        with self.engine.connect() as conn:
            if run_id is None:
                run_id = conn.execute(sa.select(sa.func.max(filter_runs.c.id))).scalar_one_or_none()
            if run_id is None:
                return {}
            query = (
                sa.select(post_sources.c.source, decisions.c.topics)
                .join(decisions, decisions.c.post_id == post_sources.c.post_id)
                .where(decisions.c.run_id == run_id)
            )
            rows = conn.execute(query).all()
        counts: dict[str, tuple[int, int]] = {}
        for key, topics in rows:
            judged, dropped = counts.get(key, (0, 0))
            counts[key] = (judged + 1, dropped + (0 if from_json(topics) else 1))
        return counts
