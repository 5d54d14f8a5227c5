"""Readers' feedback, accepted by the curator: folded into the topics the filter learns from, and voting at
decision time on the posts most like an accepted example."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..textnorm import normalize_many
from ._batch import _Batch, _keyword_forms
from ._spec import NoiseProfile, TopicSpec

_FEEDBACK_WEIGHT = 10  # curator lines per accepted example; 4, 15, 20, 25 and 60 did no better on dev and multi-dev
_FREE_AFTER = 2  # accepted "more like this" posts of one topic containing a noise keyword: it stops marking chatter
_VOTE_FROM = 0.5  # TF-IDF cosine from which an accepted example votes on a post at decision time
_VOTE_WEIGHT = 4.0  # log-odds a post identical to an example moves by; linear down to 0 at `_VOTE_FROM`


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled post accepted from readers' feedback: ``text`` is about ``topic`` (``label`` True: "more like
    this") or is not (False: "not for me")."""

    text: str
    topic: str
    label: bool


@dataclass(slots=True)  # not frozen: `TopicSpec` declares plain attributes
class _Taught:
    """A topic with readers' accepted examples added to its own (satisfies `TopicSpec`); ``accepted`` keeps
    them as (text, label) for the decision-time vote."""

    name: str
    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...]
    exclude: tuple[str, ...]
    threshold: float | None
    accepted: tuple[tuple[str, bool], ...] = ()


def with_examples(
    topics: Sequence[TopicSpec], noise: NoiseProfile, examples: Iterable[Example]
) -> tuple[tuple[TopicSpec, ...], NoiseProfile]:
    """The topics and noise profile with accepted examples folded in, for `TopicFilter`: the one way feedback
    reaches the filter. Unknown topics and empty texts are ignored; with no examples, the same topics and noise.

    - An example for a topic is one of its example posts, listed `_FEEDBACK_WEIGHT` times, so it weighs as much as
      that many curator lines (a real post a curator accepted says more than one keyword); an example against a
      topic is chatter, learned as what a topic is not, like the noise profile's examples.
    - A noise keyword that `_FREE_AFTER` accepted posts of one topic contain stops marking chatter (a health
      reader's "more like this" on two posts about food says food is not chatter to them); one post never does.
    - At decision time each example votes on the posts like it (`example_votes`).
    """
    names = {t.name for t in topics}
    chosen = [e for e in examples if e.topic in names and e.text.strip()]
    accepted: dict[str, dict[str, bool]] = defaultdict(dict)  # topic -> text -> label, the last acceptance winning
    for e in chosen:
        accepted[e.topic][e.text] = e.label
    against = tuple(
        text for text in dict.fromkeys(e.text for e in chosen if not e.label) for _ in range(_FEEDBACK_WEIGHT)
    )
    taught = tuple(_taught(t, accepted[t.name]) if accepted[t.name] else t for t in topics)
    more = {topic: [text for text, label in texts.items() if label] for topic, texts in accepted.items()}
    return taught, _freed(NoiseProfile(noise.description, noise.keywords, (*noise.examples, *against)), more)


def _taught(topic: TopicSpec, accepted: dict[str, bool]) -> _Taught:
    more = tuple(text for text, label in accepted.items() if label for _ in range(_FEEDBACK_WEIGHT))
    return _Taught(
        topic.name,
        topic.description,
        topic.keywords,
        (*topic.examples, *more),
        topic.exclude,
        topic.threshold,
        tuple(accepted.items()),
    )


def _freed(noise: NoiseProfile, more: dict[str, list[str]]) -> NoiseProfile:
    """The noise profile without the keywords that `_FREE_AFTER` of one topic's accepted posts contain."""
    batches = [_Batch(normalize_many(texts)) for texts in more.values() if len(texts) >= _FREE_AFTER]
    if not batches:
        return noise
    kept = tuple(
        k
        for k in noise.keywords
        if not (forms := _keyword_forms(k)) or all(int(b.matches(forms).sum()) < _FREE_AFTER for b in batches)
    )
    return NoiseProfile(noise.description, kept, noise.examples)


def accepted_examples(spec: TopicSpec) -> tuple[tuple[str, bool], ...]:
    """A topic's readers' examples as (text, label); none for a topic as configured."""
    return spec.accepted if isinstance(spec, _Taught) else ()


@dataclass(frozen=True, slots=True)
class Votes:
    """The accepted examples' votes on one batch: per topic, the log-odds each post's score moves by, and for each
    way (for, against) the nearest example and its cosine, to say which example moved a decision."""

    shift: np.ndarray  # batch rows x topics
    texts: tuple[str, ...]
    nearest: tuple[tuple[tuple[bool, np.ndarray, np.ndarray], ...], ...]  # per topic: (label, example, cosine)

    def moved(self, row: int, topic: int) -> tuple[tuple[str, bool, float, float], ...]:
        """The examples that moved this post's score under this topic: (text, label, cosine, log-odds)."""
        return tuple(
            (self.texts[int(example[row])], label, round(float(cos[row]), 4), round(float(_vote(cos[row], label)), 4))
            for label, example, cos in self.nearest[topic]
            if cos[row] >= _VOTE_FROM
        )


def _vote(cos: np.ndarray, label: bool) -> np.ndarray:
    """The log-odds an example moves posts at these cosines by: 0 below `_VOTE_FROM`, `_VOTE_WEIGHT` at 1."""
    return (1.0 if label else -1.0) * _VOTE_WEIGHT * np.clip((cos - _VOTE_FROM) / (1 - _VOTE_FROM), 0.0, 1.0)


def example_votes(batch: _Batch, specs: Sequence[TopicSpec]) -> Votes | None:
    """Each topic's nearest accepted example for and against it votes on every post: a post whose TF-IDF cosine
    to it is `_VOTE_FROM` or more has its log-odds under the topic moved towards the example's label, by up to
    `_VOTE_WEIGHT` for the same post. None when no topic has accepted examples."""
    per_topic = [accepted_examples(s) for s in specs]
    if not any(per_topic):
        return None
    texts = tuple(dict.fromkeys(text for accepted in per_topic for text, _ in accepted))
    column = {text: j for j, text in enumerate(texts)}
    cosines = (batch.x @ batch.vectorize(texts).T).tocsc()
    rows = np.arange(len(batch.docs))
    shift = np.zeros((len(batch.docs), len(specs)))
    nearest = []
    for k, accepted in enumerate(per_topic):
        ways = []
        for label in (True, False):
            cols = [column[text] for text, way in accepted if way is label]
            if not cols:
                continue
            cos = cosines[:, cols].toarray()
            best = cos.argmax(axis=1)
            top = cos[rows, best]
            shift[:, k] += _vote(top, label)
            ways.append((label, np.asarray(cols)[best], top))
        nearest.append(tuple(ways))
    return Votes(shift, texts, tuple(nearest))
