"""Hashtag chat recaps: the [[chats]] settings, chat windows, question and answer matching over
hand-made #HITsm chats (``fixtures/chats``), reply threading from the collectors to the store, the
recap in an edition (golden files), the curator's commands and the schedule during a chat.

Regenerate the golden files only on purpose: ``DIGEST_REGEN_GOLDEN=1 python -m pytest tests/test_chats.py``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from collect.test_mastodon import api, configure, pager, serve_alice
from compose.test_compose import FHIR, GOLDEN, PRIVACY, REGEN, SETTINGS, TOPICS, sample_week, scrub
from helpers import run_cli, settings_from
from httpserver import Response, TestServer

from digest import config
from digest.chats import Recap, _answer_label, _question_label, chat_windows, current_or_next_window, open_chats, recap
from digest.collect.bluesky import post_view_post
from digest.collect.mastodon import status_post
from digest.compose import Composer, chat_text, personalize
from digest.errors import ConfigError
from digest.models import Author, Engagement, Post
from digest.periods import last_completed
from digest.pipeline import chat_recaps, composer_for
from digest.schedule import CHAT_EVERY, Scheduler, chat_job, collect_slot
from digest.store import SCHEMA_VERSION, Store
from digest.urls import post_id

FIX = Path(__file__).parent / "fixtures"
NY = "America/New_York"
WINDOW = (datetime(2026, 11, 20, 17, 0, tzinfo=UTC), datetime(2026, 11, 20, 18, 0, tzinfo=UTC))
AFTER_CHAT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # the Saturday after the chat


# -- the fixtures ---------------------------------------------------------------------------------


class Chat:
    """A fixture chat: its settings, its posts (by key) and the filter's topic scores."""

    def __init__(self, name: str) -> None:
        data = tomllib.loads((FIX / "chats" / f"{name}.toml").read_text(encoding="utf-8"))
        spec = dict(data["chat"])
        self.timezone = spec.pop("timezone")
        day = date.fromisoformat(spec.pop("date"))
        self.settings = config.ChatSettings(**spec)
        self.posts: dict[str, Post] = {}
        self.scores: dict[str, float] = {}
        for item in data["posts"]:
            self.posts[item["key"]] = made = self._post(item, day)
            if "topic" in item:
                self.scores[made.id] = float(item["topic"])

    def _post(self, item: dict[str, Any], day: date) -> Post:
        at = datetime.combine(day, time.fromisoformat(item["at"]), UTC)
        if "boost_of" in item:
            return replace(self.posts[item["boost_of"]], is_boost=True, boosted_by=item["author"], published=at)
        user, server = item["author"].lstrip("@").split("@")
        url, uri = f"https://{server}/@{user}/{item['id']}", f"https://{server}/users/{user}/statuses/{item['id']}"
        parent = self.posts.get(item.get("reply_to", ""))
        in_reply_to = ""
        if parent is not None:
            local = f"{parent.url.split('/')[2]}:{parent.url.rsplit('/', 1)[1]}"
            in_reply_to = local if item.get("reply_form") == "local" else parent.url
        text = item["text"]
        return Post(
            id=post_id(uri),
            uri=uri,
            source="hashtag:#HITsm@mastodon.social",
            url=url,
            published=at,
            author=Author(user.capitalize(), item["author"], f"https://{server}/@{user}"),
            text=text,
            html=f"<p>{text}</p>",
            tags=tuple(re.findall(r"#(\w+)", text)),
            is_reply=parent is not None,
            in_reply_to=in_reply_to,
            engagement=Engagement(item.get("replies", 0), item.get("boosts", 0), item.get("likes", 0)),
        )

    def recap(self, scores: bool = True, **options: Any) -> Recap:
        return recap(list(self.posts.values()), self.settings, WINDOW, self.scores if scores else None, **options)

    def keys(self, posts: tuple[Post, ...] | list[Post]) -> list[str]:
        by_id = {p.id: k for k, p in self.posts.items() if not p.is_boost}
        return [by_id[p.id] for p in posts]


def answers(chat: Chat, made: Recap) -> dict[str, list[str]]:
    return {q.label: chat.keys(q.answers) for q in made.questions}


# -- recap(): the host's chat ---------------------------------------------------------------------


