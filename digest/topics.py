"""Topic filter: decide which followed topics each post of a weekly batch is about, without labelled data.

Keywords seed a TF-IDF classifier that is trained, calibrated and prior-corrected on the batch itself.
"""

from __future__ import annotations

import gc
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfTransformer
from sklearn.linear_model import LogisticRegression

from .models import Decision
from .textnorm import BOILERPLATE, normalize, normalize_many, split_hashtag

__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_THRESHOLD",
    "Decision",
    "Explanation",
    "NoiseProfile",
    "TopicFilter",
    "TopicSpec",
    "classify",
    "explain",
    "keyword_matches",
    "normalize",
]

DEFAULT_THRESHOLD = 0.5  # on a calibrated probability: keep a post when it is more likely on-topic than not
_STOP = frozenset(ENGLISH_STOP_WORDS) | BOILERPLATE
_MAX_SEEDS = 2_000  # seed posts per side used to train one topic's classifier
_MIN_SEEDS = 5  # below this on either side the batch is too small to learn from: keyword evidence decides
_MIN_CALIBRATION = 20  # per side and half: fewer seeds train one model and leave its scores uncalibrated
_PRIOR_RANGE = (0.01, 0.99)  # clip of the topic's estimated share of the batch
_PRIOR_SHRINK = 0.5  # weight of that estimate's log-odds (0: ignore the prior, 1: trust it fully)


class TopicSpec(Protocol):
    """What the filter reads from a configured topic (the config model satisfies it)."""

    name: str
    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...]
    exclude: tuple[str, ...]
    threshold: float | None


@dataclass(frozen=True, slots=True)
class NoiseProfile:
    """Generic off-topic chatter that competes with every topic; its words never count against a topic that uses them."""

    description: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...] = ()


