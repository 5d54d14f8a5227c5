"""Turn a raw post into plain lowercase words: the topic filter's only view of the text.

Strips URLs, @handles, RT/via boilerplate, HTML tags and entities, emoji and punctuation; splits
hashtags into words (``#HealthIT`` -> ``health it``, ``#digitalhealth`` -> ``digital health``).
"""

from __future__ import annotations

import html
import importlib
import re
import string
import unicodedata
from functools import lru_cache
from types import ModuleType

__all__ = ["BOILERPLATE", "normalize", "normalize_many", "split_hashtag", "strip_invisible"]

# Words that only ever mark the shape of a post, never its subject.
BOILERPLATE = frozenset({"rt", "mt", "via", "cc", "ht", "amp", "nbsp", "cont", "contd", "pic", "http", "https"})

# Patterns start with a literal where they can (the engine then skips ahead), and run only when a cheap
# `in` test says they may match: posts are short but many.
_URL = re.compile(r"https?(?::\S*|(?=…))")  # full or truncated (http…)
_WWW = re.compile(r"www\.\S*")
_BARE_LINK = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}/\S*")  # bit.ly/x, pic.twitter.com/x
_HANDLE = re.compile(r"@(?<![\w@/]@)\w+(?:[.-]\w+)*(?:@\w+(?:[.-]\w+)+)?")  # @u, @u@server.social, @u.bsky.social
_LEAD_RT = re.compile(r"\A\s*(?:RT|MT)\b:?")
_HTML_TAG = re.compile(r"<[^<>\n]{1,300}>")
_HASHTAG = re.compile(r"#(?<![\w&#]#)(\w+)")
_NONWORD = re.compile(r"[\W_]+")
# Camel-case pieces of an ASCII hashtag; digits stay on the word before them (COVID19, HL7).
_CAMEL = re.compile(
    r"[a-z][A-Z][a-z]+\d*"  # iPhone, eHealth
    r"|[A-Z]{2,}[a-z]{1,2}\d*(?![a-z])"  # HITsm, IDs
    r"|[A-Z]+\d*(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+"
)
_LOWER_RUN = re.compile(r"([a-z]+)(\d*)")
_MIN_SEGMENT_LEN = 6  # shorter lowercase tags are mostly acronyms (#ehr, #nhs, #hcldr): keep them whole
# Two-letter words a hashtag may really contain (#healthit, #getonboard); other pairs are a bad split (#foodie).
_SHORT_WORDS = frozenset({
    "ai", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in", "is", "it", "me",
    "my", "no", "of", "on", "or", "so", "to", "tv", "uk", "up", "us", "we", "eu", "vr",
})  # fmt: skip
# ASCII fast path: lowercase letters, keep digits, every other byte becomes a space.
_ASCII_TABLE = bytes(
    c if chr(c) in string.ascii_lowercase + string.digits else c + 32 if chr(c) in string.ascii_uppercase else 32
    for c in range(256)
)


class _WordChars(dict[int, int]):
    """``str.translate`` table for lowercased text: a word character stays, any other becomes a space (as
    `_NONWORD`), each character classified once, when first seen."""

    def __missing__(self, code: int) -> int:
        self[code] = kept = 32 if _NONWORD.match(chr(code)) else code
        return kept


_WORD_CHARS = _WordChars()


@lru_cache(maxsize=1)
def _segmenter() -> ModuleType:
    """`wordninja` (English unigram costs, ~30 MB), imported only when a run-together hashtag needs it."""
    return importlib.import_module("wordninja")


def _segment_run(run: str) -> list[str]:
    """Split a lowercase ASCII run (``digitalhealth``); keep it whole unless every part is a real word."""
    if len(run) < _MIN_SEGMENT_LEN:
        return [run]
    parts: list[str] = _segmenter().split(run)
    if len(parts) > 1 and all(len(p) > 2 or p in _SHORT_WORDS for p in parts):
        return parts
    return [run]


@lru_cache(maxsize=65536)
def split_hashtag(tag: str) -> str:
    """``HealthIT`` -> ``health it``, ``digitalhealth`` -> ``digital health``, ``FHIR`` -> ``fhir``."""
    if not tag.isascii():
        return tag.replace("_", " ").lower()
    words: list[str] = []
    for piece in _CAMEL.findall(tag):
        run = _LOWER_RUN.fullmatch(piece)
        if run is None:
            words.append(piece.lower())
            continue
        parts = _segment_run(run.group(1))
        parts[-1] += run.group(2)
        words.extend(parts)
    return " ".join(words)


def _hashtag_words(match: re.Match[str]) -> str:
    return " " + split_hashtag(match.group(1)) + " "


def _strip_markup(text: str) -> str:
    """Entities, tags, links, handles and a leading RT: everything that is not the author's words."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "http" in text:
        text = _URL.sub(" ", text)
    if "www." in text:
        text = _WWW.sub(" ", text)
    if "/" in text:
        text = _BARE_LINK.sub(" ", text)
    if "@" in text:
        text = _HANDLE.sub(" ", text)
    if text[:3].lstrip()[:2] in ("RT", "MT"):
        text = _LEAD_RT.sub(" ", text)
    return text


def normalize(text: str) -> str:
    """Plain lowercase words separated by single spaces; ``""`` when nothing is left (no evidence)."""
    if not text:
        return ""
    text = _strip_markup(text)
    if "#" in text:
        text = _HASHTAG.sub(_hashtag_words, text)
    if text.isascii():
        words = text.encode().translate(_ASCII_TABLE).decode().split()
    else:
        words = text.lower().translate(_WORD_CHARS).split()
    if not BOILERPLATE.isdisjoint(words):
        words = [w for w in words if w not in BOILERPLATE]
    return " ".join(words)


def normalize_many(texts: list[str]) -> list[str]:
    """`normalize` over a batch, one result per text; a text repeated (a boost, a cross-post) is read once."""
    seen: dict[str, str] = {}
    return [seen[t] if t in seen else seen.setdefault(t, normalize(t)) for t in texts]


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ZWNJ, _ZWJ = "\u200c", "\u200d"


def strip_invisible(text: str) -> str:
    """A name or title without the characters that show nothing but change what is shown: control
    characters (Cc, made spaces), and format characters (Cf: the right-to-left override U+202E and
    the other bidi controls, zero-width space U+200B, word joiner U+2060, BOM U+FEFF, soft hyphen),
    dropped. What text needs stays: a zero-width joiner inside an emoji sequence (👩‍💻) and a
    zero-width non-joiner between letters (Persian, Indic scripts)."""
    if text.isascii():
        return _ASCII_CONTROL.sub(" ", text) if _ASCII_CONTROL.search(text) else text
    out = []
    for i, ch in enumerate(text):
        kind = unicodedata.category(ch)
        if kind == "Cc":
            out.append(" ")
        elif kind != "Cf" or _needed_joiner(text, i):
            out.append(ch)
    return "".join(out)


def _needed_joiner(text: str, i: int) -> bool:
    if text[i] not in (_ZWJ, _ZWNJ) or i == 0 or i + 1 >= len(text):
        return False
    before, after = unicodedata.category(text[i - 1]), unicodedata.category(text[i + 1])
    if text[i] == _ZWJ:  # emoji: a symbol (or its variation selector / modifier) on both sides
        return before in ("So", "Sk", "Mn") and after in ("So", "Sk")
    return before[0] in "LM" and after[0] == "L"
