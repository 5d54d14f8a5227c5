"""`python -m bench --quick --json` runs end to end and reports the documented shape (no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK_ENTRIES = {"collect", "collect_304", "filter", "compose", "send", "weekly"}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout))


def _positive(entry: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert isinstance(entry[key], int | float) and entry[key] > 0, key


@pytest.mark.timeout(600)
def test_every_entry_has_the_common_shape(report: dict[str, Any]) -> None:
    assert isinstance(report["machine"], str) and "cores" in report["machine"]
    assert report["quick"] is True
    benchmarks = report["benchmarks"]
    assert set(benchmarks) == QUICK_ENTRIES
    for name, entry in benchmarks.items():
        assert isinstance(entry["value"], int | float) and entry["value"] > 0, name
        assert isinstance(entry["unit"], str) and entry["unit"], name
        assert isinstance(entry["peak_mb"], int | float) and entry["peak_mb"] > 0, name
        assert isinstance(entry["notes"], list) and all(isinstance(n, str) for n in entry["notes"]), name
        if "baseline" in entry:
            _positive(entry, "baseline", "ratio")
            assert isinstance(entry["baseline_note"], str) and entry["baseline_note"], name
        if "target" in entry:
            assert isinstance(entry["target"], str) and isinstance(entry["target_met"], bool), name
        if "other_cpu_s" in entry:
            assert entry["other_cpu_s"] is None or entry["other_cpu_s"] >= 0, name
    assert set(report["targets"]) == set(benchmarks)  # every entry run is named in the summary
    for name, stated in report["targets"].items():
        entry = benchmarks[name]
        if "target" in entry:
            assert stated == {"target": entry["target"], "met": entry["target_met"]}, name
        else:
            assert stated["met"] is None and stated["target"], name
    assert report["all_met"] is all(t["met"] is True for t in report["targets"].values())


@pytest.mark.timeout(600)
def test_collect_entries(report: dict[str, Any]) -> None:
    collect = report["benchmarks"]["collect"]
    _positive(collect, "baseline", "ratio", "floor", "floor_ratio", "peak_mb")
    assert collect["posts"] == collect["feeds"] * 20
    assert collect["failed"] == 0 and collect["ok"] == collect["feeds"]
    assert isinstance(collect["target"], str) and isinstance(collect["target_met"], bool)

    again = report["benchmarks"]["collect_304"]
    assert again["not_modified"] == again["feeds"] and again["new_posts"] == 0
    assert again["posts"] == again["feeds"] * 20
    assert again["server_requests"] == {"304": again["feeds"]}


@pytest.mark.timeout(600)
def test_filter_entry(report: dict[str, Any]) -> None:
    entry = report["benchmarks"]["filter"]
    assert entry["unit"] == "posts/s"
    assert entry["posts"] == 10_000 and entry["topics"] == 5
    _positive(entry, "seconds", "baseline_seconds", "baseline_peak_mb", "kept")
    assert 0 < entry["kept"] < entry["posts"]
    assert 0 <= entry["macro_f1"] <= 1 and 0 <= entry["baseline_macro_f1"] <= 1
    assert set(entry["f1_by_topic"]) == {
        "Health IT",
        "Interoperability",
        "Digital health",
        "Public health",
        "AI in healthcare",
    }


@pytest.mark.timeout(600)
def test_compose_entry(report: dict[str, Any]) -> None:
    entry = report["benchmarks"]["compose"]
    assert entry["unit"] == "editions/s"
    assert entry["editions"] == 500 and entry["selections"] == 20
    _positive(entry, "seconds", "render_inline_s", "personalize_s", "html_kb_mean")
    assert entry["posts"] >= entry["stories"] > 0


@pytest.mark.timeout(600)
def test_send_entry(report: dict[str, Any]) -> None:
    entry = report["benchmarks"]["send"]
    n = entry["messages"]
    assert entry["unit"] == "messages/s" and n == 300
    assert entry["sent"] == n and entry["failed"] == 0 and entry["deferred"] == 0
    assert entry["statuses"] == {"sent": n}
    assert entry["sink_messages"] == n and entry["sink_recipients"] == n
    assert entry["sink_connections"] == entry["connections"] > 1  # the shipped default, each connection reused
    assert entry["commits"] == 2 * n and entry["editions"] == 20
    _positive(entry, "filter_s", "compose_s", "deliver_s", "deliver_smtp_s", "deliver_commits_s", "fsync_ms")
    assert entry["variant"].startswith("as shipped")


@pytest.mark.timeout(600)
def test_weekly_entry(report: dict[str, Any]) -> None:
    entry = report["benchmarks"]["weekly"]
    assert entry["unit"] == "s"
    assert entry["posts"] == 10_000 and entry["sources"] == 200 and entry["subscribers"] == 50
    assert entry["not_modified"] == entry["sources"] and entry["new_posts"] == 0 and entry["collect_failed"] == 0
    assert entry["server_requests"] == {"304": entry["sources"]}
    assert entry["sent"] == entry["subscribers"] == entry["outbox_files"]
    _positive(entry, "collect_s", "filter_s", "compose_s", "send_s")
    assert entry["breakdown"]["store_posts_load_s"] > 0
    for step in ("collect", "filter", "prepare_editions", "deliver", "send_week"):
        assert entry["steps"][step]["calls"] == 1, step
    # the old job (bench.baseline.COMMIT) ran on a copy of the same store and sent the same week to everyone
    assert entry["baseline_sent"] == entry["subscribers"] and entry["baseline"] > 0
    assert entry["ratio"] == pytest.approx(entry["baseline"] / entry["value"], rel=0.01)
    assert entry["target_met"] is (entry["peak_mb"] <= 300 and entry["ratio"] >= 3)


def test_quality_is_left_out_of_quick_mode_and_skips_without_the_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import BENCHMARKS, quality

    assert BENCHMARKS["quality"] == ("quality", "quality_multi", "quality_cross")
    assert quality.run(True) == {}
    monkeypatch.setattr(quality, "SHARED", tmp_path / "missing")
    entries = quality.run(False)
    assert set(entries) == {"quality", "quality_multi", "quality_cross"}
    for entry in entries.values():
        assert entry["value"] is None and "is not there" in entry["skipped"] and entry["notes"] == [entry["skipped"]]


def test_the_cross_set_keeps_one_topics_rows_on_topic_and_puts_every_other_row_off() -> None:
    from bench import quality

    data, topics, relabel = quality.SETS["quality_cross"]
    assert (data, topics) == ("multi-dev.csv", "dev-topics.toml") and relabel is not None
    labels = [{"Health"}, {"Sports"}, set(), {"Health", "Politics"}]
    assert quality.relabelled(labels, relabel) == [{"Healthcare"}, set(), set(), {"Healthcare"}]


def test_shared_is_left_out_of_quick_mode_and_skips_without_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import BENCHMARKS, shared

    assert BENCHMARKS["shared"] == ("collect_workers", "send_workers")
    assert shared.run(True) == {}
    monkeypatch.setattr(shared, "PG_HELPER", ROOT / "tests" / "missing-pg.py")
    entries = shared.run(False)
    assert set(entries) == {"collect_workers", "send_workers"}
    for entry in entries.values():
        assert entry["value"] is None and "needs a local PostgreSQL" in entry["skipped"]
        assert entry["notes"] == [entry["skipped"]]