DEFAULT_NOISE = NoiseProfile(
    description=(
        "Everyday chatter and entertainment: what someone ate or drank, meals, snacks, recipes, "
        "restaurants and coffee; flowers, gardens, pets and the weather; sports, matches, teams, players and "
        "scores; video games and streaming; celebrities, movies, TV shows and music; fashion, outfits, beauty and "
        "shopping deals; holidays, travel, parties, birthdays and weddings; gadgets and phones; personal life, "
        "friends, jokes and memes."
    ),
    keywords=(
        # food and drink
        "food", "foodie", "lunch", "dinner", "breakfast", "brunch", "snack", "recipe", "delicious", "yummy",
        "tasty", "restaurant", "pizza", "burger", "tacos", "sushi", "cake", "cupcake", "dessert", "chocolate",
        "coffee", "latte", "beer", "wine", "cocktail", "baking",
        # home, pets, weather
        "flowers", "garden", "gardening", "pets", "dog", "puppy", "cat", "kitten", "weather", "sunny", "rainy",
        # sports
        "sports", "football", "soccer", "basketball", "baseball", "hockey", "NFL", "NBA", "MLB", "touchdown",
        "playoffs", "championship", "stadium", "league",
        # games and streaming
        "gaming", "gamer", "video game", "Xbox", "PlayStation", "Nintendo", "Fortnite", "Twitch", "esports",
        # screen, stage and celebrities
        "celebrity", "celebrities", "movie", "film", "trailer", "TV show", "episode", "Netflix", "actor",
        "actress", "Hollywood", "Oscars", "red carpet",
        # music
        "music", "song", "album", "concert", "singer", "rapper", "playlist", "lyrics", "#nowplaying",
        # fashion, beauty, shopping
        "fashion", "outfit", "dress", "shoes", "sneakers", "jeans", "handbag", "makeup", "lipstick", "hairstyle",
        "shopping", "discount", "coupon", "giveaway",
        # holidays and personal life
        "holiday", "vacation", "beach", "party", "birthday", "wedding", "weekend", "lol", "lmao", "omg", "meme",
        "selfie",
        # gadgets
        "tech", "technology", "gadget", "smartphone", "iPhone", "Android", "laptop", "crypto", "bitcoin",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one post got its decision: per topic, the terms that moved its score most, as (term, weight)."""

    text: str
    decision: Decision
    terms: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)


# --- vectors -------------------------------------------------------------------------------------------


def _count_terms(docs: Sequence[str]) -> tuple[list[str], sp.csr_matrix]:
    """Term counts of normalized posts, built in one pass over all words rather than post by post."""
    if not docs:
        return [], sp.csr_matrix((0, 0))
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__
    vocab["|"]  # id 0 ends a post: "|" never survives normalization
    tokens = (" | ".join(docs) + " |").split()
    ids = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    ends = np.flatnonzero(ids == 0)
    indptr = np.r_[0, np.cumsum(np.diff(np.r_[-1, ends]) - 1)]
    indices = ids[ids != 0] - 1
    counts = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(docs), len(vocab) - 1))
    counts.sum_duplicates()
    return list(vocab)[1:], counts


def _variants(word: str) -> set[str]:
    """A keyword's inflections (vaccine -> vaccines, study -> studies): conservative, never a different word."""
    out = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("y"):
        out |= {word[:-1] + "ies", word[:-1] + "ied"}
    if word.endswith("e"):
        out.add(word[:-1] + "ing")
    if word.endswith("s") and not word.endswith("ss"):
        out.add(word[:-1])
    if len(word) > 2 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou" and word[-3] not in "aeiou":
        out |= {word + word[-1] + "ing", word + word[-1] + "ed"}
    return out


_Keyword = tuple[tuple[str, ...], ...]  # a keyword's word sequences, any of which is a match; first is canonical


def _keyword_forms(keyword: str) -> _Keyword:
    """A keyword as normalized words, plus its hashtag spelling (``telehealth`` / ``#telehealth`` -> "tele health").

    Empty when it cannot be evidence: a lone stop word (``WHO`` -> "who"), a letter or a number.
    """
    words = tuple(w for w in normalize(keyword).split() if len(w) > 1 or w.isdigit())  # Alzheimer's -> alzheimer
    if not words or (len(words) == 1 and (words[0] in _STOP or len(words[0]) < 2 or words[0].isdigit())):
        return ()
    forms = [words, tuple(split_hashtag(words[0]).split()) if len(words) == 1 else ("".join(words),)]
    return tuple(dict.fromkeys(forms))


def _content_words(text: str) -> list[str]:
    return [w for w in normalize(text).split() if w not in _STOP and len(w) > 1 and not w.isdigit()]


class _Batch:
    """One batch as TF-IDF vectors (``x``, scikit-learn's transformer on its own counts) and keyword look-ups."""

    def __init__(self, docs: Sequence[str]) -> None:
        self.docs = list(docs)
        terms, counts = _count_terms(self.docs)
        self.all_index = {t: j for j, t in enumerate(terms)}
        self.presence = counts.tocsc().astype(bool)
        keep = [j for j, t in enumerate(terms) if len(t) > 1 and t not in _STOP and not t.isdigit()]
        self.terms = [terms[j] for j in keep]
        self.index = {t: j for j, t in enumerate(self.terms)}
        kept = counts[:, keep]
        self.tfidf = TfidfTransformer(sublinear_tf=True).fit(kept) if min(kept.shape) > 0 else None
        self.x = self.tfidf.transform(kept).tocsr() if self.tfidf else sp.csr_matrix(kept.shape)
        self.nonempty = np.diff(self.x.indptr) > 0

    def vectorize(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows for texts outside the batch (topic profiles, examples), in the batch's vocabulary."""
        rows, cols = [], []
        for i, text in enumerate(texts):
            ids = [self.index[w] for w in normalize(text).split() if w in self.index]
            rows += [i] * len(ids)
            cols += ids
        counts = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(self.terms)))
        return self.tfidf.transform(counts).tocsr() if self.tfidf else counts

    def matches(self, keyword: _Keyword) -> np.ndarray:
        """Which posts contain the keyword in any of its forms."""
        found = np.zeros(len(self.docs), dtype=bool)
        for form in keyword:
            found |= self._matches_form(form)
        return found

    def _matches_form(self, keyword: tuple[str, ...]) -> np.ndarray:
        """Which posts contain these words (any inflection of the last one; a phrase only as a phrase)."""
        found = np.ones(len(self.docs), dtype=bool)
        for pos, word in enumerate(keyword):
            forms = _variants(word) if pos == len(keyword) - 1 else {word}
            cols = [self.all_index[f] for f in forms if f in self.all_index]
            if not cols:
                return np.zeros(len(self.docs), dtype=bool)
            here = np.zeros(len(self.docs), dtype=bool)
            ptr = self.presence.indptr
            for c in cols:
                here[self.presence.indices[ptr[c] : ptr[c + 1]]] = True
            found &= here
        if len(keyword) > 1:
            found &= self._adjacent(keyword, found)
        return found

    def _adjacent(self, keyword: tuple[str, ...], candidates: np.ndarray) -> np.ndarray:
        """Which candidate posts have the words in sequence (a lone letter may sit between: alzheimer s disease)."""
        last = "|".join(sorted(map(re.escape, _variants(keyword[-1])), key=len, reverse=True))
        gap = "(?: [a-z0-9])? "
        pattern = re.compile(rf"(?:^| ){gap.join(map(re.escape, keyword[:-1]))}{gap}(?:{last})(?: |$)", re.MULTILINE)
        out = np.zeros(len(self.docs), dtype=bool)
        rows = np.flatnonzero(candidates)
        if rows.size:  # one scan over the candidates, one per line (normalized posts have no newlines)
            starts = np.cumsum([0] + [len(self.docs[i]) + 1 for i in rows[:-1]])
            hits = [m.start() for m in pattern.finditer("\n".join(self.docs[i] for i in rows))]
            out[rows[np.searchsorted(starts, hits, side="right") - 1]] = True
        return out

    def evidence(self, keywords: Iterable[_Keyword]) -> np.ndarray:
        """Posts x keywords, True where the post contains the keyword."""
        cols = [self.matches(k) for k in keywords]
        return np.column_stack(cols) if cols else np.zeros((len(self.docs), 0), dtype=bool)


# --- one topic's scorer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Model:
    """Calibrated log-odds (topic vs noise, equal priors) = scale * (x . weights + bias) + offset."""

    weights: np.ndarray
    bias: float
    scale: float
    offset: float

    def raw(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.weights).ravel() + self.bias

    def logit(self, x: sp.csr_matrix) -> np.ndarray:
        return self.scale * self.raw(x) + self.offset


@dataclass(frozen=True, slots=True)
class _Topic:
    """A topic fitted on one batch: its evidence, its scorer (None when keywords alone decide) and prior."""

    name: str
    threshold: float
    keywords: tuple[_Keyword, ...]
    noise_keywords: tuple[_Keyword, ...]
    margin: np.ndarray  # topic keywords minus noise keywords found, per post
    model: _Model | None
    prior_shift: float  # log prior odds when the topic is a minority of the batch's seeds, else 0
    balanced: np.ndarray  # calibrated log-odds topic vs noise at equal priors, per post


def _dedupe(keywords: Iterable[str]) -> tuple[_Keyword, ...]:
    """Usable keywords, each once (``health`` and ``#health`` are the same keyword)."""
    unique: dict[tuple[str, ...], _Keyword] = {}
    for forms in map(_keyword_forms, keywords):
        if forms:
            unique.setdefault(forms[0], forms)
    return tuple(unique.values())


def _own_words(spec: TopicSpec) -> set[str]:
    """Every inflection of the words a topic is defined with: such words never count as noise for it."""
    words = [w for k in _dedupe(spec.keywords) for form in k for w in form] + _content_words(spec.description)
    return {v for w in words if w not in _STOP for v in _variants(w)}


def _split_exclude(exclude: Sequence[str]) -> tuple[list[str], list[str]]:
    """A topic's ``exclude`` entries: up to three words are noise keywords, longer ones noise example posts."""
    short = [e for e in exclude if len(e.split()) <= 3]
    return short, [e for e in exclude if len(e.split()) > 3]


def _platt(raw: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Scale and offset turning held-out raw scores into calibrated log-odds (identity if degenerate)."""
    fit = LogisticRegression(C=1e4, class_weight="balanced").fit(raw[:, None], truth)
    scale, offset = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    return (scale, offset) if scale > 0 else (1.0, 0.0)


def _fit_linear(batch: _Batch, rows: np.ndarray, truth: np.ndarray, profiles: sp.csr_matrix, n_pos: int) -> _Model:
    """Logistic regression (balanced classes) on some posts of the batch plus the profile rows."""
    features = sp.vstack([batch.x[rows], profiles]).tocsr()
    labels = np.r_[truth, np.arange(profiles.shape[0]) < n_pos]
    fit = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear", random_state=0).fit(features, labels)
    return _Model(fit.coef_[0].copy(), float(fit.intercept_[0]), 1.0, 0.0)


def _train(
    batch: _Batch, pos: np.ndarray, neg: np.ndarray, profiles: tuple[list[str], list[str]], rng: np.random.Generator
) -> _Model:
    """Two half-models on the seed posts (+ profiles), each calibrated on the other half's seeds, averaged."""
    seeds = np.r_[rng.permutation(np.flatnonzero(pos))[:_MAX_SEEDS], rng.permutation(np.flatnonzero(neg))[:_MAX_SEEDS]]
    extra = batch.vectorize(profiles[0] + profiles[1])
    if min(pos.sum(), neg.sum()) < 2 * _MIN_CALIBRATION:
        return _fit_linear(batch, seeds, pos[seeds], extra, len(profiles[0]))
    halves = (seeds[0::2], seeds[1::2])
    models = [_fit_linear(batch, half, pos[half], extra, len(profiles[0])) for half in halves]
    held_out = np.r_[models[0].raw(batch.x[halves[1]]), models[1].raw(batch.x[halves[0]])]
    scale, offset = _platt(held_out, pos[np.r_[halves[1], halves[0]]])
    weights, bias = (models[0].weights + models[1].weights) / 2, (models[0].bias + models[1].bias) / 2
    return _Model(weights, bias, scale, offset)


def _fit_topic(
    spec: TopicSpec, batch: _Batch, noise: NoiseProfile, noise_hits: np.ndarray, rng: np.random.Generator
) -> _Topic:
    """Seeds from keyword evidence, then a calibrated classifier if the batch has enough of them."""
    own = _own_words(spec)
    noise_kw = _dedupe(noise.keywords)
    owned = [all(w in own or w in _STOP for w in k[0]) for k in noise_kw]
    kept, dropped = [j for j, o in enumerate(owned) if not o], [j for j, o in enumerate(owned) if o]
    short, long = _split_exclude(spec.exclude)
    extra_noise = _dedupe(short)
    keywords = _dedupe(spec.keywords)
    topic_n = batch.evidence(keywords).sum(axis=1)
    noise_n = noise_hits.sum(axis=1) - noise_hits[:, dropped].sum(axis=1) + batch.evidence(extra_noise).sum(axis=1)
    pos = (topic_n > noise_n) & batch.nonempty
    neg = (noise_n > topic_n) & batch.nonempty
    margin = (topic_n - noise_n).astype(float)  # keywords alone: keep with at least one more topic keyword
    evidence = margin - 0.5
    threshold = DEFAULT_THRESHOLD if spec.threshold is None else float(spec.threshold)
    noise_words = tuple(noise_kw[j] for j in kept) + extra_noise
    if min(pos.sum(), neg.sum()) < _MIN_SEEDS:
        return _Topic(spec.name, threshold, keywords, noise_words, margin, None, 0.0, evidence)
    profile = spec.description + "\n" + "\n".join(spec.keywords)
    noise_profile = noise.description + "\n" + "\n".join(" ".join(k[0]) for k in noise_words)
    model = _train(batch, pos, neg, ([profile, *spec.examples], [noise_profile, *noise.examples, *long]), rng)
    balanced = model.logit(batch.x)
    shift = _prior_shift(pos, neg)
    return _Topic(spec.name, threshold, keywords, noise_words, margin, model, shift, balanced)


def _prior_shift(pos: np.ndarray, neg: np.ndarray) -> float:
    """Log prior odds of the topic when its seeds are a minority, shrunk halfway to even odds; never positive.

    The seeds' topic share estimates how common the topic is in the batch, but keywords cover a topic and
    the noise profile cover chatter unevenly, so the estimate is only trusted halfway.
    """
    prior = np.clip(pos.sum() / (pos.sum() + neg.sum()), *_PRIOR_RANGE)
    return min(0.0, _PRIOR_SHRINK * float(np.log(prior / (1 - prior))))


# --- the filter ------------------------------------------------------------------------------------------


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while allocating millions of acyclic objects (words, records)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class TopicFilter:
    """Fit on one batch of post documents, then read every post's `Decision` (and `explain` any of them).

    Per topic: posts whose topic keywords outnumber the noise profile's are positive seeds, the reverse are
    negative seeds. Two logistic regressions on TF-IDF features learn from alternate halves of the seeds (plus
    the topic's and the noise's own texts); each half calibrates the other's scores (Platt), and their average
    scores every post. The seeds' topic share then lowers (never raises) the odds when the topic is a
    minority. A post is kept under a topic when its probability reaches the threshold and beats the noise score.
    """

    def __init__(
        self, topics: Sequence[TopicSpec], *, noise: NoiseProfile = DEFAULT_NOISE, random_state: int = 0
    ) -> None:
        self.specs = tuple(topics)
        self.noise = noise
        self.random_state = random_state
        self._batch: _Batch | None = None
        self._topics: tuple[_Topic, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def fit(self, docs: Sequence[str]) -> TopicFilter:
        """Learn every topic's scorer from this batch; same batch in, same decisions out."""
        with _gc_paused():
            self._batch = batch = _Batch(normalize_many(list(docs)))
            noise_hits = batch.evidence(_dedupe(self.noise.keywords))
            self._topics = tuple(_fit_topic(s, batch, self.noise, noise_hits, self._rng(s.name)) for s in self.specs)
        return self

    def _rng(self, name: str) -> np.random.Generator:
        """A topic's own random stream: its seeds sample does not depend on the other topics."""
        return np.random.default_rng([self.random_state, zlib.crc32(name.encode())])

    def _fitted(self) -> _Batch:
        if self._batch is None:
            raise RuntimeError("TopicFilter.fit(docs) first")
        return self._batch

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Posts x topics probabilities, and each post's noise score; posts with no words score 0 and 0.5."""
        batch = self._fitted()
        if not self._topics:
            return np.zeros((len(batch.docs), 0)), np.full(len(batch.docs), 0.5)
        balanced = np.column_stack([t.balanced for t in self._topics])
        shift = np.array([t.prior_shift for t in self._topics])
        probs = np.where(batch.nonempty[:, None], _expit(balanced + shift), 0.0)
        noise = np.where(batch.nonempty, _expit(-balanced.max(axis=1)), 0.5)
        return probs, noise

    def kept(self) -> np.ndarray:
        """Posts x topics, True where the post is kept under the topic."""
        probs, noise = self.probabilities()
        thresholds = np.array([t.threshold for t in self._topics])
        return (probs >= thresholds) & (probs > noise[:, None])

    def decisions(self) -> list[Decision]:
        """One `Decision` per post of the fitted batch, in order."""
        probs, noise = self.probabilities()
        names = self.names
        thresholds = {t.name: t.threshold for t in self._topics}
        kept_sets: dict[int, tuple[str, ...]] = {}  # posts x topics as bit masks, each mask's names built once
        masks = (self.kept().astype(np.int64) @ (1 << np.arange(len(names), dtype=np.int64))).tolist()
        topics = [
            kept_sets.get(m) or kept_sets.setdefault(m, tuple(n for b, n in enumerate(names) if m >> b & 1))
            for m in masks
        ]
        with _gc_paused():
            return [
                Decision(kept, dict(zip(names, row, strict=True)), thresholds.copy(), ns)
                for kept, row, ns in zip(topics, probs.round(4).tolist(), noise.round(4).tolist(), strict=True)
            ]

    def decision(self, index: int) -> Decision:
        """The `Decision` for one post of the fitted batch."""
        probs, noise = self.probabilities()
        names, keep = self.names, self.kept()[index]
        return Decision(
            tuple(n for n, k in zip(names, keep, strict=True) if k),
            dict(zip(names, probs[index].round(4).tolist(), strict=True)),
            {t.name: t.threshold for t in self._topics},
            round(float(noise[index]), 4),
        )

    def explain(self, index: int, top: int = 8) -> Explanation:
        """One post's decision and, per topic, the `top` terms that weighed most (signed log-odds)."""
        batch = self._fitted()
        terms = {t.name: _top_terms(batch, t, index, top) for t in self._topics}
        return Explanation(batch.docs[index], self.decision(index), terms)


def _top_terms(batch: _Batch, topic: _Topic, index: int, top: int) -> tuple[tuple[str, float], ...]:
    """Each word's share of the post's log-odds: TF-IDF value x coefficient x calibration scale."""
    if topic.model is None:
        found = [(" ".join(k[0]), 1.0) for k in topic.keywords if batch.matches(k)[index]]
        found += [(" ".join(k[0]), -1.0) for k in topic.noise_keywords if batch.matches(k)[index]]
        return tuple(found[:top])
    row = batch.x[index]
    cols, values = row.indices, row.data
    contrib = topic.model.scale * values * topic.model.weights[cols]
    order = [i for i in np.argsort(-np.abs(contrib), kind="stable")[:top] if contrib[i] != 0]
    return tuple((batch.terms[cols[i]], round(float(contrib[i]), 4)) for i in order)


def classify(
    docs: Sequence[str], topics: Sequence[TopicSpec], *, noise: NoiseProfile = DEFAULT_NOISE
) -> list[Decision]:
    """Fit a `TopicFilter` on the batch and return one `Decision` per post."""
    return TopicFilter(topics, noise=noise).fit(docs).decisions()


def explain(fitted: TopicFilter, index: int, top: int = 8) -> Explanation:
    """Why post ``index`` of a fitted filter's batch got its decision (see `TopicFilter.explain`)."""
    return fitted.explain(index, top)


def keyword_matches(docs: Sequence[str], topics: Sequence[TopicSpec]) -> np.ndarray:
    """Posts x topics, True where the post contains any of the topic's keywords, matched as the filter does.

    Plain keyword matching, with no noise profile, exclusions or classifier: the baseline `digest eval` compares
    the filter with. A post's matches do not depend on the rest of the batch.
    """
    batch = _Batch(normalize_many(list(docs)))
    cols = [batch.evidence(_dedupe(spec.keywords)).any(axis=1) for spec in topics]
    return np.column_stack(cols) if cols else np.zeros((len(batch.docs), 0), dtype=bool)
