"""Order what an edition shows: merge duplicate posts, score them, cap each author and source.

Pure functions over `Post`: the same posts, scores and ``now`` always give the same order.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import lxml.etree
import lxml.html

from .models import Post
from .textnorm import normalize
from .urls import absolute, canonical_url

__all__ = [
    "MIN_SHARERS",
    "SharedLink",
    "Story",
    "account_key",
    "dedupe",
    "link_accounts",
    "rank_section",
    "score",
    "shared_links",
    "shares_of",
]

# Weights of the score's terms; the topic score counts 1.
ENGAGEMENT_WEIGHT = 0.30
SHARING_WEIGHT = 0.20
RECENCY_WEIGHT = 0.15
NEUTRAL_ENGAGEMENT = 1 / 3  # what a post from a source without counts gets: as if it had 9 interactions
HALF_LIFE_DAYS = 3.5
_MIN_WORDS_TEXT_AND_LINK = 4  # shorter texts ("new post:") say too little to call two posts one


@dataclass(frozen=True, slots=True)
class Story:
    """One thing an edition shows: a post and the copies merged into it (boosts of it, the same post
    seen through another source, cross-posts of the same text)."""

    post: Post
    copies: tuple[Post, ...] = ()

    @property
    def posts(self) -> tuple[Post, ...]:
        return (self.post, *self.copies)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.posts)

    @property
    def boosted_by(self) -> tuple[str, ...]:
        """Accounts that boosted or reposted it, sorted."""
        return tuple(sorted({p.boosted_by for p in self.posts if p.boosted_by}))

    @property
    def accounts(self) -> frozenset[str]:
        """Every account that posted or boosted it (`account_key`)."""
        return frozenset(account_key(p) for p in self.posts) | {b.lower() for b in self.boosted_by}

    @property
    def links(self) -> tuple[str, ...]:
        """The canonical links of all its posts, in order, once each."""
        return tuple(dict.fromkeys(link for p in self.posts for link in p.links))


@dataclass(frozen=True, slots=True)
class SharedLink:
    """A link several followed accounts shared: its canonical URL, a page title when a post or feed
    gave one, the accounts (sorted) and their posts (newest first)."""

    url: str
    title: str
    accounts: tuple[str, ...]
    posts: tuple[Post, ...]


def account_key(post: Post) -> str:
    """Who posted it, for counting and capping: the handle, else the name, else the source."""
    return (post.author.handle or post.author.name or post.source).strip().lower()


def _source_key(post: Post) -> str:
    """The source a per-source cap counts; none for hashtags, whose many authors the per-author cap covers."""
    return "" if post.source.startswith("hashtag:") else post.source


def dedupe(posts: Iterable[Post]) -> list[Story]:
    """Merge posts that are one thing to a reader into `Story`s, sorted by (published, id).

    Two posts are one when they have the same ``id`` (a boost carries the id of what it boosts; the
    same post through two sources), the same normalized text by the same author (handle or display
    name: a cross-post from Mastodon to Bluesky), or the same text of 4+ words with the same link.
    The shown post is an original rather than a boost, then the earliest, then the smallest id.
    """
    items = list(posts)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, ...], int] = {}
    for index, post in enumerate(items):
        for key in _identity_keys(post):
            other = first.setdefault(key, index)
            parent[find(index)] = find(other)
    groups: dict[int, list[Post]] = defaultdict(list)
    for index, post in enumerate(items):
        groups[find(index)].append(post)
    stories = []
    for members in groups.values():
        ordered = sorted(members, key=_preference)
        stories.append(Story(ordered[0], tuple(ordered[1:])))
    return sorted(stories, key=lambda s: (s.post.published, s.post.id))


def _preference(post: Post) -> tuple[bool, datetime, str, str]:
    return (post.is_boost, post.published, post.id, post.source)


def _identity_keys(post: Post) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = [("id", post.id)]
    text = normalize(" ".join(p for p in (post.title, post.text) if p))
    if not text:
        return keys
    if post.author.handle:
        keys.append(("handle+text", post.author.handle.lower(), text))
    if post.author.name:
        keys.append(("name+text", post.author.name.casefold(), text))
    if len(text.split()) >= _MIN_WORDS_TEXT_AND_LINK:
        keys += [("text+link", text, link) for link in post.links]
    return keys


MIN_SHARERS = 2
"""Accounts that must have shared a link for it to be shown among the shared links."""


def link_accounts(stories: Iterable[Story]) -> dict[str, frozenset[str]]:
    """Each canonical link -> the accounts that shared it (posted or boosted a post with it)."""
    found: dict[str, set[str]] = defaultdict(set)
    for story in stories:
        for link in story.links:
            found[link] |= story.accounts
    return {link: frozenset(accounts) for link, accounts in found.items()}


def shares_of(story: Story, accounts_by_link: Mapping[str, frozenset[str]]) -> int:
    """How many distinct accounts shared the story's most shared link (1 at least: its own author)."""
    return max((len(accounts_by_link.get(link, ())) for link in story.links), default=1) or 1