def test_host_questions_in_order_with_the_best_answers_under_each() -> None:
    chat = Chat("hitsm_host")
    made = chat.recap()
    assert made.mode == "host"
    assert [(q.label, q.text) for q in made.questions] == [
        ("T1", "What keeps patients from using their portal?"),
        ("T2", "Should portals show test results before the doctor has seen them?"),
        ("T3a", "Which portal feature do your patients use most?"),
        ("T3b", "And which one do they never find?"),
        ("Q4", "What one change would double portal use next year?"),
    ]
    assert [chat.keys([q.post]) for q in made.questions] == [
        ["host-t1"],
        ["host-t2"],
        ["host-t3a"],
        ["host-t3b"],
        ["host-q4"],
    ]
    assert made.questions[0].link == "https://mastodon.social/@HITsm/2003"
    assert answers(chat, made) == {
        # A1: and A1 with and without colon, T1 as a label, a reply to an answer with no label or tag
        "T1": ["dana-a1", "alice-a1", "jon-t1", "kim-a1", "bob-reply-dana"],
        # a reply to the question by server-local id, and replies to an answer
        "T2": ["priya-a2", "gus-a2", "kim-reply-t2", "dana-reply-gus", "alice-reply-gus"],
        # a bare A3 goes where its thread says, else to the latest sub-question asked before it
        "T3a": ["alice-a3a", "jon-a3-threaded"],
        "T3b": ["bob-a3b", "mia-a3"],
        # "A1c" is a lab value, not a label: gus's post answers Q4 by following it in time
        "Q4": ["karl-a4", "mia-a4", "gus-a1c"],
    }
    # before the first question, and after the last question's turn (the median gap, 10 minutes)
    assert chat.keys(made.other) == ["priya-slides", "dana-intro"]
    assert made.participants == 11
    assert made.thread_url == "https://mastodon.social/tags/HITsm"
    assert (made.start, made.end) == WINDOW


def test_the_host_teaser_welcome_and_goodbye_are_not_questions_or_answers() -> None:
    chat = Chat("hitsm_host")
    shown = chat.recap(scores=False).shown
    for key in ("host-teaser", "host-welcome", "host-bye"):
        assert chat.posts[key].id not in shown, key


def test_posts_outside_the_window_and_boosts_are_ignored() -> None:
    chat = Chat("hitsm_host")
    shown = chat.recap(scores=False, other_limit=50).shown
    assert chat.posts["bob-early"].id not in shown and chat.posts["alice-late"].id not in shown
    made = chat.recap(scores=False)
    assert all(not p.is_boost for q in made.questions for p in q.answers)
    assert chat.posts["dana-a1"].id in shown  # the boost's original is shown once, as an answer


def test_off_topic_chatter_is_no_highlight_unless_there_are_no_scores() -> None:
    chat = Chat("hitsm_host")
    assert chat.posts["rafael-cat"].id not in chat.recap(other_limit=50).shown
    everything = chat.recap(scores=False, other_limit=50)
    assert {"rafael-cat", "rafael-lunch"} <= set(chat.keys(everything.other))


def test_answers_are_capped_one_per_author() -> None:
    chat = Chat("hitsm_host")
    made = chat.recap(per_question=2)
    assert answers(chat, made)["T1"] == ["dana-a1", "alice-a1"]
    assert chat.posts["dana-a1-more"].id not in chat.recap(per_question=50).shown  # dana already answered T1


def test_distinct_repliers_lift_an_answer() -> None:
    chat = Chat("hitsm_host")
    # kim's reply gets as many interactions as gus's A2 (11) with the same topic score, and is older,
    # so it would win the tie; two people replied to gus
    kim = chat.posts["kim-reply-t2"]
    chat.posts["kim-reply-t2"] = replace(kim, engagement=Engagement(0, 0, 11))
    assert answers(chat, chat.recap())["T2"][:3] == ["priya-a2", "gus-a2", "kim-reply-t2"]


# -- recap(): a Bluesky host who welcomes first, answers by label, thread and time ----------------


