"""`Store`, the seam every caller goes through: what the store does, whatever keeps it.

`Store.open(url)` opens the SQLAlchemy implementation (`SQLStore`); callers type against `Store`, so
a change to the store's surface is one mypy finds in every caller. `Store` is composed of one protocol
per entity (`SourceStore`, `PostStore`, ...), so a caller that needs one kind of record can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from ..feedback import Signal
from ..models import (
    AcceptedExample,
    Decision,
    Delivery,
    DeliveryStatus,
    Document,
    Edition,
    Job,
    JobStatus,
    Post,
    Recipient,
    SourceState,
)
from . import leases
from ._decisions import FilterRun
from ._deliveries import DeliveryLog
from ._sources import SourceClaims
from ._sqlstore import SQLStore

__all__ = [
    "DecisionStore",
    "DeliveryStore",
    "EditionStore",
    "JobStore",
    "PostStore",
    "SignalStore",
    "SourceStore",
    "Store",
    "SubscriberStore",
]


class SourceStore(Protocol):
    """Each endpoint's fetch state, and the claims and leases on sources that let collect runs share the work."""

    def source_states(self) -> dict[str, SourceState]:
        """Every source's remembered state, by key."""
        ...

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace one source's state."""
        ...

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
        """Claim up to ``limit`` of the ``wanted`` sources (key, kind, url) for ``owner`` to fetch now, until ``now
        + lease``. A source is free unless another run holds a live claim on it (its lease has not lapsed and
        its owner is not gone, see `leases`) or, when ``fetched_after`` is given, a run fetched it after that
        moment; a new key gets its row first."""
        ...

    def renew_sources(self, owner: str, until: datetime) -> None:
        """Extend the lease on every source ``owner`` is fetching."""
        ...

    def release_sources(self, owner: str, keys: Collection[str] | None = None) -> None:
        """Give back ``owner``'s claims (on ``keys``, or all of them) without recording a fetch."""
        ...

    def source_activity(self, since: datetime) -> dict[str, tuple[int, datetime | None]]:
        """Per source key: (posts published since ``since``, the newest post's publication time)."""
        ...


class PostStore(Protocol):
    """Posts, stored once each, with the sources they came through and their links."""

    def add_posts(self, source_key: str, items: Iterable[Post], state: SourceState | None = None) -> int:
        """Store posts seen through a source (and its state, in the same transaction); return how many were new."""
        ...

    def add_many(
        self, batches: Sequence[tuple[str, Sequence[Post], SourceState | None]], *, owner: str = ""
    ) -> list[int]:
        """Store several sources' posts and states in one transaction; return each source's count of new posts."""
        ...

    def post(self, id_or_url: str) -> Post | None:
        """One post by id, URI or permalink."""
        ...

    def posts(self, since: datetime | None = None, until: datetime | None = None) -> list[Post]:
        """Posts published in ``[since, until)``, oldest first."""
        ...

    def documents(self, since: datetime | None = None, until: datetime | None = None) -> list[Document]:
        """``(id, Post.document())`` of the posts `posts` returns, in its order, without building them."""
        ...

    def count_posts(self) -> int: ...

    def sources_of(self, post_id: str) -> list[str]:
        """Keys of every source a post was seen through."""
        ...

    def posts_linking(self, url: str) -> list[str]:
        """Ids of posts that share a (canonical) link."""
        ...


class DecisionStore(Protocol):
    """The topic filter's runs and every post's decision."""

    def save_filter_run(
        self,
        ran_at: datetime,
        since: datetime,
        until: datetime,
        topics: Sequence[str],
        verdicts: Sequence[tuple[str, Decision]],
    ) -> int:
        """Record one filter run: each post's decision, in batch order; return the run's id."""
        ...

    def last_filter_run(self, at_or_before: datetime | None = None) -> FilterRun | None:
        """The newest filter run (that ran at or before a moment, when given) with its decisions in batch order, or
        None before the first."""
        ...

    def source_drops(self, run_id: int | None = None) -> dict[str, tuple[int, int]]:
        """Per source key: (posts judged, posts dropped as off-topic) in one filter run (default: the last)."""
        ...


class SubscriberStore(Protocol):
    """Subscribers and suppressions."""

    def sync_config_subscribers(self, listed: Sequence[Recipient], now: datetime) -> None:
        """Make the store's subscribers match those listed in feeds.toml: add new ones as confirmed, refresh names
        and topics, and never revive one who unsubscribed (a suppressed address) or keeps bouncing."""
        ...

    def add_subscriber(self, recipient: Recipient, now: datetime) -> None:
        """Insert or replace one subscriber (the subscription pages use this)."""
        ...

    def subscribers(self, status: str | None = None) -> list[Recipient]:
        """Every subscriber (or those with one status), by address."""
        ...

    def subscriber(self, email: str) -> Recipient | None:
        """One subscriber by address, or None."""
        ...

    def subscriber_counts(self) -> dict[str, int]:
        """How many subscribers are in each state; ``unsubscribed`` counts the suppressions."""
        ...

    def drop_pending(self, before: datetime) -> int:
        """Forget subscriptions still unconfirmed since before ``before``; return how many."""
        ...

    def unsubscribe(self, email: str, now: datetime) -> bool:
        """Forget an address and keep only its suppression (hash and date), in one transaction: the subscriber row
        goes, and its past deliveries keep only a pseudonym (so the archive still knows which weeks went out).
        True when it was a subscriber."""
        ...

    def suppress(self, email: str, now: datetime) -> None:
        """Add an address to the suppression list (kept as its hash), if it is not there yet."""
        ...

    def suppressed(self, email: str) -> datetime | None:
        """When an address was suppressed, or None when it is not."""
        ...

    def lift_suppression(self, email: str) -> None:
        """Take an address off the suppression list (the person subscribed again and confirmed)."""
        ...

    def record_bounce(self, email: str, limit: int, now: datetime) -> bool:
        """Count a hard bounce; at ``limit`` the address is marked bouncing. True when it now is."""
        ...


