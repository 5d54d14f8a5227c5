"""The topic filter: fit on one weekly batch, place each topic's threshold from the batch, decide and explain."""

from __future__ import annotations

import gc
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from ..models import Decision
from ..textnorm import normalize_many
from ._batch import _Batch
from ._evidence import _Evidence, _evidence, _profile_rows
from ._examples import Votes, example_votes
from ._model import _expit, _Fit, _learn, _log_odds_against_chatter, _softmax
from ._spec import DEFAULT_NOISE, DEFAULT_THRESHOLD, Explanation, NoiseProfile, TopicSpec

_SECOND_TOPIC = 0.8  # kept under a second topic when it is at least this probable relative to the best one
_SELF_TRAIN = True  # refit once on the first fit's clear calls of the unseeded posts (self-training)
_GUESS_MARGIN = 0.5  # log-odds below the threshold a post needs to be learned from as chatter
_UNPLACED_SHIFT = -0.5  # with too few chatter seeds, a stricter threshold: a post must show its topic
_MIN_TOPIC_SEEDS = 8  # a topic's own seed posts needed for the batch to place its threshold
_MIN_CHATTER = 20  # chatter seeds needed to place the threshold from the batch; fewer: the fixed threshold
_CHATTER_QUANTILE = 0.995  # the threshold sits where this share of the batch's chatter seeds scores below
_THRESHOLD_RANGE = (0.38, 0.5)  # ... but never looser than this, nor stricter than the default threshold
_SPLIT_PULL = 0.5  # how far the threshold moves from where chatter seeds end to where the week's scores split
_PRIOR_WEIGHT = 0.3  # how far a topic's rarity in the batch raises its threshold (0: not at all, 1: Bayes' full shift)
_PRIOR_SHARE_RANGE = (0.01, 0.99)  # a share estimated from a batch is never taken as more certain than this


def _two_groups_cut(values: np.ndarray, bins: int = 64) -> float:
    """The value that best splits these in two groups, as Otsu's method does for an image's grey levels: the cut
    with the largest variance between the two groups' means, over a 64-bin histogram (so any order gives it)."""
    hist, edges = np.histogram(values, bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)[:-1].astype(float)
    above = hist.sum() - below
    mass = np.cumsum(hist * mids)[:-1]
    mean_below = mass / np.maximum(below, 1)
    mean_above = ((hist * mids).sum() - mass) / np.maximum(above, 1)
    return float(edges[1:-1][int(np.argmax(below * above * (mean_below - mean_above) ** 2))])


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
    threshold is placed from the batch itself, half-way between just above nearly all of its chatter
    seeds and where the batch's scores split in two (`_chatter_offsets`), so posts with no keyword but
    the topic's company of words are kept and chatter that names no noise word is not. With
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
        self._votes: Votes | None = None  # readers' accepted examples voting on the posts like them
        self._decide = np.zeros((0, 0))  # `_probs` with the votes: what the decisions read

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
            self._votes = example_votes(batch, self.specs)
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
            self._decide = self._voted()
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
        best topic's score), within `_THRESHOLD_RANGE`. Those seeds are the easy chatter, though: chatter that
        names no noise word scores higher. So the threshold is then pulled `_SPLIT_PULL` of the way toward
        the cut that best splits the batch's best-topic scores in two groups (`_two_groups_cut`), which lies
        between the chatter and the topics whatever words the chatter uses. A topic with too few seed posts
        of its own has learned too little for that, and in a week with too few chatter seeds nothing shows where chatter
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
        # Chatter seeds are the easy chatter (they name a noise word); the rest of the week's chatter scores
        # higher. Where the week's own scores split in two shows where the rest ends, so the threshold moves
        # that way too (half-way: the split alone is too strict for a topic's keyword-less posts).
        split = _two_groups_cut(_log_odds_against_chatter(self._probs[self._fitted()[0].nonempty]).max(axis=1))
        offsets[learned] += _SPLIT_PULL * (-split - offsets[learned])
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

    def _voted(self) -> np.ndarray:
        """`_probs` with the accepted examples' votes on each topic's logit (so on its log-odds against chatter):
        what decides, once the fit and the thresholds are placed without them."""
        if self._votes is None:
            return self._probs
        logits = np.log(np.maximum(self._probs, 1e-300))
        logits[:, :-1] += self._votes.shift
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
        against = _expit(_log_odds_against_chatter(self._decide) + self._offset + prior)
        return np.where(batch.nonempty[:, None], against, 0.0), np.where(batch.nonempty, self._decide[:, -1], 0.5)

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
        topic = self._decide[:, :-1]
        best = topic.max(axis=1, keepdims=True)
        contender = (topic >= best) | (topic >= _SECOND_TOPIC * best)
        kept = (against >= thresholds) & contender & (against > 0)
        # Too little to place the threshold: the keywords keep their posts (unless the curator set one, or an
        # accepted example like the post says it is not about the topic).
        unplaced = (self._offset == _UNPLACED_SHIFT) & np.array([s.threshold is None for s in self.specs])
        vetoed = self._votes.shift < 0 if self._votes is not None else np.zeros_like(kept)
        return kept | (ev.calls(batch.nonempty) & unplaced & ~vetoed)

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
        votes = self._votes
        moved = {name: votes.moved(row, k) for k, name in enumerate(self.names)} if votes is not None else {}
        return Explanation(batch.docs[row], self.decision(index), terms, {k: v for k, v in moved.items() if v})

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
