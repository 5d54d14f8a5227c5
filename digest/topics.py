"""Topic filter: decide which followed topics each post of a weekly batch is about, without labelled data.

Keywords seed one TF-IDF classifier in which the topics and chatter compete, thresholded from the batch itself.
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
from threadpoolctl import threadpool_limits

from .models import Decision
from .textnorm import BOILERPLATE, normalize, normalize_many, split_hashtag

__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_THRESHOLD",
    "Decision",
    "Example",
    "Explanation",
    "NoiseProfile",
    "TopicFilter",
    "TopicSpec",
    "classify",
    "explain",
    "keyword_matches",
    "normalize",
    "with_examples",
]

DEFAULT_THRESHOLD = 0.5  # on a calibrated probability: keep a post when it is more likely on-topic than not
_STOP = frozenset(ENGLISH_STOP_WORDS) | BOILERPLATE


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


# --- the model: topics and chatter compete ----------------------------------------------------------------

_SEED_CAP = 500  # posts per class learned from in one fit; the rest of the batch is scored, not learned from
_PROFILE_WEIGHT = 0.5  # a curator-written line (a keyword, a phrase of a description) against a seed post
_C = 1.0  # inverse regularization of the logistic regression (rows are L2-normalized TF-IDF): weight spreads
# from a keyword to the words that keep it company, which is what finds the posts with no keyword
_SECOND_TOPIC = 0.8  # kept under a second topic when it is at least this probable relative to the best one
_SELF_TRAIN = True  # refit once on the first fit's clear calls of the unseeded posts (self-training)
_GUESS_WEIGHT = 0.5  # such a post's weight against a seed's
_GUESS_MARGIN = 0.5  # log-odds below the threshold a post needs to be learned from as chatter
_MAX_LOG_ODDS = float(np.log((1 - 1e-9) / 1e-9))
_UNPLACED_SHIFT = -0.5  # with too few chatter seeds, a stricter threshold: a post must show its topic
_MIN_TOPIC_SEEDS = 8  # a topic's own seed posts needed for the batch to place its threshold
_MIN_CHATTER = 20  # chatter seeds needed to place the threshold from the batch; fewer: the fixed threshold
_CHATTER_QUANTILE = 0.995  # the threshold sits where this share of the batch's chatter seeds scores below
_THRESHOLD_RANGE = (0.38, 0.5)  # ... but never looser than this, nor stricter than the default threshold
_PRIOR_WEIGHT = 0.3  # how far a topic's rarity in the batch raises its threshold (0: not at all, 1: Bayes' full shift)
_PRIOR_SHARE_RANGE = (0.01, 0.99)  # a share estimated from a batch is never taken as more certain than this


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


def _capped(rows: np.ndarray, keys: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` of the rows, chosen by a hash of their text: the same posts whatever the batch order."""
    return rows if rows.size <= cap else rows[np.argsort(keys[rows], kind="stable")[:cap]]


@dataclass(frozen=True, slots=True)
class _Fit:
    """A multinomial logistic regression over TF-IDF: one row of weights per topic, chatter last."""

    weights: np.ndarray  # classes x terms
    bias: np.ndarray  # classes

    def logits(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.weights.T) + self.bias


def _fit(x: sp.csr_matrix, labels: np.ndarray, weights: np.ndarray, classes: int) -> _Fit:
    """Each class's rows weigh the same in all (equal priors), however many there are."""
    present = np.unique(labels)
    totals = np.bincount(labels, weights=weights, minlength=classes)
    balanced = weights / totals[labels] * (weights.sum() / len(present))
    # A term no training row has gets weight 0 under L2 anyway: fitting only the others is the same
    # model with far fewer parameters (the training rows use a fraction of a large batch's words).
    used = np.unique(x.indices)
    model = LogisticRegression(C=_C, max_iter=100, tol=1e-3).fit(x[:, used], labels, sample_weight=balanced)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # scikit-learn keeps one row for two classes: the second's log-odds
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.r_[-intercept / 2, intercept / 2]
    w = np.zeros((classes, x.shape[1]))
    b = np.full(classes, -30.0)  # a class with nothing to learn from is never chosen
    w[np.ix_(present, used)], b[present] = coef, intercept
    return _Fit(w, b)


