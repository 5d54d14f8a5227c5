"""Subscribers: subscribe, confirm, change topics, unsubscribe, import and export.

The web app (``web.py``) and the command line (``cli/``) both call these; they raise
`SubscriptionError` subclasses (and `TokenError` for a bad link) and never know about HTTP.

States: ``pending`` (subscribed, not yet confirmed), ``confirmed`` (mailed every week),
``bouncing`` (too many hard bounces: not mailed) and ``unsubscribed``. An unsubscribed address
is not kept: only its suppression (a hash and a date, see `store.suppression_hash`) remains, so
neither feeds.toml nor an import can add the person back silently. Only the person can, by
subscribing again on the web and confirming.

The hierarchy::

    DigestError
    └── SubscriptionError      a subscription request that cannot be done as asked
        ├── InvalidInput       a malformed address or an unknown topic (the message says which)
        ├── SuppressedAddress  the address unsubscribed; the curator cannot re-add it
        └── NotSubscribed      a link or command names an address that is not subscribed
"""

from __future__ import annotations

import csv
import email.utils
import enum
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any, Literal

from . import addresses
from .compose import environment
from .config import Settings, expand_env
from .delivery import links_for
from .errors import (
    ConfigError,
    DigestError,
    InvalidInput,
    NotSubscribed,
    SubscriptionError,
    SuppressedAddress,
    UsageError,
)
from .mail import Messenger, messenger_for, sender_domain
from .models import Recipient, SubscriberOrigin, SubscriberStatus
from .store import Store, database_exists
from .tokens import make_token, read_token

__all__ = [
    "STATES",
    "ImportReport",
    "InvalidInput",
    "NotSubscribed",
    "Removal",
    "SubscriptionError",
    "SuppressedAddress",
    "add",
    "confirm",
    "export_csv",
    "import_csv",
    "listing",
    "normalize_email",
    "parse_topics",
    "preview_topics",
    "remove",
    "secret_of",
    "subscribe",
    "subscriber_for",
    "unsubscribe",
    "update_topics",
]

STATES = ("pending", "confirmed", "unsubscribed", "bouncing")

Sent = Literal["confirm", "already", "welcome"]


# -- input ------------------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """A plain ``local@domain`` address, trimmed and lower-cased (an internationalized domain as
    punycode, a UTF-8 local part kept); `InvalidInput` with a message a person can act on otherwise."""
    try:
        return addresses.normalize(raw)
    except addresses.AddressError as exc:
        raise InvalidInput(str(exc)) from None


def topic_names(settings: Settings) -> list[str]:
    """The configured topics' names, in their order."""
    return [t.name for t in settings.topics]


def parse_topics(settings: Settings, chosen: Iterable[str]) -> tuple[str, ...] | None:
    """A reader's topic choice in the configured order; None when it is every topic (so topics the
    curator adds later reach them too). `InvalidInput` for an unknown topic or an empty choice."""
    names = topic_names(settings)
    picked = [c.strip() for c in chosen if c.strip()]
    unknown = [c for c in picked if c not in names]
    if unknown:
        shown = unknown[0] if len(unknown[0]) <= 60 else unknown[0][:60] + "…"
        raise InvalidInput(f"There is no topic called {shown!r}; choose from {', '.join(names)}.", field="topics")
    if not names:
        return None
    if not picked:
        raise InvalidInput("Please choose at least one topic.", field="topics")
    ordered = tuple(n for n in names if n in picked)
    return None if len(ordered) == len(names) else ordered


def effective_topics(settings: Settings, recipient: Recipient) -> list[str]:
    """The topics a subscriber receives (every topic when they chose all)."""
    names = topic_names(settings)
    return [t for t in recipient.topics if t in names] if recipient.topics is not None else names


def preview_topics(settings: Settings, email: str | None, chosen: Sequence[str]) -> list[str]:
    """The topics a preview shows: those of the subscriber listed in feeds.toml as ``email``, else the
    ``chosen`` ones (every topic when none); an unknown subscriber or topic is a `DigestError` or `UsageError`."""
    names = topic_names(settings)
    if email:
        match = next((s for s in settings.subscribers if s.email.lower() == email.lower()), None)
        if match is None:
            raise DigestError(f"{email}: no such subscriber in {settings.path}")
        return list(match.topics or names)
    unknown = [t for t in chosen if t not in names]
    if unknown:
        raise UsageError(f"unknown topic {unknown[0]!r}; configured: {', '.join(names)}")
    return list(chosen or names)


# -- links and mail ---------------------------------------------------------------------------