def bluesky_chat() -> tuple[config.ChatSettings, dict[str, Post], dict[str, float]]:
    """A chat hosted on Bluesky: the host's label sits after a welcome, answers come labelled, as
    replies (by AT URI) and unlabelled right after a question; scores as the filter would give."""
    settings = config.ChatSettings(hashtag="HITsm", host="hitsm.bsky.social", when="friday 12:00", duration="1h")
    rows = [
        # key, handle, minute, text, reply to, topic score
        (
            "q1",
            "hitsm.bsky.social",
            2,
            "Welcome to #HITsm! T1: which telehealth visit types are here to stay?",
            "",
            0.3,
        ),
        ("label", "nina.bsky.social", 4, "A1: audio-only follow-ups, for patients with no broadband #HITsm", "", 0.5),
        ("reply", "kwame.bsky.social", 5, "Behavioral health by video, patients keep their appointments", "q1", 0.4),
        ("time", "priya.bsky.social", 7, "Remote monitoring check-ins for heart failure patients #HITsm", "", 0.45),
        ("chatter", "gus.bsky.social", 8, "grabbing a coffee before the next one #HITsm", "", 0.0),
        (
            "q2",
            "hitsm.bsky.social",
            20,
            "Great answers, all. T2: which FHIR API do you wish every EHR had? #HITsm",
            "",
            0.3,
        ),
        ("in-turn", "sam.bsky.social", 25, "Bulk export with incremental _since, at scale #HITsm #FHIR", "", 0.5),
        ("after-turn", "dana.bsky.social", 39, "Patient access APIs with refresh tokens that last #HITsm", "", 0.5),
    ]
    posts: dict[str, Post] = {}
    scores: dict[str, float] = {}
    for key, handle, minute, text, parent, score in rows:
        uri = f"at://did:plc:{handle.split('.')[0]}/app.bsky.feed.post/{key}"
        posts[key] = Post(
            id=post_id(uri),
            uri=uri,
            source="bluesky-hashtag:#HITsm",
            url=f"https://bsky.app/profile/{handle}/post/{key}",
            published=WINDOW[0] + timedelta(minutes=minute),
            author=Author(handle.split(".")[0].capitalize(), handle, f"https://bsky.app/profile/{handle}"),
            text=text,
            html=f"<p>{text}</p>",
            tags=tuple(re.findall(r"#(\w+)", text)),
            is_reply=bool(parent),
            in_reply_to=posts[parent].uri if parent else "",
        )
        if score:
            scores[posts[key].id] = score
    return settings, posts, scores


def test_a_bluesky_hosts_labels_after_a_welcome_and_answers_by_label_thread_and_time() -> None:
    settings, posts, scores = bluesky_chat()
    made = recap(list(posts.values()), settings, WINDOW, scores)
    keys = {p.id: k for k, p in posts.items()}
    assert made.mode == "host"
    assert [(q.label, q.text) for q in made.questions] == [
        ("T1", "which telehealth visit types are here to stay?"),
        ("T2", "which FHIR API do you wish every EHR had?"),
    ]
    assert {q.label: sorted(keys[a.id] for a in q.answers) for q in made.questions} == {
        "T1": ["label", "reply", "time"],  # the coffee follows T1 too, but the filter calls it chatter
        "T2": ["in-turn"],  # T2's turn lasts as long as T1's (18 minutes): dana's post at 19 minutes is past it
    }
    assert [keys[p.id] for p in made.other] == ["after-turn"]
    assert made.thread_url == "https://bsky.app/hashtag/HITsm"
    # without the filter's scores nothing says what is chatter: no answer by time
    unscored = recap(list(posts.values()), settings, WINDOW)
    assert {q.label: sorted(keys[a.id] for a in q.answers) for q in unscored.questions} == {
        "T1": ["label", "reply"],
        "T2": [],
    }


# -- recap(): no host posts ----------------------------------------------------------------------


def test_a_guest_moderator_numbers_the_questions() -> None:
    chat = Chat("hitsm_guest")
    made = chat.recap()
    assert made.mode == "labels"
    assert [(q.label, chat.keys([q.post])[0]) for q in made.questions] == [("Q1", "guest-q1"), ("Q2", "guest-q2")]
    assert answers(chat, made) == {"Q1": ["dana-a1", "kim-q1"], "Q2": ["bob-a2", "karl-reply-q2"]}
    assert chat.keys(made.other) == ["guest-hello"]
    assert made.participants == 5


def test_no_labels_at_all_falls_back_to_time_slices() -> None:
    chat = Chat("hitsm_no_labels")
    made = chat.recap()
    assert made.mode == "slices"
    assert [(q.label, chat.keys([q.post])[0]) for q in made.questions] == [
        ("Part 1", "dana-open"),
        ("Part 2", "bob-question"),
        ("Part 3", "mia-patients"),
    ]
    # dana's late reply to kim (in the third quarter hour) follows its thread back to the first part
    assert answers(chat, made) == {"Part 1": ["kim-agree", "dana-reply-late"], "Part 2": ["alice-data"], "Part 3": []}
    assert made.other == ()  # everything on topic has a part; the coffee is chatter
    assert chat.posts["rafael-coffee"].id not in made.shown