def _log_odds_against_chatter(probs: np.ndarray) -> np.ndarray:
    """Rows x topics: each topic's log-odds against chatter (the last class), within +-20.7 (1e-9)."""
    odds = np.log(np.maximum(probs[:, :-1], 1e-300)) - np.log(np.maximum(probs[:, -1:], 1e-300))
    return np.clip(odds, -_MAX_LOG_ODDS, _MAX_LOG_ODDS)


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _learn(
    batch: _Batch,
    ev: _Evidence,
    profiles: tuple[list[str], list[int]],
    keys: np.ndarray,
    guesses: np.ndarray | None = None,
) -> _Fit | None:
    """Fit on the seed posts and the curator's lines (and, when given, a previous fit's labels of the other
    posts, -1 for none); None when they give fewer than two classes to tell apart."""
    classes = ev.topic.shape[1] + 1
    seeds = ev.seeds(batch.nonempty)
    extra = batch.vectorize(profiles[0])
    keep = np.diff(extra.indptr) > 0  # a line whose words never occur in this batch teaches nothing
    lines, line_classes = extra[keep], np.asarray(profiles[1], dtype=np.int64)[keep]
    if len(np.unique(np.r_[line_classes, seeds[seeds >= 0]])) < 2:
        return None
    rows = np.concatenate([_capped(np.flatnonzero(seeds == c), keys, _SEED_CAP) for c in range(classes)])
    labels, weights = seeds[rows], np.ones(rows.size)
    if guesses is not None:
        guessed = np.concatenate(
            [_capped(np.flatnonzero((guesses == c) & (seeds < 0)), keys, _SEED_CAP) for c in range(classes)]
        )
        rows, labels = np.r_[rows, guessed], np.r_[labels, guesses[guessed]]
        weights = np.r_[weights, np.full(guessed.size, _GUESS_WEIGHT)]
    labels = np.r_[labels, line_classes].astype(np.int64)
    weights = np.r_[weights, np.full(line_classes.size, _PROFILE_WEIGHT)]
    return _fit(sp.vstack([batch.x[rows], lines]).tocsr(), labels, weights, classes)


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


