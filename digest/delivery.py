"""Step 4 of the weekly job: send the week's editions to every confirmed subscriber, once each.

Every delivery is a row in the store that moves ``queued -> sending -> handed_over -> sent`` (or
``failed``). A run claims a few rows at a time (``sending``: its owner name and a lease, see
`leases`), so any number of runs, on any number of machines, share a week's sending and never send
one delivery twice. The SMTP messenger sends a message's final ``.`` only after ``handed_over`` is
committed durably, so when a run dies:

- before that commit: the server saw no end of data and kept nothing; the next run sends it;
- after the server's ``250`` was recorded as ``sent``: done, never again;
- between the two (the handover commit, the five bytes ``.\\r\\n``, the server's answer): the row
  says ``handed_over`` and nobody knows whether the server kept it. The next run takes the claim
  over (at once when the dead run was on this machine, else when its lease lapses), names the
  delivery in its summary as *uncertain*, and by default (``[mail] uncertain = "resend"``) sends it
  again with the same Message-ID: a possible duplicate, which many providers fold, rather than a
  silently missed week. ``"skip"`` counts it as sent instead.

With ``[mail] connections`` above one, messages go out on that many SMTP connections at once, each
in its own thread (`_Senders`), while this thread renders the next ones. The stretch from the
handover commit to the ``sent`` one is still one message at a time for the whole run (`_Window`),
so a crash leaves at most one delivery uncertain, as with one connection.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import clock
from .config import Settings, expand_env
from .errors import ConfigError, DigestError, LostClaim
from .feedback import FeedbackLinks
from .mail import (
    DkimSigner,
    Links,
    MessageTemplate,
    Messenger,
    PermanentMailError,
    TransientMailError,
    message_id,
    messenger_for,
    pace,
    preferences_mailto,
    sender_domain,
    unsubscribe_mailto,
)
from .models import Delivery, Edition, Recipient
from .periods import Period, in_progress
from .store import DeliveryLog, Store
from .store.leases import this_process
from .tokens import make_token

__all__ = ["SendReport", "deliver", "links_for", "recipients"]

ATTEMPTS = 3  # tries of one message within a run, on transient failures
GIVE_UP_AFTER = 5  # consecutive transient failures (a server down): stop, leave the rest queued
_MAILBOX_CODES = {550, 551, 553}  # the address itself is refused: a hard bounce
CLAIM_BATCH = 20  # deliveries a run claims at a time: small, so that parallel runs share the work
LEASE = timedelta(minutes=5)  # a claim lapses this long after its last renewal (a run on another machine died)


@dataclass(slots=True)
class SendReport:
    """What a send run did; `as_dict` is the ``--json`` summary."""

    week: str
    via: str
    period: Period | None = None
    next_due: datetime | None = None  # when the edition after this one is due
    recipients: int = 0
    planned: dict[str, list[str]] = field(default_factory=dict)  # a dry run: edition path -> who would get it
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    nothing_to_send: list[str] = field(default_factory=list)
    uncertain: list[tuple[str, str, bool]] = field(default_factory=list)  # (email, Message-ID, sent again)
    held_elsewhere: list[str] = field(default_factory=list)  # being sent by another run right now
    dry_run: bool = False
    stopped: str = ""

    def as_dict(self) -> dict[str, Any]:
        span = {"since": self.period.since.isoformat(), "until": self.period.until.isoformat()} if self.period else None
        return {
            "week": self.week,
            "period": span,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "via": self.via,
            "dry_run": self.dry_run,
            "recipients": self.recipients,
            "sent": len(self.sent),
            "would_send": sum(len(people) for people in self.planned.values()),
            "editions": [{"edition": path, "recipients": people} for path, people in self.planned.items()],
            "skipped_already_sent": len(self.already_sent),
            "failed": [{"email": e, "reason": r} for e, r in self.failed],
            "deferred": [{"email": e, "reason": r} for e, r in self.deferred],
            "nothing_to_send": self.nothing_to_send,
            "uncertain": [{"email": e, "message_id": m, "resent": r} for e, m, r in self.uncertain],
            "held_elsewhere": self.held_elsewhere,
            "stopped": self.stopped,
        }


def links_for(settings: Settings, address: str) -> Links:
    """A subscriber's unsubscribe, preferences and cards' feedback links: signed web links when
    ``[subscription]`` has a public URL, else mail to the curator (and no feedback links)."""
    mailto = unsubscribe_mailto(settings.mail, address)
    base = (settings.subscription.public_url or "").rstrip("/")
    if not base:
        preferences = preferences_mailto(settings.mail, address, [t.name for t in settings.topics])
        return Links(unsubscribe=mailto, preferences=preferences, one_click="", mailto=mailto)
    if not settings.subscription.secret:
        raise ConfigError(
            f"{settings.path}: [subscription] secret is needed to sign unsubscribe links (public_url is set)"
        )
    secret = expand_env(settings.subscription.secret)
    unsubscribe = f"{base}/unsubscribe/{make_token(secret, 'unsubscribe', address)}"
    preferences = f"{base}/preferences/{make_token(secret, 'preferences', address)}"
    feedback = FeedbackLinks.for_reader(base, secret, address)
    return Links(
        unsubscribe=unsubscribe, preferences=preferences, one_click=unsubscribe, mailto=mailto, feedback=feedback
    )


def recipients(settings: Settings, store: Store, now: datetime, only: str | None = None) -> list[Recipient]:
    """Confirmed subscribers: those listed in feeds.toml (kept in step) and those who subscribed."""
    store.sync_config_subscribers([Recipient(s.email, s.name or "", s.topics) for s in settings.subscribers], now)
    chosen = store.subscribers("confirmed")
    if only is not None:
        chosen = [r for r in chosen if r.email == only.lower()]
        if not chosen:
            raise DigestError(f"{only}: not a confirmed subscriber")
    return chosen


def deliver(
    settings: Settings,
    store: Store,
    period: Period,
    people: Sequence[Recipient],
    paths: Mapping[str, str],
    *,
    now: datetime,
    dry_run: bool = False,
    messenger: Messenger | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Step 4: send the period's stored editions, ``paths`` (address -> edition path, step 3's output), to
    each of ``people`` who has not had it (see the module doc); one with no path has nothing this week.
    A dry run fills in `SendReport.planned` and sends nothing."""
    label = period.week
    given = messenger is not None
    messenger = messenger or messenger_for(settings.mail, settings.outbox_dir, label)
    report = SendReport(label, messenger.name, period, in_progress(settings, now).due, len(people), dry_run=dry_run)
    report.nothing_to_send = sorted(r.email for r in people if r.email not in paths)
    domain = sender_domain(settings.mail.from_)
    if dry_run:
        sent = {d.email for d in store.deliveries(label) if d.status == "sent"}
        report.already_sent = sorted(sent & paths.keys())
        for email, path in sorted(paths.items()):
            if email not in sent:
                report.planned.setdefault(path, []).append(email)
        return report
    store.queue_deliveries(label, [(e, p, message_id(label, e, domain)) for e, p in sorted(paths.items())], now)
    size = settings.mail.connections if settings.mail.smtp and not given else 1
    spare = [messenger]

    def connect() -> Messenger:
        return spare.pop() if spare else messenger_for(settings.mail, settings.outbox_dir, label)

    with _Senders(connect, size) as senders:
        _deliver(settings, store, report, senders, {r.email: r for r in people}, now, on_progress)
    return report


