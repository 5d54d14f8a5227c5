"""Mastodon accounts and hashtags through the public API (paging, dedupe across servers, opt-outs)
and through RSS when the API is closed, all served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from helpers import NOW, TEST_COLLECT, settings_from
from httpserver import Recorded, Response, TestServer

from digest.collect import collect
from digest.config import Settings
from digest.store import Store

FIX = Path(__file__).parents[1] / "fixtures"
ALICE_ID = "109282590720019145"


def api(name: str, link: str = "") -> Response:
    headers = {"Content-Type": "application/json; charset=utf-8", **({"Link": link} if link else {})}
    return Response((FIX / "mastodon" / f"{name}.json").read_bytes(), headers=headers)


def empty() -> Response:
    return Response(b"[]", headers={"Content-Type": "application/json"})


def pager(server: TestServer, base: str, path: str, pages: dict[str, str], newest: str) -> None:
    """Answer an API timeline by max_id like Mastodon: each page links to the next (older) one."""
    order = list(pages)

    def answer(request: Recorded) -> Response:
        params = request.params
        if params.get("since_id") == newest:
            return empty()
        key = params.get("max_id", "")
        if key not in pages:
            return empty()
        following = order.index(key) + 1
        link = (
            f'<{server.url(base + path)}?limit=40&max_id={order[following]}>; rel="next"'
            if following < len(order)
            else ""
        )
        return api(pages[key], link)

    server.route(base + path, Response(callable=answer))


def configure(tmp_path: Path, server: TestServer, sources: str, via: str = "auto") -> Settings:
    collect_section = TEST_COLLECT + f'mastodon_via = "{via}"\n[collect.base_urls]\n'
    collect_section += f'"social.example" = "{server.url("/s1")}"\n"hachyderm.example" = "{server.url("/s2")}"\n'
    return settings_from(tmp_path, sources, collect=collect_section)


def serve_alice(server: TestServer) -> None:
    server.route("/s1/api/v1/accounts/lookup", api("account_lookup"))
    pager(
        server,
        "/s1",
        f"/api/v1/accounts/{ALICE_ID}/statuses",
        {"": "account_statuses_page1", "117645170638874075": "account_statuses_page2", "117614021836806592": ""},
        newest="117649870684198349",
    )


def serve_hitsm(server: TestServer) -> None:
    pager(
        server,
        "/s1",
        "/api/v1/timelines/tag/HITsm",
        {"": "tag_HITsm_server1_page1", "117649756520480077": "tag_HITsm_server1_page2"},
        newest="117649884053545920",
    )
    server.route("/s2/api/v1/timelines/tag/HITsm", api("tag_HITsm_server2"))


def test_account_is_paged_back_and_every_field_filled(tmp_path: Path, http_server: TestServer) -> None:
    serve_alice(http_server)
    settings = configure(tmp_path, http_server, '[[sources]]\nmastodon = "@alice@social.example"\n')
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert report.count("ok") == 1, report.as_dict()
        posts = {p.url: p for p in store.posts()}
    assert len(posts) == 8
    answer = posts["https://social.example/@alice/117649870684198349"]
    assert answer.author.handle == "@alice@social.example" and answer.author.name
    assert {t.lower() for t in answer.tags} >= {"hitsm", "telehealth"}
    assert answer.engagement.likes is not None
    boost = posts["https://ioc.example/@jon/117649839882249041"]
    assert boost.is_boost and boost.boosted_by == "@alice@social.example"
    assert boost.author.handle == "@jon@ioc.example"
    reply = posts["https://social.example/@alice/117645170638874075"]
    assert reply.is_reply and "@bob@hachyderm.example" in reply.mentions
    warned = posts["https://social.example/@alice/117625249792064600"]
    assert warned.content_warning and warned.sensitive and warned.media[0].alt
    card = posts["https://social.example/@alice/117619949568053265"]
    assert card.links and all("utm_" not in link for link in card.links)
    lunch = posts["https://social.example/@alice/117649756520480077"]
    assert lunch.media and lunch.media[0].alt and "\n" not in lunch.media[0].alt[:1]
    first = http_server.requests(f"/s1/api/v1/accounts/{ALICE_ID}/statuses")[0]
    assert first.params["limit"] == "40" and "since_id" not in first.params


def test_second_run_asks_only_for_newer_statuses(tmp_path: Path, http_server: TestServer) -> None:
    serve_alice(http_server)
    settings = configure(tmp_path, http_server, '[[sources]]\nmastodon = "@alice@social.example"\n')
    with Store.open(settings.database_url) as store:
        collect(settings, store, now=NOW)
        again = collect(settings, store, now=NOW + timedelta(hours=1))
        state = store.source_states()["mastodon:@alice@social.example"]
    assert again.count("ok") == 1 and again.new_posts == 0
    last = http_server.requests(f"/s1/api/v1/accounts/{ALICE_ID}/statuses")[-1]
    assert last.params["since_id"] == "117649870684198349"
    assert http_server.hits("/s1/api/v1/accounts/lookup") == 1  # the account id is remembered
    assert json.loads(state.cursor)["account_id"] == ALICE_ID
    assert not state.gap_possible


def test_hashtag_on_two_servers_is_stored_once_and_opt_outs_are_respected(
    tmp_path: Path, http_server: TestServer
) -> None:
    serve_hitsm(http_server)
    sources = '[[sources]]\nhashtag = "#HITsm"\nservers = ["social.example", "hachyderm.example"]\n'
    settings = configure(tmp_path, http_server, sources)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert report.count("ok") == 2, report.as_dict()
        posts = {p.url: p for p in store.posts()}
        jon = posts["https://ioc.example/@jon/117649839882249041"]
        assert store.sources_of(jon.id) == ["hashtag:#HITsm@hachyderm.example", "hashtag:#HITsm@social.example"]
    # 7 on server 1, 5 on server 2, 3 of them on both; kim (noindex) is left out
    assert len(posts) == 8
    assert not any("@kim" in url for url in posts)
    notes = [n["note"] for n in report.as_dict()["notes"]]
    assert any("1 posts skipped: their authors opted out" in n for n in notes)
    assert len(http_server.requests("/s1/api/v1/timelines/tag/HITsm")) == 2  # paged by the Link header


def test_nobot_account_is_not_collected(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/s1/api/v1/accounts/lookup", api("account_nobot_lookup"))
    settings = configure(tmp_path, http_server, '[[sources]]\nmastodon = "@gus@social.example"\n')
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert store.count_posts() == 0
    assert report.count("failed") == 1 and "#nobot" in report.results[0].error


def test_closed_api_falls_back_to_rss_and_dedupes_with_the_api(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route(
        "/s1/api/v1/timelines/tag/HITsm", Response(b'{"error":"This API requires an authenticated user"}', status=401)
    )
    http_server.route("/s1/tags/HITsm.rss", Response((FIX / "feeds" / "mastodon_tag.rss").read_bytes()))
    http_server.route("/s2/api/v1/timelines/tag/HITsm", api("tag_HITsm_server2"))
    sources = '[[sources]]\nhashtag = "HITsm"\nservers = ["social.example", "hachyderm.example"]\n'
    settings = configure(tmp_path, http_server, sources)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        assert report.count("ok") == 2, report.as_dict()
        posts = {p.url: p for p in store.posts()}
        alice = posts["https://social.example/@alice/117649870684198349"]
        assert len(store.sources_of(alice.id)) == 2  # RSS on one server, API on the other: one post
    assert http_server.requests("/s1/tags/HITsm.rss")[0].params["limit"] == "200"
    assert any("used RSS" in n["note"] for n in report.as_dict()["notes"])
    rss_only = [p for p in posts.values() if p.source == "hashtag:#HITsm@social.example"]
    assert rss_only and all(p.author.handle.startswith("@") and p.author.handle.count("@") == 2 for p in rss_only)


def test_account_by_rss(tmp_path: Path, http_server: TestServer) -> None:
    http_server.route("/s1/@alice.rss", Response((FIX / "feeds" / "mastodon_account.rss").read_bytes(), etag='"a1"'))
    settings = configure(tmp_path, http_server, '[[sources]]\nmastodon = "@alice@social.example"\n', via="rss")
    with Store.open(settings.database_url) as store:
        first = collect(settings, store, now=NOW)
        second = collect(settings, store, now=NOW + timedelta(hours=1))
        posts = store.posts()
    assert first.new_posts == 6 and second.count("not_modified") == 1
    assert {p.author.handle for p in posts} == {"@alice@social.example"}
    lunch = next(p for p in posts if p.url.endswith("/117649756520480077"))
    assert "Tacos from the food truck" in lunch.text  # the body, not the image description
    assert lunch.media[0].alt == "Three tacos al pastor on a paper plate with lime wedges."
