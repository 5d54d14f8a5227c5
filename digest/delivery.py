"""Step 4 of the weekly job: send the week's editions to every confirmed subscriber, exactly once each.

Every delivery is a row in the store that moves ``queued -> handed_over -> sent`` (or ``failed``).
The SMTP messenger sends a message's final ``.`` only after ``handed_over`` is committed durably, so:

- killed before that commit: the server saw no end of data and kept nothing; a re-run sends it;
- killed after the server's ``250`` but before ``sent`` is recorded: the row says ``handed_over``,
  and a re-run counts it as sent (never twice);
- the one unavoidable window: killed after ``handed_over`` is committed but before the five bytes
  ``.\\r\\n`` leave the socket. That message is recorded as handed over but was never accepted.
  The window is one ``send`` system call long. (A server that never answers the final dot has not
  taken the message, per RFC 5321, so it is tried again; one that kept it anyway duplicates it.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .config import Settings, expand_env
from .errors import ConfigError, DigestError
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
    sender_domain,
    unsubscribe_mailto,
)
from .models import Delivery, Recipient
from .store import Store
from .tokens import make_token

__all__ = ["SendReport", "links_for", "send_week"]

ATTEMPTS = 3  # tries of one message within a run, on transient failures
GIVE_UP_AFTER = 5  # consecutive transient failures (a server down): stop, leave the rest queued
_MAILBOX_CODES = {550, 551, 553}  # the address itself is refused: a hard bounce


@dataclass(slots=True)
class SendReport:
    """What a send run did; `as_dict` is the ``--json`` summary."""

    week: str
    via: str
    recipients: int = 0
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    nothing_to_send: list[str] = field(default_factory=list)
    dry_run: bool = False
    stopped: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "via": self.via,
            "dry_run": self.dry_run,
            "recipients": self.recipients,
            "sent": len(self.sent),
            "skipped_already_sent": len(self.already_sent),
            "failed": [{"email": e, "reason": r} for e, r in self.failed],
            "deferred": [{"email": e, "reason": r} for e, r in self.deferred],
            "nothing_to_send": self.nothing_to_send,
            "stopped": self.stopped,
        }


def links_for(settings: Settings, address: str) -> Links:
    """A subscriber's unsubscribe and preferences links: signed web links when ``[subscription]``
    has a public URL, else mail to the curator."""
    mailto = unsubscribe_mailto(settings.mail, address)
    base = (settings.subscription.public_url or "").rstrip("/")
    if not base:
        return Links(unsubscribe=mailto, preferences=mailto, one_click="", mailto=mailto)
    if not settings.subscription.secret:
        raise ConfigError(
            f"{settings.path}: [subscription] secret is needed to sign unsubscribe links (public_url is set)"
        )
    secret = expand_env(settings.subscription.secret)
    unsubscribe = f"{base}/unsubscribe/{make_token(secret, 'unsubscribe', address)}"
    preferences = f"{base}/preferences/{make_token(secret, 'preferences', address)}"
    return Links(unsubscribe=unsubscribe, preferences=preferences, one_click=unsubscribe, mailto=mailto)


def recipients(settings: Settings, store: Store, now: datetime, only: str | None = None) -> list[Recipient]:
    """Confirmed subscribers: those listed in feeds.toml (kept in step) and those who subscribed."""
    store.sync_config_subscribers([Recipient(s.email, s.name or "", s.topics) for s in settings.subscribers], now)
    chosen = store.subscribers("confirmed")
    if only is not None:
        chosen = [r for r in chosen if r.email == only.lower()]
        if not chosen:
            raise DigestError(f"{only}: not a confirmed subscriber")
    return chosen


def send_week(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    week: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    messenger: Messenger | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Send the week's edition to every confirmed subscriber who has not had it (see the module doc)."""
    from .pipeline import edition_period, prepare_editions

    label = edition_period(settings, week, now)[0]
    people = recipients(settings, store, now, only)
    paths = prepare_editions(settings, store, people, now=now, week=week)
    messenger = messenger or messenger_for(settings.mail, settings.outbox_dir, label)
    report = SendReport(label, messenger.name, recipients=len(people), dry_run=dry_run)
    report.nothing_to_send = sorted(r.email for r in people if r.email not in paths)
    domain = sender_domain(settings.mail.from_)
    if dry_run:
        report.sent = sorted(paths)
        return report
    store.queue_deliveries(label, [(e, p, message_id(label, e, domain)) for e, p in sorted(paths.items())], now)
    try:
        _deliver(settings, store, report, messenger, {r.email: r for r in people}, now, on_progress)
    finally:
        messenger.close()
    return report


