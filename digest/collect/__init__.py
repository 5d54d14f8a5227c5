"""Collection: every configured source fetched concurrently, parsed into posts and stored.

`collect` is the entry point: it builds one job per endpoint (a feed, an account, a hashtag on
one server), runs them with shared limits, records each source's outcome on its own row, and
never lets one broken source stop the rest.

Any number of runs, in any number of processes on any number of machines, may collect into one
database at once and share the sources. A run *claims* a source just before fetching it (the
source's row gets the run's owner name and a lease, see `Store.claim_sources` and `leases`),
`CLAIM_BATCH` at a time while it has room, and the claim ends when the outcome is stored. A run
leaves a source alone while another run holds a live claim on it, or when a run fetched it in the
``[collect] refetch_after`` seconds before this one started: those sources are reported as
``held_elsewhere``. A claim whose holder died is taken over: at once when it ran on this machine,
when its lease lapses otherwise (the holder renews it while it fetches).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import clock
from ..config import BlueskySource, FeedSource, HashtagSource, MastodonSource, Settings
from ..endpoints import Endpoint, endpoints
from ..errors import REMOVE_IT, FetchError, one_line
from ..models import Post, SourceState
from ..store import SourceClaims, Store
from ..store.leases import this_process
from ..wording import plural
from .base import Context, Job, Outcome
from .bluesky import BlueskyAuthorJob, BlueskySearchJob
from .feeds import FeedJob
from .fetch import Fetcher
from .mastodon import account_job, hashtag_job
from .parse import ParsedFeed, parse_feed

__all__ = ["CollectReport", "SourceResult", "collect", "held_line", "jobs_for"]

log = logging.getLogger(__name__)

# Below this many feed jobs, parsing in a thread beats starting worker processes.
PROCESS_POOL_MIN_JOBS = 24
KINDS = ("feed", "mastodon", "hashtag", "bluesky")
CLAIM_BATCH = 25  # sources a run claims at a time: small, so that parallel runs share the sources
LEASE = timedelta(minutes=5)  # a source's claim lapses this long after its last renewal (its run died)
RENEW_EVERY = 60.0  # seconds between lease renewals while a run fetches
RETRY_CLAIM = 0.25  # seconds before asking again for sources another claim was deciding on
CLAIM_WINDOW = 8  # a claim looks at this many batches of the sources left: reading all of them each time is n^2


@dataclass(slots=True)
class SourceResult:
    """How one source fared in this run."""

    key: str
    kind: str
    status: str  # ok, not_modified, failed, skipped, held_elsewhere
    fetched: int = 0
    new: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CollectReport:
    """The run's outcome, per source; `as_dict` is the ``--json`` summary."""

    results: list[SourceResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def new_posts(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def all_failed(self) -> bool:
        """True when sources were tried and none of them answered."""
        return self.count("failed") > 0 and self.count("ok") + self.count("not_modified") == 0

    def line(self) -> str:
        """The run in one line, for the terminal and a scheduled job's record: new posts, sources that answered
        (fetched or unchanged), sources that failed."""
        answered = plural(self.count("ok") + self.count("not_modified"), "source")
        return f"{plural(self.new_posts, 'new post')}; {answered} answered, {self.count('failed')} failed"

    def by_kind(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for r in self.results:
            row = table.setdefault(r.kind, Counter())
            row["sources"] += 1
            row[r.status] += 1
            row["new_posts"] += r.new
        columns = ("sources", "ok", "not_modified", "failed", "skipped", "held_elsewhere", "new_posts")
        return {kind: {c: table[kind][c] for c in columns} for kind in sorted(table, key=_kind_order)}

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.results, key=lambda r: r.key)
        return {
            "sources": len(self.results),
            "ok": self.count("ok"),
            "not_modified": self.count("not_modified"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "new_posts": self.new_posts,
            "errors": [{"source": r.key, "error": r.error} for r in ordered if r.status == "failed"],
            "skipped_sources": [{"source": r.key, "reason": r.error} for r in ordered if r.status == "skipped"],
            "held_elsewhere": [{"source": r.key, "reason": r.error} for r in ordered if r.status == "held_elsewhere"],
            "notes": [{"source": r.key, "note": n} for r in ordered for n in r.notes],
            "kinds": self.by_kind(),
        }


def held_line(count: int) -> str:
    """The summary line for sources this run left to others (being fetched there, or just fetched)."""
    return f"{count} sources held by other runs (being fetched there, or fetched moments ago): not fetched again"


def _kind_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def jobs_for(settings: Settings) -> list[Job]:
    """One job per endpoint the configuration names (`endpoints`), each with its stable key."""
    return [_job(settings, endpoint) for endpoint in endpoints(settings)]


def _job(settings: Settings, endpoint: Endpoint) -> Job:
    c, source, key, server = settings.collect, endpoint.source, endpoint.key, endpoint.server
    if isinstance(source, FeedSource):
        return FeedJob(key, "feed", source.feed)
    if isinstance(source, MastodonSource):
        return account_job(source.mastodon, _base(settings, server), source.via or c.mastodon_via, key)
    if isinstance(source, HashtagSource) and server:
        return hashtag_job(source.hashtag, server, _base(settings, server), source.via or c.mastodon_via, key)
    b = settings.bluesky
    if isinstance(source, HashtagSource):
        search = f"{b.service}/search?q=%23{source.hashtag}"
        return BlueskySearchJob(
            key, "hashtag", search, source.hashtag, b.service.rstrip("/"), b.handle or "", b.app_password or ""
        )
    assert isinstance(source, BlueskySource)
    profile = f"https://bsky.app/profile/{source.bluesky}"
    return BlueskyAuthorJob(key, "bluesky", profile, source.bluesky, c.bluesky_appview.rstrip("/"))


def _base(settings: Settings, server: str) -> str:
    return settings.collect.base_urls.get(server, f"https://{server}").rstrip("/")


def collect(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
    jobs: list[Job] | None = None,
) -> CollectReport:
    """Collect every source once and store new posts; ``on_result`` hears of each source as it ends."""
    jobs = jobs if jobs is not None else jobs_for(settings)
    now = now or clock.now()
    feeds = sum(1 for job in jobs if job.kind in ("feed", "mastodon", "hashtag"))
    pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 2) if feeds >= PROCESS_POOL_MIN_JOBS else None
    try:
        return asyncio.run(_collect(settings, store, jobs, now, pool, on_result))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


async def _collect(
    settings: Settings,
    store: Store,
    jobs: list[Job],
    now: datetime,
    pool: Executor | None,
    on_result: Callable[[SourceResult], None] | None,
) -> CollectReport:
    loop = asyncio.get_running_loop()

    async def parse(body: bytes, url: str, source: str, content_type: str) -> ParsedFeed:
        if pool is None:
            return await asyncio.to_thread(parse_feed, body, url, source, content_type, now)
        return await loop.run_in_executor(pool, parse_feed, body, url, source, content_type, now)

    report = CollectReport()

    def finished(result: SourceResult) -> None:
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    states = store.source_states()
    pending: dict[str, Job] = {}
    for job in jobs:  # a source resting or gone is not claimed at all
        skip = _skip_reason(states.get(job.key) or SourceState(job.key, job.kind, job.url), now)
        if skip:
            finished(SourceResult(job.key, job.kind, "skipped", error=skip))
        else:
            pending[job.key] = job
    claims = _Claims(store, now, settings.collect.refetch_after)
    writer = _Writer(store, claims.owner)
    async with Fetcher(settings.collect, contact=settings.subscription.public_url) as fetcher, writer, claims:
        deadline = loop.time() + settings.collect.run_timeout
        ctx = Context(fetcher, settings, now, now - timedelta(days=settings.digest.window_days), parse, deadline)
        running: set[asyncio.Task[SourceResult]] = set()
        started: list[asyncio.Task[SourceResult]] = []
        room = settings.collect.concurrency
        try:
            while pending or running:
                if pending and len(running) < room:
                    got = await claims.take(pending, min(CLAIM_BATCH, room - len(running)))
                    for key, reason in got.held.items():
                        job = pending.pop(key)
                        finished(SourceResult(key, job.kind, "held_elsewhere", error=reason))
                    for key, state in got.claimed.items():
                        job = pending.pop(key)
                        took = got.taken_over.get(key)
                        started.append(asyncio.create_task(_run_job(ctx, writer, job, state, claims.at(), took)))
                        running.add(started[-1])
                    if got.claimed:
                        continue  # room for more: claim again before waiting
                if running:  # while sources are left to claim, look again soon even if none finished
                    done, running = await asyncio.wait(
                        running, timeout=RETRY_CLAIM if pending else None, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        finished(task.result())
                elif pending:  # every source left was being claimed by another run at that moment
                    await asyncio.sleep(RETRY_CLAIM)
        except BaseException:  # the store failed (or we were interrupted): the rest stop, and say nothing more
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)  # every failure retrieved, none logged
            raise
    return report


class _Claims:
    """This run's claims on sources (see the module doc): taken in batches, renewed while the run
    fetches, and whatever is still held when the run ends (stopped, cancelled) given back."""

    def __init__(self, store: Store, now: datetime, refetch_after: float) -> None:
        self.store, self.now = store, now
        self.owner = this_process()
        self.started = time.monotonic()
        self.fetched_after = now - timedelta(seconds=refetch_after) if refetch_after > 0 else None
        self.renewer: asyncio.Task[None] | None = None

    def at(self) -> datetime:
        """The run's clock: its ``now`` plus the time elapsed since it started."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    async def take(self, pending: dict[str, Job], limit: int) -> SourceClaims:
        window = itertools.islice(pending.values(), limit * CLAIM_WINDOW)
        wanted = [(job.key, job.kind, job.url) for job in window]
        return await asyncio.to_thread(
            self.store.claim_sources,
            wanted,
            self.owner,
            self.at(),
            LEASE,
            limit=limit,
            fetched_after=self.fetched_after,
        )

    async def __aenter__(self) -> _Claims:
        self.renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.renewer is not None:
            self.renewer.cancel()
            await asyncio.gather(self.renewer, return_exceptions=True)
        try:
            await asyncio.to_thread(self.store.release_sources, self.owner)
        except Exception:  # the store is failing (the run's error says so); the leases lapse on their own
            log.warning("could not give back this run's claims on sources", exc_info=True)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await asyncio.to_thread(self.store.renew_sources, self.owner, self.at() + LEASE)
            except Exception:  # a busy database: the next renewal will do
                log.warning("could not renew this run's claims on sources", exc_info=True)


class _Writer:
    """The run's one writer: sources' posts and states are stored in batches from a worker thread,
    so SQLite never blocks the event loop and many sources share one transaction."""

    BATCH = 64

    def __init__(self, store: Store, owner: str = "") -> None:
        self.store, self.owner = store, owner
        self.queue: asyncio.Queue[tuple[str, list[Post], SourceState, asyncio.Future[int]] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Writer:
        self.task = asyncio.create_task(self._drain())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.queue.put(None)
        if self.task is not None:
            await self.task

    async def save(self, key: str, posts: list[Post], state: SourceState) -> int:
        """Store one source's posts and state; return how many posts were new."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self.queue.put((key, posts, state, done))
        return await done

    async def _drain(self) -> None:
        finished = False
        while not finished:
            batch = []
            item = await self.queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= self.BATCH or self.queue.empty():
                    break
                item = self.queue.get_nowait()
            finished = item is None
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[str, list[Post], SourceState, asyncio.Future[int]]]) -> None:
        try:
            counts = await asyncio.to_thread(self.store.add_many, [(k, p, s) for k, p, s, _ in batch], owner=self.owner)
        except Exception as exc:  # the store failed: every source in the batch still waiting hears of it
            for *_, done in batch:
                if not done.done():  # a source cancelled because an earlier batch failed hears nothing
                    done.set_exception(exc)
            return
        for (*_, done), count in zip(batch, counts, strict=True):
            if not done.done():
                done.set_result(count)


