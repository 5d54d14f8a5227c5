"""Load ``feeds.toml`` into frozen, typed settings; every problem names the file, line and key.

Each section is declared once as a pydantic model with its defaults and help text; unknown keys
are errors with a "did you mean" suggestion, and secrets may only come from ``${VAR}``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import addresses
from .errors import ConfigError

__all__ = [
    "BlueskySettings",
    "ChatSettings",
    "CollectSettings",
    "DigestSettings",
    "MailSettings",
    "NoiseSettings",
    "Settings",
    "Source",
    "Subscriber",
    "SubscriptionSettings",
    "Topic",
    "load",
    "parse",
    "secret_names",
]

DEFAULT_PATH = "feeds.toml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HANDLE = re.compile(r"^@?([A-Za-z0-9_.-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,}|localhost)(:\d+)?$")
_HASHTAG = re.compile(r"^#?(\w+)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def expand_env(value: str) -> str:
    """Replace each ``${VAR}`` with the environment's value; a missing variable is an error."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
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
    return value


HttpUrl = Annotated[str, Field(min_length=8)]


class DigestSettings(_Model):
    """``[digest]``: what the digest is called, when it goes out and which week it covers."""

    title: str = Field("digest", description="The digest's name, shown in every edition.")
    timezone: str = Field("UTC", description="IANA time zone for the schedule and the times shown.")
    send_on: str = Field("friday 07:00", description="Weekly schedule: a weekday and a 24-hour time.")
    window_days: int = Field(7, ge=1, le=60, description="How far back collection reaches, in days.")
    database: str = Field(
        "digest.db",
        description="SQLite file (relative to feeds.toml) or a SQLAlchemy database URL; ${VARIABLE}s are read from the environment.",
    )
    templates: str | None = Field(
        None, description="A folder of your own templates (relative to feeds.toml) overriding single built-in ones."
    )
    quiet_week: bool = Field(
        False, description="Send a one-line 'quiet week' note when nothing matched; false sends nothing."
    )
    collect_every: str = Field(
        "1h", description="How often `digest serve` collects, in minutes or hours: '30m', '1h', '6h'."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'America/New_York')") from None
        return value

    @field_validator("send_on")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("collect_every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_interval(value)
        return value

    @property
    def schedule(self) -> tuple[int, time]:
        """The weekly send time as (weekday number with Monday 0, local time)."""
        return parse_schedule(self.send_on)

    @property
    def collect_interval(self) -> timedelta:
        """``collect_every`` as a duration."""
        return parse_interval(self.collect_every)


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


class CollectSettings(_Model):
    """``[collect]``: how politely and how hard sources are fetched."""

    concurrency: int = Field(50, ge=1, le=1000, description="Requests in flight at once, in all.")
    per_host: int = Field(4, ge=1, le=100, description="Requests in flight at once to one host.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(20.0, gt=0, description="Seconds to wait for each read.")
    total_timeout: float = Field(60.0, gt=0, description="Seconds one request may take in all, over all its tries.")
    run_timeout: float = Field(
        600.0,
        gt=0,
        description=(
            "Seconds one collect run may take: sources still unfinished then are recorded as timed out "
            "and the run reports as usual."
        ),
    )
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed before giving up.")
    max_bytes: int = Field(10_000_000, ge=1000, description="Largest response body accepted, after decompression.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a transient failure within one run.")
    max_retry_after: float = Field(
        30.0, ge=0, description="Longest Retry-After (seconds) waited within a run; longer ones wait for a later run."
    )
    failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures after which a source is only retried once per retry window."
    )
    retry_window_hours: float = Field(24.0, gt=0, description="How long a failing source rests between tries.")
    page_limit: int = Field(10, ge=1, le=200, description="Most API pages read back per source per run.")
    refetch_after: float = Field(
        60.0,
        ge=0,
        description="Seconds a source fetched by one run is left alone by runs starting after it (overlapping "
        "or back-to-back collects, other machines); 0: only a source being fetched right now is left alone.",
    )
    servers: tuple[str, ...] = Field(
        ("mastodon.social",), description="Mastodon servers searched for a hashtag that names none."
    )
    mastodon_via: Literal["auto", "api", "rss"] = Field(
        "auto", description="Read Mastodon by its public API (engagement counts, paging) or RSS; auto tries both."
    )
    bluesky_appview: str = Field(
        "https://public.api.bsky.app", description="Bluesky AppView used for public, keyless reads."
    )
    base_urls: dict[str, str] = Field(
        default_factory=dict, description="Server name -> base URL, to reach a server through a proxy or a test double."
    )
    user_agent: str | None = Field(None, description="User-Agent header; the default names digest and its version.")

    @field_validator("bluesky_appview")
    @classmethod
    def _appview(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("base_urls")
    @classmethod
    def _bases(cls, value: dict[str, str]) -> dict[str, str]:
        for base in value.values():
            _http_url(base)
        return value


class BlueskySettings(_Model):
    """``[bluesky]``: optional login, needed only for Bluesky hashtag search."""

    handle: str | None = Field(None, description="Your Bluesky handle, for hashtag search.")
    app_password: str | None = Field(None, description="An app password, as ${VARIABLE} from the environment.")
    service: str = Field("https://bsky.social", description="Your account's PDS (where you log in).")

    _secret = field_validator("app_password")(classmethod(lambda cls, v: _secret(v)))

    @property
    def has_login(self) -> bool:
        return bool(self.handle and self.app_password)


class FeedSource(_Model):
    """A feed: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 or JSON Feed."""

    feed: str = Field(description="The feed's URL (http or https).")
    name: str | None = Field(None, description="A display name; the feed's own title is used otherwise.")

    _url = field_validator("feed")(classmethod(lambda cls, v: _http_url(v)))

    @property
    def key(self) -> str:
        """The endpoint's key in the store (``feed:URL``)."""
        return f"feed:{self.feed}"


class MastodonSource(_Model):
    """A Mastodon account, ``@user@server``."""

    mastodon: str = Field(description="The account, as @user@server.")
    name: str | None = Field(None, description="A display name for summaries.")
    via: Literal["auto", "api", "rss"] | None = Field(
        None, description="Overrides [collect] mastodon_via for this source."
    )

    @field_validator("mastodon")
    @classmethod
    def _handle(cls, value: str) -> str:
        if not _HANDLE.match(value.strip()):
            raise ValueError("not a Mastodon handle such as '@someone@mastodon.social'")
        return "@" + value.strip().lstrip("@")


class HashtagSource(_Model):
    """A hashtag, looked up on Mastodon servers (and Bluesky when logged in)."""

    hashtag: str = Field(description="The hashtag, with or without #.")
    servers: tuple[str, ...] | None = Field(
        None, description="Mastodon servers to look it up on; [collect] servers otherwise."
    )
    networks: tuple[Literal["mastodon", "bluesky"], ...] = Field(
        ("mastodon",), description='Where to look: "mastodon", and "bluesky" (needs a [bluesky] login).'
    )
    name: str | None = Field(None, description="A display name for summaries.")
    via: Literal["auto", "api", "rss"] | None = Field(
        None, description="Overrides [collect] mastodon_via for this source."
    )

    @field_validator("hashtag")
    @classmethod
    def _tag(cls, value: str) -> str:
        match = _HASHTAG.match(value.strip())
        if not match:
            raise ValueError("not a hashtag such as 'HITsm' or '#FHIR'")
        return match.group(1)

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for server in value or ():
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", server):
                raise ValueError(f"{server!r} is not a server name such as 'mastodon.social'")
        return value


class BlueskySource(_Model):
    """A Bluesky account, by handle (``someone.bsky.social``) or DID."""

    bluesky: str = Field(description="The account's handle (someone.bsky.social) or DID.")
    name: str | None = Field(None, description="A display name for summaries.")

    @field_validator("bluesky")
    @classmethod
    def _handle(cls, value: str) -> str:
        value = value.strip().lstrip("@")
        if not (value.startswith("did:") or re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value)):
            raise ValueError("not a Bluesky handle such as 'someone.bsky.social'")
        return value


Source = FeedSource | MastodonSource | HashtagSource | BlueskySource
SOURCE_KINDS: dict[str, type[_Model]] = {
    "feed": FeedSource,
    "mastodon": MastodonSource,
    "hashtag": HashtagSource,
    "bluesky": BlueskySource,
}


class Topic(_Model):
    """``[[topics]]``: what a subscriber can follow; the filter keeps posts that match it."""

    name: str = Field(min_length=1, description="The topic's name, as subscribers pick it.")
    description: str = Field("", description="A sentence or two on what belongs here, in plain words.")
    keywords: tuple[str, ...] = Field((), description="Words, acronyms and hashtags that mark the topic.")
    examples: tuple[str, ...] = Field((), description="Optional on-topic example posts, a sentence each.")
    exclude: tuple[str, ...] = Field((), description="Optional words or example posts that are noise for this topic.")
    threshold: float | None = Field(None, gt=0, lt=1, description="Optional override of the filter's own threshold.")
    accept_after: int | None = Field(
        None,
        ge=2,
        description="Optional: readers' signals on a post become the topic's examples once this many distinct "
        "readers agree (at least 2; off by default: the curator accepts them).",
    )


class ChatSettings(_Model):
    """``[[chats]]``: a weekly hashtag chat (``#HITsm``): collected often while it runs, recapped in the edition."""

    hashtag: str = Field(description="The chat's hashtag, with or without #; it must also be a hashtag source.")
    host: str | None = Field(
        None,
        description="The account whose posts carry the numbered questions (T1, T2 ...): @user@server or a Bluesky handle.",
    )
    when: str = Field(description="When the chat starts, in [digest] timezone: a weekday and a 24-hour time.")
    duration: str = Field("1h", description="How long the chat runs: '1h', '90m', '1h30m' (at most 24h).")

    @field_validator("hashtag")
    @classmethod
    def _tag(cls, value: str) -> str:
        match = _HASHTAG.match(value.strip())
        if not match:
            raise ValueError("not a hashtag such as 'HITsm'")
        return match.group(1)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if _HANDLE.match(value):
            return "@" + value.lstrip("@")
        if re.fullmatch(r"@?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            return value.lstrip("@")
        raise ValueError("not an account such as '@HITsm@mastodon.social' or 'hitsm.bsky.social'")

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_interval(value) > timedelta(hours=24):
            raise ValueError(f"{value!r} is too long for a chat: use at most 24h")
        return value

    @property
    def schedule(self) -> tuple[int, time]:
        """The weekly start as (weekday number with Monday 0, local time)."""
        return parse_schedule(self.when)

    @property
    def length(self) -> timedelta:
        """``duration`` as a timedelta."""
        return parse_interval(self.duration)


class NoiseSettings(_Model):
    """``[noise]``: the off-topic chatter every topic competes with; digest ships a general profile."""

    keywords: tuple[str, ...] = Field((), description="Words and hashtags of chatter to add to the built-in profile.")
    description: str | None = Field(None, description="Replaces the built-in description of chatter, when given.")
    replace: bool = Field(False, description="Use only your keywords, not the built-in ones.")


class Subscriber(_Model):
    """``[[subscribers]]``: a reader listed in the file, with the topics they receive."""

    email: str = Field(description="The reader's address.")
    name: str | None = Field(None, description="The reader's name, for the greeting.")
    topics: tuple[str, ...] | None = Field(None, description="Topic names to receive; all topics when left out.")

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        addresses.normalize(value)  # an AddressError (a ValueError) says what is wrong, in words
        return value.strip()


class MailSettings(_Model):
    """``[mail]``: how editions leave; with no ``smtp`` they are written to ``outbox`` as .eml files."""

    from_: str = Field("digest <digest@localhost>", alias="from", description="The From address.")
    reply_to: str | None = Field(None, description="Where replies go.")
    smtp: str | None = Field(
        None, description="smtp://user:${SMTP_PASSWORD}@host:port; with none, editions go to the outbox folder."
    )
    tls: Literal["starttls", "implicit", "none"] = Field(
        "starttls", description='"starttls", "implicit" (port 465) or "none" for a local relay.'
    )
    outbox: str = Field("outbox/", description="Folder for .eml files when no SMTP server is set.")
    rate: float = Field(10.0, gt=0, description="Messages per second at most.")
    ca_file: str | None = Field(None, description="A CA certificate to trust for the SMTP server (a private relay).")
    bounce_limit: int = Field(3, ge=1, description="Hard bounces after which an address is marked bouncing.")
    uncertain: Literal["resend", "skip"] = Field(
        "resend",
        description=(
            'A message whose handover a crash left unconfirmed: "resend" it with the same Message-ID (a possible '
            'duplicate, never a missed week) or "skip" it (never a duplicate, possibly a missed week).'
        ),
    )
    dkim_key: str | None = Field(
        None, description="A PEM private key (path relative to feeds.toml) to DKIM-sign every message with."
    )
    dkim_selector: str = Field(
        "digest", description="The DKIM selector: the key is published at SELECTOR._domainkey.DOMAIN."
    )

    @field_validator("smtp")
    @classmethod
    def _smtp(cls, value: str | None) -> str | None:
        if value and urlsplit(value).password and not _ENV_REF.search(value):
            raise ValueError("the SMTP password must come from the environment: smtp://user:${SMTP_PASSWORD}@host")
        return value

    @property
    def mode(self) -> str:
        return f"smtp ({urlsplit(self.smtp).hostname})" if self.smtp else f"outbox ({self.outbox})"


class SubscriptionSettings(_Model):
    """``[subscription]``: where the subscription pages and the edition archive are reachable."""

    public_url: str | None = Field(
        None, description="The web app's public address, used in every link (https://digest.example.org)."
    )
    secret: str | None = Field(
        None, description="Signs subscriber links and tokens; as ${VARIABLE} from the environment."
    )
    double_opt_in: bool = Field(True, description="New subscribers confirm by email before digests are sent.")
    limit_per_ip: int = Field(
        10,
        ge=1,
        description="Subscribe (and, apart, confirm) requests accepted per hour from one IP address; in memory, per process.",
    )
    limit_per_address: int = Field(
        3, ge=1, description="Subscribe (and, apart, confirm) requests accepted per hour for one email address."
    )

    _url = field_validator("public_url")(classmethod(lambda cls, v: v and _http_url(v)))
    _secret = field_validator("secret")(classmethod(lambda cls, v: _secret(v)))


@dataclass(frozen=True)
class Settings:
    """The whole configuration, validated; ``path`` is the file it came from."""

    path: Path
    digest: DigestSettings
    collect: CollectSettings
    bluesky: BlueskySettings
    sources: tuple[Source, ...]
    topics: tuple[Topic, ...]
    subscribers: tuple[Subscriber, ...]
    mail: MailSettings
    subscription: SubscriptionSettings
    noise: NoiseSettings
    chats: tuple[ChatSettings, ...] = ()

    @property
    def templates_dir(self) -> Path | None:
        """The user's template folder, resolved next to feeds.toml."""
        return (self.path.parent / self.digest.templates).resolve() if self.digest.templates else None

    @property
    def outbox_dir(self) -> Path:
        return (self.path.parent / self.mail.outbox).resolve()

    @property
    def database_url(self) -> str:
        """A SQLAlchemy URL, with its ``${VARIABLE}``s read from the environment: a plain path is a
        SQLite file next to feeds.toml. It may hold a password: print it through `store.display_url`."""
        try:
            db = expand_database(self.digest.database)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: digest.database: {exc}") from None
        if "://" in db:
            return db
        return f"sqlite:///{(self.path.parent / db).resolve()}"


_SECTIONS: dict[str, type[_Model]] = {
    "digest": DigestSettings,
    "collect": CollectSettings,
    "bluesky": BlueskySettings,
    "mail": MailSettings,
    "subscription": SubscriptionSettings,
    "noise": NoiseSettings,
}
_ARRAYS: dict[str, type[_Model]] = {"topics": Topic, "subscribers": Subscriber, "chats": ChatSettings}
_TOP_KEYS = (*_SECTIONS, *_ARRAYS, "sources")
# Every key a [[sources]] table may have, the kinds first (what a misspelt key most likely meant).
_SOURCE_KEYS = tuple(dict.fromkeys([*SOURCE_KINDS, *(k for m in SOURCE_KINDS.values() for k in m.model_fields)]))


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate a config file (default ``$DIGEST_CONFIG`` or ``./feeds.toml``)."""
    path = Path(path or os.environ.get("DIGEST_CONFIG") or DEFAULT_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; `digest init` writes a starter one there, "
            "or point --config / DIGEST_CONFIG at your file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return parse(text, path)


def parse(text: str, path: Path | str = DEFAULT_PATH) -> Settings:
    """Validate TOML text; raise `ConfigError` with one ``file:line: key: problem`` line per problem."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"{path}:{match.group(1) if match else 1}: invalid TOML: {exc}") from None
    return parse_data(data, text, path)


def parse_data(data: dict[str, Any], text: str, path: Path | str = DEFAULT_PATH) -> Settings:
    """`parse` for TOML already read into ``data`` from ``text`` (which gives the lines)."""
    path = Path(path)
    lines = _KeyLines(text)
    problems: list[tuple[int, str]] = []

    def report(loc: tuple[Any, ...], message: str, after: tuple[Any, ...] | None = None) -> None:
        """Record a problem at ``loc``'s line; ``after``: list it after that key's problem (its cause)."""
        line = lines.find(loc)
        problems.append((lines.find(after) if after else line, f"{path}:{line}: {_dotted(loc)}: {message}"))

    for key in data:
        if key not in _TOP_KEYS:
            report((key,), _unknown(key, _TOP_KEYS))
    sections: dict[str, Any] = {
        name: _section(model, data.get(name, {}), (name,), report) for name, model in _SECTIONS.items()
    }
    arrays = {name: _array(model, data.get(name, []), name, report) for name, model in _ARRAYS.items()}
    sources = _sources(data.get("sources", []), report)
    if not problems:
        _cross_check(sections, arrays, sources, report)
    if problems:
        raise ConfigError([message for _, message in sorted(problems, key=lambda p: p[0])])
    tables: dict[str, Any] = {k: tuple(v) for k, v in arrays.items()}
    return Settings(path=path, sources=tuple(sources), **sections, **tables)


def _section(model: type[_Model], raw: Any, loc: tuple[Any, ...], report: Any) -> Any:
    if not isinstance(raw, Mapping):
        report(loc, f"must be a table ([{_dotted(loc)}])")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            report(loc + tuple(error["loc"]), _message(error, model))
        return None


def _array(model: type[_Model], raw: Any, name: str, report: Any) -> list[Any]:
    if not isinstance(raw, list):
        report((name,), f"must be an array of tables ([[{name}]])")
        return []
    return [_section(model, item, (name, i), report) for i, item in enumerate(raw)]


def _sources(raw: Any, report: Any) -> list[Source]:
    if not isinstance(raw, list):
        report(("sources",), "must be an array of tables ([[sources]])")
        return []
    sources = []
    for i, item in enumerate(raw):
        kinds = [k for k in SOURCE_KINDS if isinstance(item, Mapping) and k in item]
        if len(kinds) != 1:
            # An unknown key is most often the kind misspelt (feeed = ...): named first, with its line.
            unknown = [k for k in item if k not in _SOURCE_KEYS] if isinstance(item, Mapping) else []
            for key in unknown:
                report(("sources", i, key), _unknown(key, _SOURCE_KEYS))
            found = " and ".join(kinds) if kinds else "none"
            after = ("sources", i, unknown[-1]) if unknown else None
            report(("sources", i), f"needs exactly one of {', '.join(SOURCE_KINDS)} (found {found})", after)
            continue
        sources.append(_section(SOURCE_KINDS[kinds[0]], item, ("sources", i), report))
    return sources


def _cross_check(sections: dict[str, Any], arrays: dict[str, list[Any]], sources: list[Source], report: Any) -> None:
    names = [t.name for t in arrays["topics"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            report(("topics", i, "name"), f"topic {name!r} is defined twice")
    for i, sub in enumerate(arrays["subscribers"]):
        for topic in sub.topics or ():
            if topic not in names:
                report(("subscribers", i, "topics"), _unknown(topic, names, what="topic"))
    hashtags = [s.hashtag.lower() for s in sources if isinstance(s, HashtagSource)]
    for i, chat in enumerate(arrays["chats"]):
        if chat.hashtag.lower() not in hashtags:
            report(
                ("chats", i, "hashtag"),
                f"#{chat.hashtag} is not collected: add [[sources]] hashtag = {chat.hashtag!r} so the chat is read",
            )
    for i, source in enumerate(sources):
        if isinstance(source, HashtagSource) and "bluesky" in source.networks and not sections["bluesky"].has_login:
            report(
                ("sources", i, "networks"),
                'Bluesky hashtag search needs a login: set [bluesky] handle and app_password = "${BSKY_APP_PASSWORD}"',
            )
    try:
        if sections["bluesky"].app_password:
            expand_env(sections["bluesky"].app_password)
    except ValueError as exc:
        report(("bluesky", "app_password"), str(exc))
    for section, key in (("digest", "database"), ("mail", "smtp"), ("subscription", "secret")):
        try:
            expand_env(getattr(sections[section], key) or "")
        except ValueError as exc:
            report((section, key), str(exc))
    for section, key in (("digest", "database"), ("bluesky", "app_password"), ("mail", "smtp")):
        for name in _empty_variables(getattr(sections[section], key) or ""):
            report((section, key), f"environment variable {name} is set but empty")
    _check_expanded(sections, report)


def _check_expanded(sections: dict[str, Any], report: Any) -> None:
    """What can only be judged once ``${VAR}``s are read: the signing secret's strength, the SMTP URL."""
    secret, smtp = sections["subscription"].secret, sections["mail"].smtp
    with contextlib.suppress(ValueError):  # a variable that is not set is reported above
        if secret is not None and (problem := weak_secret(expand_env(secret))):
            named = ", ".join(m.group(1) for m in _ENV_REF.finditer(secret))
            report(("subscription", "secret"), f"{named or 'the secret'} {problem}")
    try:
        if smtp:
            smtp_url(expand_env(smtp))
    except ValueError as exc:
        if "environment variable" not in str(exc):
            report(("mail", "smtp"), str(exc))


def _message(error: Mapping[str, Any], model: type[_Model]) -> str:
    if error["type"] == "extra_forbidden":
        fields = [f.alias or name for name, f in model.model_fields.items()]
        return _unknown(str(error["loc"][-1]), fields)
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _unknown(key: str, known: Iterable[str], what: str = "key") -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown {what} {key!r}{hint}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _KeyLines:
    """Finds the line where a key path is written, for error messages (1-based array indexes)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        counts: dict[str, int] = {}
        table: tuple[Any, ...] = ()
        inside = ""  # the delimiter of the multi-line string being read: its lines are no keys or headers
        for number, line in enumerate(text.splitlines(), start=1):
            if inside:
                if line.count(inside) % 2:
                    inside = ""
                continue
            inside = next((quote for quote in ('"""', "'''") if line.count(quote) % 2), "")
            if header := self._HEADER.match(line):
                name = header.group(2).strip()
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (*name.split("."), counts[name])
                else:
                    table = tuple(name.split("."))
                self.lines.setdefault(table, number)
            elif key := self._KEY.match(line):
                path = (*table, *(k.strip("\"'") for k in key.group(1).split(".")))
                self.lines.setdefault(path, number)

    def find(self, loc: tuple[Any, ...]) -> int:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1
