"""The topic filter wired to the store and the CLI: `digest filter`, `digest topics show/explain`, `digest eval`."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from helpers import NOW, run_cli, settings_from
from httpserver import Response, TestServer

from digest import clock
from digest.collect import collect
from digest.pipeline import run_filter
from digest.store import Store

ROOT = Path(__file__).resolve().parents[2]
FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
NAMES = ["rss20.xml", "rss10.rdf", "atom10.xml", "jsonfeed10.json", "jsonfeed11.json", "atom03.xml", "rss092.xml"]


def shipped_topics() -> str:
    """The [[topics]] of the shipped feeds.toml, so the tests exercise what users get."""
    text = (ROOT / "feeds.toml").read_text(encoding="utf-8")
    start = text.index("[[topics]]")
    return text[start : text.index("# ---- News sites", start)]


@pytest.fixture
def filtered(tmp_path: Path, http_server: TestServer) -> Path:
    for name in NAMES:
        http_server.route(f"/{name}", Response((FEEDS / name).read_bytes()))
    sources = "".join(f'[[sources]]\nfeed = "{http_server.url("/" + n)}"\n\n' for n in NAMES)
    settings = settings_from(tmp_path, shipped_topics() + "\n" + sources)
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        run = run_filter(settings, store, now=NOW, period=(NOW - timedelta(days=7), NOW))  # the fixtures' week
    assert run.topics == ("Health IT", "Interoperability", "Digital health")
    return settings.path


def verdicts(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert run_cli("--config", str(config), "topics", "show", "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_decisions_are_recorded_and_shown(filtered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = verdicts(filtered, capsys)
    summary = shown["run"]
    assert summary["posts"] == summary["kept"] + summary["dropped"] > 15
    assert summary["kept"] == len({i["id"] for items in shown["kept"].values() for i in items})
    assert summary["dropped"] == len(shown["dropped"])
    interop = {item["url"] for item in shown["kept"]["Interoperability"]}
    assert "https://hitweekly.example/2026/11/20/fhir-r6-ballot/" in interop
    assert "https://interop-lab.example/2026/11/17/adt-to-fhir" in interop
    dropped = {item["url"] for item in shown["dropped"]}
    assert "https://hitweekly.example/2026/11/14/office-lunch/" in dropped
    assert "https://cdsnotes.example/posts/tulips" in dropped
    telehealth = "https://hitweekly.example/2026/11/18/telehealth-extension/?utm_source=rss&utm_medium=rss"
    assert telehealth in {item["url"] for item in shown["kept"]["Digital health"]}


def test_show_prints_tables(filtered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(filtered), "topics", "show", "--limit", "3") == 0
    out = capsys.readouterr().out
    assert "Interoperability:" in out and "Dropped as off-topic:" in out


def test_explain_gives_scores_thresholds_and_terms(filtered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = verdicts(filtered, capsys)
    ballot = next(i for i in shown["kept"]["Interoperability"] if "fhir-r6-ballot" in i["url"])
    assert run_cli("--config", str(filtered), "topics", "explain", ballot["url"], "--json") == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["id"] == ballot["id"] and "Interoperability" in explained["topics"]
    assert set(explained["thresholds"]) == {"Health IT", "Interoperability", "Digital health"}
    assert any("fhir" in term for term, _ in explained["terms"]["Interoperability"])
    assert run_cli("--config", str(filtered), "topics", "explain", ballot["id"]) == 0
    text = capsys.readouterr().out
    assert "decision: kept under" in text and "threshold" in text and "terms:" in text


def test_explain_unknown_post_is_a_clear_error(filtered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(filtered), "topics", "explain", "nope") == 1
    assert "no stored post has the id or URL 'nope'" in capsys.readouterr().err


def test_filter_command_uses_the_current_window(tmp_path: Path, http_server: TestServer, capsys) -> None:
    fresh = format_datetime(clock.now() - timedelta(days=1), usegmt=True)
    stale = format_datetime(clock.now() - timedelta(days=30), usegmt=True)
    feed = f"""<rss version="2.0"><channel><title>t</title>
      <item><guid>https://t.example/1</guid><title>FHIR R6 ballot opens for comment</title><pubDate>{fresh}</pubDate></item>
      <item><guid>https://t.example/2</guid><title>Our team lunch: tacos and salsa</title><pubDate>{fresh}</pubDate></item>
      <item><guid>https://t.example/3</guid><title>HL7 v2 to FHIR mapping notes</title><pubDate>{stale}</pubDate></item>
    </channel></rss>""".encode()
    http_server.route("/f", Response(feed))
    config = tmp_path / "feeds.toml"
    config.write_text(shipped_topics() + f'\n[[sources]]\nfeed = "{http_server.url("/f")}"\n', encoding="utf-8")
    assert run_cli("--config", str(config), "collect", "--quiet") == 0
    assert run_cli("--config", str(config), "filter", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["posts"] == 2  # the 30-day-old post is outside the 7-day window
    assert summary["kept"] + summary["dropped"] == 2


def test_filter_without_topics_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text("", encoding="utf-8")
    assert run_cli("--config", str(config), "filter") == 1
    assert "no [[topics]] configured" in capsys.readouterr().err


def test_eval_reports_per_topic_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["text,label"]
    rows += [f'"The FHIR {v} release adds new resources for interoperability",Interoperability' for v in range(8)]
    rows += [f'"Lunch today: {dish}, so good",' for dish in ("tacos", "pizza", "sushi", "ramen", "pho", "curry")]
    data = tmp_path / "small.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "feeds.toml"
    config.write_text(shipped_topics(), encoding="utf-8")
    assert run_cli("--config", str(config), "eval", str(data), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["topics"]) == {"Health IT", "Interoperability", "Digital health"}
    assert report["topics"]["Interoperability"]["support"] == 8
    assert report["topics"]["Interoperability"]["recall"] == 1.0
    assert report["off_topic"] == {"rows": 6, "dropped": 1.0}
    assert report["posts_per_second"] > 0


def test_eval_without_label_column_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("body\nhello\n", encoding="utf-8")
    config = tmp_path / "feeds.toml"
    config.write_text(shipped_topics(), encoding="utf-8")
    assert run_cli("--config", str(config), "eval", str(data)) == 1
    assert "no label or text column" in capsys.readouterr().err


def test_preview_writes_the_edition(filtered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "preview.html"
    # The fixture posts are from week 47 of 2026; the edition for that week covers the 7 days before Friday 07:00.
    week = ["--config", str(filtered), "preview", "--week", "2026-W47"]
    assert run_cli(*week, "--out", str(out)) == 0
    html = out.read_text(encoding="utf-8")
    assert "Mapping ADT" in html and "Interoperability" in html
    assert "FHIR R6 ballot opens" not in html  # published after that week's send time: next week's edition
    assert "office lunch" not in html.lower()  # dropped as off-topic
    assert "%%" not in html  # every placeholder filled in
    assert run_cli(*week, "--text", "--topics", "Interoperability") == 0
    text = capsys.readouterr().out
    assert "== Interoperability ==" in text and "== Health IT ==" not in text


def test_preview_rejects_an_unknown_topic(filtered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("--config", str(filtered), "preview", "--topics", "Gardening") == 2
    assert "unknown topic 'Gardening'" in capsys.readouterr().err


def test_noise_section_extends_or_replaces_the_built_in_profile(tmp_path: Path) -> None:
    from digest.pipeline import noise_profile
    from digest.topics import DEFAULT_NOISE

    extended = noise_profile(settings_from(tmp_path, '[noise]\nkeywords = ["#caturday"]\n'))
    assert extended.keywords[-1] == "#caturday" and set(DEFAULT_NOISE.keywords) <= set(extended.keywords)
    replaced = noise_profile(settings_from(tmp_path, '[noise]\nkeywords = ["#caturday"]\nreplace = true\n'))
    assert replaced.keywords == ("#caturday",)
