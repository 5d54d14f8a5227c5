"""The schedule ``digest serve`` runs beside the pages: collect every ``[digest] collect_every`` and
run the weekly job (collect, filter, compose, send: what ``digest run`` does) at ``send_on``.

Exactly once per week, restarts included:

1. The week's job is due from its send time (``send_on`` in ``timezone``) until the ISO week ends;
   a server that was down at the send time catches up when it starts, later that week.
2. Before running, the process claims the job in the store's ``jobs`` table (name ``send``, period
   the ISO week). A missing row is inserted (its primary key lets only one process win); a row that
   is ``done`` is never run again; a ``running`` row is left alone while its lease is fresh (the
   runner renews it every minute) and taken over when the lease is older than `LEASE` (the process
   died); a ``failed`` row is tried again after `RETRY_AFTER`.
3. Taking over a half-finished week is safe: sending is idempotent per subscriber (the deliveries
   table, see ``delivery.py``), so a re-run sends only what was not handed over.

Collection works the same way per slot of ``collect_every`` (aligned to the epoch), so a restart
does not collect again within the same slot. While a ``[[chats]]`` chat runs (from 5 minutes before
to 30 minutes after), its hashtag alone is collected every `CHAT_EVERY` (job ``chat``), so the
hundreds of posts of a busy hour are all read. Every tick also forgets subscriptions left unconfirmed
for `PENDING_DAYS` days. Everything is logged to the ``digest.schedule`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from . import clock
from .chats import open_chats
from .config import Settings
from .models import JobStatus
from .periods import next_send, send_due
from .store import Store

if TYPE_CHECKING:
    from .collect import CollectReport

__all__ = [
    "CHAT_EVERY",
    "LEASE",
    "RETRY_AFTER",
    "Scheduler",
    "chat_job",
    "collect_slot",
    "next_send",
    "send_due",
    "weekly_job",
]

log = logging.getLogger("digest.schedule")

LEASE = timedelta(minutes=10)  # a running job's claim lapses this long after its last renewal
RENEW_EVERY = 60.0  # seconds between lease renewals while a job runs
RETRY_AFTER = timedelta(minutes=30)  # a failed job is tried again this long after it failed
PENDING_DAYS = 7  # unconfirmed subscriptions are forgotten after this long (the confirm link's lifetime)
TICK = 30.0  # seconds between looks at the clock
CHAT_EVERY = timedelta(minutes=5)  # how often a running chat's hashtag is collected

Job = Callable[[Settings, Store, datetime], tuple[bool, str]]


def collect_slot(now: datetime, every: timedelta) -> str:
    """The collection slot ``now`` falls in: the start of its ``every``-long step since the epoch, in UTC."""
    step = int(every.total_seconds())
    start = int(now.timestamp()) // step * step
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def collect_job(settings: Settings, store: Store, now: datetime) -> tuple[bool, str]:
    """Collect every source once; True unless every source failed."""
    from .collect import collect

    report = collect(settings, store, now=now)
    return not report.all_failed, _collected_line(report)


def _collected_line(report: CollectReport) -> str:
    line = report.line()
    if report.count("held_elsewhere"):
        line += f", {report.count('held_elsewhere')} held by other runs"
    return line


def chat_job(settings: Settings, store: Store, now: datetime) -> tuple[bool, str]:
    """Collect only the hashtags of the chats running at ``now``; True unless every endpoint failed."""
    from .chats import open_chats
    from .collect import collect, jobs_for

    tags = {c.hashtag.lower() for c in open_chats(settings.chats, now, settings.digest.timezone)}
    jobs = [j for j in jobs_for(settings) if j.kind == "hashtag" and _job_tag(j.key) in tags]
    if not jobs:
        return True, "no chat running"
    report = collect(settings, store, now=now, jobs=jobs)
    line = f"#{', #'.join(sorted(tags))}: {report.new_posts} new posts from {len(jobs)} endpoints"
    return not report.all_failed, line + (f", {report.count('failed')} failed" if report.count("failed") else "")


def _job_tag(key: str) -> str:
    """``hashtag:#HITsm@mastodon.social`` -> ``hitsm``."""
    return key.split(":", 1)[-1].lstrip("#").rsplit("@", 1)[0].lower()