class EditionStore(Protocol):
    """Each week's editions, as first composed."""

    def save_editions(self, week: str, items: Sequence[Edition], now: datetime) -> None:
        """Keep a week's editions as first composed (html and text with their placeholders), by path.
        A re-run of the week sends the same editions."""
        ...

    def editions(self, week: str) -> dict[str, Edition]:
        """A week's stored editions by path."""
        ...

    def weeks(self) -> list[str]:
        """Every week with a stored edition, newest first."""
        ...

    def sent_weeks(self) -> list[str]:
        """Weeks whose editions went out (at least one delivery sent or handed over), newest first."""
        ...


class DeliveryStore(Protocol):
    """Deliveries, claimed by one run at a time, and the log of each state change."""

    def queue_deliveries(self, week: str, items: Sequence[tuple[str, str, str]], now: datetime) -> int:
        """Queue (email, path, message id) for a week unless already queued (by this run or another at the same
        moment); return how many this call queued."""
        ...

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
        """Claim up to ``limit`` of the week's unfinished deliveries for ``owner``: queued ones, and those whose
        holder's lease lapsed or whose holder is gone (see `leases`). Each row is taken by a compare-and-set on
        the status and owner read, so two runs never hold the same delivery."""
        ...

    def renew_deliveries(self, week: str, owner: str, until: datetime) -> None:
        """Extend the lease on every delivery of the week that ``owner`` still holds."""
        ...

    def release_deliveries(self, week: str, owner: str, now: datetime) -> int:
        """Give back the deliveries ``owner`` claimed but did not hand over: queued again for any run."""
        ...

    def deliveries(self, week: str) -> list[Delivery]:
        """A week's deliveries, by address."""
        ...

    def delivery_log(self, owner: str = "") -> DeliveryLog:
        """A connection for recording ``owner``'s sends one by one (see `DeliveryLog`)."""
        ...


class JobStore(Protocol):
    """The serve schedule's jobs, claimed with a lease."""

    def claim_job(
        self, name: str, period: str, owner: str, now: datetime, *, lease: timedelta, retry_after: timedelta
    ) -> bool:
        """Take the job ``name`` for ``period`` unless it is done, held by a live lease, or failed less than
        ``retry_after`` ago. Safe between processes: a new row is guarded by its primary key and a stale one is
        taken by a compare-and-set on the values read."""
        ...

    def renew_job(self, name: str, period: str, owner: str, now: datetime) -> None:
        """Extend the lease of a job this owner is running."""
        ...

    def finish_job(self, name: str, period: str, status: JobStatus, detail: str, now: datetime) -> None:
        """Record how a job ended: ``done`` (never run again for the period) or ``failed`` (retried later)."""
        ...

    def job(self, name: str, period: str) -> Job | None:
        """One job's record, or None when it never ran."""
        ...


class SignalStore(Protocol):
    """Readers' signals and the examples accepted from them."""

    def record_signal(self, signal: Signal) -> None:
        """Keep a reader's signal: one per reader, post and topic; the other button replaces it."""
        ...

    def undo_signal(self, email: str, post_id: str, topic: str) -> bool:
        """Take a reader's signal back; True when there was one."""
        ...

    def signals(self, *, email: str | None = None, post_id: str | None = None) -> list[Signal]:
        """Signals, oldest first: one reader's, one post's, or (neither given) all (anonymous ones: email "")."""
        ...

    def accept_examples(self, items: Sequence[tuple[str, str, str, bool]], origin: str, now: datetime) -> None:
        """Keep (topic, post id, text, label) as accepted examples (origin: curator or readers); accepting a
        post again replaces its label."""
        ...

    def examples(self) -> list[AcceptedExample]:
        """Every accepted example: topic, post_id, text, label, origin, accepted_at."""
        ...


class Store(
    SourceStore,
    PostStore,
    DecisionStore,
    SubscriberStore,
    EditionStore,
    DeliveryStore,
    JobStore,
    SignalStore,
    Protocol,
):
    """Posts, sources, the filter's record, subscribers, editions, deliveries, jobs and readers' signals, with the claims
    and leases that let several processes share them. Every database error is a `StoreError`."""

    @staticmethod
    def open(url: str, *, read_only: bool = False) -> SQLStore:
        """Open (creating and migrating as needed) the database at a SQLAlchemy URL; ``read_only``
        for commands that only read, so they work on a file or in a folder this user cannot write."""
        return SQLStore.open(url, read_only=read_only)

    def close(self) -> None: ...

    @property
    def version(self) -> int:
        """The schema version of the database."""
        ...


def _conforms(store: SQLStore) -> Store:
    """mypy checks here that `SQLStore` has every member of `Store`, with the same types."""
    return store
