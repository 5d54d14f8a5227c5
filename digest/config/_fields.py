"""What every settings section shares: the strict base model, ``${VAR}`` expansion, secrets that must come
from the environment, http(s) URLs, intervals and the weekly send time."""

from __future__ import annotations

import difflib
import os
import re
from datetime import time, timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import SplitResult, quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..errors import MissingVariable

if TYPE_CHECKING:
    from ._sections import Settings

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def expand_env(value: str) -> str:
    """Replace each ``${VAR}`` with the environment's value; a missing variable is an error."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MissingVariable(name)
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def secret_names(settings: Settings) -> list[str]:
    """The environment variables (``${VAR}``) the secret-bearing settings read: database, Bluesky app
    password, SMTP URL, subscription secret; what `digest check` lists, never their values."""
    values = [
        settings.digest.database,
        settings.bluesky.app_password or "",
        settings.mail.smtp or "",
        settings.subscription.secret or "",
    ]
    return sorted({m.group(1) for v in values for m in _ENV_REF.finditer(v)})


def expand_database(value: str) -> str:
    """`expand_env` for ``[digest] database``: a variable in the URL's ``user:password@`` part is
    percent-encoded, so a password with ``@``, ``/`` or ``:`` in it stays one password."""
    scheme, sep, rest = value.partition("://")
    at = rest.rfind("@", 0, rest.find("/") if "/" in rest else len(rest))
    if not sep or at < 0:
        return expand_env(value)
    userinfo = _ENV_REF.sub(lambda m: quote(expand_env(m.group(0)), safe=""), rest[:at])
    return f"{scheme}://{userinfo}{expand_env(rest[at:])}"


MIN_SECRET = 32
SECRET_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def weak_secret(value: str) -> str:
    """Why a signing secret is too weak to sign links with, or "" when it will do."""
    if not value:
        problem = "is empty"
    elif len(value) < MIN_SECRET:
        problem = f"is {len(value)} characters long"
    elif len(set(value)) < 8:
        problem = f"repeats {len(set(value))} characters"
    else:
        return ""
    return (
        f"{problem}: anyone could forge subscriber links; it must be at least {MIN_SECRET} random characters "
        f"(16 bytes of entropy); make one with: {SECRET_COMMAND}"
    )


def smtp_url(value: str) -> SplitResult:
    """An ``smtp://`` or ``smtps://`` URL's parts; `ValueError` saying what is wrong with it."""
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            f"{parts.scheme or '(no scheme)'}://{parts.hostname or ''}: use smtp://user:password@host:port"
        )
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
        raise ValueError(f"port {port!r} is not a number from 1 to 65535: use smtp://user:password@host:port") from None
    return parts


def _empty_variables(value: str) -> list[str]:
    """The ``${VAR}``s in a value that are set but empty (an ``Environment=VAR=`` line does this)."""
    return [m.group(1) for m in _ENV_REF.finditer(value) if os.environ.get(m.group(1)) == ""]


def _secret(value: str | None) -> str | None:
    """A secret must come from the environment (``${VAR}``), never in clear in the file."""
    if value is None:
        return None
    if not _ENV_REF.search(value) and value:
        raise ValueError("secrets must not be written in the file; use ${VARIABLE} and set it in the environment")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    try:
        parts.port  # noqa: B018  (urllib checks the port only when it is read)
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
        raise ValueError(f"port {port!r} is not a number from 1 to 65535") from None
    return value


HttpUrl = Annotated[str, Field(min_length=8)]


def parse_interval(value: str) -> timedelta:
    """Parse ``"1h"``, ``"30m"`` or ``"1h30m"`` into a duration of 1 minute to 7 days; ValueError otherwise."""
    match = re.fullmatch(r"\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*", value.lower())
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration such as '30m', '1h' or '1h30m'")
    every = timedelta(hours=int(match.group(1) or 0), minutes=int(match.group(2) or 0))
    if not timedelta(minutes=1) <= every <= timedelta(days=7):
        raise ValueError(f"{value!r} is out of range: use 1m to 168h")
    return every


def parse_schedule(value: str) -> tuple[int, time]:
    """Parse ``"friday 07:00"`` into (4, time(7, 0)); raise ValueError with the expected form."""
    match = re.fullmatch(r"\s*([A-Za-z]+)\s+(\d{1,2}):(\d{2})\s*", value)
    day = match and difflib.get_close_matches(match.group(1).lower(), WEEKDAYS, n=1, cutoff=0.8)
    if not match or not day or int(match.group(2)) > 23 or int(match.group(3)) > 59:
        raise ValueError(f"{value!r} is not a weekday and time such as 'friday 07:00'")
    return WEEKDAYS.index(day[0]), time(int(match.group(2)), int(match.group(3)))
