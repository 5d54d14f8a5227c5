"""The composer: golden editions (HTML and text), escaping, strict templates, quiet weeks and personalization.

Regenerate the golden files only on purpose: ``DIGEST_REGEN_GOLDEN=1 python -m pytest tests/compose/test_compose.py``.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape as html_escape
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pytest
from helpers import make_post

from digest import feedback
from digest.compose import (
    PLACEHOLDERS,
    Composer,
    Edition,
    compose_issue,
    edition_path,
    inline_css,
    personalize,
    week_bounds,
    zone_label,
)
from digest.errors import DigestError
from digest.models import Author, Engagement, Media, Post
from digest.periods import week_of
from digest.urls import post_id

GOLDEN = Path(__file__).parents[1] / "golden"
REGEN = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # Friday of ISO week 2026-W47
WEEK = "2026-W47"
FHIR, PRIVACY, AI = "FHIR & interoperability", "Privacy & security", "AI in care"
TOPICS = (FHIR, PRIVACY, AI)
SETTINGS = {
    "title": "Health IT Weekly",
    "timezone": "America/New_York",
    "week": WEEK,
    "now": NOW,
    "public_url": "https://digest.example.org",
}

GRAHAME = Author("Grahame Grieve", "@grahame@fhir.social", "https://fhir.social/@grahame")
ANA_M = Author("Dr. Ana Ruiz", "@anaruiz@med-mastodon.com", "https://med-mastodon.com/@anaruiz")
ANA_B = Author("Dr. Ana Ruiz", "anaruiz.bsky.social", "https://bsky.app/profile/anaruiz.bsky.social")
ONC = Author("HealthIT.gov", "", "https://www.healthit.gov/")
BEA = Author("Bea Nurse", "@bea@mastodon.social", "https://mastodon.social/@bea")
KARL = Author("Karl Informaticist", "@karl@hachyderm.io", "https://hachyderm.io/@karl")
MIA = Author("Mia Chen", "@mia@mstdn.science", "https://mstdn.science/@mia")
TEFCA = "https://www.healthit.gov/news/tefca-500-participants"


def post(uri: str, author: Author, day: int, hour: int, text: str, **fields: object) -> Post:
    """A post of the sample week; ``html`` defaults to the text as one paragraph."""
    fields.setdefault("html", f"<p>{text}</p>")
    fields.setdefault("url", uri)
    fields.setdefault("source", f"mastodon:{author.handle}")
    published = datetime(2026, 11, day, hour, 5, tzinfo=UTC)
    return Post(id=post_id(uri), uri=uri, author=author, published=published, text=text, **fields)  # type: ignore[arg-type]


def sample_week() -> tuple[list[Post], dict[str, dict[str, float]]]:
    """Posts covering a boost and its original, a cross-post, a CW, sensitive media, an image with alt,
    a link shared by 3 accounts, hostile HTML, a long article, off-topic posts; kept under 2+ topics."""
    ballot = post(
        "https://fhir.social/@grahame/1001",
        GRAHAME,
        17,
        14,
        "The FHIR R6 ballot is open. Comments are due 15 December. https://hl7.org/fhir/6.0.0-ballot3/ #FHIR",
        html='<p>The FHIR R6 ballot is open. Comments are due 15 December. <a href="https://hl7.org/fhir/6.0.0-ballot3/"'
        ' rel="nofollow noopener" target="_blank"><span class="invisible">https://</span><span class="ellipsis">'
        'hl7.org/fhir/6.0.0-ballot</span><span class="invisible">3/</span></a> <a href="https://fhir.social/tags/FHIR"'
        ' class="mention hashtag" rel="tag">#<span>FHIR</span></a></p>',
        tags=("FHIR",),
        links=("https://hl7.org/fhir/6.0.0-ballot3/",),
        engagement=Engagement(replies=12, boosts=40, likes=120),
    )
    boost = replace(ballot, source="mastodon:@bea@mastodon.social", is_boost=True, boosted_by="@bea@mastodon.social")
    cross_text = "Patients should not need a fax machine to get their own records. Part 2 of our access study is out."
    cross_mastodon = post(
        "https://med-mastodon.com/@anaruiz/2002",
        ANA_M,
        18,
        16,
        cross_text,
        engagement=Engagement(replies=3, boosts=8, likes=31),
    )
    cross_bluesky = post(
        "at://did:plc:ana/app.bsky.feed.post/3k2",
        ANA_B,
        18,
        16,
        cross_text,
        url="https://bsky.app/profile/anaruiz.bsky.social/post/3k2",
        source="bluesky:anaruiz.bsky.social",
        engagement=Engagement(replies=1, boosts=2, likes=9),
    )
    content_warning = post(
        "https://mastodon.social/@bea/3003",
        BEA,
        19,
        2,
        "A long night on the ward and what our EHR downtime procedures got wrong.",
        content_warning="patient death, burnout",
    )
    sensitive = post(
        "https://hachyderm.io/@karl/4004",
        KARL,
        18,
        9,
        "Screenshot of the breach notice letter we got today.",
        media=(Media("https://files.hachyderm.io/media/letter.png", "image", "A scanned letter"),),
        sensitive=True,
    )
    chart = post(
        "https://mstdn.science/@mia/5005",
        MIA,
        19,
        15,
        f"TEFCA passed 500 participants this quarter. Chart from the ONC update: {TEFCA}",
        html=f'<p>TEFCA passed 500 participants this quarter. Chart from the ONC update: <a href="{TEFCA}">'
        "ONC: TEFCA reaches 500 participants</a></p>",
        links=(TEFCA,),
        media=(
            Media(
                "https://files.mstdn.science/media/tefca-chart.png",
                "image",
                "Bar chart: TEFCA participants by quarter, rising from 120 to 512",
            ),
        ),
        engagement=Engagement(replies=4, boosts=22, likes=64),
    )
    onc_article = post(
        TEFCA,
        ONC,
        19,
        13,
        "Five hundred organizations now exchange records through TEFCA. " + "The update covers QHIN onboarding. " * 30,
        title="TEFCA reaches 500 participants",
        source="feed:https://www.healthit.gov/feeds/news.xml",
        html='<p>Five hundred organizations now exchange records through TEFCA.<img src="https://feeds.feedburner.com/~r/onc/~4/px"'
        ' width="1" height="1"></p><script>alert("x")</script><p onclick="steal()">See the <a href="/tefca/faq">FAQ</a>'
        ' and the <a href="javascript:alert(1)">dashboard</a>.</p>'
        + "<p>The update covers QHIN onboarding, exchange purposes and the fees for each. </p>"
        * 12,
        links=(TEFCA, "https://www.healthit.gov/tefca/faq"),
    )
    karl_share = post(
        "https://hachyderm.io/@karl/4010",
        KARL,
        20,
        8,
        f"Good news for nationwide exchange {TEFCA}",
        html=f'<p>Good news for nationwide exchange <a href="{TEFCA}?utm_source=mastodon">{TEFCA}</a></p>',
        links=(TEFCA,),
        engagement=Engagement(replies=0, boosts=1, likes=5),
    )
    hostile = post(
        "https://mastodon.social/@bea/3010",
        BEA,
        16,
        11,
        "Cards render untrusted text.",
        title="Why <script> tags never belong in CDS Hooks cards",
        html='<p>Cards render <b onmouseover="alert(1)">untrusted</b> text.<script>alert("card")</script>'
        '<img src="data:image/png;base64,iVBOR" alt="inline"><style>@import url(https://fonts.example/f.css)</style></p>',
    )
    hipaa = post(
        "https://www.hhs.gov/hipaa/news/2026-11-16",
        Author("HHS OCR", "", "https://www.hhs.gov/ocr"),
        16,
        15,
        "OCR finalizes the HIPAA Security Rule update: encryption and MFA become required safeguards.",
        title="HIPAA Security Rule update finalized",
        source="feed:https://www.hhs.gov/hipaa/rss.xml",
    )
    lunch = post("https://mastodon.social/@bea/3020", BEA, 18, 17, "Lunch! Best ramen in town 🍜")
    cat = post("https://hachyderm.io/@karl/4020", KARL, 19, 20, "My cat sat on the keyboard during standup.")
    ai = post(
        "https://mstdn.science/@mia/5010",
        MIA,
        17,
        10,
        "Ambient AI scribes cut note time by 20% in our pilot, but accuracy checks still take a clinician.",
    )
    posts = [
        ballot,
        boost,
        cross_mastodon,
        cross_bluesky,
        content_warning,
        sensitive,
        chart,
        onc_article,
        karl_share,
        hostile,
        hipaa,
        lunch,
        cat,
        ai,
    ]
    kept = {
        ballot.id: {FHIR: 0.82},
        cross_mastodon.id: {FHIR: 0.41, PRIVACY: 0.55},
        cross_bluesky.id: {PRIVACY: 0.52},
        content_warning.id: {FHIR: 0.33},
        sensitive.id: {PRIVACY: 0.61},
        chart.id: {FHIR: 0.74},
        onc_article.id: {FHIR: 0.69},
        karl_share.id: {FHIR: 0.35},
        hostile.id: {FHIR: 0.38, PRIVACY: 0.3},
        hipaa.id: {PRIVACY: 0.9},
        ai.id: {AI: 0.7},
    }
    return posts, kept


def composer(**changes: object) -> Composer:
    posts, kept = sample_week()
    return Composer(posts, kept, **{**SETTINGS, "topics": TOPICS, **changes})  # type: ignore[arg-type]


def sample_edition() -> Edition:
    """The golden edition for a reader of two topics, personalized with fixed example links."""
    edition = composer().edition([PRIVACY, FHIR])
    assert edition is not None
    return personalize(
        edition,
        unsubscribe_url="https://digest.example.org/unsubscribe?token=abc&list=weekly",
        preferences_url="https://digest.example.org/preferences?token=abc",
        name="Ada",
    )


def scrub(text: str) -> str:
    """Editions carry no clock, random or version values by design; only line ends are normalized."""
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


@pytest.mark.parametrize("name", ["edition.html", "edition.txt"])
def test_golden_edition(name: str) -> None:
    edition = sample_edition()
    actual = scrub(edition.html if name.endswith(".html") else edition.text)
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with DIGEST_REGEN_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; review, then DIGEST_REGEN_GOLDEN=1"


def test_edition_is_deterministic_whatever_the_input_order() -> None:
    posts, kept = sample_week()
    first = compose_issue(posts, kept, topics=[FHIR, PRIVACY], **SETTINGS)  # type: ignore[arg-type]
    again = compose_issue(list(reversed(posts)), kept, topics=[FHIR, PRIVACY], **SETTINGS)  # type: ignore[arg-type]
    assert first == again


def test_what_an_edition_shows() -> None:
    edition = sample_edition()
    html, text = edition.html, edition.text
    assert edition.subject == "Health IT Weekly: 16–22 November 2026"
    assert edition.topics == (FHIR, PRIVACY)  # configured order, whatever the subscriber's order
    # 14 posts, a boost and a cross-post: 12 read, each counted once
    assert "12 posts read from 8 sources: 9 on topic, 1 on topics you did not choose, 2 off-topic left out." in text
    # the boost and its original appear once, with who boosted it
    assert html.count("The FHIR R6 ballot is open") == 2  # the card and the preheader
    assert "boosted by @bea@mastodon.social" in text
    # the cross-post appears once, with a link to its copy
    assert text.count("Patients should not need a fax machine") == 1
    assert "Also on Mastodon" in html
    # content warning and sensitive media: the warning and a link, not the content
    assert "A long night on the ward" not in html + text
    assert (
        "Content warning: patient death, burnout\n  Open the post to read it: https://mastodon.social/@bea/3003" in text
    )
    assert "breach notice letter" not in html + text and "letter.png" not in html
    assert "Sensitive media: the author marked this post's media as sensitive" in text
    # the image keeps its alt text; the shared link has its page title and 3 accounts
    assert 'alt="Bar chart: TEFCA participants by quarter, rising from 120 to 512"' in html
    assert "1. TEFCA reaches 500 participants" in text
    assert "shared by 3 accounts: @karl@hachyderm.io, @mia@mstdn.science, HealthIT.gov" in text
    # off-topic posts and topics the reader does not follow are absent
    assert "ramen" not in html and "Ambient AI" not in html
    assert "2 off-topic posts were left out this week." in text
    assert "https://digest.example.org/editions/2026-W47/left-out" in html


def test_post_html_is_sanitized_and_text_escaped() -> None:
    html = sample_edition().html
    body = html.split("<body", 1)[1]
    assert "<script" not in body and "alert(" not in body and "onmouseover" not in body and "onclick" not in body
    assert "Why &lt;script&gt; tags never belong in CDS Hooks cards" in body
    assert "javascript:" not in body and "data:image" not in body and "@import" not in html
    assert 'href="https://www.healthit.gov/tefca/faq"' in body  # relative link made absolute
    assert "feedburner" not in body  # tracking pixel dropped
    assert "Read the rest" in body  # the long article is shortened


def test_css_is_inlined_and_media_queries_kept_with_important() -> None:
    html = sample_edition().html
    assert 'class="card" style="' in html
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S)
    assert len(styles) == 1
    assert "@media only screen and (max-width: 600px)" in styles[0]
    assert "@media (prefers-color-scheme: dark)" in styles[0]
    assert "!important" in styles[0] and ".card {" not in styles[0].split("@media")[0]
    assert "<link" not in html and "<script" not in html
    assert 'width="560"' in html and 'width="auto"' not in html  # Outlook's image cap survives inlining


def test_placeholders_survive_rendering_and_inlining() -> None:
    edition = composer().edition([FHIR])
    assert edition is not None
    for token in PLACEHOLDERS.values():
        assert token in edition.html and token in edition.text


def test_personalize_fills_placeholders_and_changes_nothing_else() -> None:
    edition = composer().edition([FHIR, PRIVACY])
    assert edition is not None
    values = {"unsubscribe_url": "https://x.org/unsub?t=1&l=2", "preferences_url": "https://x.org/prefs?t=1"}
    ada = personalize(edition, **values, name="Ada <3")
    bob = personalize(edition, **values, name="")
    for copy in (ada, bob):
        assert "%%" not in copy.html and "%%" not in copy.text
    assert (
        'href="https://x.org/unsub?t=1&amp;l=2"' in ada.html and "Unsubscribe: https://x.org/unsub?t=1&l=2" in ada.text
    )
    assert "Hi Ada &lt;3," in ada.html and "Hi Ada <3," in ada.text and "Hello," in bob.text
    # put the tokens back where the values went: exactly the shared edition again
    html, text = ada.html, ada.text
    for name, token in PLACEHOLDERS.items():
        value = {"greeting": "Hi Ada <3,", **values}[name]
        html, text = html.replace(html_escape(value), token), text.replace(value, token)
    # ... less the blocks that carry a reader's feedback links, which a copy with no reader leaves out
    assert "%%FB%%" in edition.html and "%%FB%%" in edition.text
    assert (html, text) == (feedback.strip(edition.html), feedback.strip(edition.text))
    assert (ada.subject, ada.topics, ada.path) == (edition.subject, edition.topics, edition.path)


def test_a_post_cannot_carry_a_placeholder() -> None:
    posts, kept = sample_week()
    sneaky = post(
        "https://mastodon.social/@bea/3999",
        BEA,
        20,
        9,
        "Unsubscribe here: %%UNSUBSCRIBE_URL%%",
        title="%%GREETING%%",
        html='<p>Unsubscribe <a href="https://evil.example/%%UNSUBSCRIBE_URL%%">here</a>: %%UNSUBSCRIBE_URL%%</p>',
    )
    kept[sneaky.id] = {FHIR: 0.99}
    edition = compose_issue([*posts, sneaky], kept, topics=[FHIR], **SETTINGS)  # type: ignore[arg-type]
    assert edition is not None
    filled = personalize(edition, unsubscribe_url="https://x.org/secret", preferences_url="https://x.org/p", name="A")
    assert filled.html.count("https://x.org/secret") == 1 and filled.text.count("https://x.org/secret") == 1


def test_empty_week_sends_nothing_unless_quiet_week() -> None:
    posts, _ = sample_week()
    assert compose_issue(posts, {}, topics=[FHIR], **SETTINGS) is None  # type: ignore[arg-type]
    assert compose_issue([], {}, topics=[FHIR], **SETTINGS) is None  # type: ignore[arg-type]
    quiet = compose_issue([], {}, topics=[FHIR], quiet_week=True, **SETTINGS)  # type: ignore[arg-type]
    assert quiet is not None
    assert f"A quiet week: nothing new on {FHIR}. See you next week." in quiet.text
    assert "A quiet week: nothing new on FHIR &amp; interoperability." in quiet.html
    only_ai = composer(quiet_week=False).edition([AI])
    assert only_ai is not None and "Ambient AI scribes" in only_ai.text


def test_sections_cap_each_author() -> None:
    posts = [
        post(f"https://fhir.social/@grahame/{i}", GRAHAME, 17, 8 + i, f"FHIR note number {i} on subscriptions")
        for i in range(6)
    ]
    kept = {p.id: {FHIR: 0.8} for p in posts}
    edition = compose_issue(posts, kept, topics=[FHIR], **SETTINGS)  # type: ignore[arg-type]
    assert edition is not None
    assert edition.text.count("* Grahame Grieve") == 3
    assert "The top 3 of 6 posts this week" in edition.text


def test_strict_undefined_raises(tmp_path: Path) -> None:
    (tmp_path / "_footer.html").write_text("<p>Thanks</p>\n<p>{{ no_such_variable }}</p>", encoding="utf-8")
    with pytest.raises(DigestError, match=r"_footer.html:2: 'no_such_variable' is undefined") as caught:
        composer(templates_dir=tmp_path).edition([FHIR])
    assert isinstance(caught.value.__cause__, jinja2.UndefinedError)
    other = tmp_path / "other"
    other.mkdir()
    (other / "_section.html").write_text("<h2>{{ section.no_such_field }}</h2>", encoding="utf-8")
    with pytest.raises(DigestError, match=r"_section\.html:1: .* has no attribute 'no_such_field'"):
        composer(templates_dir=other).edition([FHIR])


def test_a_broken_user_template_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "_footer.html").write_text("<p>\n{% if %}</p>", encoding="utf-8")
    with pytest.raises(DigestError, match=r"_footer.html:2: "):
        composer(templates_dir=tmp_path).edition([FHIR])


def test_user_templates_override_single_templates(tmp_path: Path) -> None:
    (tmp_path / "_footer.html").write_text("<p>Sent by the clinic IT team.</p>", encoding="utf-8")
    edition = composer(templates_dir=tmp_path).edition([FHIR])
    assert edition is not None
    assert "Sent by the clinic IT team." in edition.html
    assert 'class="card"' in edition.html  # every other template still from the package


def test_templates_come_from_the_package_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "edition.html").write_text("HIJACKED", encoding="utf-8")
    (tmp_path / "edition.html").write_text("HIJACKED", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    edition = composer().edition([FHIR])
    assert edition is not None and "HIJACKED" not in edition.html


def test_inlining_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during composing: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    page = '<html><head><link rel="stylesheet" href="https://fonts.example/f.css"><style>p{color:red}</style></head>'
    assert 'style="color:red"' in inline_css(page + "<body><p>x</p></body></html>")
    assert composer().edition([FHIR, PRIVACY]) is not None


def test_one_render_per_selection() -> None:
    made = composer()
    first = made.edition([FHIR, PRIVACY])
    assert made.edition([PRIVACY, FHIR, FHIR]) is first


def test_weeks() -> None:
    start, end = week_bounds("2026-W47", "America/New_York")
    assert start == datetime(2026, 11, 16, tzinfo=ZoneInfo("America/New_York"))
    assert end == datetime(2026, 11, 23, tzinfo=ZoneInfo("America/New_York"))
    assert week_of(NOW, "UTC") == "2026-W47"
    assert week_of(datetime(2026, 11, 23, 3, tzinfo=UTC), "America/Los_Angeles") == "2026-W47"
    assert week_of(datetime(2027, 1, 1, 12, tzinfo=UTC), "UTC") == "2026-W53"
    with pytest.raises(DigestError, match="ISO week"):
        week_bounds("2026-47", "UTC")
    assert edition_path(WEEK, [FHIR, PRIVACY]) == "editions/2026-W47/fhir-interoperability+privacy-security"


def test_personalizing_many_readers_is_cheap() -> None:
    """Composing is once per selection; a subscriber's copy costs a substitution, not an inlining."""
    made = composer()
    started = time.perf_counter()
    edition = made.edition([FHIR, PRIVACY])
    compose_seconds = time.perf_counter() - started
    assert edition is not None
    started = time.perf_counter()
    for i in range(200):
        personalize(edition, unsubscribe_url=f"https://x.org/u/{i}", preferences_url=f"https://x.org/p/{i}", name="A")
    per_reader = (time.perf_counter() - started) / 200
    assert per_reader * 50 < compose_seconds, (per_reader, compose_seconds)


