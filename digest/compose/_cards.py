"""Posts as the templates show them: a sanitized `Card` per post, one name per author and publication
(`Names`), and chat recaps as views."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from markupsafe import Markup

from ..clean import clean_html, is_tracker, safe_url, text_to_html
from ..models import Post, Publication
from ..rank import Story, account_key
from ..wording import plural
from ._labels import _time_label, _zone
from ._render import environment
from ._views import Card, ChatQuestionView, ChatView, Image

if TYPE_CHECKING:
    from ..chats import Recap

BODY_LIMIT = 400  # characters of a post's text shown in a card; longer articles end with "Read the rest"
MAX_IMAGES = 4


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
    parts = [(counts.likes, "like", ""), (counts.boosts, "boost", ""), (counts.replies, "reply", "replies")]
    return tuple(plural(n, one, many) for n, one, many in parts if n)


def _excerpt(text: str, limit: int) -> str:
    text = re.sub(r"[ \t]+", " ", text or "").strip()
    if len(text) <= limit * 1.5:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-") + "…"


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
