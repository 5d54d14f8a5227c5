"""digest: reads what the accounts, hashtags and feeds you follow publish, keeps what is on topic,
and mails a weekly digest to subscribers who never need to post."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings, load
    from .errors import ConfigError, DigestError, FetchError, StoreError
    from .models import Author, Engagement, Media, Post, SourceState
    from .store import Store

# Imported on first use, so that `digest --version` or `--help` does not load SQLAlchemy and pydantic.
_LAZY = {
    "Settings": "config", "load": "config",
    "ConfigError": "errors", "DigestError": "errors", "FetchError": "errors", "StoreError": "errors",
    "Author": "models", "Engagement": "models", "Media": "models", "Post": "models", "SourceState": "models",
    "Store": "store",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use too: importlib.metadata is slow to import
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("digest")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.1.0"
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
