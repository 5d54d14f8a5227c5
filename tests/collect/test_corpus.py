"""Real-world feed documents from other feed software (../shared/data/feeds), served on 127.0.0.1
and collected: every well-formed document yields all its entries; web pages fail clearly."""

from __future__ import annotations

from pathlib import Path

import lxml.etree
import pytest
from helpers import NOW, settings_from
from httpserver import Response, TestServer

from digest.collect import collect
from digest.store import Store

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "feeds"
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md") if CORPUS.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"shared feed corpus not found at {CORPUS}")


def entry_count(data: bytes) -> int:
    """Items and entries with any content, counted independently of the collector by lxml
    (an item with no title, link, id or body says nothing and is skipped)."""
    parser = lxml.etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    root = lxml.etree.fromstring(data, parser)
    if root is None:
        return 0
    return sum(
        1
        for el in root.iter()
        if isinstance(el.tag, str)
        and lxml.etree.QName(el).localname in ("item", "entry")
        and any(_says_something(child) for child in el)
    )


def _says_something(el: lxml.etree._Element) -> bool:
    """A title, link, id or body with text (or an Atom link's href): what makes an entry readable."""
    if not isinstance(el.tag, str):
        return False
    name = lxml.etree.QName(el).localname
    return name in ("title", "link", "guid", "id", "description", "summary", "content", "encoded") and bool(
        "".join(el.itertext()).strip() or el.get("href")
    )


def test_corpus_is_collected_without_a_crash(tmp_path: Path, http_server: TestServer) -> None:
    urls = {}
    for i, path in enumerate(FILES):
        route = f"/corpus/{i}/{path.name}"
        http_server.route(route, Response(path.read_bytes(), headers={"Content-Type": "application/xml"}))
        urls[path] = http_server.url(route)
    body = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls.values())
    settings = settings_from(tmp_path, body)
    with Store.open(settings.database_url) as store:
        report = collect(settings, store, now=NOW)
        results = {r.key: r for r in report.results}
        posts = store.posts()
    assert len(results) == len(FILES)
    for path, url in urls.items():
        result = results[f"feed:{url}"]
        name = path.relative_to(CORPUS)
        if path.suffix == ".html":
            assert result.status == "failed" and "web page" in result.error, name
            continue
        assert result.status == "ok", f"{name}: {result.error}"
        assert result.fetched == entry_count(path.read_bytes()), name
    assert all("\ufffd" not in p.title + p.text for p in posts)  # every encoding decoded
    assert len(posts) == report.new_posts > 300