class _Window:
    """The stretch from a message's handover commit to its ``sent`` commit, one message at a time per
    run whatever the connections: a crash leaves at most one delivery uncertain."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[Callable[[Callable[[], object]], None]]:
        """Yield ``enter(commit)``, which takes the window and runs ``commit``; the window is let go on leaving."""
        entered = False

        def enter(commit: Callable[[], object]) -> None:
            nonlocal entered
            self._lock.acquire()
            entered = True
            commit()

        try:
            yield enter
        finally:
            if entered:
                self._lock.release()


class _Senders:
    """Runs send jobs on up to ``size`` messengers at once, each in its own thread (one job inline when
    ``size`` is 1); `submit` returns the jobs' results in the order they were submitted."""

    def __init__(self, connect: Callable[[], Messenger], size: int) -> None:
        self._connect, self.size = connect, size
        self._local = threading.local()
        self._lock = threading.Lock()
        self._messengers: list[Messenger] = []
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="digest-send") if size > 1 else None
        self._pending: deque[Future[bool]] = deque()

    def _messenger(self) -> Messenger:
        mine: Messenger | None = getattr(self._local, "messenger", None)
        if mine is None:
            with self._lock:
                mine = self._connect()
                self._messengers.append(mine)
            self._local.messenger = mine
        return mine

    def _run(self, job: Callable[[Messenger], bool]) -> bool:
        return job(self._messenger())

    def submit(self, job: Callable[[Messenger], bool]) -> list[bool]:
        """Start ``job``; return the results of the earlier jobs that are done (waiting while too many are not)."""
        if self._pool is None:
            return [job(self._messenger())]
        self._pending.append(self._pool.submit(self._run, job))
        done = []
        while self._pending and (len(self._pending) > 2 * self.size or self._pending[0].done()):
            done.append(self._pending.popleft().result())
        return done

    def finish(self) -> list[bool]:
        """Wait for every job submitted; return their results (the first error raised, once all are done)."""
        done, error = [], None
        while self._pending:
            try:
                done.append(self._pending.popleft().result())
            except BaseException as exc:  # raised below, once no job is running
                error = error or exc
        if error is not None:
            raise error
        return done

    def __enter__(self) -> _Senders:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if kind is None:
                for messenger in self._messengers:
                    messenger.flush()
        finally:
            for messenger in self._messengers:
                messenger.close()


