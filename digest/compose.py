"""Turn a week of filtered posts into editions: jinja2 templates rendered, CSS inlined by premailer.

An edition is rendered and inlined once per distinct topic selection; each subscriber's copy only
fills in placeholders (greeting, preferences and unsubscribe links), so premailer never runs per reader.
"""

from __future__ import annotations

import functools
import hashlib
import html as htmllib
import logging
import re
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup
from premailer import Premailer

from . import feedback
from .clean import MAX_IMAGE_WIDTH, clean_html, is_tracker, safe_url, text_to_html
from .errors import DigestError
from .models import Edition, Post, Publication
from .periods import week_bounds
from .rank import (
    MIN_SHARERS,
    SharedLink,
    Story,
    account_key,
    dedupe,
    link_accounts,
    rank_section,
    score,
    shared_links,
    shares_of,
)

if TYPE_CHECKING:
    from .chats import Recap

__all__ = [
    "PLACEHOLDERS",
    "Composer",
    "Counts",
    "Edition",
    "Tuning",
    "chat_text",
    "compose_issue",
    "edition_path",
    "environment",
    "inline_css",
    "personalize",
    "selection",
    "week_bounds",
]

BODY_LIMIT = 400  # characters of a post's text shown in a card; longer articles end with "Read the rest"
MAX_IMAGES = 4
# What a subscriber's copy fills in. Tokens of letters and %: autoescaping and premailer leave them alone.
PLACEHOLDERS = {
    "greeting": "%%GREETING%%",
    "preferences_url": "%%PREFERENCES_URL%%",
    "unsubscribe_url": "%%UNSUBSCRIBE_URL%%",
}
_RAISED = 1e6  # added to the ranking score of a post a reader asked "more like this" of: it leads its section
_PLACEHOLDER = re.compile("|".join(re.escape(token) for token in PLACEHOLDERS.values()))
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


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
            return f"The top {len(self.cards)} of {_plural(self.total, 'post')} this week"
        return f"{_plural(self.total, 'post')} this week"


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
        parts = [self.when, _plural(self.participants, "participant")]
        if self.questions:
            parts.append(_plural(len(self.questions), "question"))
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
        return f"{_plural(self.read, 'post')} read from {_plural(self.sources, 'source')}: {', '.join(parts)}."


class _Slot(Markup):
    """A placeholder token: printed as is, never neutralized by `_neutralize`."""


# -- weeks ---------------------------------------------------------------------------------------


def _zone(timezone: str | tzinfo) -> tzinfo:
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def zone_label(zone: str | tzinfo) -> str:
    """A time zone as a reader says it: ``New York time`` for ``America/New_York``, ``UTC`` for UTC."""
    key = str(zone)
    if key.upper() in {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z"}:
        return "UTC"
    if "/" not in key or key.startswith("Etc/"):
        return key
    return key.rsplit("/", 1)[1].replace("_", " ") + " time"


def _period_label(start: datetime, end: datetime, zone: tzinfo) -> str:
    """``16–22 November 2026`` for [start, end) in ``zone``: the last day shown is the one before ``end``
    at midnight (an edition sent Friday 07:00 shows that Friday)."""
    last = (end.astimezone(zone) - timedelta(microseconds=1)).date()
    first = start.astimezone(zone).date()
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {_MONTHS[last.month - 1]} {last.year}"
    if first.year == last.year:
        return f"{first.day} {_MONTHS[first.month - 1]} – {last.day} {_MONTHS[last.month - 1]} {last.year}"
    return f"{first.day} {_MONTHS[first.month - 1]} {first.year} – {last.day} {_MONTHS[last.month - 1]} {last.year}"


def _time_label(moment: datetime) -> str:
    """``Tue 17 Nov, 09:05``: English names whatever the process locale, so editions never vary with it."""
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1][:3]}, {moment:%H:%M}"


