"""The model: one multinomial logistic regression in which the topics and chatter compete, fit on a batch's seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from ._batch import _Batch
from ._evidence import _Evidence

_SEED_CAP = 500  # posts per class learned from in one fit; the rest of the batch is scored, not learned from
_PROFILE_WEIGHT = 0.5  # a curator-written line (a keyword, a phrase of a description) against a seed post
_C = 1.0  # inverse regularization of the logistic regression (rows are L2-normalized TF-IDF): weight spreads
# from a keyword to the words that keep it company, which is what finds the posts with no keyword
_GUESS_WEIGHT = 0.5  # such a post's weight against a seed's
_MAX_LOG_ODDS = float(np.log((1 - 1e-9) / 1e-9))


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
