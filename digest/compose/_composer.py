"""The `Composer`: a week's posts prepared once (dedupe, sanitize, cards), then one `Edition` per distinct
topic selection, each story placed under the selected topic it scores best under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jinja2

from .. import feedback
from ..clean import MAX_IMAGE_WIDTH, safe_url
from ..errors import DigestError
from ..models import Edition, Post, Publication
from ..periods import week_bounds
from ..rank import MIN_SHARERS, SharedLink, Story, dedupe, link_accounts, rank_section, score, shared_links, shares_of
from ..wording import plural
from ._cards import Names, _chat_view, _make_card
from ._labels import _period_label, _zone, edition_path, selection, zone_label
from ._render import PLACEHOLDERS, _Slot, _template_line, environment, inline_css
from ._views import Card, ChatView, Counts, LinkView, Section, Tuning

if TYPE_CHECKING:
    from ..chats import Recap

_RAISED = 1e6  # added to the ranking score of a post a reader asked "more like this" of: it leads its section
_UNTUNED = Tuning()  # an edition as composed for everyone: no reader's signals applied


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

    def edition(self, topics: Sequence[str], tuning: Tuning = _UNTUNED) -> Edition | None:
        """The edition for one topic selection (cached), or None for an empty week unless ``quiet_week``;
        with a reader's ``tuning``, that reader's own copy (stored under `Tuning.path`)."""
        key = (self._selection(topics), tuning)
        if key not in self._editions:
            self._editions[key] = self._compose(*key)
        return self._editions[key]

    def sections(self, topics: Sequence[str]) -> list[Section]:
        """The topic sections of one selection's edition as everyone gets it: each its cards, in order,
        after the caps, and how many posts it had before them."""
        return self._sections(self._selection(topics), _UNTUNED)

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


def _kept_topics(story: Story, kept: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The topics any of the story's posts was kept under, each with its best score."""
    topics: dict[str, float] = {}
    for post in story.posts:
        for topic, value in kept.get(post.id, {}).items():
            topics[topic] = max(value, topics.get(topic, value))
    return topics


def _contents(
    sections: Sequence[Section], shared: Sequence[LinkView], chats: Sequence[ChatView] = ()
) -> list[tuple[str, str]]:
    """The "In this edition" line: each section with the number of posts it shows, the chat recaps with
    their questions counted as such (the summary counts the recap's posts), then the shared links."""
    entries = [(section.topic, str(len(section.cards))) for section in sections if section.cards]
    for chat in chats:
        asked = len(chat.questions)
        entries.append((f"#{chat.hashtag} chat", plural(asked, "question") if asked else str(len(chat.other))))
    return entries + ([("Most shared links", str(len(shared)))] if shared else [])
