"""One batch of posts as TF-IDF vectors, and where the curator's keywords occur in it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfTransformer

from ..textnorm import BOILERPLATE, normalize, split_hashtag

_STOP = frozenset(ENGLISH_STOP_WORDS) | BOILERPLATE
_COUNT_CHUNK = 5_000  # posts whose words are split into strings at once when counting terms


def _count_terms(docs: Sequence[str]) -> tuple[list[str], sp.csr_matrix]:
    """Term counts of normalized posts, built in one pass over all words rather than post by post."""
    if not docs:
        return [], sp.csr_matrix((0, 0))
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__
    vocab["|"]  # id 0 ends a post: "|" never survives normalization
    # A few thousand posts' words at a time: the ids are the same as from one pass over all the words, without
    # holding every word of a large batch as a string at once (the filter's peak at 100,000 posts: 366 -> 326 MB).
    chunks = []
    for start in range(0, len(docs), _COUNT_CHUNK):
        tokens = (" | ".join(docs[start : start + _COUNT_CHUNK]) + " |").split()
        chunks.append(np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens)))
    ids = np.concatenate(chunks)
    del chunks
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
