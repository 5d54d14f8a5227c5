"""Benchmark: the topic filter's quality over an evaluation sweep (`digest.evaluate.sweep`) on labelled data.

Entries (full mode only; ``--quick`` returns none, as a sweep takes tens of seconds):

- ``quality``: ``shared/data/topics/dev.csv`` (1,500 health-news rows, 1,500 chatter rows) with the one topic of
  ``tests/fixtures/dev-topics.toml``;
- ``quality_multi``: ``shared/data/topics/multi-dev.csv`` (five topics of 200 rows, 500 chatter rows) with
  ``tests/fixtures/multi-topics.toml``;
- ``quality_cross``: the one topic written for dev.csv on multi-dev.csv's rows, its 200 Health rows on topic and
  every other row off (the other four topics' 800 and the 500 chatter): topic text meeting posts it was not
  written beside, and chatter that is other people's work rather than the noise profile's everyday talk.

Each runs `digest eval --sweep` at 5 seeds, in its own freshly spawned process: batches at on-topic shares from
5% to 95% and at sizes from 30 to 1,000 posts, each scored against the labels. ``value`` is the lowest mean F1
of any cell (macro-F1 with several topics); ``baseline`` is plain keyword matching's mean F1 in that cell;
``target_met`` says whether every target of issue 12 holds (``misses`` lists those that do not); ``sweep`` is
the whole report. This is the one benchmark that reads real data: it lives in ``shared/``, beside the
repository, and the entries say they were skipped, with the reason, when it is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Entry, Stopwatch, cpu_count, in_child, noise_note, other_cpu, rounded

__all__ = ["relabelled", "run"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "topics"
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = 5
SETS = {  # entry -> (labelled data in shared/, topics in tests/fixtures/, relabelling: none, or {label: new})
    "quality": ("dev.csv", "dev-topics.toml", None),
    "quality_multi": ("multi-dev.csv", "multi-topics.toml", None),
    "quality_cross": ("multi-dev.csv", "dev-topics.toml", {"Health": "Healthcare"}),
}
TARGET = "every sweep target of issue 12 (digest.evaluate.TARGETS)"


def run(quick: bool) -> dict[str, Entry]:
    """The sweep on each labelled set; nothing in quick mode."""
    if quick:
        return {}
    entries: dict[str, Entry] = {}
    for name, (data, topics, relabel) in SETS.items():
        path = SHARED / data
        if not path.is_file():
            reason = f"skipped: the labelled set {path} is not there (it lives in shared/, beside the repository)"
            entries[name] = {"value": None, "unit": "F1", "skipped": reason, "notes": [reason]}
            continue
        measured = in_child(_measure, str(path), str(FIXTURES / topics), SEEDS, relabel, name=name)
        entries[name] = _entry(measured, data if relabel is None else f"{data} as {topics}'s one topic")
    return entries


def _measure(data: str, topics: str, seeds: int, relabel: dict[str, str] | None = None) -> dict[str, Any]:
    """One sweep, timed (in a fresh process: see `common.in_child`); with ``relabel``, each row's labels are
    renamed by it and a label it does not name is dropped (the row is off topic)."""
    from digest import config
    from digest.evaluate import check, read_labelled, sweep
    from digest.pipeline import noise_profile

    settings = config.load(topics)
    texts, labels = read_labelled(data)
    if relabel is not None:
        labels = relabelled(labels, relabel)
    with Stopwatch() as clock:
        report = sweep(texts, labels, settings.topics, noise=noise_profile(settings), seeds=seeds)
    return {**clock.as_dict(), "rows": len(texts), "sweep": report, "misses": check(report)}


def relabelled(labels: list[set[str]], relabel: dict[str, str]) -> list[set[str]]:
    """Each row's labels renamed by ``relabel``; a label it does not name is dropped (off topic there)."""
    return [{relabel[t] for t in label if t in relabel} for label in labels]


def _entry(measured: dict[str, Any], data: str) -> Entry:
    report = measured["sweep"]
    cells = report["shares"] + report["sizes"]
    worst = min(cells, key=lambda c: c["f1"]["mean"])
    value, baseline = worst["f1"]["mean"], worst["keyword_baseline"]["f1"]
    several = len(report["topics"]) > 1
    other = other_cpu(measured["machine_cpu_s"], measured["cpu_s"])
    entry: Entry = {
        "value": value,
        "unit": "macro-F1" if several else "F1",
        "size": f"{measured['rows']:,} rows, {len(cells)} cells x {report['seeds']} seeds",
        "rows": measured["rows"],
        "topics": report["topics"],
        "seconds": rounded(measured["wall_s"]),
        "main_cpu_s": rounded(measured["cpu_s"]),
        "other_cpu_s": None if other is None else rounded(other),
        "peak_mb": measured["peak_mb"],
        "worst_cell": report["worst"]["f1"]["cell"],
        "baseline": baseline,
        "baseline_note": "plain keyword matching (kept under every topic one of whose keywords a post contains), "
        "mean F1 over the same samples of the same cell",
        "ratio": rounded(value / baseline, 2) if baseline else None,
        "target": TARGET,
        "target_met": not measured["misses"],
        "misses": measured["misses"],
        "worst": report["worst"],
        "sweep": report,
        "notes": [
            f"{data} from shared/data/topics: value is the lowest mean F1 of any sweep cell (macro-F1 over topics "
            "when there are several), baseline the keyword baseline's in that cell; `misses` lists every target "
            "missed, `sweep` is `digest eval --sweep --json`",
            f"{data} mean F1 by on-topic share: " + _row(report["shares"], "share"),
            f"{data} mean F1 by batch size at share {report['size_share']:g}: " + _row(report["sizes"], "n"),
            f"{data}: {len(measured['misses'])} targets missed" + "".join(f"; {m}" for m in measured["misses"][:3]),
        ],
    }
    noise = noise_note(other, measured["wall_s"], cpu_count())
    if noise:
        entry["notes"].append(noise)
    return entry


def _row(cells: list[dict[str, Any]], key: str) -> str:
    """``0.05 0.314, 0.1 0.702, ...``: each cell's share (or n) and mean F1."""
    return ", ".join(f"{cell[key]:g} {cell['f1']['mean']:.3f}" for cell in cells)