async def _run_job(
    ctx: Context, writer: _Writer, job: Job, state: SourceState, claimed_at: datetime, took_over: str | None = None
) -> SourceResult:
    """Fetch one claimed source and store its outcome (which ends the claim)."""
    state.kind = job.kind
    skip = _skip_reason(state, ctx.now)  # another run may have made it rest since this run read it
    if skip:
        await asyncio.to_thread(writer.store.release_sources, writer.owner, [job.key])
        return SourceResult(job.key, job.kind, "skipped", error=skip)
    state.last_attempt = claimed_at
    try:
        async with asyncio.timeout_at(ctx.deadline) as run_deadline:
            outcome = await job.run(ctx, state)
    except FetchError as exc:
        return await _record_failure(ctx, writer, job, state, exc, exc.reason)
    except Exception as exc:  # the run's deadline, or a bug or payload nobody foresaw: record it, keep going
        if isinstance(exc, TimeoutError) and run_deadline.expired():
            limit = ctx.settings.collect.run_timeout
            reason = f"{job.url}: timed out: not finished by the run's deadline ({limit:g} s, [collect] run_timeout)"
        else:
            log.exception("collecting %s failed", job.key)
            reason = f"{job.url}: internal error: {type(exc).__name__}: {exc}"
        return await _record_failure(ctx, writer, job, state, None, reason)
    notes = _apply(state, outcome, ctx.now)
    if took_over:
        notes.append(f"taken over from {took_over}, whose run stopped before storing it")
    new = await writer.save(job.key, outcome.posts, state)
    status = "not_modified" if outcome.not_modified else "ok"
    log.info("%s: %s, %d posts read, %d new", job.key, status.replace("_", " "), len(outcome.posts), new)
    return SourceResult(job.key, job.kind, status, len(outcome.posts), new, notes=notes)


