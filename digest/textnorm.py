"""Turn a raw post into plain lowercase words for the topic filter.

Strips URLs, @handles, RT/via boilerplate, HTML, entities and emoji; splits hashtags into words.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

__all__ = ["normalize", "normalize_many", "split_hashtag"]

_TAG_HTML = re.compile(r"<[^<>\n]{1,300}>")
_URL = re.compile(
    r"\b(?:https?:|www\.)\S*"  # full or truncated links
    r"|\b(?:[a-z0-9-]+\.)+[a-z]{2,}/\S*"  # bare short links: bit.ly/x, pic.twitter.com/x
    r"|\bhttps?(?=…)",
    re.IGNORECASE,
)
# A handle: @user, @user@server.social, @user.bsky.social; also the RT/MT/via/cc/h/t before it.
_HANDLE = re.compile(
    r"(?:\b(?:RT|MT|via|cc|h/t|HT)\b:?\s*)?(?<![\w@/])@\w+(?:[.-]\w+)*(?:@\w+(?:[.-]\w+)+)?:?",
)
_BOILERPLATE = re.compile(
    r"^\s*(?:RT|MT)\b:?|\((?:cont|contd|thread)\.?\)|\[thread\]|\b\d{1,2}/\d{1,2}$",
    re.IGNORECASE | re.MULTILINE,
)
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
# Camel-case pieces of an ASCII hashtag; digits stay on the word before them (COVID19, HL7).
_CAMEL = re.compile(
    r"[a-z][A-Z][a-z]+\d*"  # iPhone, eHealth
    r"|[A-Z]{2,}[a-z]{1,2}\d*(?![a-z])"  # HITsm, IDs
    r"|[A-Z]+\d*(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+"
)
_LOWER_RUN = re.compile(r"([a-z]+)(\d*)")
_NONWORD = re.compile(r"[\W_]+")
_MIN_SEGMENT_LEN = 6  # shorter lowercase tags are mostly acronyms (#ehr, #nhs, #hcldr): keep whole


def _segmenter() -> object:
    """The `wordsegment` model, loaded once and only when a run-together hashtag needs it."""
    import wordsegment

    if not wordsegment.UNIGRAMS:
        wordsegment.load()
    return wordsegment


def _segment_run(run: str) -> list[str]:
    """Split a lowercase ASCII run such as ``digitalhealth``; keep it whole unless every part is a real word."""
    if len(run) < _MIN_SEGMENT_LEN:
        return [run]
    ws = _segmenter()
    parts: list[str] = ws.segment(run)  # type: ignore[attr-defined]
    unigrams: dict[str, float] = ws.UNIGRAMS  # type: ignore[attr-defined]
    if len(parts) > 1 and all(len(p) > 1 and p in unigrams for p in parts):
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


def normalize(text: str) -> str:
    """Plain lowercase words separated by single spaces; ``""`` when nothing topical is left."""
    if not text:
        return ""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAG_HTML.sub(" ", text)
    text = _URL.sub(" ", text)
    if "@" in text:
        text = _HANDLE.sub(" ", text)
    text = _BOILERPLATE.sub(" ", text)
    if "#" in text:
        text = _HASHTAG.sub(_hashtag_words, text)
    return _NONWORD.sub(" ", text.lower()).strip()


def normalize_many(texts: list[str]) -> list[str]:
    """`normalize` over a batch (same result as one by one)."""
    return [normalize(t) for t in texts]