def secret_of(settings: Settings) -> str:
    """The ``[subscription] secret``, expanded; `ConfigError` when the web app cannot work without it."""
    sub = settings.subscription
    if not sub.public_url or not sub.secret:
        raise ConfigError(
            f"{settings.path}: [subscription] needs public_url and secret (as ${{VARIABLE}}) for the "
            "subscription pages and the links they send; without them, add readers with "
            "`digest subscribers add --confirmed EMAIL`"
        )
    return expand_env(sub.secret)


def confirm_url(settings: Settings, address: str) -> str:
    """The link in a confirmation email (it opens a page; only that page's button confirms)."""
    base = (settings.subscription.public_url or "").rstrip("/")
    return f"{base}/confirm/{make_token(secret_of(settings), 'confirm', address)}"


def build_message(settings: Settings, address: str, kind: Sent, now: datetime) -> bytes:
    """The confirmation (or "already subscribed", or welcome) email, from ``confirm.txt`` and ``confirm.html``."""
    sub = settings.subscription
    links = links_for(settings, address)
    context = {
        "title": settings.digest.title,
        "kind": kind,
        "address": address,
        "confirm_url": confirm_url(settings, address) if kind == "confirm" else "",
        "preferences_url": links.preferences,
        "unsubscribe_url": links.unsubscribe,
        "home_url": (sub.public_url or "").rstrip("/") + "/",
        "schedule": schedule_label(settings),
    }
    env = environment(settings.templates_dir)
    subjects = {
        "confirm": f"Confirm your subscription to {settings.digest.title}",
        "already": f"You are already subscribed to {settings.digest.title}",
        "welcome": f"Welcome to {settings.digest.title}",
    }
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = settings.mail.from_
    msg["To"] = addresses.to_header(address)
    if settings.mail.reply_to:
        msg["Reply-To"] = settings.mail.reply_to
    msg["Subject"] = subjects[kind]
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid("confirm", domain=sender_domain(settings.mail.from_))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(env.get_template("confirm.txt").render(context), subtype="plain", charset="utf-8")
    msg.add_alternative(env.get_template("confirm.html").render(context), subtype="html", charset="utf-8")
    return msg.as_bytes(policy=SMTP_POLICY.clone(utf8=True) if addresses.needs_smtputf8(address) else SMTP_POLICY)


def schedule_label(settings: Settings) -> str:
    """``every Friday around 07:00 (Europe/Berlin)``: when an edition goes out."""
    day, at = settings.digest.schedule
    names = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    return f"every {names[day]} around {at:%H:%M} ({settings.digest.timezone})"


def send_message(settings: Settings, address: str, kind: Sent, now: datetime, messenger: Messenger | None) -> None:
    """Hand one message over (SMTP, or the outbox's ``confirmations`` folder); `MailError` if it fails."""
    message = build_message(settings, address, kind, now)
    own = messenger is None
    messenger = messenger or messenger_for(settings.mail, settings.outbox_dir, "confirmations")
    try:
        messenger.push(settings.mail.from_, address, message, lambda: None)
        messenger.flush()
    finally:
        if own:
            messenger.close()


# -- what a reader does -----------------------------------------------------------------------


def subscribe(
    settings: Settings,
    store: Store,
    raw_email: str,
    topics: Iterable[str],
    *,
    now: datetime,
    messenger: Messenger | None = None,
) -> Sent:
    """Subscribe an address from the web form and send the email that says what happens next.

    A new (or unsubscribed, or bouncing) address becomes ``pending`` and gets a confirmation link;
    with ``double_opt_in = false`` it is confirmed at once and gets a welcome. An address that is
    already confirmed is left exactly as it is and gets "you are already subscribed". The caller
    answers the same in every case, so the page never tells who is subscribed.
    """
    address = normalize_email(raw_email)
    chosen = parse_topics(settings, topics)
    secret_of(settings)  # fail before changing anything when links cannot be signed
    existing = store.subscriber(address)
    if existing is not None and existing.status == "confirmed":
        send_message(settings, address, "already", now, messenger)
        return "already"
    origin = existing.origin if existing is not None else "web"
    if not settings.subscription.double_opt_in:
        store.add_subscriber(Recipient(address, "", chosen, "confirmed", origin, 0), now)
        store.lift_suppression(address)
        send_message(settings, address, "welcome", now, messenger)
        return "welcome"
    bounces = existing.bounces if existing is not None else 0
    store.add_subscriber(Recipient(address, existing.name if existing else "", chosen, "pending", origin, bounces), now)
    send_message(settings, address, "confirm", now, messenger)
    return "confirm"