def test_a_chat_with_nothing_collected_is_empty() -> None:
    chat = Chat("hitsm_host")
    made = recap([], chat.settings, WINDOW)
    assert made.empty and made.participants == 0 and made.questions == ()
    later = (WINDOW[0] + timedelta(days=7), WINDOW[1] + timedelta(days=7))
    assert recap(list(chat.posts.values()), chat.settings, later).empty


def test_thread_url_without_a_host_uses_the_given_server() -> None:
    chat = Chat("hitsm_guest")
    hostless = chat.settings.model_copy(update={"host": None})
    made = recap(list(chat.posts.values()), hostless, WINDOW, server="hachyderm.example")
    assert made.mode == "labels" and made.thread_url == "https://hachyderm.example/tags/HITsm"
    bluesky = chat.settings.model_copy(update={"host": "hitsm.bsky.social"})
    assert recap([], bluesky, WINDOW).thread_url == "https://bsky.app/hashtag/HITsm"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("T1: What is FHIR?", ("T", 1, "")),
        ("T1 What is FHIR?", ("T", 1, "")),
        ("Q2. Who pays?", ("Q", 2, "")),
        ("T3a: which one?", ("T", 3, "a")),
        ("T3b And which?", ("T", 3, "b")),
        ("T10: the last one", ("T", 10, "")),
        ("#HITsm T1: tagged first", ("T", 1, "")),
        ("@HITsm@mastodon.social Q4 - a reply", ("Q", 4, "")),
        ("Topic 5: spelled out", ("T", 5, "")),
        ("Tuesday is the chat", None),
        ("A1: an answer", None),
        ("TEFCA passed 500", None),
        ("Welcome to #HITsm! T1: which visit types stay?", ("T", 1, "")),
        ("Thanks all. #HITsm Q2) who pays?", ("Q", 2, "")),
        ("Great answers!\nT3a. and the next?", ("T", 3, "a")),
        ("Welcome! Introduce yourself while we wait for T1.", None),  # not opening a sentence
        ("Our Q3 numbers: up. Q3 report is out", None),  # no separator after the later label
        ("Who is here? T1: after the question", None),  # past the question: not its label
    ],
)
def test_question_labels(text: str, label: tuple[str, int, str] | None) -> None:
    found = _question_label(text)
    assert (None if found is None else (found.letter, found.num, found.sub)) == label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("A1: yes", (1, "")),
        ("A1 yes", (1, "")),
        ("a1 lower case", (1, "")),
        ("A1a: first part", (1, "a")),
        ("T2 repeating the label", (2, "")),
        ("Q3. repeating the label", (3, "")),
        ("@HITsm A3 in a reply", (3, "")),
        ("A12 late in a long chat", (12, "")),
        ("A1c results matter", (1, "c")),  # parsed, then refused: no T1c was asked
        ("AI scribes", None),
        ("Another thought", None),
    ],
)
def test_answer_labels(text: str, label: tuple[int, str] | None) -> None:
    assert _answer_label(text) == label


# -- windows ---------------------------------------------------------------------------------------


def chat_settings(**changes: str) -> config.ChatSettings:
    values = {"hashtag": "HITsm", "host": "@HITsm@mastodon.social", "when": "friday 12:00", "duration": "1h"}
    return config.ChatSettings(**{**values, **changes})


def test_windows_are_local_times_and_belong_to_the_edition_they_end_in() -> None:
    chat = chat_settings()
    week = (datetime(2026, 11, 14, 12, tzinfo=UTC), AFTER_CHAT)
    assert chat_windows(chat, *week, NY) == [WINDOW]
    july = (datetime(2026, 7, 11, tzinfo=UTC), datetime(2026, 7, 18, tzinfo=UTC))  # daylight saving: UTC-4
    assert chat_windows(chat, *july, NY) == [
        (datetime(2026, 7, 17, 16, tzinfo=UTC), datetime(2026, 7, 17, 17, tzinfo=UTC))
    ]
    mid_chat = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)
    assert chat_windows(chat, week[0], mid_chat, NY) == []  # still running: next edition's
    assert chat_windows(chat, mid_chat, mid_chat + timedelta(days=7), NY) == [WINDOW]
    fortnight = (week[0], week[1] + timedelta(days=7))
    assert len(chat_windows(chat_settings(duration="90m"), *fortnight, NY)) == 2


