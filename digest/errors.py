"""Every exception digest raises across a module's boundary, each message saying what to check.

The hierarchy (every class is defined here; the modules named raise it)::

    DigestError                  anything digest reports to a person
    ├── ConfigError              feeds.toml is missing or wrong (exit status 2); ``problems``: one line each
    ├── UsageError               a command's argument is wrong: a bad address, a week not yet begun (exit status 2)
    ├── StoreError               (store) the database cannot be opened, migrated, read or written
    │   └── LostClaim            a run's claim on a delivery lapsed and another run took it over
    ├── SourceError              (sources) a source cannot be added, imported or exported (dead, duplicate)
    │   ├── ChoiceNeeded         a page offers several feeds: ``page``, ``candidates``
    │   └── OpmlError            (opml) an OPML file is not readable or writable
    ├── FetchError               (collect) one source could not be collected: ``reason``, ``advice``, ``status``, ``retry_after``
    │   ├── TransientFetchError  worth retrying: timeouts, dropped connections, 5xx, 429
    │   └── PermanentFetchError  not worth retrying now: 4xx, bad payloads, oversized bodies
    ├── MailError                (mail) a message could not be handed over: ``code``, the SMTP reply
    │   ├── TransientMailError   4xx, dropped connection, timeout: stays queued, tried again
    │   └── PermanentMailError   5xx: recorded against the subscriber, a refused mailbox bounces
    ├── TokenError               (tokens) a link is forged, for another purpose, or ``expired``
    ├── SubscriptionError        (subscribers) a subscribe/confirm/unsubscribe step cannot be done
    │   ├── InvalidInput         a bad address or topic (also a UsageError): ``field`` names which
    │   ├── SuppressedAddress    the address unsubscribed; only its owner can subscribe it again
    │   └── NotSubscribed        the address is not (or no longer) subscribed
    ├── CsrfError                (web) a form's POST without a valid token from its page: 403
    ├── RateLimited              (web) too many requests from an IP or for an address: 429, ``retry_after``
    └── BadRequest               (web) a request no page of ours would send: 400

    ValueError                   raised inside validation (pydantic reads a ValueError as the field's problem)
    ├── AddressError             (addresses) an address that is not one, said in words; subscribers make it InvalidInput
    └── MissingVariable          (config) a ``${VAR}`` that is not set: ``name``; the loader reports it once

Only ``cli`` turns these into exit codes, and only ``web`` into HTTP responses. Code that needs to
tell failures apart reads their fields, never their message text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .sources import Candidate

__all__ = [
    "REMOVE_IT",
    "AddressError",
    "BadRequest",
    "ChoiceNeeded",
    "ConfigError",
    "CsrfError",
    "DigestError",
    "FetchError",
    "InvalidInput",
    "LostClaim",
    "MailError",
    "MissingVariable",
    "NotSubscribed",
    "OpmlError",
    "PermanentFetchError",
    "PermanentMailError",
    "RateLimited",
    "SourceError",
    "StoreError",
    "SubscriptionError",
    "SuppressedAddress",
    "TokenError",
    "TransientFetchError",
    "TransientMailError",
    "UsageError",
    "one_line",
]

REMOVE_IT = "remove it from feeds.toml"  # the advice for a source that is gone, wherever it is shown


class AddressError(ValueError):
    """An address that is not one; the message says what is wrong in words."""


class MissingVariable(ValueError):
    """A ``${VAR}`` in feeds.toml whose variable is not set in the environment: ``name`` says which."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment variable {name} is not set")


class DigestError(Exception):
    """Base class: the message is one line a person can act on."""


class ConfigError(DigestError):
    """The configuration is missing or invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(DigestError):
    """A command was asked something it cannot mean (a malformed or future ``--week``, an address
    that is not one): bad usage, exit status 2, as click's own usage errors."""


class StoreError(DigestError):
    """The store cannot be opened, is newer than this version, or a migration failed."""


class LostClaim(StoreError):
    """This run no longer holds a delivery it was sending: another run took it over (and sends it)."""


class SourceError(DigestError):
    """A source cannot be added (dead, not a feed, already followed), or an OPML file cannot be
    read or written; the message names the URL, handle or file (and line) and the reason."""


class ChoiceNeeded(SourceError):
    """A page offers several feeds and nobody chose (or the choice was out of range): ``candidates`` lists them."""

    def __init__(
        self, page: str, candidates: Sequence[Candidate], problem: str = "", followed: Sequence[str] = ()
    ) -> None:
        self.page = page
        self.candidates = list(candidates)
        more = f" not followed yet (and {len(followed)} followed already)" if followed else ""
        lines = [
            f"{problem + '; ' if problem else ''}{page} offers {len(candidates)} feeds{more}; "
            "choose with --pick N (or --all):"
        ]
        lines += [f"  {i}. {c.describe()}" for i, c in enumerate(candidates, start=1)]
        lines += [f"  -  {line}" for line in followed]
        super().__init__("\n".join(lines))


class OpmlError(SourceError):
    """An OPML file cannot be read (missing, not well-formed, not OPML) or written."""


class FetchError(DigestError):
    """A source could not be fetched or parsed. ``reason`` is the failure (naming the URL once `at`
    has been called), ``advice`` what a person should do about it; the message joins the two."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None, advice: str = ""
    ) -> None:
        self.reason, self.advice = reason, advice
        self.status = status
        self.retry_after = retry_after
        super().__init__(self._message())

    def at(self, url: str) -> None:
        """Name the URL the failure came from in front of its reason."""
        self.reason = f"{url}: {self.reason}"
        self.args = (self._message(),)

    def _message(self) -> str:
        return f"{self.reason}; {self.advice}" if self.advice else self.reason


class TransientFetchError(FetchError):
    """A failure worth retrying with backoff (timeouts, resets, 5xx, 429)."""


class PermanentFetchError(FetchError):
    """A failure that retrying now will not fix (404, 410, not a feed, too large)."""


class MailError(DigestError):
    """A message could not be handed over; ``code`` is the SMTP reply code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientMailError(MailError):
    """Worth retrying: 4xx replies, dropped connections, timeouts. The message was not accepted."""


class PermanentMailError(MailError):
    """Not worth retrying: a 5xx reply (an unknown or refused address, a rejected message)."""


class TokenError(DigestError):
    """A link's token is forged, for another purpose, or ``expired`` (then it was genuine once)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class SubscriptionError(DigestError):
    """A subscription request that cannot be done as asked; the message says why, for a person."""


class InvalidInput(SubscriptionError, UsageError):
    """A malformed email address, an unknown topic, a missing field: ``field`` names the form's field."""

    def __init__(self, message: str, *, field: Literal["email", "topics"] = "email") -> None:
        super().__init__(message)
        self.field = field


class SuppressedAddress(SubscriptionError):
    """The address unsubscribed: only the person can subscribe it again (on the subscribe page)."""


class NotSubscribed(SubscriptionError):
    """The address a link or command names is not (or no longer) subscribed."""


class CsrfError(DigestError):
    """A form's POST did not carry a valid token from the page that showed it."""


class RateLimited(DigestError):
    """Too many requests from one IP address, or for one email address."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadRequest(DigestError):
    """A request no page of ours would send (a malformed form, an absurd token)."""


def one_line(text: object, limit: int = 200) -> str:
    """A message as one line for a person or a log: white space folded, at most ``limit`` characters."""
    return " ".join(str(text).split())[:limit]
