"""digest: reads what the accounts, hashtags and feeds you follow publish, keeps what is on topic,
and mails a weekly digest to subscribers who never need to post."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import Settings, load
from .errors import ConfigError, DigestError, FetchError, StoreError
from .models import Author, Engagement, Media, Post, SourceState
from .store import Store

try:
    __version__ = version("digest")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

__all__ = [
    "Author",
    "ConfigError",
    "DigestError",
    "Engagement",
    "FetchError",
    "Media",
    "Post",
    "Settings",
    "SourceState",
    "Store",
    "StoreError",
    "__version__",
    "load",
]
