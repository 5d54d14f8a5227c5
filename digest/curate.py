"""The curator's side of readers' feedback: the topics as the filter fits them (with accepted examples),
the signals per topic, accepting them by hand or once enough readers agree, and what touched one post."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .config import Settings
from .errors import DigestError
from .feedback import Likeness, Signal, Tally, agreed, tally
from .models import Post
from .store import Store

if TYPE_CHECKING:
    from .topics import NoiseProfile, TopicSpec

__all__ = ["accept", "accept_agreed", "feedback", "taught_topics", "touching"]


def _accepted(store: Store) -> dict[tuple[str, str], bool]:
    return {(e.topic, e.post_id): e.label for e in store.examples()}


def taught_topics(settings: Settings, store: Store) -> tuple[tuple[TopicSpec, ...], NoiseProfile]:
    """The configured topics and noise profile with the examples accepted from readers' signals folded in
    (`topics.with_examples`): what every filter run and every explanation fits."""
    from .pipeline import noise_profile
    from .topics import Example, with_examples

    accepted = [Example(e.text, e.topic, e.label) for e in store.examples()]
    return with_examples(settings.topics, noise_profile(settings), accepted)


def feedback(settings: Settings, store: Store) -> list[Tally]:
    """Every post readers signalled, per configured topic, most readers first (`digest topics feedback`)."""
    names = {t.name for t in settings.topics}
    return [t for t in tally(store.signals(), _accepted(store)) if t.topic in names]


def accept_agreed(settings: Settings, store: Store, now: datetime) -> int:
    """Accept the signals enough distinct readers agree on, for the topics that allow it (``accept_after``;
    off by default); returns how many posts became examples."""
    after = {t.name: t.accept_after for t in settings.topics if t.accept_after}
    if not after:
        return 0
    items = []
    for t in feedback(settings, store):
        label = agreed(t, after.get(t.topic)) if t.accepted is None else None
        if label is not None:
            items.append((t.topic, t.post_id, t.text, label))
    if items:
        store.accept_examples(items, "readers", now)
    return len(items)


def accept(settings: Settings, store: Store, posts: Sequence[str], now: datetime) -> list[tuple[str, str, bool]]:
    """The curator accepts the signals on these posts (ids or URLs): under each topic they were signalled
    in, the way most of their readers pressed. Returns (post id, topic, label) for each; a post without
    signals, or one its readers are split on, is refused with the reason and nothing is accepted."""
    tallies = feedback(settings, store)
    items: list[tuple[str, str, str, bool]] = []
    for wanted in posts:
        found = store.post(wanted)
        post_id = found.id if found is not None else wanted
        mine = [t for t in tallies if t.post_id == post_id]
        if not mine:
            raise DigestError(f"{wanted}: no reader signalled this post (see `digest topics feedback`)")
        for t in mine:
            if t.more == t.less:
                raise DigestError(f"{wanted}: under {t.topic}, {t.more} readers asked for more and {t.less} for less")
            items.append((t.topic, t.post_id, t.text, t.more > t.less))
    store.accept_examples(items, "curator", now)
    return [(post_id, topic, label) for topic, post_id, _, label in items]


def touching(settings: Settings, store: Store, post: Post) -> dict[str, object]:
    """The readers' signals that touched a post's decision: the signals on it (per topic, each way), whether
    it is itself an accepted example, and the accepted examples like it (`feedback.Likeness`)."""
    from .rank import account_key

    on_it = [t for t in feedback(settings, store) if t.post_id == post.id]
    examples = store.examples()
    as_signals = [
        Signal("", e.post_id, e.topic, "more" if e.label else "less", e.text, "", e.accepted_at)
        for e in examples
        if e.post_id != post.id
    ]
    likeness = Likeness([post], account_key)
    like = [s for s, ids in zip(as_signals, likeness.like(as_signals), strict=True) if post.id in ids]
    return {
        "signals": [{"topic": t.topic, "not_for_me": t.less, "more_like_this": t.more} for t in on_it],
        "accepted": [
            {"topic": e.topic, "label": e.label, "origin": e.origin} for e in examples if e.post_id == post.id
        ],
        "like_examples": [{"post": s.post_id, "topic": s.topic, "label": s.kind == "more"} for s in like],
    }