def score(post: Post, topic_score: float, shares: int, now: datetime) -> float:
    """A post's rank in a section; higher first. Each term is in [0, 1]::

        score = topic + 0.30 * engagement + 0.20 * sharing + 0.15 * recency

        topic       the topic filter's score for the section's topic
        engagement  min(1, log10(1 + likes + boosts + 2 * (replies + quotes)) / 3): 1 from about
                    1,000 interactions; 1/3 (as if 9) when the source gives no counts (feeds), so
                    feeds are neither favoured nor buried
        sharing     min(1, (shares - 1) / 4): distinct accounts that shared the post's most shared
                    link; 0 for its author alone, 1 from 5 accounts
        recency     0.5 ** (age in days / 3.5): 1 at ``now``, 0.25 a week before (future times count as now)

    The result is rounded to 9 places, so ties are real ties and break on time, then id.
    """
    counts = post.engagement
    if all(c is None for c in (counts.likes, counts.boosts, counts.replies, counts.quotes)):
        engagement = NEUTRAL_ENGAGEMENT
    else:
        total = (counts.likes or 0) + (counts.boosts or 0) + 2 * ((counts.replies or 0) + (counts.quotes or 0))
        engagement = min(1.0, math.log10(1 + max(total, 0)) / 3)
    sharing = min(1.0, max(shares - 1, 0) / 4)
    age_days = max((now - post.published).total_seconds(), 0.0) / 86400
    recency = 0.5 ** (age_days / HALF_LIFE_DAYS)
    value = topic_score + ENGAGEMENT_WEIGHT * engagement + SHARING_WEIGHT * sharing + RECENCY_WEIGHT * recency
    return round(float(value), 9)


def rank_section(
    stories: Iterable[Story],
    scores: Mapping[str, float],
    *,
    per_author: int = 3,
    per_source: int = 5,
    limit: int = 10,
) -> list[Story]:
    """The best ``limit`` stories by ``scores`` (keyed by ``story.post.id``), at most ``per_author`` by one
    account and ``per_source`` from one followed source (hashtags are not capped as a source: their
    authors are). Ties break on the newer post, then the smaller id."""
    ordered = sorted(stories, key=lambda s: (-scores[s.post.id], -s.post.published.timestamp(), s.post.id))
    by_author: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    chosen: list[Story] = []
    for story in ordered:
        if len(chosen) >= limit:
            break
        author, source = account_key(story.post), _source_key(story.post)
        if by_author[author] >= per_author or (source and by_source[source] >= per_source):
            continue
        by_author[author] += 1
        by_source[source] += 1
        chosen.append(story)
    return chosen


def shared_links(stories: Sequence[Story], min_accounts: int = MIN_SHARERS, limit: int = 10) -> list[SharedLink]:
    """Links that at least ``min_accounts`` accounts shared, most accounts first, then the most recent,
    then the URL. The title is the feed item's own title when the link is a feed item, else the
    link's text in a post when that is words rather than the URL. Accounts are shown as handles
    (names for feeds), sorted case-insensitively."""
    by_link: dict[str, list[Story]] = defaultdict(list)  # one pass over the week, not one per link
    for story in stories:
        for link in story.links:
            by_link[link].append(story)
    found = []
    for link, accounts in link_accounts(stories).items():
        if len(accounts) < min_accounts:
            continue
        sharing = by_link[link]
        posts = sorted(
            (p for s in sharing for p in s.posts if link in p.links), key=lambda p: (-p.published.timestamp(), p.id)
        )
        labels = {account_key(p): p.author.handle or p.author.name or p.source for p in posts if not p.is_boost}
        labels.update({b.lower(): b for s in sharing for b in s.boosted_by})
        names = tuple(sorted(labels.values(), key=str.lower))
        found.append((link, names, posts))
    found.sort(key=lambda f: (-len(f[1]), -f[2][0].published.timestamp() if f[2] else 0, f[0]))
    # titles cost a parse of the posts' HTML: only for the links that are shown
    return [SharedLink(link, _link_title(link, posts), names, tuple(posts)) for link, names, posts in found[:limit]]


def _link_title(link: str, posts: Sequence[Post]) -> str:
    for post in posts:
        if post.title and canonical_url(post.url) == link:
            return post.title
    for post in posts:
        title = _anchor_text(post, link)
        if title:
            return title
    return ""


def _anchor_text(post: Post, link: str) -> str:
    if "<a" not in post.html:
        return ""
    try:
        root = lxml.html.fragment_fromstring(post.html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return ""
    for anchor in root.iter("a"):
        if canonical_url(absolute(anchor.get("href") or "", post.url)) != link:
            continue
        for hidden in anchor.xpath(".//span[contains(concat(' ', @class, ' '), ' invisible ')]"):
            hidden.drop_tree()
        text = " ".join(anchor.text_content().split())
        if text and not _looks_like_url(text, link):
            return text
    return ""


def _looks_like_url(text: str, link: str) -> bool:
    bare = text.rstrip("…").lower()
    return bare.startswith(("http://", "https://", "www.")) or ("." in bare and bare.split("/")[0] in link.lower())
