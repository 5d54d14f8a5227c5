"""The serve schedule's jobs: one row per job and period, claimed with a lease by the process running it."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from ..models import Job, JobStatus
from ._engine import Records, guarded
from ._schema import jobs

__all__ = ["JobRecords"]


class JobRecords(Records):
    """Scheduled jobs and their leases."""

    @guarded("claim a job")
    def claim_job(
        self, name: str, period: str, owner: str, now: datetime, *, lease: timedelta, retry_after: timedelta
    ) -> bool:
        """Take the job ``name`` for ``period`` unless it is done, held by a live lease, or failed less
        than ``retry_after`` ago. Safe between processes: a new row is guarded by its primary key and a
        stale one is taken by a compare-and-set on the values read."""
        key = (jobs.c.name == name) & (jobs.c.period == period)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(key)).first()
        if row is None:
            values = {"status": "running", "owner": owner, "attempts": 1, "detail": "", "updated_at": now}
            try:
                with self.engine.begin() as conn:
                    conn.execute(jobs.insert().values(name=name, period=period, started_at=now, **values))
            except sa.exc.IntegrityError:
                return False  # another process took it first
            return True
        stale = (row.status == "running" and row.updated_at + lease <= now) or (
            row.status == "failed" and row.updated_at + retry_after <= now
        )
        if not stale:
            return False
        with self.engine.begin() as conn:
            taken = conn.execute(
                jobs.update()
                .where(key, jobs.c.status == row.status, jobs.c.updated_at == row.updated_at)
                .values(status="running", owner=owner, attempts=row.attempts + 1, started_at=now, updated_at=now)
            ).rowcount
        return taken == 1

    @guarded("renew a job's lease")
    def renew_job(self, name: str, period: str, owner: str, now: datetime) -> None:
        """Extend the lease of a job this owner is running."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.name == name, jobs.c.period == period, jobs.c.owner == owner, jobs.c.status == "running")
                .values(updated_at=now)
            )

    @guarded("record a job's end")
    def finish_job(self, name: str, period: str, status: JobStatus, detail: str, now: datetime) -> None:
        """Record how a job ended: ``done`` (never run again for the period) or ``failed`` (retried later)."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.name == name, jobs.c.period == period)
                .values(status=status, detail=detail[:500], updated_at=now)
            )

    @guarded("read a job")
    def job(self, name: str, period: str) -> Job | None:
        """One job's record, or None when it never ran."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.name == name, jobs.c.period == period)).first()
        return Job(**row._asdict()) if row else None
