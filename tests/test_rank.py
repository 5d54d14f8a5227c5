"""Ranking: duplicates merged, the documented score, per-author and per-source caps, shared links."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from digest.models import Author, Engagement, Post
from digest.rank import Story, dedupe, link_accounts, rank_section, score, shared_links, shares_of
from digest.urls import post_id

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
LINK = "https://www.healthit.gov/news/tefca"


def make(n: int, handle: str = "@ada@example.social", text: str = "", **fields: object) -> Post:
    uri = f"https://example.social/{handle}/{n}"
    name = handle.strip("@").split("@")[0].title()
    fields.setdefault("source", f"mastodon:{handle}")
    fields.setdefault("published", NOW - timedelta(hours=n))
    fields.setdefault("url", uri)
    return Post(
        id=post_id(uri),
        uri=uri,
        author=Author(name, handle, f"https://example.social/{handle}"),
        text=text or f"post number {n} about FHIR",
        **fields,  # type: ignore[arg-type]
    )


def test_a_boost_and_its_original_are_one_story() -> None:
    original = make(1)
    boost = replace(original, source="mastodon:@bob@x.social", is_boost=True, boosted_by="@bob@x.social")
    for posts in ([original, boost], [boost, original]):
        (story,) = dedupe(posts)
        assert story.post is original and story.copies == (boost,)
        assert story.boosted_by == ("@bob@x.social",)
        assert story.accounts == {"@ada@example.social", "@bob@x.social"}


def test_only_boosts_seen_still_show_once() -> None:
    original = make(1)
    boosts = [replace(original, is_boost=True, boosted_by=f"@b{i}@x.social") for i in range(3)]
    (story,) = dedupe(boosts)
    assert story.boosted_by == ("@b0@x.social", "@b1@x.social", "@b2@x.social")


def test_cross_posts_merge_by_author_name_and_text() -> None:
    mastodon = make(1, "@ana@med.social", "Part 2 of our #HealthIT access study is out! https://x.org/s")
    bluesky = replace(
        make(2, "ana.bsky.social", "Part 2 of our #HealthIT access study is out!"),
        author=Author("Ana", "ana.bsky.social", ""),
    )
    other_author = make(3, "@zed@x.social", "Part 2 of our HealthIT access study is out")
    stories = dedupe([mastodon, bluesky, other_author])
    assert len(stories) == 2
    assert {len(s.posts) for s in stories} == {2, 1}


def test_same_text_and_link_from_two_accounts_is_one_post() -> None:
    text = "New ONC rule on information blocking exceptions"
    first = make(1, "@bot1@x.social", text, links=(LINK,))
    second = make(2, "@bot2@y.social", text, links=(LINK,))
    short = make(3, "@c@z.social", "new post", links=(LINK,))
    also_short = make(4, "@d@z.social", "new post", links=(LINK,))
    stories = dedupe([first, second, short, also_short])
    assert len(stories) == 3  # "new post" is too short to call two posts one


def test_distinct_posts_stay_apart_and_dedupe_ignores_input_order() -> None:
    posts = [make(i, f"@u{i % 3}@x.social") for i in range(12)]
    first = dedupe(posts)
    shuffled = posts[:]
    random.Random(7).shuffle(shuffled)
    assert dedupe(shuffled) == first and len(first) == 12


def test_score_formula() -> None:
    fresh = make(0, engagement=Engagement(replies=0, boosts=0, likes=0))
    assert score(fresh, 0.5, 1, NOW) == 0.5 + 0.15
    popular = replace(fresh, engagement=Engagement(replies=0, boosts=499, likes=500))
    assert score(popular, 0.5, 1, NOW) == round(0.5 + 0.30 + 0.15, 9)
    feed_item = replace(fresh, engagement=Engagement())
    assert score(feed_item, 0.5, 1, NOW) == round(0.5 + 0.30 / 3 + 0.15, 9)
    shared = score(fresh, 0.5, 5, NOW)
    assert shared == round(0.5 + 0.20 + 0.15, 9) and score(fresh, 0.5, 50, NOW) == shared
    week_old = replace(fresh, published=NOW - timedelta(days=7))
    assert score(week_old, 0.5, 1, NOW) == round(0.5 + 0.15 / 4, 9)
    future = replace(fresh, published=NOW + timedelta(hours=3))
    assert score(future, 0.5, 1, NOW) == score(fresh, 0.5, 1, NOW)


def _stories(posts: list[Post]) -> tuple[list[Story], dict[str, float]]:
    stories = [Story(p) for p in posts]
    return stories, {p.id: 1.0 - i / 100 for i, p in enumerate(posts)}


def test_per_author_cap() -> None:
    busy = [make(i, "@busy@x.social") for i in range(6)]
    others = [make(10 + i, f"@o{i}@x.social") for i in range(3)]
    stories, scores = _stories(busy + others)
    ranked = rank_section(stories, scores, per_author=3, limit=10)
    assert [s.post.author.handle for s in ranked].count("@busy@x.social") == 3
    assert len(ranked) == 6 and ranked[3].post.author.handle == "@o0@x.social"


def test_per_source_cap_spares_hashtags() -> None:
    feed = [make(i, f"@writer{i}@news.example", source="feed:https://news.example/rss") for i in range(8)]
    tag = [make(20 + i, f"@t{i}@x.social", source="hashtag:#FHIR@mastodon.social") for i in range(8)]
    stories, scores = _stories(feed + tag)
    ranked = rank_section(stories, scores, per_source=5, limit=20)
    sources = [s.post.source for s in ranked]
    assert sources.count("feed:https://news.example/rss") == 5
    assert sources.count("hashtag:#FHIR@mastodon.social") == 8


def test_ranking_is_deterministic_with_ties() -> None:
    posts = [make(i, f"@u{i}@x.social", published=NOW) for i in range(10)]
    stories = [Story(p) for p in posts]
    scores = dict.fromkeys((p.id for p in posts), 0.5)
    expected = rank_section(stories, scores, limit=5)
    assert [s.post.id for s in expected] == sorted(p.id for p in posts)[:5]
    for seed in range(5):
        shuffled = stories[:]
        random.Random(seed).shuffle(shuffled)
        assert rank_section(shuffled, scores, limit=5) == expected


def test_shared_links_counts_accounts_and_finds_titles() -> None:
    article = make(
        1,
        "",
        "TEFCA reaches 500 participants. The update covers onboarding.",
        title="TEFCA reaches 500 participants",
        url=LINK,
        links=(LINK,),
        source="feed:https://www.healthit.gov/rss",
    )
    article = replace(article, author=Author("HealthIT.gov", "", "https://www.healthit.gov"))
    mia = make(2, "@mia@x.social", "Big milestone", links=(LINK,), html=f'<p>Big <a href="{LINK}">milestone</a></p>')
    karl = make(3, "@karl@y.social", f"See {LINK}", links=(LINK,))
    karl_boost = replace(mia, is_boost=True, boosted_by="@karl@y.social")
    lonely = make(4, "@solo@x.social", "one link", links=("https://solo.example/a",))
    anchor_only = make(
        5,
        "@a@x.social",
        "Read this",
        links=("https://b.example/r",),
        html='<a href="https://b.example/r">The report</a>',
    )
    anchor_again = make(6, "@b@x.social", "Read it too", links=("https://b.example/r",))
    stories = dedupe([article, mia, karl, karl_boost, lonely, anchor_only, anchor_again])
    found = shared_links(stories)
    assert [s.url for s in found] == [LINK, "https://b.example/r"]
    assert found[0].title == "TEFCA reaches 500 participants"
    assert found[0].accounts == ("@karl@y.social", "@mia@x.social", "HealthIT.gov")
    assert found[1].title == "The report"
    accounts = link_accounts(stories)
    assert shares_of(next(s for s in stories if s.post is karl), accounts) == 3
    assert shares_of(next(s for s in stories if s.post is lonely), accounts) == 1


def test_a_url_shaped_anchor_is_not_a_title() -> None:
    link = "https://hl7.org/fhir/r6"
    html = f'<a href="{link}"><span class="invisible">https://</span>hl7.org/fhir/r6</a>'
    posts = [make(i, f"@u{i}@x.social", f"ballot {i}", links=(link,), html=html) for i in range(2)]
    (found,) = shared_links(dedupe(posts))
    assert found.title == ""