def test_current_or_next_window_and_open_chats() -> None:
    chat = chat_settings()
    assert current_or_next_window(chat, datetime(2026, 11, 18, tzinfo=UTC), NY) == WINDOW
    assert current_or_next_window(chat, WINDOW[0] + timedelta(minutes=59), NY) == WINDOW
    assert current_or_next_window(chat, WINDOW[1], NY)[0] == WINDOW[0] + timedelta(days=7)
    assert open_chats([chat], WINDOW[0] - timedelta(minutes=6), NY) == []
    assert open_chats([chat], WINDOW[0] - timedelta(minutes=5), NY) == [chat]
    assert open_chats([chat], WINDOW[1] + timedelta(minutes=29), NY) == [chat]
    assert open_chats([chat], WINDOW[1] + timedelta(minutes=30), NY) == []


# -- configuration --------------------------------------------------------------------------------

CHAT_TOML = """
[digest]
timezone = "America/New_York"

[[sources]]
hashtag = "HITsm"

[[chats]]
hashtag = "#hitsm"
host = "HITsm@mastodon.social"
when = "Friday 12:00"
duration = "90m"
"""


def test_chat_settings_are_read_and_normalized() -> None:
    settings = config.parse(CHAT_TOML)
    (chat,) = settings.chats
    assert (chat.hashtag, chat.host, chat.schedule, chat.length) == (
        "hitsm",
        "@HITsm@mastodon.social",
        (4, time(12, 0)),
        timedelta(minutes=90),
    )
    assert config.parse("").chats == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('when = "fri at noon"', "feeds.toml:11: chats[1].when: 'fri at noon' is not a weekday and time"),
        ('duration = "25h"', "feeds.toml:12: chats[1].duration: '25h' is too long for a chat: use at most 24h"),
        ('duration = "an hour"', "feeds.toml:12: chats[1].duration: 'an hour' is not a duration"),
        ('duration = "1h30m"', None),
        ('host = "the host"', "feeds.toml:10: chats[1].host: not an account"),
        ('host = "@hitsm.bsky.social"', None),
        (
            'hashtag = "FHIR"',
            "feeds.toml:9: chats[1].hashtag: #FHIR is not collected: add [[sources]] hashtag = 'FHIR'",
        ),
        ('hashtag = "#HITsm!"', "feeds.toml:9: chats[1].hashtag: not a hashtag"),
    ],
)
def test_chat_problems_name_file_line_and_key(change: str, expected: str | None) -> None:
    written = {
        "when": 'when = "Friday 12:00"',
        "duration": 'duration = "90m"',
        "host": 'host = "HITsm@mastodon.social"',
        "hashtag": 'hashtag = "#hitsm"',
    }
    text = CHAT_TOML.replace(written[change.split(" ", 1)[0]], change)
    if expected is None:
        config.parse(text)
        return
    with pytest.raises(ConfigError) as caught:
        config.parse(text)
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_chat_needs_when() -> None:
    with pytest.raises(ConfigError, match=r"chats\[1\]\.when: is required"):
        config.parse(CHAT_TOML.replace('when = "Friday 12:00"\n', ""))


# -- collectors and the store keep a reply's parent -----------------------------------------------


def test_mastodon_status_keeps_its_parent(tmp_path: Path, http_server: TestServer) -> None:
    statuses = json.loads((FIX / "mastodon" / "account_statuses_page1.json").read_text(encoding="utf-8"))
    reply = next(s for s in statuses if s.get("in_reply_to_id"))
    made = status_post(reply, "social.example", "mastodon:@alice@social.example")
    assert made.is_reply and made.in_reply_to == "social.example:117645098418177851"  # bob's post: not seen
    known = {"117645098418177851": "https://hachyderm.example/@bob/117645098418177851"}
    assert status_post(reply, "social.example", "x", known).in_reply_to == known["117645098418177851"]
    assert all(status_post(s, "social.example", "x").in_reply_to == "" for s in statuses if s is not reply)
    # through a real collection run and the store
    serve_alice(http_server)
    settings = configure(tmp_path, http_server, '[[sources]]\nmastodon = "@alice@social.example"\n', via="api")
    from digest.collect import collect

    with Store.open(settings.database_url) as store:
        collect(settings, store, now=AFTER_CHAT)
        stored = store.post("https://social.example/@alice/117645170638874075")
        assert stored is not None and stored.in_reply_to == "social.example:117645098418177851"


