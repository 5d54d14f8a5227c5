"""The sections of feeds.toml as frozen, typed models, and `Settings`, the whole file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from .. import addresses
from ..errors import ConfigError
from ._fields import (
    _ENV_REF,
    _http_url,
    _Model,
    _secret,
    expand_database,
    parse_interval,
    parse_schedule,
)
from ._sources import _HANDLE, _HASHTAG, Source


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
    connections: int = Field(
        4, ge=1, le=50, description="SMTP connections to the server used at once (one message on each)."
    )
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