def _assign_by_definition(c: Composer, selection: tuple[str, ...]) -> dict[str, list[str]]:
    """What `Composer.assign` means, walked story by story (as it was before the score matrix)."""
    by_topic: dict[str, list[str]] = {topic: [] for topic in selection}
    for story in c.stories:
        topics = c.kept[story.post.id]
        mine = [t for t in selection if t in topics]
        if mine and story.post.id not in c.in_recap:
            by_topic[max(mine, key=lambda t: (topics[t], -selection.index(t)))].append(story.post.id)
    return by_topic


def test_assign_places_each_story_as_defined_in_every_selection() -> None:
    """The score matrix puts every story where the definition does: its best selected topic, a tie to the
    topic first in the selection, oldest first; stories kept under no selected topic nowhere."""
    import itertools
    import random

    rng = random.Random(7)
    topics = (FHIR, PRIVACY, AI, "Public health")
    posts, kept = [], {}
    for n in range(300):
        post = make_post(f"https://example.org/p/{n}", published=NOW - timedelta(minutes=n), text=f"post {n}")
        posts.append(post)
        chosen = rng.sample(topics, rng.randint(0, 3))
        kept[post.id] = {t: rng.choice((0.2, 0.5, 0.5, 0.9)) for t in chosen}  # few values: many ties
    c = Composer(posts, kept, **{**SETTINGS, "topics": topics})  # type: ignore[arg-type]
    assert any(len(set(k.values())) < len(k) for k in kept.values())  # ties are exercised
    for size in range(1, len(topics) + 1):
        for picked in itertools.combinations(topics, size):
            got = {t: [s.post.id for s in stories] for t, stories in c.assign(picked).items()}
            assert got == _assign_by_definition(c, picked), picked


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("America/New_York", "New York time"),
        ("America/Argentina/Buenos_Aires", "Buenos Aires time"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("Etc/GMT+5", "Etc/GMT+5"),
    ],
)
def test_time_zones_are_said_in_words(zone: str, said: str) -> None:
    assert zone_label(zone) == said
    assert zone_label(ZoneInfo(zone)) == said
