"""`digest demo`: the real pipeline over a sample week served on 127.0.0.1, in a temporary folder.

The sample (``week.toml``) was written for the demo: a few health-IT accounts, a #HITsm chat, a
blog, and the lunch photos and puppies that come along. Nothing here reaches the internet.
"""

from __future__ import annotations

import html
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import clock

if TYPE_CHECKING:
    from ..compose import Counts

__all__ = ["DemoResult", "run_demo", "sample_feeds"]

HOST = "demo.example"
_TAG = re.compile(r"#(\w+)")
_URL = re.compile(r"https?://\S+")


def _sample() -> dict[str, Any]:
    return tomllib.loads(files(__name__).joinpath("week.toml").read_text(encoding="utf-8"))


def _status_id(when: datetime) -> int:
    return int(when.timestamp() * 1000) << 16  # shaped like a Mastodon id: sorts by time


def _post_html(text: str) -> str:
    def link(match: re.Match[str]) -> str:
        url = html.escape(match.group(0))
        return f'<a href="{url}" rel="nofollow noopener" target="_blank">{url}</a>'

    def tag(match: re.Match[str]) -> str:
        name = match.group(1)
        return f'<a href="https://{HOST}/tags/{name}" class="mention hashtag" rel="tag">#<span>{name}</span></a>'

    escaped = html.escape(text, quote=False)
    return "<p>" + _TAG.sub(tag, _URL.sub(link, escaped)) + "</p>"


def _item(author: str, post: dict[str, Any], now: datetime) -> str:
    when = now - timedelta(hours=float(post["hours"]))
    url = f"https://{HOST}/@{author}/{_status_id(when)}"
    media = ""
    if post.get("image"):
        alt = html.escape(post["image"])
        media = (
            f'<media:content url="https://{HOST}/media/{_status_id(when)}.jpg" type="image/jpeg" medium="image">'
            f'<media:description type="plain">{alt}</media:description></media:content>'
        )
    tags = "".join(f"<category>{t.lower()}</category>" for t in _TAG.findall(post["text"]))
    return (
        f'<item><guid isPermaLink="true">{url}</guid><link>{url}</link>'
        f"<pubDate>{format_datetime(when)}</pubDate><description>{html.escape(_post_html(post['text']))}"
        f"</description>{media}{tags}</item>"
    )


def _rss(title: str, description: str, link: str, items: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        f"<title>{html.escape(title)}</title><description>{html.escape(description)}</description>"
        f"<link>{link}</link><generator>digest demo</generator>{''.join(items)}</channel></rss>\n"
    ).encode()


def sample_feeds(now: datetime) -> dict[str, bytes]:
    """The demo's documents by path: Mastodon-style account and hashtag RSS, and a blog's RSS."""
    week = _sample()
    feeds = {}
    for account in week["accounts"]:
        handle = account["handle"]
        items = [_item(handle, post, now) for post in account["posts"]]
        feeds[f"/@{handle}.rss"] = _rss(
            account["name"], f"Public posts from @{handle}@{HOST}", f"https://{HOST}/@{handle}", items
        )
    tag = week["hashtag"]["tag"]
    items = [_item(post["author"], post, now) for post in week["hashtag"]["posts"]]
    feeds[f"/tags/{tag}.rss"] = _rss(f"#{tag}", f"Public posts tagged #{tag}", f"https://{HOST}/tags/{tag}", items)
    blog = week["blog"]
    items = []
    for i, post in enumerate(blog["posts"]):
        when = now - timedelta(hours=float(post["hours"]))
        url = f"https://interop.example/{when:%Y/%m/%d}/post-{i}"
        items.append(
            f"<item><guid>{url}</guid><link>{url}</link><title>{html.escape(post['title'])}</title>"
            f"<pubDate>{format_datetime(when)}</pubDate><author>editor@interop.example (Priya Raman)</author>"
            f"<description>{html.escape(post['text'])}</description></item>"
        )
    feeds["/blog/feed.xml"] = _rss(
        blog["title"], "Notes from an interoperability lab", "https://interop.example/", items
    )
    return feeds


