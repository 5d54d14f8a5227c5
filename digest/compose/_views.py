"""What the edition templates print: cards, sections, shared links, chat recaps, and the edition's numbers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from ..wording import plural


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    alt: str


@dataclass(frozen=True, slots=True)
class Card:
    """A post as the templates show it: every value ready to print, ``body`` already sanitized."""

    author_name: str
    author_handle: str
    author_url: str
    url: str
    title: str
    time_label: str
    time_iso: str
    via: str
    body: Markup
    text: str
    cut: bool
    images: tuple[Image, ...]
    attachments: tuple[tuple[str, str], ...]  # (label, url): video, audio, other files
    links: tuple[str, ...]  # for the plain-text part: links not already in the text
    warning: str  # the content warning, or why the content is hidden; "" shows the content
    warning_label: str
    boosted_by: tuple[str, ...]
    also: tuple[tuple[str, str], ...]  # (label, url) of cross-posts elsewhere
    engagement: tuple[str, ...]  # "120 likes", "40 boosts", "12 replies"
    post_id: str = ""  # a topic section's card carries its readers' feedback links (`feedback.slots`)


@dataclass(frozen=True, slots=True)
class Tuning:
    """One reader's own signals applied to an edition (`feedback.adjust`): posts hidden, posts raised."""

    hide: frozenset[str] = frozenset()
    boost: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.hide or self.boost)

    def path(self, week: str, selection: Sequence[str]) -> str:
        """Where a tuned edition is stored: apart from the archive's ``editions/`` (it is one reader's)."""
        key = "\x1f".join([*selection, "|", *sorted(self.hide), "|", *sorted(self.boost)])
        return f"readers/{week}/{hashlib.sha256(key.encode()).hexdigest()[:20]}"


@dataclass(frozen=True, slots=True)
class Section:
    topic: str
    cards: tuple[Card, ...]
    total: int

    @property
    def note(self) -> str:
        if not self.cards:
            return "Nothing new on this topic this week"
        if self.total > len(self.cards):
            return f"The top {len(self.cards)} of {plural(self.total, 'post')} this week"
        return f"{plural(self.total, 'post')} this week"


@dataclass(frozen=True, slots=True)
class LinkView:
    url: str
    title: str
    host: str
    accounts: tuple[str, ...]

    @property
    def label(self) -> str:
        """The URL as a reader scans it: no scheme, no ``www.``, no trailing slash, at most 70 characters."""
        bare = re.sub(r"^https?://(www\.)?", "", self.url).rstrip("/")
        return bare if len(bare) <= 70 else bare[:69] + "…"


@dataclass(frozen=True, slots=True)
class ChatQuestionView:
    """A chat question as the templates show it: label, text, link, and the best answers as cards."""

    label: str
    text: str
    url: str
    answers: tuple[Card, ...]


@dataclass(frozen=True, slots=True)
class ChatView:
    """A chat recap as the templates show it (``_chat.html``, ``_chat.txt``)."""

    hashtag: str
    when: str
    participants: int
    thread_url: str
    questions: tuple[ChatQuestionView, ...]
    other: tuple[Card, ...]

    @property
    def note(self) -> str:
        parts = [self.when, plural(self.participants, "participant")]
        if self.questions:
            parts.append(plural(len(self.questions), "question"))
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class Counts:
    """An edition's numbers, defined once and shown everywhere (the header, the sections, the footer,
    the left-out page, the CLI). Every post read in the period, after merging what a reader would call
    one post (`rank.dedupe`: one post seen through two feeds counts once), is in exactly one of
    ``on_topic`` (its best selected topic), ``other_topics``, ``in_chats`` or ``left_out``."""

    read: int
    sources: int  # the sources (feeds, accounts, hashtags) the posts read came through
    on_topic: Mapping[str, int]  # per selected topic: its section's posts, before the top-N cut
    other_topics: int  # kept only under topics this selection does not have
    in_chats: int  # shown in a chat recap (every reader gets it), on topic or not
    left_out: int  # not kept under any topic and not in a chat recap

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "sources": self.sources,
            "on_topic": dict(self.on_topic),
            "other_topics": self.other_topics,
            "in_chats": self.in_chats,
            "left_out": self.left_out,
            "summary": self.summary,
        }

    @property
    def summary(self) -> str:
        """``22 posts read from 5 sources: 11 on topic, 4 in the chat recap, 7 off-topic left out.``"""
        if not self.read:
            return "No new posts this week."
        parts = [f"{sum(self.on_topic.values()):,} on topic"]
        if self.other_topics:
            parts.append(f"{self.other_topics:,} on topics you did not choose")
        if self.in_chats:
            parts.append(f"{self.in_chats:,} in the chat recap")
        if self.left_out:
            parts.append(f"{self.left_out:,} off-topic left out")
        return f"{plural(self.read, 'post')} read from {plural(self.sources, 'source')}: {', '.join(parts)}."
