"""Signed, expiring, single-purpose tokens for subscriber links (unsubscribe, preferences, confirm, feedback)."""

from __future__ import annotations

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from . import clock
from .errors import TokenError

__all__ = ["TokenError", "make_token", "read_token"]

# How long a link in an email stays good, per purpose (seconds).
LIFETIMES = {"unsubscribe": 365 * 86400, "preferences": 90 * 86400, "confirm": 7 * 86400, "feedback": 60 * 86400}


class _ClockSigner(TimestampSigner):
    """Signs tokens at `clock.now` (``DIGEST_NOW`` in a rehearsal or a test), not the wall clock."""

    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"digest:{purpose}", signer=_ClockSigner)


def make_token(secret: str, purpose: str, address: str) -> str:
    """A URL-safe token that says ``address`` for one ``purpose``, signed with ``secret``."""
    return _serializer(secret, purpose).dumps(address.lower())


def read_token(secret: str, purpose: str, token: str, max_age: int | None = None) -> str:
    """The address a token carries; `TokenError` when it is bad or older than ``max_age``."""
    try:
        address, signed = _serializer(secret, purpose).loads(token, return_timestamp=True)
    except BadSignature:
        raise TokenError(f"this {purpose} link is not valid") from None
    # Aged here, not by itsdangerous, which refuses a token from the future: under DIGEST_NOW each
    # process's clock starts at that moment when it first reads it, so a link signed by `digest send`
    # can be a few seconds "newer" than the clock of a `digest serve` started before it.
    age = (clock.now() - signed).total_seconds()
    if age > (max_age if max_age is not None else LIFETIMES[purpose]):
        raise TokenError(f"this {purpose} link has expired", expired=True)
    return str(address)