def _deliver(
    settings: Settings,
    store: Store,
    report: SendReport,
    senders: _Senders,
    people: dict[str, Recipient],
    now: datetime,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    editions = store.editions(report.week)
    templates: dict[str, MessageTemplate] = {}
    rows = [d for d in store.deliveries(report.week) if d.email in people]
    report.already_sent = [d.email for d in rows if d.status == "sent"]
    total = sum(d.status in ("queued", "sending", "handed_over") for d in rows)
    signer = None
    if settings.mail.dkim_key:
        key = settings.path.parent / settings.mail.dkim_key
        signer = DkimSigner(key, settings.mail.dkim_selector, sender_domain(settings.mail.from_))
    owner, pacer, done, streak = this_process(), iter(pace(settings.mail.rate)), 0, 0
    window = _Window()

    def settle(results: list[bool]) -> None:
        nonlocal done, streak
        for ok in results:
            streak = 0 if ok else streak + 1
            if streak >= GIVE_UP_AFTER and not report.stopped:
                report.stopped = (
                    f"stopped after {streak} failures in a row ({report.deferred[-1][1]}); the rest stay queued"
                )
            done += 1
            if on_progress is not None:
                on_progress(done, max(total, done))

    with store.delivery_log(owner) as log:
        renewed = clock.now()
        try:
            while streak < GIVE_UP_AFTER:
                batch = store.claim_deliveries(report.week, owner, clock.now(), LEASE, limit=CLAIM_BATCH, only=people)
                if not batch:
                    break
                for d, before in batch:
                    if streak >= GIVE_UP_AFTER:
                        report.deferred.append((d.email, report.stopped))
                        continue
                    if before == "handed_over":
                        report.uncertain.append((d.email, d.message_id, settings.mail.uncertain == "resend"))
                        if settings.mail.uncertain == "skip":
                            log.mark(d, "sent", now, answer="uncertain handover, not sent again ([mail] uncertain)")
                            continue
                    if d.path not in templates:
                        templates[d.path] = _template(settings, editions[d.path], now)
                    message = _message(settings, templates[d.path], d, people[d.email], signer)
                    next(pacer)
                    job = functools.partial(_send_one, settings, store, log, window, d, message, report, now)
                    settle(senders.submit(job))
                    if clock.now() - renewed > LEASE / 4:  # a slow server: keep the rest of the batch ours
                        renewed = clock.now()
                        store.renew_deliveries(report.week, owner, renewed + LEASE)
            settle(senders.finish())
        finally:  # what this run claimed and did not hand over goes back to the queue
            with contextlib.suppress(Exception):  # an error is already on its way up; no job may still be sending
                senders.finish()
            store.release_deliveries(report.week, owner, clock.now())
    _account_for_the_rest(store, report, people, owner)


def _message(
    settings: Settings, template: MessageTemplate, d: Delivery, person: Recipient, signer: DkimSigner | None
) -> bytes:
    """One subscriber's message: their links and name in the edition's template, signed if DKIM is set."""
    message = template.render(d.email, d.message_id, links_for(settings, d.email), person.name)
    return signer.sign(message) if signer is not None else message


def _account_for_the_rest(store: Store, report: SendReport, people: dict[str, Recipient], owner: str) -> None:
    """After the run: what is still queued (a stop) is deferred; what another live run holds is named."""
    settled = {e for e, *_ in report.deferred} | set(report.sent) | {e for e, _ in report.failed}
    for d in store.deliveries(report.week):
        if d.email not in people or d.email in settled:
            continue
        if d.status == "queued" and report.stopped:
            report.deferred.append((d.email, report.stopped))
        elif d.status in ("sending", "handed_over"):
            report.held_elsewhere.append(d.email)


def _template(settings: Settings, edition: Edition, now: datetime) -> MessageTemplate:
    title = settings.digest.title
    list_id = f"{title} <{_slug(title)}.{sender_domain(settings.mail.from_)}>"
    return MessageTemplate.build(
        subject=edition.subject,
        html=edition.html,
        text=edition.text,
        sender=settings.mail.from_,
        reply_to=settings.mail.reply_to,
        list_id=list_id,
        date=now,
        one_click=bool(settings.subscription.public_url),
    )


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "digest"


def _send_one(
    settings: Settings,
    store: Store,
    log: DeliveryLog,
    window: _Window,
    d: Delivery,
    message: bytes,
    report: SendReport,
    now: datetime,
    messenger: Messenger,
) -> bool:
    """Try one message up to `ATTEMPTS` times; True when it was handed over (or is settled)."""
    for attempt in range(1, ATTEMPTS + 1):
        tries = d.attempts + attempt
        with window.held() as enter:
            try:
                handover = functools.partial(log.mark, d, "handed_over", now, attempts=tries)
                answer = messenger.push(settings.mail.from_, d.email, message, functools.partial(enter, handover))
            except LostClaim:
                report.held_elsewhere.append(d.email)  # its lease lapsed; the run that took it over sends it
                return True
            except PermanentMailError as exc:
                log.mark(d, "failed", now, attempts=tries, error=str(exc))
                report.failed.append((d.email, str(exc)))
                if exc.code in _MAILBOX_CODES:
                    store.record_bounce(d.email, settings.mail.bounce_limit, now)
                return True
            except TransientMailError as exc:
                log.mark(d, "sending", now, attempts=tries, error=str(exc))  # not accepted: still ours, not sent
                if attempt == ATTEMPTS:
                    report.deferred.append((d.email, str(exc)))
                    return False
                time.sleep(min(4.0, 0.25 * 2**attempt))
                continue
            # Not fsynced: if a power loss rolls it back, the row says handed_over and the next run calls it
            # uncertain (resent with the same Message-ID, or not, per [mail] uncertain).
            with contextlib.suppress(LostClaim):  # sent, but another run took the row: it will call it uncertain
                log.mark(d, "sent", now, durable=False, attempts=tries, answer=answer, error="")
        report.sent.append(d.email)
        return True
    return False
