"""What `digest check` warns about: settings that load but will not work as the curator means them
(nothing to follow or keep, topics that can never match, preference links nobody can use), one
``file:line: key: problem`` line each."""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

from .config import MailSettings, Settings, _dotted, _KeyLines

__all__ = ["warnings"]

DEFAULT_FROM = MailSettings.model_fields["from_"].default


def warnings(settings: Settings) -> list[str]:
    """Every warning for ``settings``, in the file's order of keys (sources, topics, then mail and links)."""
    try:
        lines = _KeyLines(settings.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = _KeyLines("")
    found = [*_empty(settings), *_topics(settings), *_links(settings)]
    return [f"{_where(settings.path, lines, loc)}: {message}" for loc, message in found]


def _where(path: Path, lines: _KeyLines, loc: tuple[Any, ...]) -> str:
    """``file:line: key``, the line being where the key (or its table) is written; a key left to its
    default has no line."""
    written = any(loc[:end] in lines.lines for end in range(len(loc), 0, -1))
    return f"{path}:{lines.find(loc)}: {_dotted(loc)}" if written else f"{path}: {_dotted(loc)}"


def _empty(settings: Settings) -> list[tuple[tuple[Any, ...], str]]:
    """A file with nothing to collect, or nothing to keep: it loads, and the weekly job cannot run."""
    found: list[tuple[tuple[Any, ...], str]] = []
    if not settings.sources:
        found.append((("sources",), "none, so there is nothing to collect: `digest sources add URL` adds one"))
    if not settings.topics:
        found.append(
            (
                ("topics",),
                "none, so the filter has nothing to keep and `digest filter`, `preview` and `run` refuse to "
                "start: add a [[topics]] with a name and keywords = [...]",
            )
        )
    return found


def _topics(settings: Settings) -> list[tuple[tuple[Any, ...], str]]:
    """Topics the filter can never keep a post under, and names a subscriber cannot tell apart."""
    found: list[tuple[tuple[Any, ...], str]] = []
    first: dict[str, tuple[int, str]] = {}
    for i, topic in enumerate(settings.topics):
        if not (topic.keywords or topic.description.strip() or topic.examples):
            found.append(
                (
                    ("topics", i, "keywords"),
                    f"topic {topic.name!r} has no keywords, description or examples, so the filter can never "
                    "keep a post under it: add keywords = [...] or a description",
                )
            )
        folded = topic.name.casefold()
        if folded in first:
            j, name = first[folded]
            found.append(
                (
                    ("topics", i, "name"),
                    f"topic {topic.name!r} differs from topics[{j + 1}] {name!r} only in case: subscribers and "
                    "posts cannot tell them apart; merge them or rename one",
                )
            )
        else:
            first[folded] = (i, topic.name)
    return found


def _links(settings: Settings) -> list[tuple[tuple[Any, ...], str]]:
    """Preference and unsubscribe links that reach nobody: mail to a default or unread mailbox."""
    found: list[tuple[tuple[Any, ...], str]] = []
    target = email.utils.parseaddr(settings.mail.reply_to or settings.mail.from_)[1]
    if settings.mail.from_ == DEFAULT_FROM:
        found.append(
            (
                ("mail", "from"),
                f"the default {DEFAULT_FROM!r}: replies and unsubscribe mails go to a mailbox nobody reads, "
                'and mail servers refuse it; set from = "Your digest <you@your.domain>"',
            )
        )
    if not settings.subscription.public_url:
        found.append(
            (
                ("subscription", "public_url"),
                f'not set, so "Change your topics" and "Unsubscribe" are mails to {target} that someone must '
                "act on (digest subscribers remove, add --topics), and a reader is added with `digest subscribers add "
                "--confirmed`; set it (and a secret) and run `digest serve` for the pages",
            )
        )
    return found