def address_of(settings: Settings, purpose: str, token: str) -> str:
    """The address a link's token carries; `TokenError` when it is forged, expired or for another purpose."""
    return read_token(secret_of(settings), purpose, token)


def confirm(settings: Settings, store: Store, token: str, *, now: datetime) -> Recipient:
    """Confirm the subscription a confirmation link names. Harmless to repeat: an address already
    confirmed stays as it is; one that unsubscribed meanwhile is not brought back (`NotSubscribed`)."""
    address = address_of(settings, "confirm", token)
    found = store.subscriber(address)
    if found is None:
        raise NotSubscribed(
            "There is no subscription waiting for this link: it was cancelled, or the address unsubscribed. "
            "You can subscribe again."
        )
    if found.status == "confirmed":
        return found
    confirmed = replace(found, status="confirmed", bounces=0)
    store.add_subscriber(confirmed, now)
    store.lift_suppression(address)  # the person asked, and proved the mailbox is theirs
    return confirmed


def subscriber_for(settings: Settings, store: Store, token: str) -> Recipient:
    """The subscriber a preferences link names; `NotSubscribed` when the address is no longer subscribed."""
    address = address_of(settings, "preferences", token)
    found = store.subscriber(address)
    if found is None:
        raise NotSubscribed("This address is not subscribed any more. You can subscribe again.")
    return found


def update_topics(settings: Settings, store: Store, token: str, topics: Iterable[str], *, now: datetime) -> Recipient:
    """Change the topics a preferences link's subscriber receives."""
    found = subscriber_for(settings, store, token)
    changed = replace(found, topics=parse_topics(settings, topics))
    store.add_subscriber(changed, now)
    return changed


def unsubscribe(settings: Settings, store: Store, token: str, *, now: datetime) -> bool:
    """Unsubscribe the address an unsubscribe link names: its data goes, its suppression stays.
    Harmless to repeat; True when it was subscribed until now."""
    return store.unsubscribe(address_of(settings, "unsubscribe", token), now)


# -- what the curator does ----------------------------------------------------------------------


def sync_config(settings: Settings, store: Store, now: datetime) -> None:
    """Bring the subscribers listed in feeds.toml into the store (suppressed addresses are skipped)."""
    listed = [Recipient(s.email, s.name or "", s.topics) for s in settings.subscribers]
    store.sync_config_subscribers(listed, now)


def add(
    settings: Settings,
    store: Store,
    raw_email: str,
    topics: Sequence[str] | None,
    *,
    confirmed: bool,
    now: datetime,
    messenger: Messenger | None = None,
) -> Recipient:
    """Add (or update) one subscriber for the curator. Without ``confirmed`` (and with double opt-in)
    the address is ``pending`` and gets a confirmation link. A suppressed address is refused."""
    address = normalize_email(raw_email)
    chosen = parse_topics(settings, topics) if topics is not None else None
    when = store.suppressed(address)
    if when is not None:
        raise SuppressedAddress(
            f"{address} unsubscribed on {when:%Y-%m-%d}; only they can subscribe again (on the subscribe page)"
        )
    existing = store.subscriber(address)
    if existing is not None and topics is None:
        chosen = existing.topics
    direct = confirmed or not settings.subscription.double_opt_in
    status: SubscriberStatus = "confirmed" if direct or (existing and existing.status == "confirmed") else "pending"
    origin: SubscriberOrigin = existing.origin if existing is not None else "cli"
    recipient = Recipient(address, existing.name if existing else "", chosen, status, origin, 0)
    if status == "pending":
        secret_of(settings)  # the confirmation needs a signed link
    store.add_subscriber(recipient, now)
    if status == "pending":
        send_message(settings, address, "confirm", now, messenger)
    return recipient


class Removal(enum.Enum):
    """What `remove` did with an address."""

    UNSUBSCRIBED = "unsubscribed"  # it was a subscriber: its data went, its suppression stays
    NOT_SUBSCRIBED = "not subscribed"  # nothing to do, and nothing recorded
    ALREADY_UNSUBSCRIBED = "already unsubscribed"  # it was suppressed before
    SUPPRESSED = "suppressed"  # never a subscriber, suppressed on request (``suppress``)