def _deliver(
    settings: Settings,
    store: Store,
    report: SendReport,
    messenger: Messenger,
    people: dict[str, Recipient],
    now: datetime,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    editions = store.editions(report.week)
    templates: dict[str, MessageTemplate] = {}
    todo: list[Delivery] = []
    for d in store.deliveries(report.week):
        if d.email not in people:
            continue
        if d.status == "queued":
            todo.append(d)
        elif d.status in ("sent", "handed_over"):
            report.already_sent.append(d.email)
    signer = None
    if settings.mail.dkim_key:
        key = settings.path.parent / settings.mail.dkim_key
        signer = DkimSigner(key, settings.mail.dkim_selector, sender_domain(settings.mail.from_))
    streak = 0
    with store.delivery_log() as log:
        for done, (d, _) in enumerate(zip(todo, pace(settings.mail.rate), strict=False), start=1):
            if streak >= GIVE_UP_AFTER:
                report.deferred.append((d.email, report.stopped))
                continue
            if d.path not in templates:
                templates[d.path] = _template(settings, editions[d.path], now)
            message = templates[d.path].render(
                d.email, d.message_id, links_for(settings, d.email), people[d.email].name
            )
            if signer is not None:
                message = signer.sign(message)
            ok = _send_one(settings, store, log, messenger, d, message, report, now)
            streak = 0 if ok else streak + 1
            if streak >= GIVE_UP_AFTER:
                report.stopped = (
                    f"stopped after {streak} failures in a row ({report.deferred[-1][1]}); the rest stay queued"
                )
            if on_progress is not None:
                on_progress(done, len(todo))
    messenger.flush()


def _template(settings: Settings, edition: dict[str, Any], now: datetime) -> MessageTemplate:
    title = settings.digest.title
    list_id = f"{title} <{_slug(title)}.{sender_domain(settings.mail.from_)}>"
    return MessageTemplate.build(
        subject=edition["subject"],
        html=edition["html"],
        text=edition["text"],
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
    log: Any,
    messenger: Messenger,
    d: Delivery,
    message: bytes,
    report: SendReport,
    now: datetime,
) -> bool:
    """Try one message up to `ATTEMPTS` times; True when it was handed over (or is settled)."""
    for attempt in range(1, ATTEMPTS + 1):
        tries = d.attempts + attempt
        try:
            answer = messenger.push(settings.mail.from_, d.email, message, _handover(log, d, now, tries))
        except PermanentMailError as exc:
            log.mark(d, "failed", now, attempts=tries, error=str(exc))
            report.failed.append((d.email, str(exc)))
            if exc.code in _MAILBOX_CODES:
                store.record_bounce(d.email, settings.mail.bounce_limit, now)
            return True
        except TransientMailError as exc:
            log.mark(d, "queued", now, attempts=tries, error=str(exc))  # not accepted: stays queued
            if attempt == ATTEMPTS:
                report.deferred.append((d.email, str(exc)))
                return False
            time.sleep(min(4.0, 0.25 * 2**attempt))
            continue
        # not fsynced: if a power loss rolls it back, the row says handed_over, which also counts as sent
        log.mark(d, "sent", now, durable=False, attempts=tries, answer=answer, error="")
        report.sent.append(d.email)
        return True
    return False


def _handover(log: Any, d: Delivery, now: datetime, tries: int) -> Callable[[], None]:
    return lambda: log.mark(d, "handed_over", now, attempts=tries)