def weekly_job(settings: Settings, store: Store, now: datetime) -> tuple[bool, str]:
    """What ``digest run`` does (`pipeline.run_week`). True when nothing is left to send (no message
    deferred, the run not stopped)."""
    from .pipeline import run_week

    week = run_week(settings, store, now)
    collected, report = _collected_line(week.collected), week.sent
    line = (
        f"collected {collected}; {report.week}: sent {len(report.sent)}, skipped {len(report.already_sent)} "
        f"already sent, failed {len(report.failed)}, deferred {len(report.deferred)}"
    )
    return not (report.stopped or report.deferred), line + (f"; {report.stopped}" if report.stopped else "")


class Scheduler:
    """Runs the due jobs, each at most once per period (see the module doc). ``clock``, ``collect`` and
    ``weekly`` can be replaced (tests); `run_pending` does one tick, `run_forever` ticks until cancelled."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = clock.now,
        collect: Job = collect_job,
        weekly: Job = weekly_job,
        chat: Job = chat_job,
        tick: float = TICK,
        owner: str | None = None,
    ) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.jobs: dict[str, Job] = {"send": weekly, "collect": collect, "chat": chat}
        self.tick = tick
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """The (job, period) pairs due at ``now``, the weekly one first; the store decides if they run."""
        found = []
        week = send_due(self.settings, now)
        if week is not None:
            found.append(("send", week))
        found.append(("collect", collect_slot(now, self.settings.digest.collect_interval)))
        if open_chats(self.settings.chats, now, self.settings.digest.timezone):
            found.append(("chat", collect_slot(now, CHAT_EVERY)))
        return found

    def run_pending(self) -> list[tuple[str, str, str]]:
        """One tick: run each due job this process can claim, one after the other; return
        (job, period, outcome) for each that ran."""
        now = self.clock()
        dropped = self.store.drop_pending(now - timedelta(days=PENDING_DAYS))
        if dropped:
            log.info("forgot %d subscriptions left unconfirmed for %d days", dropped, PENDING_DAYS)
        ran = []
        for name, period in self.due(now):
            claimed = self.store.claim_job(name, period, self.owner, now, lease=LEASE, retry_after=RETRY_AFTER)
            if not claimed:
                continue
            outcome = self._run(name, period)
            ran.append((name, period, outcome))
            if name == "send" and outcome == "done":  # the weekly job collected too: that slot is done
                slot = collect_slot(now, self.settings.digest.collect_interval)
                if self.store.claim_job("collect", slot, self.owner, now, lease=LEASE, retry_after=RETRY_AFTER):
                    self.store.finish_job("collect", slot, "done", "collected by the weekly job", self.clock())
        return ran

    def _run(self, name: str, period: str) -> str:
        label = {"send": "weekly job", "chat": "chat collect"}.get(name, "collect")
        log.info("%s %s: starting", label, period)
        try:
            with self._renewing(name, period):
                ok, line = self.jobs[name](self.settings, self.store, self.clock())
        except Exception as exc:
            ok, line = False, f"{type(exc).__name__}: {exc}"
            log.exception("%s %s failed", label, period)
        status: JobStatus = "done" if ok else "failed"
        self.store.finish_job(name, period, status, line, self.clock())
        if ok:
            log.info("%s %s: %s", label, period, line)
        else:
            log.error("%s %s: %s (tried again in %s)", label, period, line, RETRY_AFTER)
        return status

    @contextlib.contextmanager
    def _renewing(self, name: str, period: str) -> Iterator[None]:
        """Renew the job's lease every `RENEW_EVERY` seconds while it runs."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(RENEW_EVERY):
                try:
                    self.store.renew_job(name, period, self.owner, self.clock())
                except Exception:  # a busy database: the next renewal will do
                    log.warning("could not renew the lease of %s %s", name, period, exc_info=True)

        thread = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    async def run_forever(self) -> None:
        """Tick every `TICK` seconds until cancelled; jobs run in a worker thread, off the event loop."""
        now = self.clock()
        week = send_due(self.settings, now)
        job = self.store.job("send", week) if week is not None else None
        done = job is not None and job.status == "done"
        when = "now (this week's send time has passed)" if week and not done else None
        log.info(
            "schedule: collecting every %s; the next edition goes out %s",
            self.settings.digest.collect_every,
            when or f"{next_send(self.settings, now):%A %Y-%m-%d %H:%M %Z}",
        )
        while True:
            try:
                await asyncio.to_thread(self.run_pending)
            except Exception:
                log.exception("the schedule's tick failed; trying again in %.0f s", self.tick)
            await asyncio.sleep(self.tick)