@contextmanager
def serve(documents: dict[str, bytes]) -> Iterator[str]:
    """Serve the documents on 127.0.0.1 (an ephemeral port) for the duration; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path.split("?", 1)[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def demo_config(base: str, now: datetime | None = None) -> str:
    """A feeds.toml for the sample week, every source pointed at the local server; with ``now`` (the
    demo's send time), its #HITsm chat as a [[chats]] at the hours before it that the sample says."""
    week = _sample()
    chat = week["hashtag"]
    lines = [
        f'[digest]\ntitle = "{week["title"]}"\ntimezone = "UTC"\n',
        f'[collect]\nmastodon_via = "rss"\nretries = 0\n\n[collect.base_urls]\n"{HOST}" = "{base}"\n',
    ]
    lines += [f'[[sources]]\nmastodon = "@{a["handle"]}@{HOST}"\n' for a in week["accounts"]]
    lines.append(f'[[sources]]\nhashtag = "{week["hashtag"]["tag"]}"\nservers = ["{HOST}"]\n')
    lines.append(f'[[sources]]\nfeed = "{base}/blog/feed.xml"\nname = "{week["blog"]["title"]}"\n')
    for topic in week["topics"]:
        keywords = ", ".join(f'"{k}"' for k in topic["keywords"])
        lines.append(
            f'[[topics]]\nname = "{topic["name"]}"\ndescription = """{topic["description"]}"""\nkeywords = [{keywords}]\n'
        )
    if now is not None:
        start = now - timedelta(hours=float(chat["starts"]))
        lines.append(
            f'[[chats]]\nhashtag = "{chat["tag"]}"\nhost = "@{chat["host"]}@{HOST}"\n'
            f'when = "{start:%A %H:%M}"\nduration = "{chat["duration"]}"\n'
        )
    lines.append(f'[[subscribers]]\nemail = "{week["subscriber"]}"\nname = "there"\n')
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Where the demo left its files, and the edition's numbers (`compose.Counts`) with its posts."""

    folder: Path
    preview: Path
    outbox: Path
    kept: dict[str, list[str]]  # per topic, the posts its section shows, in order (`counts.on_topic`: all it kept)
    dropped: list[str]  # the posts left out as off-topic
    new_posts: int
    counts: Counts
    recap: list[str]  # per chat its line, then each question with its answers' count


def run_demo(folder: Path, *, now: datetime | None = None, say: Callable[[str], None] = print) -> DemoResult:
    """Serve the sample week, then collect, filter, compose and send it to the outbox in ``folder``.

    The demo runs at the send time of the last edition completed by ``now`` (default: the clock), its
    sample posts dated in the hours before it, so the edition it sends holds the whole sample week."""
    from .. import config
    from ..collect import collect
    from ..compose import personalize
    from ..delivery import links_for
    from ..periods import last_completed
    from ..pipeline import composer_from_run, send_week
    from ..store import Store

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feeds.toml"
    path.write_text(demo_config("http://127.0.0.1"), encoding="utf-8")  # its schedule, before the server's port
    now = last_completed(config.load(path), now or clock.now()).due
    with serve(sample_feeds(now)) as base:
        path.write_text(demo_config(base, now), encoding="utf-8")
        settings = config.load(path)
        say(f"1. serving a sample week on {base}; config written to {path}")
        with Store.open(settings.database_url) as store:
            report = collect(settings, store, now=now)
            say(f"2. collected {report.new_posts} posts from {len(report.results)} sources over HTTP")
            sent = send_week(settings, store, now=now)
            run = store.last_filter_run()
            assert run is not None
            composer = composer_from_run(settings, store, run, week=sent.week, now=now)
            edition = next(iter(store.editions(sent.week).values()))
    topics = list(edition.topics)
    counts = composer.counts(topics)
    kept = {
        s.topic: [f"{c.author_name}: {_short(c.title or c.text)}" for c in s.cards] for s in composer.sections(topics)
    }
    dropped = [f"{composer.names.author(s.post)}: {_short(s.post.title or s.post.text)}" for s in composer.left_out]
    recap = [
        line
        for chat in composer.chats
        for line in (
            f"#{chat.hashtag}: {len(chat.questions)} questions, {chat.participants} participants",
            *(f"{q.label}: {_short(q.text)} ({len(q.answers)} answers)" for q in chat.questions),
        )
    ]
    links = links_for(settings, _sample()["subscriber"])
    preview = folder / f"digest-{sent.week}.html"
    copy = personalize(
        edition,
        unsubscribe_url=links.unsubscribe,
        preferences_url=links.preferences,
        name="there",
    )
    preview.write_text(copy.html, encoding="utf-8")
    say(f"3. the filter and the composer: {counts.summary}")
    return DemoResult(folder, preview, settings.outbox_dir / sent.week, kept, dropped, report.new_posts, counts, recap)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return f"{text[:limit]}{'…' if len(text) > limit else ''}"
