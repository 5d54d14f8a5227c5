"""Tests of digest.evaluate: scores computed by hand, sampling, the sweep's cells, targets, `digest eval --sweep`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run_cli

from digest import config
from digest.evaluate import TARGETS, Targets, cell_size, check, evaluate, sample_rows, score, sweep
from digest.pipeline import noise_profile
from digest.topics import keyword_matches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "topics"

TOPICS_TOML = """
[[topics]]
name = "Health IT"
description = \"\"\"Health information technology: electronic health records, interoperability standards such as
HL7 and FHIR, health data exchange, telehealth and digital health tools for hospitals, clinicians and patients.\"\"\"
keywords = ["EHR", "electronic health record", "FHIR", "HL7", "interoperability", "health information exchange",
            "telehealth", "telemedicine", "digital health", "patient portal", "#HealthIT", "#HITsm"]

[[topics]]
name = "Climate"
description = \"\"\"Climate change and the energy transition: greenhouse gas emissions, global warming, extreme
weather, renewable energy and climate policy.\"\"\"
keywords = ["climate", "climate change", "global warming", "emissions", "carbon", "methane", "sea level",
            "renewable energy", "solar", "wind", "IPCC", "#ClimateChange"]
"""
SMALL_SHARES = (0.2, 0.5, 0.8)
SMALL_SIZES = (10, 20, 40)
CELL_KEYS = {"sweep", "index", "share", "n", "requested_n", "on_topic", "seeds", "keyword_baseline", "topics"}
STATS = ("f1", "precision", "recall", "chatter_dropped", "wrong_topic")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "topics.toml"
    path.write_text(TOPICS_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def settings(config_path: Path) -> config.Settings:
    return config.load(config_path)


@pytest.fixture(scope="module")
def small() -> tuple[list[str], list[set[str]]]:
    """tests/fixtures/topics_small.csv: 14 Health IT rows, 12 Climate rows, 16 off-topic rows."""
    with (FIXTURES / "topics_small.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [set(filter(None, r["labels"].split(";"))) for r in rows]


@pytest.fixture(scope="module")
def small_sweep(small: tuple[list[str], list[set[str]]], settings: config.Settings) -> dict[str, Any]:
    texts, labels = small
    return sweep(texts, labels, settings.topics, noise=noise_profile(settings), seeds=2)


# --- scores computed by hand ---------------------------------------------------------------------------------


def test_multi_topic_scores_by_hand() -> None:
    labels = [{"A"}, {"A"}, {"B"}, set(), {"A", "B"}, set()]
    kept = [{"A"}, {"B"}, {"B"}, {"A"}, {"A"}, set()]
    report = score(labels, kept, ["A", "B"])
    # A: kept rows 0, 3, 4 (true 0, 4) -> P 2/3; labelled rows 0, 1, 4 -> R 2/3; F1 2/3.
    assert report["topics"]["A"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    # B: kept rows 1, 2 (true 2) -> P 1/2; labelled rows 2, 4 -> R 1/2; F1 1/2.
    assert report["topics"]["B"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["macro_f1"] == round((2 / 3 + 1 / 2) / 2, 4)
    # On-topic rows 0, 1, 2, 4: only row 1 (A, kept under B) is kept under a topic it is not labelled with.
    assert report["wrong_topic"] == 0.25
    # Off-topic rows 3 (kept under A) and 5 (dropped).
    assert report["off_topic"] == {"rows": 2, "dropped": 0.5}


def test_scores_without_kept_posts_or_labels() -> None:
    report = score([set(), set()], [set(), set()], ["A"])
    assert report["topics"]["A"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["off_topic"] == {"rows": 2, "dropped": 1.0} and report["wrong_topic"] == 0.0
    assert score([{"A"}], [{"A"}], [])["macro_f1"] == 0.0


def test_keyword_matches_are_plain_keyword_hits_independent_of_the_batch(settings: config.Settings) -> None:
    texts = [
        "The new #FHIR release is out",
        "Carbon emissions fell again; telehealth is growing",
        "Lunch: tacos",
        "",
    ]
    expected = np.array([[True, False], [True, True], [False, False], [False, False]])
    assert (keyword_matches(texts, settings.topics) == expected).all()
    assert (keyword_matches(texts[1:3], settings.topics) == expected[1:3]).all()
    assert keyword_matches(texts, []).shape == (4, 0)


def test_evaluate_adds_macro_f1_wrong_topic_and_the_keyword_baseline(
    small: tuple[list[str], list[set[str]]], settings: config.Settings
) -> None:
    texts, labels = small
    report = evaluate(texts, labels, settings.topics, noise=noise_profile(settings))
    assert list(report) == ["topics", "off_topic", "posts_per_second", "macro_f1", "wrong_topic", "keyword_baseline"]
    f1s = [row["f1"] for row in report["topics"].values()]
    assert report["macro_f1"] == round(sum(f1s) / len(f1s), 4)
    assert 0 <= report["wrong_topic"] <= 1
    baseline = report["keyword_baseline"]
    assert set(baseline) == {"topics", "off_topic", "macro_f1", "wrong_topic"}
    assert set(baseline["topics"]) == {"Health IT", "Climate"}
    assert baseline["off_topic"]["rows"] == 16
    json.dumps(report)


# --- sampling ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.05, 0.1, 0.2, 0.35, 0.4, 0.5, 0.65, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("size", [30, 60, 120, 250, 900])
def test_sample_has_exactly_the_share_asked(share: float, size: int) -> None:
    on_topic = np.arange(3000) % 2 == 0  # 1,500 of each: every size at every share fits
    rows = sample_rows(on_topic, share, size, np.random.default_rng((0, 1, 2)))
    assert len(rows) == size == len(set(rows.tolist()))
    assert on_topic[rows].sum() == round(share * size)


def test_sample_is_smaller_when_the_data_is_short_and_in_random_order() -> None:
    on_topic = np.r_[np.ones(100, dtype=bool), np.zeros(500, dtype=bool)]
    assert cell_size(100, 500, 0.5, 900) == 200  # 100 on-topic rows are half of 200
    assert cell_size(100, 500, 0.1, 900) == 555  # 500 off-topic rows are 90% of 555
    assert cell_size(26, 16, 0.95, 900) == 27
    rows = sample_rows(on_topic, 0.5, 900, np.random.default_rng(0))
    assert len(rows) == 200 and on_topic[rows].sum() == 100
    assert 0 < on_topic[rows[:100]].sum() < 100  # shuffled, not on-topic rows first
    again = sample_rows(on_topic, 0.5, 900, np.random.default_rng(0))
    assert (rows == again).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        cell_size(100, 500, 1.0, 900)


# --- the sweep -----------------------------------------------------------------------------------------------


def test_sweep_cells_have_sane_fields(small_sweep: dict[str, Any]) -> None:
    report = small_sweep
    assert report["topics"] == ["Health IT", "Climate"]
    assert report["rows"] == {"on_topic": 26, "off_topic": 16}
    assert report["seeds"] == 2 and report["share_size"] == 900 and report["size_share"] == 0.4
    assert [c["share"] for c in report["shares"]] == [0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95]
    assert [c["requested_n"] for c in report["sizes"]] == [30, 60, 120, 250, 500, 1000]
    cells = report["shares"] + report["sizes"]
    assert [c["index"] for c in cells] == list(range(len(cells)))
    for cell in cells:
        assert set(cell) == CELL_KEYS | set(STATS), cell
        assert cell["seeds"] == 2
        assert 0 < cell["n"] <= cell["requested_n"]
        assert cell["n"] == cell_size(26, 16, cell["share"], cell["requested_n"])
        assert cell["on_topic"] == round(cell["share"] * cell["n"])
        for stat in STATS:
            assert 0 <= cell[stat]["min"] <= cell[stat]["mean"] <= 1, (stat, cell)
        assert cell["wrong_topic"]["mean"] <= cell["wrong_topic"]["max"] <= 1
        assert set(cell["keyword_baseline"]) == {"f1", "chatter_dropped"}
        assert all(0 <= v <= 1 for v in cell["keyword_baseline"].values())
        assert set(cell["topics"]) == {"Health IT", "Climate"}
    worst = report["worst"]
    assert set(worst) == {"f1", "chatter_dropped", "recall"}
    assert worst["f1"]["value"] == min(c["f1"]["mean"] for c in cells)
    assert worst["chatter_dropped"]["value"] == min(c["chatter_dropped"]["min"] for c in cells)
    assert worst["recall"]["value"] == min(c["recall"]["min"] for c in cells)
    json.dumps(report)


def test_sweep_is_deterministic(small: tuple[list[str], list[set[str]]], settings: config.Settings) -> None:
    texts, labels = small

    def run(base_seed: int = 0) -> dict[str, Any]:
        return sweep(
            texts, labels, settings.topics, shares=SMALL_SHARES, sizes=SMALL_SIZES, seeds=2, base_seed=base_seed
        )

    first = run()
    assert run() == first
    assert json.dumps(run()) == json.dumps(first)
    assert run(base_seed=1) != first  # other samples


def test_sweep_reports_progress_and_one_topic_has_no_per_topic_table(
    small: tuple[list[str], list[set[str]]], settings: config.Settings
) -> None:
    texts, labels = small
    calls: list[tuple[int, int]] = []
    one = [settings.topics[0]]
    report = sweep(
        texts, labels, one, shares=SMALL_SHARES, sizes=SMALL_SIZES, seeds=2, on_progress=lambda *p: calls.append(p)
    )
    assert calls == [(i, 12) for i in range(1, 13)]
    assert all("topics" not in cell for cell in report["shares"] + report["sizes"])


def test_sweep_needs_both_kinds_of_rows(settings: config.Settings) -> None:
    with pytest.raises(ValueError, match="needs both"):
        sweep(["FHIR R6", "HL7 v2"], [{"Health IT"}, {"Health IT"}], settings.topics)
    with pytest.raises(ValueError, match="seeds"):
        sweep(["FHIR R6", "lunch"], [{"Health IT"}, set()], settings.topics, seeds=0)


# --- targets -------------------------------------------------------------------------------------------------


def _cell(kind: str, share: float, n: int, f1: float, chatter: float, recall: float, kw_f1: float) -> dict[str, Any]:
    stat = {"mean": 0.9, "min": 0.9}
    return {
        "sweep": kind,
        "share": share,
        "n": n,
        "requested_n": n,
        "f1": {"mean": f1, "min": f1},
        "precision": stat,
        "recall": {"mean": recall, "min": recall},
        "chatter_dropped": {"mean": chatter, "min": chatter},
        "wrong_topic": {"mean": 0.0, "min": 0.0, "max": 0.0},
        "keyword_baseline": {"f1": kw_f1, "chatter_dropped": 0.9},
    }


def test_check_lists_each_miss_in_words() -> None:
    report = {
        "topics": ["A", "B"],
        "shares": [_cell("shares", 0.05, 900, 0.75, 0.80, 0.9, 0.5), _cell("shares", 0.5, 900, 0.9, 0.9, 0.9, 0.5)],
        "sizes": [
            _cell("sizes", 0.4, 30, 0.1, 0.1, 0.1, 0.0),  # below every target, but n=30 is outside 60..250
            _cell("sizes", 0.4, 60, 0.77, 0.55, 0.45, 0.7),
            _cell("sizes", 0.4, 500, 0.79, 0.5, 0.4, 0.5),  # outside 60..250 as well
        ],
    }
    assert check(report) == [
        "share 0.05, n=900: mean macro-F1 0.750 < 0.80",
        "share 0.05, n=900: mean chatter dropped 0.800 < 0.85",
        "n=60, share 0.4: mean macro-F1 0.770 < 0.78",
        "n=60, share 0.4: lowest seed's chatter dropped 0.550 < 0.60",
        "n=60, share 0.4: lowest seed's recall 0.450 < 0.50",
        "n=60, share 0.4: mean macro-F1 0.770 < keyword baseline 0.700 + 0.10 = 0.80",
    ]
    one_topic = {**report, "topics": ["A"]}
    assert not any("keyword baseline" in miss for miss in check(one_topic))
    assert check(report, Targets(0, 0, (60, 250), 0, 0, 0, -1)) == []


def test_check_on_a_real_sweep(small_sweep: dict[str, Any]) -> None:
    assert check(small_sweep, Targets(0, 0, (60, 250), 0, 0, 0, -1)) == []
    strict = check(small_sweep, Targets(1.01, 1.01, (0, 10_000), 1.01, 1.01, 1.01, 1.01))
    assert len(strict) == 2 * 9 + 3 * 6 + 15
    assert TARGETS.share_f1 == 0.80 and TARGETS.sizes == (60, 250)


# --- the command ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory: pytest.TempPathFactory, small: tuple[list[str], list[set[str]]]) -> Path:
    path = tmp_path_factory.mktemp("eval") / "labelled.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in zip(*small, strict=True):
            writer.writerow([text, "|".join(sorted(label))])
    return path


def test_cli_eval_sweep_json(config_path: Path, labelled_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(config_path), "eval", str(labelled_csv), "--sweep", "--seeds", "1", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seeds"] == 1 and report["topics"] == ["Health IT", "Climate"]
    assert len(report["shares"]) == 9 and len(report["sizes"]) == 6
    assert report["rows"] == {"on_topic": 26, "off_topic": 16}


def test_cli_eval_sweep_tables(config_path: Path, labelled_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(config_path), "eval", str(labelled_csv), "--sweep", "--seeds", "1") == 0
    text = capsys.readouterr().out
    assert "on-topic share, batches of 900" in text and "batch size, 40% on-topic" in text
    assert "mean F1 per topic (shares)" in text and "keyword" in text
    assert "worst: mean macro-F1" in text
    assert "quality targets missed" in text or "every quality target met" in text


def test_cli_eval_without_sweep(config_path: Path, labelled_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(config_path), "eval", str(labelled_csv), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert {"macro_f1", "wrong_topic", "keyword_baseline"} <= set(report)
    assert run_cli("--config", str(config_path), "eval", str(labelled_csv)) == 0
    text = capsys.readouterr().out
    assert "macro-F1" in text and "keyword baseline" in text and "wrong topic" in text
    assert run_cli("--config", str(config_path), "eval", str(labelled_csv), "--seeds", "2") == 2
    assert "--seeds goes with --sweep" in capsys.readouterr().err


# --- the shared development sets -----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "topics"), [("dev.csv", "dev-topics.toml"), ("multi-dev.csv", "multi-topics.toml")])
def test_sweep_on_the_shared_sets(data: str, topics: str) -> None:
    path = SHARED / data
    if not path.is_file():
        pytest.skip(f"labelled development set not found at {path} (it lives in shared/, beside the repo)")
    from digest.evaluate import read_labelled

    settings = config.load(FIXTURES / topics)
    texts, labels = read_labelled(str(path))
    report = sweep(texts, labels, settings.topics, noise=noise_profile(settings), seeds=1)
    cells = report["shares"] + report["sizes"]
    assert len(cells) == 15 and all(cell["n"] > 0 for cell in cells)
    assert all(isinstance(miss, str) for miss in check(report))