class TopicFilter:
    """Fit on one batch of post documents, then read every post's `Decision` (and `explain` any of them).

    The curator's keywords label the posts they clearly point to (seeds: a topic's keywords outnumbering
    every other topic's and the noise profile's; chatter: noise keywords outnumbering them). One
    multinomial logistic regression on TF-IDF learns from those seeds and from the curator's own lines
    (each keyword, each phrase of the description, the examples; the noise profile's for chatter),
    every class weighing the same however rare it is in the batch. Topics and chatter compete: a post
    goes to its most probable topic when that topic beats chatter (its probability against chatter at
    or above the threshold), and to a second topic only when that one is nearly as probable. The
    threshold is placed from the batch itself, just above nearly all of its chatter seeds
    (`_chatter_offsets`), so posts with no keyword but the topic's company of words are kept. With
    nothing to learn from, keywords alone decide. The posts are put in a canonical order first, so
    any order of the same posts gives the same decisions.
    """

    def __init__(
        self, topics: Sequence[TopicSpec], *, noise: NoiseProfile = DEFAULT_NOISE, random_state: int = 0
    ) -> None:
        self.specs = tuple(topics)
        self.noise = noise
        self.random_state = random_state
        self._batch: _Batch | None = None
        self._rank = np.zeros(0, dtype=np.int64)  # the caller's post i is row _rank[i] of the batch
        self._evidence: _Evidence | None = None
        self._model: _Fit | None = None
        self._probs = np.zeros((0, 0))
        self._offset = np.zeros(len(self.specs))
        self._prior = np.zeros(len(self.specs))  # per topic, the log-odds shift for the batch's topic shares
        self._seeds = np.zeros(0, dtype=np.int64)  # batch order: the class each post's keywords point to, or -1

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def fit(self, docs: Sequence[str]) -> TopicFilter:
        """Learn from this batch; the same posts, in any order, give the same decisions.

        One BLAS thread: the solver's products are small, and threads that wait for each other cost several
        times the work itself, far more on a busy machine (0.15 s vs 0.5-4 s for the fits at 100,000 posts).
        """
        with _gc_paused(), threadpool_limits(limits=1, user_api="blas"):
            normalized = normalize_many(list(docs))
            order = sorted(range(len(normalized)), key=normalized.__getitem__)
            self._rank = np.empty(len(order), dtype=np.int64)
            self._rank[order] = np.arange(len(order))
            self._batch = batch = _Batch([normalized[i] for i in order])
            self._evidence = ev = _evidence(batch, self.specs, self.noise)
            keys = np.fromiter((zlib.crc32(d.encode()) for d in batch.docs), dtype=np.int64, count=len(batch.docs))
            profiles = _profile_rows(self.specs, self.noise, ev.noise_keywords)
            self._model = _learn(batch, ev, profiles, keys) if self.specs else None
            self._probs = self._class_probabilities()
            self._seeds = ev.seeds(batch.nonempty)
            self._offset = self._chatter_offsets(self._seeds)
            if self._model is not None and _SELF_TRAIN:  # words that keep the keywords' company count too
                self._model = _learn(batch, ev, profiles, keys, self._guesses())
                self._probs = self._class_probabilities()
                self._offset = self._chatter_offsets(self._seeds)
            self._prior = self._prior_shift()
        return self

    def _guesses(self) -> np.ndarray:
        """The first fit's clear calls, in batch order: the best topic when kept, chatter when well below."""
        k = len(self.specs)
        shifted = _log_odds_against_chatter(self._probs) + self._offset
        best = shifted.max(axis=1)
        guesses = np.full(len(best), -1)
        guesses[best >= 0] = shifted.argmax(axis=1)[best >= 0]
        guesses[best < -_GUESS_MARGIN] = k
        return guesses

    def _chatter_offsets(self, seeds: np.ndarray) -> np.ndarray:
        """Per topic, the log-odds shift that puts the threshold where the batch's own chatter ends.

        The model's scores of a post with no keyword are modest even when it is plainly on topic, so a
        fixed 0.5 misses most of them. The posts the noise profile clearly marks as chatter show how high
        chatter scores in this batch: the threshold moves down to just above nearly all of them (their
        best topic's score), within `_THRESHOLD_RANGE`. A topic with too few seed posts of its own has
        learned too little for that, and in a week with too few chatter seeds nothing shows where chatter
        ends: there a post must show its topic clearly (`_UNPLACED_SHIFT`), and the topic's keyword seeds
        are kept whatever the model says (`kept`).
        """
        k = len(self.specs)
        chatter = seeds == k
        if self._model is None:
            return np.zeros(k)
        offsets = np.full(k, _UNPLACED_SHIFT)
        if chatter.sum() < _MIN_CHATTER:  # a tiny week: an uninformative post must not be a coin toss
            return offsets
        best = _expit(_log_odds_against_chatter(self._probs[chatter]).max(axis=1))
        q = float(np.clip(np.quantile(best, _CHATTER_QUANTILE), *_THRESHOLD_RANGE))
        learned = np.bincount(seeds[seeds >= 0], minlength=k + 1)[:k] >= _MIN_TOPIC_SEEDS
        offsets[learned] = -np.log(q / (1 - q))
        return offsets

    def _prior_shift(self) -> np.ndarray:
        """Per topic, the log-odds shift for how common the topic is in this batch against chatter.

        The model learns with every class weighing the same, so its odds are those of a batch in which a topic
        and chatter are equally common. In a week where a topic is 5% of the posts, a post with even odds is
        still far more likely chatter. The shares are estimated from the batch itself, as the share of posts
        kept under each topic and under none with the thresholds as placed, and a topic rarer than chatter
        has its placed threshold raised by `_PRIOR_WEIGHT` of Bayes' shift. A topic more common than chatter
        keeps its threshold: lowering it would keep more of the little chatter such a week has.
        """
        batch, _ = self._fitted()
        k = len(self.specs)
        placed = self._offset != _UNPLACED_SHIFT
        rows = int(batch.nonempty.sum())
        if self._model is None or not placed.any() or rows == 0:
            return np.zeros(k)
        kept = self._kept_rows(np.zeros(k))[batch.nonempty]
        topic = np.clip(kept.sum(axis=0) / rows, *_PRIOR_SHARE_RANGE)
        chatter = np.clip((~kept.any(axis=1)).sum() / rows, *_PRIOR_SHARE_RANGE)
        return np.where(placed, _PRIOR_WEIGHT * np.minimum(np.log(topic / chatter), 0.0), 0.0)

    def _class_probabilities(self) -> np.ndarray:
        """Batch rows x (topics + chatter), from the model, or from keyword margins when there is none."""
        batch, ev = self._fitted()
        if self._model is not None:
            return _softmax(self._model.logits(batch.x))
        margin = ev.topic - ev.noise[:, None]  # keywords alone: a topic keyword more than noise keywords
        logits = np.column_stack([np.where(margin > 0, 2.0, -2.0) + margin, np.zeros(len(batch.docs))])
        return _softmax(logits)

    def _fitted(self) -> tuple[_Batch, _Evidence]:
        if self._batch is None or self._evidence is None:
            raise RuntimeError("TopicFilter.fit(docs) first")
        return self._batch, self._evidence

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Posts x topics probabilities (each topic against chatter), and each post's chatter probability;
        in the caller's order. Posts with no words score 0 and 0.5."""
        against, chatter = self._against(self._prior)
        return against[self._rank], chatter[self._rank]

    def _against(self, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`probabilities` in batch order, with this prior shift."""
        batch, _ = self._fitted()
        against = _expit(_log_odds_against_chatter(self._probs) + self._offset + prior)
        return np.where(batch.nonempty[:, None], against, 0.0), np.where(batch.nonempty, self._probs[:, -1], 0.5)

    def kept(self) -> np.ndarray:
        """Posts x topics, True where the post is kept under the topic."""
        return self._kept_rows(self._prior)[self._rank]

    def _kept_rows(self, prior: np.ndarray) -> np.ndarray:
        """`kept` in batch order, with this prior shift."""
        batch, ev = self._fitted()
        if not self.specs:
            return np.zeros((len(batch.docs), 0), dtype=bool)
        against, _ = self._against(prior)
        thresholds = np.array(list(self._thresholds().values()))
        topic = self._probs[:, :-1]
        best = topic.max(axis=1, keepdims=True)
        contender = (topic >= best) | (topic >= _SECOND_TOPIC * best)
        kept = (against >= thresholds) & contender & (against > 0)
        # Too little to place the threshold: the keywords keep their posts (unless the curator set one).
        unplaced = (self._offset == _UNPLACED_SHIFT) & np.array([s.threshold is None for s in self.specs])
        return kept | (ev.calls(batch.nonempty) & unplaced)

    def decisions(self) -> list[Decision]:
        """One `Decision` per post of the fitted batch, in order."""
        probs, noise = self.probabilities()
        names = self.names
        thresholds = self._thresholds()
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

    def _thresholds(self) -> dict[str, float]:
        return {s.name: DEFAULT_THRESHOLD if s.threshold is None else float(s.threshold) for s in self.specs}

    def decision(self, index: int) -> Decision:
        """The `Decision` for one post of the fitted batch."""
        probs, noise = self.probabilities()
        names, keep = self.names, self.kept()[index]
        return Decision(
            tuple(n for n, k in zip(names, keep, strict=True) if k),
            dict(zip(names, probs[index].round(4).tolist(), strict=True)),
            self._thresholds(),
            round(float(noise[index]), 4),
        )

    def explain(self, index: int, top: int = 8) -> Explanation:
        """One post's decision and, per topic, the `top` terms that weighed most (signed log-odds vs chatter)."""
        batch, _ = self._fitted()
        row = int(self._rank[index])
        terms = {name: self._top_terms(row, k, top) for k, name in enumerate(self.names)}
        return Explanation(batch.docs[row], self.decision(index), terms)

    def _top_terms(self, row: int, k: int, top: int) -> tuple[tuple[str, float], ...]:
        """Each word's share of the post's log-odds of topic ``k`` against chatter: TF-IDF x weight difference."""
        batch, ev = self._fitted()
        if self._model is None:
            found = [(" ".join(kw[0]), 1.0) for kw in ev.keywords[k] if batch.matches(kw)[row]]
            found += [(" ".join(kw[0]), -1.0) for kw in ev.noise_keywords if batch.matches(kw)[row]]
            return tuple(found[:top])
        x = batch.x[row]
        cols, values = x.indices, x.data
        contrib = values * (self._model.weights[k, cols] - self._model.weights[-1, cols])
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


# --- readers' feedback, accepted by the curator ----------------------------------------------------------


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