def test_mastodon_parent_seen_in_the_same_run_is_stored_by_url(tmp_path: Path, http_server: TestServer) -> None:
    """A reply is usually a page ahead of its parent (newest first): ids resolve once every page is read."""
    parent = json.loads((FIX / "mastodon" / "tag_HITsm_server1_page1.json").read_text(encoding="utf-8"))[0]
    reply = json.loads(json.dumps(parent))
    reply.update(
        id="117649999999999999",
        uri="https://social.example/users/alice/statuses/117649999999999999",
        url="https://social.example/@alice/117649999999999999",
        created_at="2026-11-20T17:40:00.000Z",
        in_reply_to_id=parent["id"],
        content="<p>Agreed, and the password rules differ everywhere.</p>",
    )
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "one.json").write_text(json.dumps([reply]), encoding="utf-8")
    (folder / "two.json").write_text(json.dumps([parent]), encoding="utf-8")

    def page(name: str, link: str = "") -> Response:
        headers = {"Content-Type": "application/json", **({"Link": link} if link else {})}
        return Response((folder / f"{name}.json").read_bytes(), headers=headers)

    pages = {"": "one", reply["id"]: "two"}

    def answer(request: Any) -> Response:
        key = request.params.get("max_id", "")
        if key == "":
            return page(
                "one", f'<{http_server.url("/s1/api/v1/timelines/tag/HITsm")}?max_id={reply["id"]}>; rel="next"'
            )
        return page(pages[key]) if key in pages else Response(b"[]", headers={"Content-Type": "application/json"})

    http_server.route("/s1/api/v1/timelines/tag/HITsm", Response(callable=answer))
    settings = configure(
        tmp_path, http_server, '[[sources]]\nhashtag = "HITsm"\nservers = ["social.example"]\n', via="api"
    )
    from digest.collect import collect

    with Store.open(settings.database_url) as store:
        collect(settings, store, now=AFTER_CHAT)
        stored = store.post(reply["url"])
    assert stored is not None and stored.in_reply_to == parent["url"]


def test_bluesky_reply_keeps_its_parent_uri() -> None:
    feed = json.loads((FIX / "bluesky" / "author_feed_page1.json").read_text(encoding="utf-8"))["feed"]
    made = [post_view_post(item["post"], "bluesky:maya.healthdata.test") for item in feed]
    replies = [p for p in made if p.is_reply]
    assert [p.in_reply_to for p in replies] == [
        "at://did:plc:wczmthxq2qnjnmc2fbntfuci/app.bsky.feed.post/3n2luro2nykzu"
    ]
    assert all(p.in_reply_to == "" for p in made if not p.is_reply)


def test_existing_database_gains_the_column_and_keeps_its_posts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    chat = Chat("hitsm_host")
    kept = chat.posts["dana-a1"]
    with Store.open(url) as store:
        store.add_posts("hashtag:#HITsm@mastodon.social", [kept])
    with sqlite3.connect(tmp_path / "digest.db") as raw:  # the file as schema version 4 wrote it
        raw.execute("ALTER TABLE posts DROP COLUMN in_reply_to")
        raw.execute("UPDATE schema_info SET version = 4")
    with Store.open(url) as store:
        assert store.version == SCHEMA_VERSION >= 5
        assert store.post(kept.id) == kept  # in_reply_to is "" for a post stored before
        reply = chat.posts["kim-reply-t2"]
        store.add_posts("hashtag:#HITsm@mastodon.social", [reply])
        assert store.post(reply.id).in_reply_to == "mastodon.social:2004"  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "digest.db") as raw:
        assert "in_reply_to" in {r[1] for r in raw.execute("PRAGMA table_info(posts)")}


# -- the recap in an edition -----------------------------------------------------------------------


