"""Errors that cross the library boundary, each saying what to check.

The hierarchy::

    DigestError                  anything digest reports to a person
    ├── ConfigError              feeds.toml is missing or wrong (exit status 2)
    ├── UsageError               a command's argument is wrong: a bad address, a week not yet begun (exit status 2)
    ├── StoreError               the database cannot be opened, migrated or written (full, corrupt, read-only)
    │   └── LostClaim            a run's claim on a delivery lapsed and another run took it over
    ├── SourceError              a source cannot be added, imported or exported (dead, duplicate)
    │   └── OpmlError            (opml.py) an OPML file is not readable
    ├── FetchError               one source could not be collected (recorded, the run goes on)
    │   ├── TransientFetchError  worth retrying: timeouts, dropped connections, 5xx, 429
    │   └── PermanentFetchError  not worth retrying now: 4xx, bad payloads, oversized bodies
    ├── MailError                (mail.py) a message could not be handed over
    │   ├── TransientMailError   4xx, dropped connection, timeout: stays queued, tried again
    │   └── PermanentMailError   5xx: recorded against the subscriber, a refused mailbox bounces
    ├── TokenError               (tokens.py) a link is forged, for another purpose, or expired
    ├── SubscriptionError        (subscribers.py) a subscribe/confirm/unsubscribe step cannot be done
    └── CsrfError, RateLimited, BadRequest   (web.py) what the web app answers 403, 429 and 400 to

Only ``cli.py`` turns these into exit codes, and only ``web.py`` into HTTP responses.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DigestError",
    "FetchError",
    "LostClaim",
    "PermanentFetchError",
    "SourceError",
    "StoreError",
    "TransientFetchError",
    "UsageError",
    "one_line",
]


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


class FetchError(DigestError):
    """A source could not be fetched or parsed; the message names the URL and the reason."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientFetchError(FetchError):
    """A failure worth retrying with backoff (timeouts, resets, 5xx, 429)."""


class PermanentFetchError(FetchError):
    """A failure that retrying now will not fix (404, 410, not a feed, too large)."""


def one_line(text: object, limit: int = 200) -> str:
    """A message as one line for a person or a log: white space folded, at most ``limit`` characters."""
    return " ".join(str(text).split())[:limit]
