"""`python -m bench --quick --json` runs end to end and reports the documented shape (no timing thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_quick_benchmark_reports_every_entry() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)

    assert isinstance(report["machine"], str) and "cores" in report["machine"]
    benchmarks = report["benchmarks"]
    assert {"collect", "collect_304"} <= set(benchmarks)
    for name, entry in benchmarks.items():
        assert isinstance(entry["value"], int | float) and entry["value"] > 0, name
        assert isinstance(entry["unit"], str) and entry["unit"], name

    collect = benchmarks["collect"]
    for key in ("baseline", "ratio", "floor", "floor_ratio", "peak_mb"):
        assert isinstance(collect[key], int | float) and collect[key] > 0, key
    assert collect["posts"] == collect["feeds"] * 20
    assert collect["failed"] == 0 and collect["ok"] == collect["feeds"]
    assert isinstance(collect["target"], str) and isinstance(collect["target_met"], bool)
    assert collect["baseline_note"]

    again = benchmarks["collect_304"]
    assert again["not_modified"] == again["feeds"] and again["new_posts"] == 0
    assert again["posts"] == again["feeds"] * 20
    assert again["server_requests"] == {"304": again["feeds"]}
