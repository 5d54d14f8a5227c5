"""What the curator's words say about each post of a batch, before anything is learned: keyword seeds and lines."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..textnorm import normalize_many
from ._batch import _STOP, _Batch, _content_words, _Keyword, _keyword_forms
from ._spec import NoiseProfile, TopicSpec


def _dedupe(keywords: Iterable[str]) -> tuple[_Keyword, ...]:
    """Usable keywords, each once (``health`` and ``#health`` are the same keyword)."""
    unique: dict[tuple[str, ...], _Keyword] = {}
    for forms in map(_keyword_forms, keywords):
        if forms:
            unique.setdefault(forms[0], forms)
    return tuple(unique.values())


def _own_words(specs: Sequence[TopicSpec]) -> set[str]:
    """Every inflection of the words the topics are defined with: such words never count as noise."""
    words = [w for s in specs for k in _dedupe(s.keywords) for form in k for w in form]
    words += [w for s in specs for w in _content_words(s.description)]
    return {v for w in words if w not in _STOP for v in _plurals(w)}


def _plurals(word: str) -> set[str]:
    """A word and its plural or singular: the same thing named (``game``, ``games``), never another (``gaming``)."""
    return {word, word + "s", word + "es"} | ({word[:-1]} if word.endswith("s") and not word.endswith("ss") else set())


def _split_exclude(exclude: Sequence[str]) -> tuple[list[str], list[str]]:
    """A topic's ``exclude`` entries: up to three words are noise keywords, longer ones noise example posts."""
    short = [e for e in exclude if len(e.split()) <= 3]
    return short, [e for e in exclude if len(e.split()) > 3]


_PHRASE = re.compile(r"[.;:,()\n]+|\band\b|\bor\b")


def _phrases(description: str) -> list[str]:
    """A description as the phrases a curator listed: ``diseases, their causes and treatment`` -> 3 lines."""
    return [p.strip() for p in _PHRASE.split(description) if _content_words(p)]


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the curator's words say about each post of a batch, before anything is learned."""

    topic: np.ndarray  # posts x topics: topic keywords found
    noise: np.ndarray  # posts: noise keywords (and short exclusions) found
    keywords: tuple[tuple[_Keyword, ...], ...]  # per topic
    noise_keywords: tuple[_Keyword, ...]

    def calls(self, nonempty: np.ndarray) -> np.ndarray:
        """Posts x topics: the topics a post's keywords point to, ties included (a FHIR question about EHRs
        names Interoperability and Health IT alike), when they outnumber its noise keywords."""
        best = self.topic.max(axis=1, keepdims=True) if self.topic.shape[1] else np.zeros((len(self.noise), 1))
        return (self.topic == best) & (best > self.noise[:, None]) & nonempty[:, None]

    def seeds(self, nonempty: np.ndarray) -> np.ndarray:
        """Per post, the class its keywords clearly point to (one topic, or chatter = the last), or -1."""
        n, k = self.topic.shape
        calls = self.calls(nonempty)
        labels = np.full(n, -1)
        if k:
            on = calls.sum(axis=1) == 1
            labels[on] = calls.argmax(axis=1)[on]
        best = self.topic.max(axis=1) if k else np.zeros(n)
        labels[(self.noise > best) & nonempty] = k
        return labels


def _evidence(batch: _Batch, specs: Sequence[TopicSpec], noise: NoiseProfile) -> _Evidence:
    own = _own_words(specs)
    noise_kw = tuple(k for k in _dedupe(noise.keywords) if not all(w in own or w in _STOP for w in k[0]))
    noise_kw += _dedupe(e for s in specs for e in _split_exclude(s.exclude)[0])
    keywords = tuple(_dedupe(s.keywords) for s in specs)
    topic = np.column_stack([batch.evidence(k).sum(axis=1) for k in keywords]) if specs else np.zeros((0, 0))
    return _Evidence(
        topic.reshape(len(batch.docs), len(specs)), batch.evidence(noise_kw).sum(axis=1), keywords, noise_kw
    )


def _profile_rows(
    specs: Sequence[TopicSpec], noise: NoiseProfile, noise_keywords: Sequence[_Keyword]
) -> tuple[list[str], list[int]]:
    """The curator's own lines as training rows: keywords, description phrases and examples; chatter last."""
    texts: list[str] = []
    classes: list[int] = []
    for k, spec in enumerate(specs):
        lines = [*spec.keywords, *_phrases(spec.description), *spec.examples]
        texts += lines
        classes += [k] * len(lines)
    chatter = [" ".join(k[0]) for k in noise_keywords] + _phrases(noise.description) + list(noise.examples)
    chatter += [e for s in specs for e in _split_exclude(s.exclude)[1]]
    return texts + chatter, classes + [len(specs)] * len(chatter)


def keyword_matches(docs: Sequence[str], topics: Sequence[TopicSpec]) -> np.ndarray:
    """Posts x topics, True where the post contains any of the topic's keywords, matched as the filter does.

    Plain keyword matching, with no noise profile, exclusions or classifier: the baseline `digest eval` compares
    the filter with. A post's matches do not depend on the rest of the batch.
    """
    batch = _Batch(normalize_many(list(docs)))
    cols = [batch.evidence(_dedupe(spec.keywords)).any(axis=1) for spec in topics]
    return np.column_stack(cols) if cols else np.zeros((len(batch.docs), 0), dtype=bool)