def chat_edition_composer() -> tuple[Composer, Chat]:
    """The sample week of test_compose, plus the host's chat; the slides post was kept under FHIR too."""
    posts, kept = sample_week()
    chat = Chat("hitsm_host")
    kept[chat.posts["priya-slides"].id] = {FHIR: 0.65}
    kept[chat.posts["karl-a4"].id] = {PRIVACY: 0.5}
    week = [*posts, *chat.posts.values()]
    made = Composer(week, kept, **{**SETTINGS, "now": AFTER_CHAT, "topics": TOPICS, "chats": [chat.recap()]})  # type: ignore[arg-type]
    return made, chat


@pytest.mark.parametrize("name", ["edition_chat.html", "edition_chat.txt"])
def test_golden_edition_with_a_chat_recap(name: str) -> None:
    composer, _ = chat_edition_composer()
    edition = composer.edition([PRIVACY, FHIR])
    assert edition is not None
    edition = personalize(
        edition,
        unsubscribe_url="https://digest.example.org/unsubscribe?token=abc&list=weekly",
        preferences_url="https://digest.example.org/preferences?token=abc",
        name="Ada",
    )
    actual = scrub(edition.html if name.endswith(".html") else edition.text)
    path = GOLDEN / name
    if REGEN:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with DIGEST_REGEN_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; review, then DIGEST_REGEN_GOLDEN=1"


def test_the_recap_comes_after_the_topics_for_every_reader_and_is_not_repeated() -> None:
    composer, _ = chat_edition_composer()
    for selection in ([FHIR], [PRIVACY], ["AI in care"], list(TOPICS)):
        edition = composer.edition(selection)
        assert edition is not None
        text = edition.text
        assert "== Chat recap: #HITsm ==" in text
        assert "Fri 20 Nov, 12:00–13:00 · 11 participants · 5 questions" in text
        assert "The full thread: https://mastodon.social/tags/HITsm" in text
        last_topic = max(text.index(f"== {t} ==") for t in selection)
        assert last_topic < text.index("== Chat recap")
        # the slides and karl's A4 were kept under topics, but the recap shows them: once only
        assert text.count("The ONC slides on information blocking") == 1
        assert text.count("Text-message links that log you straight in") == 1
        assert text.index("Other highlights") < text.index("The ONC slides on information blocking")
    text = composer.edition([FHIR]).text  # type: ignore[union-attr]
    assert text.index("T1: What keeps patients") < text.index("A1: Logins.") < text.index("T2: Should portals")
    html = composer.edition([FHIR]).html  # type: ignore[union-attr]
    assert "#HITsm chat</span>\xa0(5 questions)" in html  # in the contents line


def test_a_week_with_only_a_chat_is_not_quiet() -> None:
    chat = Chat("hitsm_host")
    composer = Composer(list(chat.posts.values()), {}, **{**SETTINGS, "topics": TOPICS, "chats": [chat.recap()]})  # type: ignore[arg-type]
    edition = composer.edition([FHIR])
    assert edition is not None and "A quiet week" not in edition.text and "Chat recap" in edition.text
    assert (
        Composer([], {}, **{**SETTINGS, "topics": TOPICS, "chats": [recap([], chat.settings, WINDOW)]}).edition([FHIR])
        is None
    )  # type: ignore[arg-type]


def test_chat_text_for_the_curator() -> None:
    chat = Chat("hitsm_guest")
    text = chat_text([chat.recap()], NY)
    assert "== Chat recap: #HITsm ==" in text and "Q1: How do you measure whether a telehealth visit went well?" in text
    assert "  - Dana (@dana@hachyderm.example) · Fri 20 Nov, 12:08 · 9 likes" in text


# -- the pipeline, the commands and the schedule ---------------------------------------------------

PIPELINE_TOML = """
[digest]
title = "Health IT weekly"
timezone = "America/New_York"
send_on = "saturday 07:00"

[[topics]]
name = "Health IT"
description = "Patient portals, electronic health records, telehealth and health data."
keywords = ["portal", "patient portal", "EHR", "telehealth", "results", "Cures Act", "proxy access", "lab"]

[[sources]]
hashtag = "HITsm"
servers = ["mastodon.social"]

[[chats]]
hashtag = "HITsm"
host = "@HITsm@mastodon.social"
when = "friday 12:00"
duration = "1h"
"""


