"""Measure the topic filter on labelled posts: one batch (`evaluate`), or a sweep over on-topic shares and
batch sizes with several seeds each (`sweep`), checked against the issue's quality targets (`check`)."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DigestError
from .topics import DEFAULT_NOISE, Example, NoiseProfile, TopicFilter, TopicSpec, keyword_matches

__all__ = [
    "DEFAULT_SHARES",
    "DEFAULT_SIZES",
    "TARGETS",
    "Targets",
    "cell_label",
    "cell_size",
    "check",
    "evaluate",
    "feedback_examples",
    "read_labelled",
    "sample_rows",
    "score",
    "sweep",
]

DEFAULT_SHARES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95)  # on-topic share of a batch
DEFAULT_SIZES = (30, 60, 120, 250, 500, 1000)  # posts in a batch
_STATS = ("f1", "precision", "recall", "chatter_dropped", "wrong_topic")  # per cell: mean and min over seeds

Progress = Callable[[int, int], None]  # (batches done, batches in all)


# --- scoring one batch ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scores:
    """One batch scored: per-topic precision, recall and F1; chatter dropped; on-topic rows under a wrong topic."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    off_rows: int
    chatter_dropped: float  # share of off-topic rows kept under no topic (1.0 when there are none)
    wrong_topic: float  # share of on-topic rows kept under at least one topic they are not labelled with

    def macro(self, name: str) -> float:
        """Mean over topics of ``precision``, ``recall`` or ``f1``; other names are the batch-wide shares."""
        if name in ("precision", "recall", "f1"):
            values: np.ndarray = getattr(self, name)
            return float(values.mean()) if values.size else 0.0
        return float(getattr(self, name))


def _scores(truth: np.ndarray, pred: np.ndarray, on_topic: np.ndarray) -> _Scores:
    """Score ``pred`` against ``truth`` (both posts x topics bool); ``on_topic``: rows with any label at all."""
    tp = (truth & pred).sum(axis=0)
    kept, support = pred.sum(axis=0), truth.sum(axis=0)
    precision = np.divide(tp, kept, out=np.zeros(len(tp)), where=kept > 0)
    recall = np.divide(tp, support, out=np.zeros(len(tp)), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(len(tp)), where=total > 0)
    off = ~on_topic
    dropped = float((~pred[off].any(axis=1)).mean()) if off.any() else 1.0
    wrong = float((pred & ~truth)[on_topic].any(axis=1).mean()) if on_topic.any() else 0.0
    return _Scores(precision, recall, f1, support, int(off.sum()), dropped, wrong)


def _as_report(scores: _Scores, names: Sequence[str]) -> dict[str, Any]:
    """The JSON shape of a scored batch (the keys `digest eval --json` prints), rounded to 4 places."""
    topics = {
        name: {
            "precision": round(float(scores.precision[j]), 4),
            "recall": round(float(scores.recall[j]), 4),
            "f1": round(float(scores.f1[j]), 4),
            "support": int(scores.support[j]),
        }
        for j, name in enumerate(names)
    }
    return {
        "topics": topics,
        "off_topic": {"rows": scores.off_rows, "dropped": round(scores.chatter_dropped, 4)},
        "macro_f1": round(scores.macro("f1"), 4),
        "wrong_topic": round(scores.wrong_topic, 4),
    }


