"""The command line's wording: one error style (``error: ...``), bad usage exits 2, counts in the
singular when there is one, and a start line and a browser note that say what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import NOW, ONE_TOPIC, make_post, run_cli, settings_from

from digest.cli import _serving_line
from digest.store import Store

CONFIG = ONE_TOPIC


def test_click_usage_errors_are_in_the_one_error_style(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(settings_from(tmp_path, CONFIG).path)
    assert run_cli("--config", config, "send", "--bogus") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: No such option '--bogus'." and "Error:" not in err
    assert err.startswith("Usage: digest send [OPTIONS]")


def test_one_subscriber_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(settings_from(tmp_path, CONFIG).path)
    assert run_cli("--config", config, "subscribers", "add", "ana@example.org", "--confirmed") == 0
    assert run_cli("--config", config, "subscribers", "export", str(tmp_path / "people.csv")) == 0
    assert capsys.readouterr().err.strip() == f"wrote 1 subscriber to {tmp_path / 'people.csv'}"
    assert run_cli("--config", config, "send", "--dry-run") == 0
    assert "; 1 confirmed subscriber\n" in capsys.readouterr().out


def test_the_serve_line_says_where_readers_reach_it_once() -> None:
    assert _serving_line("http://127.0.0.1:8080/", "127.0.0.1", 8080, False) == (
        "serving the subscription pages on http://127.0.0.1:8080; collecting and sending on the schedule"
    )
    assert _serving_line("https://digest.example.org", "127.0.0.1", 8080, True) == (
        "serving the subscription pages on http://127.0.0.1:8080 (readers reach it at https://digest.example.org); "
        "no schedule (--no-schedule)"
    )


def test_preview_open_with_no_browser_says_so(tmp_path: Path) -> None:
    """A real process with no browser to find: no DISPLAY, no BROWSER, a PATH of Python alone."""
    settings = settings_from(tmp_path, CONFIG)
    with Store.open(settings.database_url) as store:
        store.add_posts("feed:x", [make_post(text="FHIR R6 ballot opens", published=NOW - timedelta(hours=1))])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env["PATH"] = str(Path(sys.executable).parent)  # DIGEST_NOW stays: the edition in progress has the post
    out = tmp_path / "p.html"
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(settings.path), "preview", "--open", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and out.exists(), done.stderr
    assert done.stderr.splitlines()[-1] == f"no web browser found to open it; open {out} yourself"