def _skip_reason(state: SourceState, now: datetime) -> str:
    if state.status == "dead":
        return f"gone since {state.last_attempt:%Y-%m-%d} ({state.last_error}); {REMOVE_IT}"
    if state.next_attempt and now < state.next_attempt:
        return (
            f"resting until {state.next_attempt:%Y-%m-%d %H:%M} UTC after {state.failures} failures: {state.last_error}"
        )
    return ""


def _apply(state: SourceState, outcome: Outcome, now: datetime) -> list[str]:
    """Fold a successful outcome into the source's state; return notes worth showing."""
    notes = list(outcome.notes)
    state.status = "not_modified" if outcome.not_modified else "ok"
    state.failures, state.last_error, state.next_attempt, state.last_success = 0, "", None, now
    state.etag, state.last_modified = outcome.etag, outcome.last_modified
    if outcome.cursor is not None:
        state.cursor = outcome.cursor
    if outcome.body_hash is not None:
        state.body_hash = outcome.body_hash
    if outcome.title:
        state.title = outcome.title
    if outcome.moved_to and outcome.moved_to != state.url:
        state.url = outcome.moved_to
        notes.append(f"moved permanently to {outcome.moved_to}; update feeds.toml")
    if outcome.posts:
        oldest = min(p.published for p in outcome.posts)
        newest = max(p.published for p in outcome.posts)
        state.gap_possible = bool(state.newest_post and not outcome.complete and oldest > state.newest_post)
        if state.gap_possible:
            notes.append(
                f"gap possible: the oldest post fetched ({oldest:%Y-%m-%d %H:%M}) is newer than the newest stored "
                f"({state.newest_post:%Y-%m-%d %H:%M}); collect more often"
            )
        state.newest_post = max(newest, state.newest_post or newest)
    state.note = "; ".join(notes)
    return notes


async def _record_failure(
    ctx: Context, writer: _Writer, job: Job, state: SourceState, exc: FetchError | None, reason: str
) -> SourceResult:
    c = ctx.settings.collect
    state.failures += 1
    state.status = "dead" if exc is not None and exc.status == 410 else "failed"
    state.last_error = one_line(reason, 400)
    if exc is not None and exc.retry_after:
        state.next_attempt = ctx.now + timedelta(seconds=exc.retry_after)
    elif state.failures >= c.failure_threshold:
        backoff = 2 ** min(state.failures - c.failure_threshold, 3)
        state.next_attempt = ctx.now + timedelta(hours=c.retry_window_hours * backoff)
    else:
        state.next_attempt = None
    await writer.save(job.key, [], state)
    log.info("%s: failed: %s", job.key, state.last_error)
    shown = f"{state.last_error}; {exc.advice}" if exc is not None and exc.advice else state.last_error
    return SourceResult(job.key, job.kind, "failed", error=shown)
