"""Load ``feeds.toml`` into frozen, typed settings; every problem names the file, line and key.

Each section is declared once as a pydantic model with its defaults and help text; unknown keys
are errors with a "did you mean" suggestion, and secrets may only come from ``${VAR}``.
"""

from __future__ import annotations

from ._fields import _ENV_REF as _ENV_REF
from ._fields import (
    MIN_SECRET,
    SECRET_COMMAND,
    WEEKDAYS,
    HttpUrl,
    expand_database,
    expand_env,
    parse_interval,
    parse_schedule,
    secret_names,
    smtp_url,
    weak_secret,
)
from ._load import _TOP_KEYS as _TOP_KEYS
from ._load import DEFAULT_PATH, load, parse, parse_data
from ._load import _dotted as _dotted
from ._load import _KeyLines as _KeyLines
from ._sections import (
    BlueskySettings,
    ChatSettings,
    CollectSettings,
    DigestSettings,
    MailSettings,
    NoiseSettings,
    Settings,
    Subscriber,
    SubscriptionSettings,
    Topic,
)
from ._sources import _HANDLE as _HANDLE
from ._sources import SOURCE_KINDS, BlueskySource, FeedSource, HashtagSource, MastodonSource, Source

__all__ = [
    "DEFAULT_PATH",
    "MIN_SECRET",
    "SECRET_COMMAND",
    "SOURCE_KINDS",
    "WEEKDAYS",
    "BlueskySettings",
    "BlueskySource",
    "ChatSettings",
    "CollectSettings",
    "DigestSettings",
    "FeedSource",
    "HashtagSource",
    "HttpUrl",
    "MailSettings",
    "MastodonSource",
    "NoiseSettings",
    "Settings",
    "Source",
    "Subscriber",
    "SubscriptionSettings",
    "Topic",
    "expand_database",
    "expand_env",
    "load",
    "parse",
    "parse_data",
    "parse_interval",
    "parse_schedule",
    "secret_names",
    "smtp_url",
    "weak_secret",
]
