"""`digest check` warnings (`digest.advice`): what loads but will not work as meant, one
``file:line: key: problem`` line each, on stderr with exit 0, and in ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli, settings_from

from digest.advice import warnings


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_TEST_SECRET", "0123456789abcdef0123456789abcdef")


GOOD = """
[digest]
title = "Health IT weekly"

[mail]
from = "Health IT weekly <digest@health.example>"

[subscription]
public_url = "https://digest.health.example"
secret = "${DIGEST_TEST_SECRET}"

[[sources]]
feed = "https://news.health.example/feed.xml"

[[topics]]
name = "Health IT"
keywords = ["EHR"]

[[topics]]
name = "Telehealth"
description = "Care at a distance: video visits and remote monitoring."
"""

UNMATCHABLE = """
[[topics]]
name = "Health IT"
keywords = ["EHR"]

[[topics]]
name = "Interop"

[[topics]]
name = "Policy"
keywords = []

[[topics]]
name = "health it"
keywords = ["HIPAA"]
"""


def test_a_deployment_set_up_as_meant_has_no_warnings(tmp_path: Path) -> None:
    assert warnings(settings_from(tmp_path, GOOD)) == []


def test_topics_that_can_never_match_are_named_with_their_lines(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, GOOD.split("[[topics]]")[0] + UNMATCHABLE)
    path = settings.path
    lines = path.read_text(encoding="utf-8").splitlines()
    interop = lines.index('name = "Interop"')  # no keywords key: the line of its [[topics]] header
    policy = lines.index("keywords = []") + 1
    case = lines.index('name = "health it"') + 1
    found = warnings(settings)
    assert found == [
        f"{path}:{interop}: topics[2].keywords: topic 'Interop' has no keywords, description or examples, "
        "so the filter can never keep a post under it: add keywords = [...] or a description",
        f"{path}:{policy}: topics[3].keywords: topic 'Policy' has no keywords, description or examples, "
        "so the filter can never keep a post under it: add keywords = [...] or a description",
        f"{path}:{case}: topics[4].name: topic 'health it' differs from topics[1] 'Health IT' only in case: "
        "subscribers and posts cannot tell them apart; merge them or rename one",
    ]


def test_unreachable_preference_links_and_the_default_from_address(tmp_path: Path) -> None:
    follows = '[[sources]]\nfeed = "https://news.health.example/feed.xml"\n'
    settings = settings_from(tmp_path, follows + '[[topics]]\nname = "Health IT"\nkeywords = ["EHR"]\n')
    found = warnings(settings)
    assert [line.split(": ", 2)[1] for line in found] == ["mail.from", "subscription.public_url"]
    assert all(line.startswith(f"{settings.path}: ") for line in found)  # neither key is written: no line
    assert "'digest <digest@localhost>'" in found[0] and "mails to digest@localhost" in found[1]
    mail = '[mail]\nfrom = "a <a@health.example>"\nreply_to = "curator@health.example"\n'
    replies = settings_from(tmp_path, mail + follows + '[[topics]]\nname = "Health IT"\nkeywords = ["EHR"]\n')
    (only,) = warnings(replies)
    assert "mails to curator@health.example that someone must act on" in only


def test_check_prints_warnings_on_stderr_and_in_json_and_still_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_from(tmp_path, GOOD.split("[[topics]]")[0] + UNMATCHABLE)
    assert run_cli("--config", str(settings.path), "check") == 0
    shown = capsys.readouterr()
    assert shown.out.startswith(f"{settings.path}: OK")
    assert [line.split(": ", 3)[2] for line in shown.err.splitlines()] == [
        "topics[2].keywords",
        "topics[3].keywords",
        "topics[4].name",
    ]
    assert all(line.startswith("warning: ") for line in shown.err.splitlines())
    assert run_cli("--config", str(settings.path), "check", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["warnings"]) == 3
    assert report["warnings"][2].endswith("merge them or rename one")


def test_a_file_with_nothing_to_collect_or_keep_is_warned_about(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, GOOD.split("[[sources]]")[0])
    found = [line for line in warnings(settings) if line.split(": ")[1] in ("sources", "topics")]
    assert found == [
        f"{settings.path}: sources: none, so there is nothing to collect: `digest sources add URL` adds one",
        f"{settings.path}: topics: none, so the filter has nothing to keep and `digest filter`, `preview` and "
        "`run` refuse to start: add a [[topics]] with a name and keywords = [...]",
    ]