def test_composer_for_recaps_the_chats_of_the_edition(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, PIPELINE_TOML)
    chat = Chat("hitsm_host")
    with Store.open(settings.database_url) as store:
        store.add_posts("hashtag:#HITsm@mastodon.social", list(chat.posts.values()))
        composer = composer_for(settings, store, now=AFTER_CHAT, period=last_completed(settings, AFTER_CHAT))
        (made,) = composer.chats
        assert [q.label for q in made.questions] == ["T1", "T2", "T3a", "T3b", "Q4"]
        assert chat.posts["rafael-cat"].id not in made.shown  # the real filter calls the cat chatter
        edition = composer.edition(["Health IT"])
        assert edition is not None and "== Chat recap: #HITsm ==" in edition.text
        earlier = chat_recaps(settings, store, since=AFTER_CHAT - timedelta(days=14), until=WINDOW[0])
        assert earlier == []


def test_chats_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_from(tmp_path, PIPELINE_TOML)
    chat = Chat("hitsm_host")
    with Store.open(settings.database_url) as store:
        store.add_posts("hashtag:#HITsm@mastodon.social", list(chat.posts.values()))
    monkeypatch.setenv("DIGEST_NOW", (WINDOW[0] + timedelta(minutes=10)).isoformat())
    assert run_cli("--config", str(settings.path), "chats", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["chats"][0]["running"] is True and listed["chats"][0]["start"] == "2026-11-20T12:00:00-05:00"
    assert run_cli("--config", str(settings.path), "chats", "list") == 0
    assert "running" in capsys.readouterr().out
    monkeypatch.setenv("DIGEST_NOW", AFTER_CHAT.isoformat())
    assert run_cli("--config", str(settings.path), "chats", "recap") == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("== Chat recap: #HITsm ==") and "T3b: And which one do they never find?" in shown.out
    assert "questions from the host's numbered questions" in shown.err
    assert run_cli("--config", str(settings.path), "chats", "recap", "--json") == 0
    recap = json.loads(capsys.readouterr().out)
    assert recap["hashtag"] == "HITsm" and recap["mode"] == "host"
    assert [q["label"] for q in recap["questions"]] == ["T1", "T2", "T3a", "T3b", "Q4"]
    assert all(q["answers"] for q in recap["questions"]) and recap["start"] == "2026-11-20T17:00:00+00:00"
    assert run_cli("--config", str(settings.path), "chats", "recap", "--week", "2026-W46") == 1
    assert "#HITsm, 2026-11-13 17:00 UTC: nothing was collected" in capsys.readouterr().err


def test_the_schedule_collects_a_running_chats_hashtag_every_five_minutes(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, PIPELINE_TOML)
    ran: list[datetime] = []
    clock = [WINDOW[0] + timedelta(minutes=7)]

    def fake(settings: config.Settings, store: Store, now: datetime) -> tuple[bool, str]:
        ran.append(now)
        return True, "ok"

    with Store.open(settings.database_url) as store:
        scheduler = Scheduler(settings, store, clock=lambda: clock[0], collect=fake, weekly=fake, chat=fake)
        assert ("chat", collect_slot(clock[0], CHAT_EVERY)) in scheduler.due(clock[0])
        assert [name for name, _, _ in scheduler.run_pending()] == ["collect", "chat"]
        assert [name for name, _, _ in scheduler.run_pending()] == []  # the same slot: nothing again
        clock[0] += CHAT_EVERY
        assert [name for name, _, _ in scheduler.run_pending()] == ["chat"]
        assert "chat" not in {name for name, _ in scheduler.due(WINDOW[1] + timedelta(hours=1))}


def test_the_chat_job_collects_only_the_chats_hashtag(tmp_path: Path, http_server: TestServer) -> None:
    pager(http_server, "/s1", "/api/v1/timelines/tag/HITsm", {"": "tag_HITsm_server1_page1"}, newest="none")
    http_server.route("/feed.xml", api("tag_HITsm_server2"))
    sources = f"""
[digest]
timezone = "America/New_York"

[[sources]]
hashtag = "HITsm"
servers = ["social.example"]

[[sources]]
feed = "{http_server.url("/feed.xml")}"

[[chats]]
hashtag = "HITsm"
when = "friday 12:00"
"""
    settings = configure(tmp_path, http_server, sources, via="api")
    with Store.open(settings.database_url) as store:
        ok, line = chat_job(settings, store, WINDOW[0] + timedelta(minutes=20))
        assert ok and line.startswith("#hitsm: ") and store.count_posts() > 0
        assert not http_server.requests("/feed.xml")
        assert chat_job(settings, store, WINDOW[1] + timedelta(hours=2)) == (True, "no chat running")
