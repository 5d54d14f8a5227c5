"""Readers' feedback, accepted by the curator, folded into the topics the filter learns from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._spec import NoiseProfile, TopicSpec

_FEEDBACK_WEIGHT = 10  # curator lines per accepted example; 4, 15, 25 and 60 did no better on dev and multi-dev at once


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled post accepted from readers' feedback: ``text`` is about ``topic`` (``label`` True: "more like
    this") or is not (False: "not for me")."""

    text: str
    topic: str
    label: bool


@dataclass(slots=True)  # not frozen: `TopicSpec` declares plain attributes
class _Taught:
    """A topic with readers' accepted examples added to its own (satisfies `TopicSpec`)."""

    name: str
    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...]
    exclude: tuple[str, ...]
    threshold: float | None


def with_examples(
    topics: Sequence[TopicSpec], noise: NoiseProfile, examples: Iterable[Example]
) -> tuple[tuple[TopicSpec, ...], NoiseProfile]:
    """The topics and noise profile with accepted examples folded in, for `TopicFilter`: the one way feedback
    reaches the fit. An example for a topic is one of its example posts; an example against a topic is chatter
    (the filter learns it as what a topic is not, like the noise profile's examples). Unknown topics are ignored.

    Each accepted post is listed `_FEEDBACK_WEIGHT` times, so it weighs as much as that many curator lines (a
    line's weight being how often it is listed): a real post a curator accepted says more than one keyword.
    """
    names = {t.name for t in topics}
    chosen = [e for e in examples if e.topic in names and e.text.strip()]
    more: dict[str, list[str]] = defaultdict(list)
    for e in chosen:
        if e.label:
            more[e.topic] += [e.text] * _FEEDBACK_WEIGHT
    against = tuple(
        text for text in dict.fromkeys(e.text for e in chosen if not e.label) for _ in range(_FEEDBACK_WEIGHT)
    )
    taught = tuple(
        _Taught(t.name, t.description, t.keywords, (*t.examples, *more[t.name]), t.exclude, t.threshold)
        if more[t.name]
        else t
        for t in topics
    )
    return taught, NoiseProfile(noise.description, noise.keywords, (*noise.examples, *against))
