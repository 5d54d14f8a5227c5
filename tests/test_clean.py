"""The sanitizer: a table of hostile inputs and the safe HTML each must become."""

from __future__ import annotations

import pytest

from digest.clean import clean_html, is_tracker, safe_url, sanitize, text_to_html

BASE = "https://blog.example.org/posts/1"
REL = 'rel="noopener noreferrer nofollow"'

CASES = [
    ("script", "<p>Hi<script>alert(1)</script></p>", "<p>Hi</p>"),
    ("script in attribute-less svg", "<svg><script>alert(1)</script><circle/></svg><p>ok</p>", "<p>ok</p>"),
    ("style element", "<style>p{color:red}</style><p>x</p>", "<p>x</p>"),
    ("style attribute", '<p style="position:fixed;top:0">x</p>', "<p>x</p>"),
    ("event handler", '<b onclick="steal()" onmouseover="x()">bold</b>', "<b>bold</b>"),
    ("onerror on image", '<img src="https://cdn.example.org/a.png" onerror="alert(1)" alt="A">', None),
    ("javascript: link", '<a href="javascript:alert(1)">j</a>', f"<a {REL}>j</a>"),
    ("javascript: with a tab", '<a href="jav&#x09;ascript:alert(1)">j</a>', f'<a href="https://blog.example.org/posts/jav%09ascript:alert(1)" {REL}>j</a>'),
    ("data: link", '<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>', f"<a {REL}>d</a>"),
    ("data: image", '<p>x<img src="data:image/png;base64,iVBOR" alt="inline"></p>', "<p>x</p>"),
    ("1x1 pixel", '<p>x<img src="https://t.example.org/o.gif" width="1" height="1"></p>', "<p>x</p>"),
    ("pixel by style", '<p>x<img src="https://t.example.org/o.gif" style="width:1px;height:1px"></p>', "<p>x</p>"),
    ("pixel by style width:0", '<p>x<img src="https://t.example.org/o.gif" style="width:0"></p>', "<p>x</p>"),
    ("pixel by style height:0 in em", '<p>x<img src="https://t.example.org/o.gif" style="border:0; height: 0em"></p>', "<p>x</p>"),
    ("zero width attribute", '<p>x<img src="https://t.example.org/o.gif" width="0" alt="A"></p>', "<p>x</p>"),
    ("hidden by display:none", '<p>x<img src="https://t.example.org/o.gif" style="display:none !important" alt="A"></p>', "<p>x</p>"),
    ("hidden by visibility", '<p>x<img src="https://t.example.org/o.gif" style="visibility: hidden"></p>', "<p>x</p>"),
    ("hidden by opacity", '<p>x<img src="https://t.example.org/o.gif" style="opacity:0"></p>', "<p>x</p>"),
    ("hidden attribute", '<p>x<img src="https://t.example.org/o.gif" hidden alt="A"></p>', "<p>x</p>"),
    ("a styled normal image stays", '<img src="https://a.example/x.png" alt="X" style="width:20px;max-width:100%;opacity:0.9">', '<img src="https://a.example/x.png" alt="X">'),
    ("tracker host", '<p>x<img src="https://feeds.feedburner.com/~r/blog/~4/abc"></p>', "<p>x</p>"),
    ("remote font @import", "<style>@import url(https://fonts.googleapis.com/css?family=Inter);</style><p>t</p>", "<p>t</p>"),
    ("remote font link", '<link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Inter"><p>t</p>', "<p>t</p>"),
    ("iframe", '<iframe src="https://evil.example/"></iframe><p>t</p>', "<p>t</p>"),
    ("form", '<form action="https://evil.example/"><input name="pw"><button>Go</button></form><p>t</p>', "<p>t</p>"),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example/"><p>t</p>', "<p>t</p>"),
    ("relative link", '<a href="/about?a=1&b=2">about</a>', f'<a href="https://blog.example.org/about?a=1&amp;b=2" {REL}>about</a>'),
    ("relative image", '<img src="img/chart.png" alt="Chart">', '<img src="https://blog.example.org/posts/img/chart.png" alt="Chart">'),
    ("mailto kept", '<a href="mailto:editor@example.org">mail</a>', f'<a href="mailto:editor@example.org" {REL}>mail</a>'),
    ("wide image capped", '<img src="https://a.example/x.png" alt="X" width="2400" height="1600">', '<img src="https://a.example/x.png" alt="X" width="560">'),
    ("lazy image", '<img src="/blank.gif" data-src="/real.jpg" loading="lazy" alt="Real">', '<img src="https://blog.example.org/real.jpg" alt="Real">'),
    ("lazy without src", '<img data-src="https://cdn.example.org/r.jpg" alt="R">', '<img alt="R" src="https://cdn.example.org/r.jpg">'),
    ("alt escaped", '<img src="https://a.example/x.png" alt="&quot;><script>x</script>">', '<img src="https://a.example/x.png" alt="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">'),
    ("mastodon hidden url parts", '<a href="https://example.com/a/long/path"><span class="invisible">https://</span><span class="ellipsis">example.com/a/lo</span><span class="invisible">ng/path</span></a>', f'<a href="https://example.com/a/long/path" {REL}><span>example.com/a/lo…</span></a>'),
    ("comment", "<p>a<!-- <script>x</script> -->b</p>", "<p>ab</p>"),
    ("unknown tag keeps text", "<blink>hello</blink>", "hello"),
    ("plain text escaped", "fish & chips < 5", "fish &amp; chips &lt; 5"),
    ("empty", "   ", ""),
]  # fmt: skip


