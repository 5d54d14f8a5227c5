"""Small builders shared by the tests: settings from TOML text, posts with defaults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from digest import config
from digest.models import Author, Post

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# A [digest] schedule whose send time is NOW: the edition completed at NOW (2026-W47) holds the posts
# of the week before it, so a test that sends at NOW sends the posts it dated a little earlier.
SEND_AT_NOW = 'send_on = "saturday 12:00"'
LAST_SEND = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # the default send_on (friday 07:00 UTC) last passed at NOW

# Fast, strict collection settings for tests: short timeouts, quick retries, and a source fetched again
# by every run (collecting twice in a row is what many tests do; tests of sharing set refetch_after).
TEST_COLLECT = """
[collect]
connect_timeout = 2
read_timeout = 2
total_timeout = 5
retries = 1
max_retry_after = 2
refetch_after = 0
"""

# The smallest config that composes and sends: one topic, one reader listed in the file.
ONE_TOPIC = """
[[topics]]
name = "Interoperability"
keywords = ["FHIR", "HL7"]

[[subscribers]]
email = "ana@example.org"
"""


def settings_from(tmp_path: Path, body: str, *, collect: str = TEST_COLLECT) -> config.Settings:
    """Write a feeds.toml into tmp_path and load it, with the test [collect] section unless given."""
    path = tmp_path / "feeds.toml"
    path.write_text(collect + "\n" + body, encoding="utf-8")
    return config.load(path)


def make_post(uri: str = "https://example.org/p/1", **changes: object) -> Post:
    """A post with plausible defaults; ``changes`` override fields."""
    from digest.urls import post_id

    post = Post(
        id=post_id(uri),
        uri=uri,
        source="feed:https://example.org/feed",
        url=uri,
        published=NOW,
        author=Author("Ada", "@ada@example.org", "https://example.org/@ada"),
        text="FHIR R6 ballot opens",
        html="<p>FHIR R6 ballot opens</p>",
    )
    return replace(post, **changes)


def run_cli(*argv: str) -> int:
    """Run the ``digest`` entry point in-process and return its exit status."""
    from digest.cli import main

    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