def selection(topics: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
    """A topic selection in its one canonical form: no repeats, in the configured order."""
    rank = {name: i for i, name in enumerate(order)}
    return tuple(sorted(dict.fromkeys(topics), key=lambda t: (rank.get(t, len(rank)), t)))


def edition_path(week: str, topics: Sequence[str]) -> str:
    """Where an edition's web copy lives under the public URL: ``editions/2026-W47/fhir+privacy``."""
    slug = "+".join(re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-") or "topic" for t in topics)
    if len(slug) > 80 or not slug:
        slug = "t-" + hashlib.sha256("\x1f".join(topics).encode()).hexdigest()[:12]
    return f"editions/{week}/{slug}"


# -- templates -----------------------------------------------------------------------------------


def _neutralize(value: object) -> object:
    """Break up ``%%`` in printed data, so a post can never carry a placeholder a subscriber's copy fills in."""
    if isinstance(value, _Slot):
        return value
    if isinstance(value, str) and "%%" in value:
        return value.replace("%%", "%\u2060%")
    return value


@functools.lru_cache(maxsize=8)
def environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """The jinja2 environment: autoescape on (off for .txt and .css), `StrictUndefined`, templates from
    ``templates_dir`` first when given (to override single templates), then from the installed package."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.PackageLoader("digest.templates", "."))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(disabled_extensions=("txt", "css"), default=True),
        undefined=jinja2.StrictUndefined,
        finalize=_neutralize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def inline_css(html: str) -> str:
    """Inline the ``<style>`` rules into style attributes; media queries (mobile, dark mode) stay in a
    ``<style>`` block with their ``!important``. No network: external stylesheets are never fetched."""
    return str(
        Premailer(
            html,
            allow_network=False,  # never fetch a <link> stylesheet
            strip_important=False,  # the kept media queries need !important to beat the inlined styles
            disable_link_rewrites=True,  # hrefs (and the placeholders in them) stay as rendered
            disable_basic_attributes=[
                "width",
                "height",
                "align",
            ],  # keep <img width="560"> for Outlook, no width="auto"
            cssutils_logging_level=logging.CRITICAL,  # cssutils warns ~60 times on vendor properties: ~20 ms each email
        ).transform()
    )


# -- composing -----------------------------------------------------------------------------------


class _Placing:
    """Where each on-topic story goes in a selection, for every selection of one week: the stories' kept
    scores as one matrix (a row per story, a column per topic, -inf where a story was not kept), so a
    selection is one argmax over its columns instead of a walk over the week."""

    def __init__(self, stories: Sequence[Story], kept: Mapping[str, Mapping[str, float]], order: Sequence[str]) -> None:
        import numpy as np

        self.stories = stories
        names = dict.fromkeys([*order, *(t for s in stories for t in kept[s.post.id])])
        self.column = {name: i for i, name in enumerate(names)}
        self.matrix = np.full((len(stories), len(names)), -np.inf)
        for row, story in enumerate(stories):
            for topic, value in kept[story.post.id].items():
                self.matrix[row, self.column[topic]] = value

    def assign(self, selection: tuple[str, ...]) -> dict[str, list[Story]]:
        """Each story kept under a selected topic goes to the one it scores best under (a tie to the topic
        first in the selection), oldest first."""
        import numpy as np

        by_topic: dict[str, list[Story]] = {topic: [] for topic in selection}
        present = [t for t in selection if t in self.column]
        if not present or not self.stories:
            return by_topic
        scores = self.matrix[:, [self.column[t] for t in present]]
        best = scores.argmax(axis=1)  # the first of equal maxima: the topic earlier in the selection
        placed = np.isfinite(scores[np.arange(len(best)), best])
        for i, topic in enumerate(present):
            by_topic[topic] = [self.stories[row] for row in np.flatnonzero(placed & (best == i)).tolist()]
        return by_topic


class Composer:
    """Prepares a week's posts once (dedupe, sanitize, cards) and composes one `Edition` per distinct
    topic selection, cached: 10,000 subscribers over 20 selections cost 20 renders and 20 inlinings.

    ``kept`` maps a post id to ``{topic: score}`` for the topics the filter kept it under; a post
    not in it was left out as off-topic. ``topics`` is every configured topic, in the order
    sections appear. Nothing here reads the clock, the network or the current directory.
    """

    def __init__(
        self,
        posts: Sequence[Post],
        kept: Mapping[str, Mapping[str, float]],
        *,
        title: str,
        timezone: str | tzinfo,
        week: str,
        now: datetime,
        topics: Sequence[str] = (),
        period: tuple[datetime, datetime] | None = None,
        public_url: str | None = None,
        quiet_week: bool = False,
        templates_dir: Path | None = None,
        per_section: int = 10,
        per_author: int = 3,
        per_source: int = 5,
        chats: Sequence[Recap] = (),
        publications: Mapping[str, Publication] | None = None,
    ) -> None:
        self.title, self.week, self.now = title, week, now
        self.zone = _zone(timezone)
        self.topics = tuple(topics)
        self.period = period or week_bounds(week, self.zone)
        self.public_url = (public_url or "").rstrip("/")
        self.quiet_week = quiet_week
        self.env = environment(templates_dir)
        self.limits = {"limit": per_section, "per_author": per_author, "per_source": per_source}
        # 1. one story per post a reader would call the same, and the topics each was kept under
        self.stories = dedupe(posts)
        self.kept = {s.post.id: _kept_topics(s, kept) for s in self.stories}
        on_topic = [s for s in self.stories if self.kept[s.post.id]]
        # chat recaps go to every reader; what they show is neither repeated in the topic sections
        # nor counted as left out
        self.chats = tuple(r for r in chats if not r.empty)
        # one name per author and per feed on every card (``publications``: by source key)
        self.names = Names.of(posts, publications)
        self.in_chats: frozenset[str] = frozenset().union(*(r.shown for r in self.chats))
        # 2. the week's numbers and who shared which link, the same for every selection
        self.in_recap = {s.post.id for s in self.stories if s.ids & self.in_chats}
        self.left_out = tuple(s for s in self.stories if not self.kept[s.post.id] and s.post.id not in self.in_recap)
        self.sources = len({p.source for s in self.stories for p in s.posts})
        self.link_accounts = link_accounts(on_topic)
        # per story, once: what every selection would otherwise work out again for the whole week
        self.shares = {s.post.id: shares_of(s, self.link_accounts) for s in on_topic}
        # a link too few accounts shared in the whole week is too few in any selection: only these can count
        self._sharing = [s for s in on_topic if self.shares[s.post.id] >= MIN_SHARERS]
        self._placing = _Placing([s for s in on_topic if s.post.id not in self.in_recap], self.kept, self.topics)
        self._assigned: dict[tuple[str, ...], dict[str, list[Story]]] = {}
        self._scores: dict[tuple[str, str], float] = {}
        self._chat_views: list[ChatView] | None = None
        self._cards: dict[str, Card] = {}
        self._editions: dict[tuple[tuple[str, ...], Tuning], Edition | None] = {}

    def edition(self, topics: Sequence[str], tuning: Tuning = Tuning()) -> Edition | None:
        """The edition for one topic selection (cached), or None for an empty week unless ``quiet_week``;
        with a reader's ``tuning``, that reader's own copy (stored under `Tuning.path`)."""
        key = (self._selection(topics), tuning)
        if key not in self._editions:
            self._editions[key] = self._compose(*key)
        return self._editions[key]

    def _selection(self, topics: Sequence[str]) -> tuple[str, ...]:
        return selection(topics, self.topics)

    def _compose(self, selection: tuple[str, ...], tuning: Tuning) -> Edition | None:
        # 3. each story goes to the selected topic it scores best under, then sections are ranked
        sections = self._sections(selection, tuning)
        quiet = not any(s.cards for s in sections) and not self.chats
        if quiet and not self.quiet_week:
            return None
        chosen = [s for s in self._sharing if not self.kept[s.post.id].keys().isdisjoint(selection)]
        shared = [] if quiet else [self._link_view(link) for link in shared_links(chosen)]
        # 4. render both parts once, inline the CSS once; subscribers' copies only fill placeholders
        path = edition_path(self.week, selection)
        context = self._context(selection, sections, shared, quiet, path)
        html = inline_css(self._render("edition.html", context))
        text = self._render("edition.txt", context)
        stored = tuning.path(self.week, selection) if tuning else path
        return Edition(self.week, str(context["subject"]), html, text, selection, stored)

    def _render(self, name: str, context: Mapping[str, object]) -> str:
        """Render one template; a broken template (a user's override, say) becomes a `DigestError` naming
        the template file and line."""
        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateError as exc:
            where = _template_line(exc) or name
            raise DigestError(f"{where}: {exc.message or exc} (in the edition templates)") from exc

    def counts(self, topics: Sequence[str]) -> Counts:
        """The numbers of one selection's edition (see `Counts`)."""
        selection = self._selection(topics)
        on_topic = {topic: len(stories) for topic, stories in self.assign(selection).items()}
        in_chats, left_out = len(self.in_recap), len(self.left_out)
        other = len(self.stories) - sum(on_topic.values()) - in_chats - left_out
        return Counts(len(self.stories), self.sources, on_topic, other, in_chats, left_out)

    def assign(self, selection: Sequence[str]) -> dict[str, list[Story]]:
        """Each story kept under a selected topic (and not in a chat recap) goes to the one it scores best
        under, oldest first: the sections' posts before ranking and the top-N cut."""
        selection = self._selection(selection)
        if selection not in self._assigned:  # once per selection: counts and sections both ask
            self._assigned[selection] = self._placing.assign(selection)
        return {topic: list(stories) for topic, stories in self._assigned[selection].items()}

    def _score(self, story: Story, topic: str) -> float:
        """A story's rank under a topic: the same in every selection that shows it there, so worked out once."""
        key = (story.post.id, topic)
        if key not in self._scores:
            self._scores[key] = score(story.post, self.kept[story.post.id][topic], self.shares[story.post.id], self.now)
        return self._scores[key]

    def _sections(self, selection: tuple[str, ...], tuning: Tuning) -> list[Section]:
        sections = []
        for topic, assigned in self.assign(selection).items():
            stories = [s for s in assigned if s.post.id not in tuning.hide]
            scores = {
                s.post.id: self._score(s, topic) + (_RAISED if s.post.id in tuning.boost else 0.0) for s in stories
            }
            ranked = rank_section(stories, scores, **self.limits)
            sections.append(Section(topic, tuple(self._card(s) for s in ranked), len(stories)))
        return sections

    def _card(self, story: Story) -> Card:
        if story.post.id not in self._cards:
            self._cards[story.post.id] = _make_card(story, self.zone, self.names)
        return self._cards[story.post.id]

    def _chats(self) -> list[ChatView]:
        """The chat recaps' views, built once: every selection shows the same ones."""
        if self._chat_views is None:
            stories = {s.post.id: s for s in self.stories}
            self._chat_views = [_chat_view(r, self.zone, stories, self.names) for r in self.chats]
        return self._chat_views

    def _link_view(self, shared: SharedLink) -> LinkView:
        host = (urlsplit(shared.url).hostname or "").removeprefix("www.")
        return LinkView(safe_url(shared.url), shared.title, host, shared.accounts)

    def _context(
        self, selection: tuple[str, ...], sections: list[Section], shared: list[LinkView], quiet: bool, path: str
    ) -> dict[str, object]:
        period = _period_label(*self.period, self.zone)
        week_number = self.week.split("-W")[-1].lstrip("0")
        cards = [c for s in sections for c in s.cards]
        chats = self._chats()
        counts = self.counts(selection)
        return {
            "title": self.title,
            "subject": f"{self.title}: {period}",
            "week": self.week,
            "week_label": f"Week {week_number}",
            "period": period,
            "timezone": zone_label(self.zone),
            "summary": counts.summary,
            "preheader": " · ".join((c.title or c.text)[:80] for c in cards[:3] if not c.warning),
            "topics": selection,
            "sections": sections,
            "toc": _contents(sections, shared, chats),
            "shared": shared,
            "chats": chats,
            "quiet": quiet,
            "image_width": MAX_IMAGE_WIDTH,
            "left_out": counts.left_out,
            "left_out_url": f"{self.public_url}/editions/{self.week}/left-out" if self.public_url else "",
            "web_url": f"{self.public_url}/{path}" if self.public_url else "",
            "feedback": bool(self.public_url),
            "feedback_slots": lambda post_id, topic: {k: _Slot(v) for k, v in feedback.slots(post_id, topic).items()},
            **{name: _Slot(token) for name, token in PLACEHOLDERS.items()},
        }


def compose_issue(
    posts: Sequence[Post],
    kept: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    timezone: str | tzinfo,
    week: str,
    now: datetime,
    topics: Sequence[str],
    period: tuple[datetime, datetime] | None = None,
    public_url: str | None = None,
    quiet_week: bool = False,
    templates_dir: Path | None = None,
) -> Edition | None:
    """One edition for one topic selection (see `Composer`, which caches across many subscribers)."""
    composer = Composer(
        posts,
        kept,
        title=title,
        timezone=timezone,
        week=week,
        now=now,
        topics=topics,
        period=period,
        public_url=public_url,
        quiet_week=quiet_week,
        templates_dir=templates_dir,
    )
    return composer.edition(topics)


def personalize(edition: Edition, *, unsubscribe_url: str, preferences_url: str, name: str = "") -> Edition:
    """A copy with no reader's feedback links (the archive, a preview): the placeholders filled in (escaped for
    the HTML part), nothing re-rendered."""
    greeting = f"Hi {name.strip()}," if name.strip() else "Hello,"
    text_values = {
        PLACEHOLDERS["greeting"]: greeting,
        PLACEHOLDERS["preferences_url"]: preferences_url,
        PLACEHOLDERS["unsubscribe_url"]: unsubscribe_url,
    }
    html_values = {token: htmllib.escape(value) for token, value in text_values.items()}
    return replace(
        edition,
        html=feedback.strip(_PLACEHOLDER.sub(lambda m: html_values[m.group(0)], edition.html)),
        text=feedback.strip(_PLACEHOLDER.sub(lambda m: text_values[m.group(0)], edition.text)),
    )


# -- helpers -------------------------------------------------------------------------------------


def _template_line(exc: jinja2.TemplateError) -> str:
    """``path:line`` of the template where rendering failed, from jinja2's rewritten traceback."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith((".html", ".txt", ".css"))]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _kept_topics(story: Story, kept: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The topics any of the story's posts was kept under, each with its best score."""
    topics: dict[str, float] = {}
    for post in story.posts:
        for topic, value in kept.get(post.id, {}).items():
            topics[topic] = max(value, topics.get(topic, value))
    return topics


def _contents(
    sections: Sequence[Section], shared: Sequence[LinkView], chats: Sequence[ChatView] = ()
) -> list[tuple[str, int]]:
    """The "In this edition" line: each section with posts, the chat recaps (their questions), then the
    shared links, with their counts."""
    entries = [(section.topic, len(section.cards)) for section in sections if section.cards]
    entries += [(f"#{chat.hashtag} chat", len(chat.questions) or len(chat.other)) for chat in chats]
    return entries + ([("Most shared links", len(shared))] if shared else [])


def _chat_view(
    recap: Recap, zone: tzinfo, stories: Mapping[str, Story] | None = None, names: Names | None = None
) -> ChatView:
    """A recap ready to print: times in ``zone``, every post a sanitized `Card`."""
    known = stories or {}

    def card(post: Post) -> Card:
        return _make_card(known.get(post.id) or Story(post), zone, names)

    start, end = recap.start.astimezone(zone), recap.end.astimezone(zone)
    questions = tuple(
        ChatQuestionView(q.label, _excerpt(q.text, BODY_LIMIT), safe_url(q.link), tuple(card(a) for a in q.answers))
        for q in recap.questions
    )
    return ChatView(
        hashtag=recap.hashtag,
        when=f"{_time_label(start)}–{end:%H:%M}",
        participants=recap.participants,
        thread_url=safe_url(recap.thread_url),
        questions=questions,
        other=tuple(card(p) for p in recap.other),
    )


def chat_text(recaps: Sequence[Recap], timezone: str | tzinfo, templates_dir: Path | None = None) -> str:
    """Chat recaps as the plain-text part shows them (``_chat.txt``), for a curator to check."""
    zone = _zone(timezone)
    views = [_chat_view(r, zone) for r in recaps if not r.empty]
    return environment(templates_dir).get_template("_chat.txt").render(chats=views)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Names:
    """What a card calls a post's author and its publication: one name per account (its display name
    where any of its posts gave one, so "Sam Reyes" is not also "fhirdev"), and a feed's name
    (feeds.toml's ``name``, else the feed's own title) rather than the host of its links."""

    publications: Mapping[str, Publication] = field(default_factory=dict)  # by source key
    authors: Mapping[str, str] = field(default_factory=dict)  # account_key -> display name

    @classmethod
    def of(cls, posts: Iterable[Post], publications: Mapping[str, Publication] | None = None) -> Names:
        """The names of ``posts``' accounts: each account's most used display name that is more than its
        handle (the earliest on a tie)."""
        seen: dict[str, Counter[str]] = defaultdict(Counter)
        for post in sorted(posts, key=lambda p: (p.published, p.id)):
            name = post.author.name.strip()
            if name and not _just_handle(name, post.author.handle):
                seen[account_key(post)][name] += 1
        authors = {key: names.most_common(1)[0][0] for key, names in seen.items()}
        return cls(dict(publications or {}), authors)

    def author(self, post: Post) -> str:
        """The account's one name; a feed's post with no author of its own (or the feed's title as its
        author) is the publication's."""
        feed = self.publications.get(post.source)
        if feed and post.author.name.strip() in ("", feed.title) and not post.author.handle:
            return feed.name
        return self.authors.get(account_key(post)) or post.author.name or post.author.handle or self.via(post)

    def via(self, post: Post) -> str:
        """The network of a social post ("Mastodon", "Bluesky"), else the feed's name, else its host."""
        host = _host(post.url)
        if host == "bsky.app" or post.source.startswith("bluesky:"):
            return "Bluesky"
        if post.source.startswith(("mastodon:", "hashtag:")):
            return "Mastodon"
        feed = self.publications.get(post.source)
        return feed.name if feed else host


def _just_handle(name: str, handle: str) -> bool:
    """Whether a display name says no more than the handle (``fhirdev`` for ``@fhirdev@server``)."""
    bare = handle.strip().lstrip("@").lower()
    return name.lower().lstrip("@") in {bare, bare.split("@", 1)[0]}


def _make_card(story: Story, zone: tzinfo, names: Names | None = None) -> Card:
    post = story.post
    names = names or Names()
    author = names.author(post)
    local = post.published.astimezone(zone)
    sensitive = any(p.sensitive for p in story.posts)
    warning = post.content_warning or ("the author marked this post's media as sensitive" if sensitive else "")
    cleaned = clean_html(post.html, post.url, limit=BODY_LIMIT) if post.html.strip() else None
    if cleaned is None or not cleaned.html:
        cleaned = clean_html(text_to_html(post.text), post.url, limit=BODY_LIMIT)
    return Card(
        author_name=author,
        author_handle=post.author.handle if post.author.handle != author else "",
        author_url=safe_url(post.author.url),
        url=safe_url(post.url),
        title=post.title,
        time_label=_time_label(local),
        time_iso=local.isoformat(),
        via="" if names.via(post) == author else names.via(post),  # "STAT", not "STAT · ... · STAT"
        body=Markup("") if warning else Markup(cleaned.html),
        text="" if warning else _excerpt(post.text, BODY_LIMIT),
        cut=cleaned.cut and not warning,
        images=() if warning else _images(post, cleaned.images),
        attachments=() if warning else _attachments(post),
        links=() if warning else tuple(link for link in post.links if link not in post.text and link != post.url)[:5],
        warning=warning,
        warning_label="Content warning" if post.content_warning else "Sensitive media",
        boosted_by=story.boosted_by,
        also=_also(story, names),
        engagement=_engagement(post),
        post_id=post.id,
    )


def _images(post: Post, in_body: Iterable[str]) -> tuple[Image, ...]:
    """Image attachments not already shown in the body, safe and not trackers, at most `MAX_IMAGES`."""
    shown = set(in_body)
    images = []
    for media in post.media:
        url = safe_url(media.url)
        if (
            media.type == "image"
            and url.startswith(("http://", "https://"))
            and url not in shown
            and not is_tracker(url)
        ):
            images.append(Image(url, media.alt))
            shown.add(url)
    return tuple(images[:MAX_IMAGES])


def _attachments(post: Post) -> tuple[tuple[str, str], ...]:
    labels = {"video": "Video", "audio": "Audio"}
    found = []
    for media in post.media:
        url = safe_url(media.url)
        if media.type != "image" and url:
            label = labels.get(media.type, "Attachment")
            found.append((f"{label}: {media.alt}" if media.alt else label, url))
    return tuple(found[:MAX_IMAGES])


def _also(story: Story, names: Names) -> tuple[tuple[str, str], ...]:
    """Where else the same post was published (a cross-post), by network, once each."""
    seen = {names.via(story.post)}
    found = []
    for copy in story.copies:
        label = names.via(copy)
        url = safe_url(copy.url)
        if not copy.is_boost and url and url != story.post.url and label not in seen:
            seen.add(label)
            found.append((f"Also on {label}", url))
    return tuple(found)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


def _engagement(post: Post) -> tuple[str, ...]:
    counts = post.engagement
    parts = [(counts.likes, "like"), (counts.boosts, "boost"), (counts.replies, "reply")]
    return tuple(_plural(n, w).replace("replys", "replies") for n, w in parts if n)


def _excerpt(text: str, limit: int) -> str:
    text = re.sub(r"[ \t]+", " ", text or "").strip()
    if len(text) <= limit * 1.5:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-") + "…"