def _truth(labels: Sequence[Collection[str]], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Posts x topics, True where the row is labelled with the topic; and which rows have any label."""
    truth = np.array([[name in label for name in names] for label in labels], dtype=bool)
    on_topic = np.array([bool(label) for label in labels], dtype=bool)
    return truth.reshape(len(labels), len(names)), on_topic


def _kept(texts: Sequence[str], topics: Sequence[TopicSpec], noise: NoiseProfile) -> np.ndarray:
    """Run the weekly filter on the texts as one batch: posts x topics, True where a post is kept under a topic."""
    decisions = TopicFilter(topics, noise=noise).fit(texts).decisions()
    names = [spec.name for spec in topics]
    kept = np.array([[name in d.topics for name in names] for d in decisions], dtype=bool)
    return kept.reshape(len(texts), len(names))


def score(labels: Sequence[Collection[str]], kept: Sequence[Collection[str]], names: Sequence[str]) -> dict[str, Any]:
    """Score decisions (each post's kept topic names) against labels (each row's topic names; empty: off-topic).

    Returns per-topic ``precision``, ``recall``, ``f1`` and ``support``; ``off_topic`` rows and the share
    dropped; ``macro_f1`` (mean F1 over the topics) and ``wrong_topic``.
    """
    truth, on_topic = _truth(labels, names)
    pred, _ = _truth(kept, names)
    return _as_report(_scores(truth, pred, on_topic), names)


def evaluate(
    texts: Sequence[str],
    labels: Sequence[Collection[str]],
    topics: Sequence[TopicSpec],
    *,
    noise: NoiseProfile = DEFAULT_NOISE,
) -> dict[str, Any]:
    """Run the weekly filter on all texts as one batch and score it against labels (sets of topic names).

    Beside the filter's scores (see `score`) and ``posts_per_second``, ``keyword_baseline`` scores plain
    keyword matching the same way: a post kept under every topic one of whose keywords it contains.
    """
    names = [spec.name for spec in topics]
    truth, on_topic = _truth(labels, names)
    start = time.perf_counter()
    kept = _kept(texts, topics, noise)
    elapsed = time.perf_counter() - start
    ours = _as_report(_scores(truth, kept, on_topic), names)
    baseline = _as_report(_scores(truth, keyword_matches(texts, topics), on_topic), names)
    return {
        "topics": ours["topics"],
        "off_topic": ours["off_topic"],
        "posts_per_second": round(len(texts) / elapsed, 1) if elapsed > 0 else float("inf"),
        "macro_f1": ours["macro_f1"],
        "wrong_topic": ours["wrong_topic"],
        "keyword_baseline": baseline,
    }


def read_labelled(path: str) -> tuple[list[str], list[set[str]]]:
    """Rows of a text,label CSV: the texts, and each row's set of topic names (empty: off-topic)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DigestError(f"{path}: no {' or '.join(sorted(missing))} column (expected text,label)")
        texts, labels = [], []
        for row in reader:
            texts.append(row["text"] or "")
            labels.append({name.strip() for name in (row["label"] or "").split("|") if name.strip()})
    return texts, labels


def feedback_examples(texts: Sequence[str], labels: Sequence[Collection[str]], names: Sequence[str]) -> list[Example]:
    """Labelled rows as the examples readers' buttons would give once accepted: a row labelled with topics is
    "more like this" under each; an off-topic row is "not for me" under every topic (`digest eval --feedback`)."""
    examples: list[Example] = []
    for text, label in zip(texts, labels, strict=True):
        examples += [Example(text, t, True) for t in names if t in label] if label else []
        examples += [] if label else [Example(text, t, False) for t in names]
    return examples


# --- the sweep -----------------------------------------------------------------------------------------------


def cell_size(on_rows: int, off_rows: int, share: float, size: int) -> int:
    """Posts in a batch of ``size`` at this on-topic share, fewer when the data has too few rows of either kind."""
    if not 0 < share < 1:
        raise ValueError(f"an on-topic share is between 0 and 1 (exclusive), not {share}")
    eps = 1e-9  # 90 / 0.1 may come out as 899.999...
    return max(0, min(size, math.floor(on_rows / share + eps), math.floor(off_rows / (1 - share) + eps)))


def sample_rows(on_topic: np.ndarray, share: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one batch, drawn without replacement, in random order: n rows (`cell_size`), of which
    exactly ``round(share * n)`` are on-topic (``on_topic`` True) and the rest off-topic."""
    on, off = np.flatnonzero(on_topic), np.flatnonzero(~on_topic)
    n = cell_size(len(on), len(off), share, size)
    k = min(round(share * n), len(on))
    rows = np.r_[rng.choice(on, k, replace=False), rng.choice(off, min(n - k, len(off)), replace=False)]
    return rng.permutation(rows)


def cell_label(cell: dict[str, Any]) -> str:
    """A cell in words: ``share 0.05, n=900`` in the shares sweep, ``n=120, share 0.4`` in the sizes sweep."""
    if cell["sweep"] == "shares":
        return f"share {cell['share']:g}, n={cell['n']}"
    short = "" if cell["n"] == cell["requested_n"] else f" (only {cell['n']})"
    return f"n={cell['requested_n']}{short}, share {cell['share']:g}"


def _cell(
    plan: tuple[str, int, float, int],
    n: int,
    runs: list[tuple[_Scores, _Scores]],
    names: Sequence[str],
) -> dict[str, Any]:
    kind, index, share, size = plan
    ours, baseline = [r[0] for r in runs], [r[1] for r in runs]
    cell: dict[str, Any] = {
        "sweep": kind,
        "index": index,
        "share": share,
        "n": n,
        "requested_n": size,
        "on_topic": round(share * n),
        "seeds": len(runs),
    }
    for stat in _STATS:
        values = [s.macro(stat) for s in ours]
        cell[stat] = {"mean": round(float(np.mean(values)), 4), "min": round(min(values), 4)}
    cell["wrong_topic"]["max"] = round(max(s.wrong_topic for s in ours), 4)  # for this one, higher is worse
    cell["keyword_baseline"] = {
        stat: round(float(np.mean([s.macro(stat) for s in baseline])), 4) for stat in ("f1", "chatter_dropped")
    }
    if len(names) > 1:
        cell["topics"] = {name: round(float(np.mean([s.f1[j] for s in ours])), 4) for j, name in enumerate(names)}
    return cell


def _worst(cells: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cells with the lowest mean F1, the lowest single-seed chatter dropped and the lowest single-seed recall."""
    worst: dict[str, Any] = {}
    for stat, which in (("f1", "mean"), ("chatter_dropped", "min"), ("recall", "min")):
        cell = min(cells, key=lambda c: c[stat][which])  # the first such cell on ties
        worst[stat] = {
            "cell": cell_label(cell),
            "sweep": cell["sweep"],
            "index": cell["index"],
            "stat": which,
            "value": cell[stat][which],
        }
    return worst


def sweep(
    texts: Sequence[str],
    labels: Sequence[Collection[str]],
    topics: Sequence[TopicSpec],
    *,
    noise: NoiseProfile = DEFAULT_NOISE,
    shares: Sequence[float] = DEFAULT_SHARES,
    sizes: Sequence[int] = DEFAULT_SIZES,
    size_share: float = 0.4,
    share_size: int = 900,
    seeds: int = 5,
    base_seed: int = 0,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the filter on many batches sampled from labelled rows and score each, as `evaluate` does.

    Cells: one per on-topic share (batches of ``share_size``) and one per batch size (at ``size_share``),
    listed in that order; each runs ``seeds`` batches, the rows of seed ``s`` of cell ``i`` drawn with
    ``numpy.random.default_rng((base_seed, i, s))`` (`sample_rows`). A cell reports the mean and min over its
    seeds of F1, precision and recall (macro over topics: a single topic's own), ``chatter_dropped`` and
    ``wrong_topic``; the keyword baseline's mean F1 and chatter dropped; with several topics each topic's mean
    F1. ``worst`` names the weakest cells. No timings, so the same inputs give the same report.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    names = [spec.name for spec in topics]
    truth, on_topic = _truth(labels, names)
    if on_topic.all() or not on_topic.any():
        raise ValueError("the sweep samples on-topic and off-topic rows: the data needs both")
    baseline = keyword_matches(texts, topics)  # a post's matches do not depend on its batch: matched once
    plan = [("shares", share, share_size) for share in shares] + [("sizes", size_share, size) for size in sizes]
    total, done = len(plan) * seeds, 0
    cells: dict[str, list[dict[str, Any]]] = {"shares": [], "sizes": []}
    for index, (kind, share, size) in enumerate(plan):
        runs: list[tuple[_Scores, _Scores]] = []
        rows = np.zeros(0, dtype=np.int64)
        for seed in range(seeds):
            rows = sample_rows(on_topic, share, size, np.random.default_rng((base_seed, index, seed)))
            kept = _kept([texts[i] for i in rows.tolist()], topics, noise)
            runs.append(
                (_scores(truth[rows], kept, on_topic[rows]), _scores(truth[rows], baseline[rows], on_topic[rows]))
            )
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        cells[kind].append(_cell((kind, index, share, size), len(rows), runs, names))
    return {
        "topics": names,
        "rows": {"on_topic": int(on_topic.sum()), "off_topic": int((~on_topic).sum())},
        "seeds": seeds,
        "base_seed": base_seed,
        "share_size": share_size,
        "size_share": size_share,
        "shares": cells["shares"],
        "sizes": cells["sizes"],
        "worst": _worst(cells["shares"] + cells["sizes"]),
    }


# --- the targets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """The filter's quality targets over a sweep (issue 12)."""

    share_f1: float = 0.80  # every share cell: mean F1 at least this
    share_chatter: float = 0.85  # every share cell: mean chatter dropped at least this
    sizes: tuple[int, int] = (60, 250)  # the size cells (requested n, inclusive) the next three apply to
    size_f1: float = 0.78  # mean F1
    size_chatter: float = 0.60  # every single seed's chatter dropped
    size_recall: float = 0.50  # every single seed's recall
    over_baseline: float = 0.10  # several topics, every cell: mean macro-F1 at least the keyword baseline's + this


TARGETS = Targets()


def check(report: dict[str, Any], targets: Targets = TARGETS) -> list[str]:
    """The targets a `sweep` report misses, one readable line each (empty: every target met)."""
    misses: list[str] = []
    f1 = "mean macro-F1" if len(report["topics"]) > 1 else "mean F1"

    def below(cell: dict[str, Any], what: str, value: float, target: float, also: str = "") -> None:
        if value < target:
            misses.append(f"{cell_label(cell)}: {what} {value:.3f} < {also}{target:.2f}")

    for cell in report["shares"]:
        below(cell, f1, cell["f1"]["mean"], targets.share_f1)
        below(cell, "mean chatter dropped", cell["chatter_dropped"]["mean"], targets.share_chatter)
    low, high = targets.sizes
    for cell in report["sizes"]:
        if low <= cell["requested_n"] <= high:
            below(cell, f1, cell["f1"]["mean"], targets.size_f1)
            below(cell, "lowest seed's chatter dropped", cell["chatter_dropped"]["min"], targets.size_chatter)
            below(cell, "lowest seed's recall", cell["recall"]["min"], targets.size_recall)
    if len(report["topics"]) > 1:
        for cell in report["shares"] + report["sizes"]:
            base = cell["keyword_baseline"]["f1"]
            also = f"keyword baseline {base:.3f} + {targets.over_baseline:.2f} = "
            below(cell, f1, cell["f1"]["mean"], base + targets.over_baseline, also)
    return misses