@pytest.mark.parametrize(("html", "expected"), [(h, e) for _, h, e in CASES], ids=[name for name, _, _ in CASES])
def test_sanitize(html: str, expected: str | None) -> None:
    result = sanitize(html, BASE)
    if expected is not None:
        assert result == expected
    for bad in ("<script", "onerror", "onclick", "javascript:", "data:", "style=", "@import", "<iframe", "<link"):
        assert bad not in result.lower()


def test_image_handlers_go_but_the_image_stays() -> None:
    assert sanitize('<img src="https://cdn.example.org/a.png" onerror="alert(1)" alt="A">', BASE) == (
        '<img src="https://cdn.example.org/a.png" alt="A">'
    )


def test_long_html_is_cut_at_a_block_and_every_image_seen_is_reported() -> None:
    html = (
        '<p>First.</p><img src="/a.png" alt="A"><img src="https://pixel.wp.com/g.gif">'
        + "<p>"
        + "word " * 60
        + "</p>" * 8
    )
    cleaned = clean_html(html, BASE, limit=200)
    assert cleaned.cut and cleaned.html.startswith("<p>First.</p>") and cleaned.html.count("<p>") < 8
    assert cleaned.images == {"https://blog.example.org/a.png", "https://pixel.wp.com/g.gif"}


def test_one_huge_block_becomes_an_excerpt() -> None:
    cleaned = clean_html("<div>" + "long words " * 300 + "</div>", BASE, limit=100)
    assert cleaned.cut and cleaned.html.startswith("<p>long words") and cleaned.html.endswith("…</p>")
    assert len(cleaned.html) < 120


def test_short_html_is_not_cut() -> None:
    cleaned = clean_html("<p>" + "word " * 30 + "</p>", BASE, limit=100)
    assert not cleaned.cut


def test_text_to_html_escapes_and_links() -> None:
    assert text_to_html("a <b> & https://x.org/p?q=1.\n\nnext\nline") == (
        '<p>a &lt;b&gt; &amp; <a href="https://x.org/p?q=1" rel="noopener noreferrer">https://x.org/p?q=1</a>.</p>'
        "<p>next<br>line</p>"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", "https://a.example/x"),
        ("/x", "https://blog.example.org/x"),
        ("javascript:alert(1)", ""),
        (" JavaScript:alert(1)", ""),
        ("data:text/html,x", ""),
        ("vbscript:x", ""),
        ("mailto:a@b.org", "mailto:a@b.org"),
        ("https://a.example/\nx", ""),
        ("", ""),
    ],
)
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url, BASE) == expected


def test_trackers() -> None:
    assert is_tracker("https://stats.wordpress.com/b.gif?v=1")
    assert is_tracker("https://www.google-analytics.com/collect?v=1")
    assert is_tracker("https://example.org/wf/open?upn=abc")
    assert not is_tracker("https://files.mastodon.social/media/chart.png")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ann\u202eKcatta", "AnnKcatta"),  # right-to-left override: what is shown is not what is written
        ("FHIR\u200b news\u2060 \ufeffweekly\u200d", "FHIR news weekly"),
        ("\u2066isolated\u2069 \u00adsoft", "isolated soft"),
        ("tab\tand\x00nul", "tab and nul"),
        ("👩\u200d💻 coder", "👩\u200d💻 coder"),  # an emoji sequence keeps its joiner
        ("می\u200cخواهم", "می\u200cخواهم"),  # Persian keeps its non-joiner
    ],
)
def test_invisible_characters_leave_names_and_titles(raw: str, expected: str) -> None:
    from datetime import UTC, datetime

    from digest.models import Author, Post

    post = Post(
        "id", "uri", "src", "https://x.example/1", datetime(2026, 1, 1, tzinfo=UTC), Author(name=raw), title=raw
    )
    assert " ".join(post.title.split()) == expected and " ".join(post.author.name.split()) == expected