def remove(settings: Settings, store: Store, raw_email: str, *, now: datetime, suppress: bool = False) -> Removal:
    """Unsubscribe an address for the curator (one listed in feeds.toml too). An address that never
    subscribed is left alone, unless ``suppress`` asks for it to be blocked from imports and adds."""
    address = normalize_email(raw_email)
    listed = any(s.email.lower() == address for s in settings.subscribers)
    if store.subscriber(address) is not None or (listed and store.suppressed(address) is None):
        store.unsubscribe(address, now)
        return Removal.UNSUBSCRIBED
    if store.suppressed(address) is not None:
        return Removal.ALREADY_UNSUBSCRIBED
    if suppress:
        store.suppress(address, now)
        return Removal.SUPPRESSED
    return Removal.NOT_SUBSCRIBED


@dataclass(slots=True)
class ImportReport:
    """What an import did, row by row; `as_dict` is the ``--json`` summary."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "existing": len(self.existing),
            "suppressed": len(self.suppressed),
            "invalid": [{"line": line, "reason": reason} for line, reason in self.invalid],
        }


def import_csv(settings: Settings, store: Store, path: str | Path, *, now: datetime) -> ImportReport:
    """Add the people in a CSV file (columns ``email`` and optionally ``topics``, several joined by
    ``|``, and ``name``) as confirmed subscribers. Suppressed addresses are skipped, existing
    subscribers are left as they are, and a bad row is reported with its line and the rest go on."""
    report = ImportReport()
    for line, row in _csv_rows(path):
        try:
            address = normalize_email(row.get("email") or "")
            raw_topics = [t for t in re.split(r"[|;]", row.get("topics") or "") if t.strip()]
            chosen = parse_topics(settings, raw_topics) if raw_topics else None
        except InvalidInput as exc:
            report.invalid.append((line, str(exc)))
            continue
        if store.suppressed(address) is not None:
            report.suppressed.append(address)
        elif store.subscriber(address) is not None:
            report.existing.append(address)
        else:
            name = (row.get("name") or "").strip()[:200]
            store.add_subscriber(Recipient(address, name, chosen, "confirmed", "import", 0), now)
            report.added.append(address)
    return report


def _csv_rows(path: str | Path) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DigestError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DigestError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or ()]
    if "email" not in fields:
        raise DigestError(f"{path}: no email column (expected a header row such as email,topics)")
    reader.fieldnames = fields
    for row in reader:
        yield reader.line_num, {k: (v or "") for k, v in row.items() if isinstance(k, str)}


def listing(settings: Settings, store: Store, *, now: datetime) -> list[dict[str, Any]]:
    """Every subscriber the curator can see: ``{"email", "state", "topics", "name", "origin"}`` by address.
    Addresses listed in feeds.toml that unsubscribed show as ``unsubscribed``; others who unsubscribed
    are kept only as hashes and are counted, not listed."""
    sync_config(settings, store, now)
    people = {
        r.email: {
            "email": r.email,
            "state": r.status,
            "topics": effective_topics(settings, r),
            "name": r.name,
            "origin": r.origin,
        }
        for r in store.subscribers()
    }
    for listed in settings.subscribers:
        address = listed.email.lower()
        if address not in people and store.suppressed(address) is not None:
            topics = effective_topics(settings, Recipient(address, "", listed.topics))
            people[address] = {
                "email": address,
                "state": "unsubscribed",
                "topics": topics,
                "name": listed.name or "",
                "origin": "config",
            }
    return [people[key] for key in sorted(people)]


def export_csv(settings: Settings, store: Store, path: str | Path, *, now: datetime) -> int:
    """Write every subscriber with an address (``email,name,topics,state,signals``; topics joined by ``|``)
    to a CSV file that `import_csv` reads back; return how many rows. ``signals`` holds the reader's own
    feedback, each ``kind:post id:topic`` (kind ``less`` for "not for me", ``more``), joined by ``|``."""
    rows = listing(settings, store, now=now)
    mine: dict[str, list[str]] = {}
    for signal in store.signals():
        if signal.email:
            mine.setdefault(signal.email, []).append(f"{signal.kind}:{signal.post_id}:{signal.topic}")
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name", "topics", "state", "signals"])
            for row in rows:
                signals = "|".join(mine.get(row["email"], []))
                writer.writerow([row["email"], row["name"], "|".join(row["topics"]), row["state"], signals])
    except OSError as exc:
        raise DigestError(f"{path}: cannot be written: {exc.strerror}") from None
    return len(rows)


def counts(settings: Settings) -> dict[str, int] | None:
    """Subscribers by state in the store, or None when there is no store yet (nothing is created)."""
    url = settings.database_url
    if not database_exists(url):
        return None
    with Store.open(url, read_only=True) as store:
        return store.subscriber_counts()
