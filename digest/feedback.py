"""Readers steer the filter from the email: the per-card links, what a reader's signal does to their own
editions (`Likeness`), and when a topic learns from signals (`agreed`). Pure: no clock, store or network.

A card's links are signed for one reader, one post, one topic and one purpose ("less": not for me, "more":
more like this) and expire with the reader's token (`tokens.LIFETIMES["feedback"]`). To sign every card of
every message cheaply, a message carries one timestamped reader token (itsdangerous) and each link adds
an HMAC over that token, the purpose, the post and the topic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as htmllib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .models import Post
from .tokens import TokenError, make_token, read_token

__all__ = [
    "KINDS",
    "FeedbackLinks",
    "Likeness",
    "Pressed",
    "Signal",
    "Tally",
    "agreed",
    "fill",
    "read_link",
    "slots",
    "strip",
    "tally",
    "topic_ref",
]

KINDS = {"less": "Not for me", "more": "More like this"}
SIMILAR = 0.4  # TF-IDF cosine from which a post counts as "like" one a reader signalled
_BLOCK = re.compile(r"%%FB%%(.*?)%%FB_END%%\n?", re.S)
_SLOT = re.compile(r"%%FB_URL:(less|more):([0-9a-f]{16}):([0-9a-f]{8})%%|%%FB%%|%%FB_END%%\n?")
_LINK = re.compile(
    r"(?P<reader>[A-Za-z0-9_.-]{1,300})~(?P<kind>less|more)~(?P<post>[0-9a-f]{16})~(?P<ref>[0-9a-f]{8})~(?P<sig>[A-Za-z0-9_-]{22})"
)


def topic_ref(topic: str) -> str:
    """A short, stable reference to a topic name for a link (resolved against the configured topics)."""
    return hashlib.sha256(topic.encode()).hexdigest()[:8]


def slots(post_id: str, topic: str) -> dict[str, str]:
    """The placeholders a card's feedback block is composed with: its start and end, and each link's URL."""
    ref = topic_ref(topic)
    return {
        "start": "%%FB%%",
        "end": "%%FB_END%%",
        "less": f"%%FB_URL:less:{post_id}:{ref}%%",
        "more": f"%%FB_URL:more:{post_id}:{ref}%%",
    }


def _sign(secret: str, reader: str, kind: str, post_id: str, ref: str) -> str:
    """A link's MAC: keyed BLAKE2b (a MAC by design, and a few times cheaper than HMAC-SHA256 per link)."""
    key = hashlib.sha256(secret.encode()).digest()
    mac = hashlib.blake2b(f"{reader}|{kind}|{post_id}|{ref}".encode(), key=key, digest_size=16, person=_PERSON)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


_PERSON = b"digest:feedback"


@dataclass(slots=True)
class FeedbackLinks:
    """One reader's feedback links for one message: ``base`` is the public URL, ``reader`` their token.
    Each link is signed once per message (the HTML and the text part share it)."""

    base: str
    secret: str
    reader: str
    _made: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @classmethod
    def for_reader(cls, base: str, secret: str, address: str) -> FeedbackLinks:
        return cls(base.rstrip("/"), secret, make_token(secret, "feedback", address))

    def url(self, kind: str, post_id: str, ref: str) -> str:
        key = (kind, post_id, ref)
        if key not in self._made:
            sig = _sign(self.secret, self.reader, kind, post_id, ref)
            self._made[key] = f"{self.base}/feedback/{self.reader}~{kind}~{post_id}~{ref}~{sig}"
        return self._made[key]


@dataclass(frozen=True, slots=True)
class Pressed:
    """What a feedback link says: this reader, about this post under the topic with this ref, wants ``kind``."""

    address: str
    kind: str
    post_id: str
    ref: str


def read_link(secret: str, token: str) -> Pressed:
    """The link's reader, purpose, post and topic; `TokenError` when it is forged, altered or expired."""
    match = _LINK.fullmatch(token)
    if match is None:
        raise TokenError("this feedback link is not valid")
    reader, kind, post_id, ref = match["reader"], match["kind"], match["post"], match["ref"]
    if not hmac.compare_digest(match["sig"], _sign(secret, reader, kind, post_id, ref)):
        raise TokenError("this feedback link is not valid")
    address = read_token(secret, "feedback", reader)
    return Pressed(address, kind, post_id, ref)


def fill(chunk: str, links: FeedbackLinks | None, *, escape: bool = False) -> str:
    """A message part with its cards' feedback blocks filled in for one reader, or taken out (``None``:
    the archive, a preview, a list with no public URL)."""
    if links is None:
        return strip(chunk)

    def value(match: re.Match[str]) -> str:
        if match[1] is None:  # a block's start or end marker
            return ""
        url = links.url(match[1], match[2], match[3])
        return htmllib.escape(url) if escape else url

    return _SLOT.sub(value, chunk)


def strip(chunk: str) -> str:
    """A part with every card's feedback block taken out, exactly as if it had never been composed."""
    return _BLOCK.sub("", chunk)


# -- what a reader's signals do to their own editions ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    """A reader pressed a button: ``kind`` ("less" or "more") on a post under a topic. ``email`` is empty once
    the reader unsubscribed (then the signal is only an anonymous count); ``author`` is the post's account key."""

    email: str
    post_id: str
    topic: str
    kind: str
    text: str
    author: str
    at: datetime


class Likeness:
    """Which of a week's posts are like a signalled one: the post itself, any post by the same account, or
    any post whose TF-IDF cosine with it (over the week's own vocabulary) is at least `SIMILAR`. Fitted once
    per week, then asked for every reader with signals."""

    def __init__(self, posts: Sequence[Post], author_of: Callable[[Post], str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        from .textnorm import normalize_many

        self.ids = [p.id for p in posts]
        self.authors = [author_of(p) for p in posts]
        self._normalize = normalize_many
        docs = normalize_many([p.document() for p in posts])
        self._vectorizer = TfidfVectorizer(sublinear_tf=True) if any(d.strip() for d in docs) else None
        self._vectors = self._vectorizer.fit_transform(docs) if self._vectorizer is not None else None

    def like(self, signals: Sequence[Signal]) -> list[set[str]]:
        """Per signal, the ids of the posts like its post."""
        if not signals:
            return []
        if self._vectorizer is None or self._vectors is None:
            cosine = [[0.0] * len(signals) for _ in self.ids]
        else:
            cosine = (
                (self._vectors @ self._vectorizer.transform(self._normalize([s.text for s in signals])).T)
                .toarray()
                .tolist()
            )
        return [
            {
                pid
                for i, pid in enumerate(self.ids)
                if pid == signal.post_id
                or (signal.author and self.authors[i] == signal.author)
                or cosine[i][j] >= SIMILAR
            }
            for j, signal in enumerate(signals)
        ]

    def adjust(self, signals: Iterable[Signal]) -> tuple[frozenset[str], frozenset[str]]:
        """The ids one reader's signals hide ("less") and raise ("more"); a post both hidden and raised is
        hidden: "not for me" is the stronger wish."""
        chosen = [s for s in signals if s.kind in KINDS]
        if not chosen or not self.ids:
            return frozenset(), frozenset()
        out: dict[str, set[str]] = {"less": set(), "more": set()}
        for signal, ids in zip(chosen, self.like(chosen), strict=True):
            out[signal.kind] |= ids
        return frozenset(out["less"]), frozenset(out["more"] - out["less"])


# -- what a topic learns ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """The signals on one post under one topic: distinct readers each way, and what was accepted (None: not yet)."""

    post_id: str
    topic: str
    text: str
    less: int
    more: int
    accepted: bool | None = None

    @property
    def readers(self) -> int:
        return self.less + self.more


def agreed(tally: Tally, readers: int | None) -> bool | None:
    """The label ``readers`` distinct readers agree on (True: more like this, False: not for me), or None:
    auto-accept is off (None), fewer agree, or they disagree. Never fewer than two: one reader alone never
    changes a topic for everyone."""
    if readers is None:
        return None
    need = max(2, readers)
    if tally.more >= need and tally.less == 0:
        return True
    if tally.less >= need and tally.more == 0:
        return False
    return None


def tally(signals: Iterable[Signal], accepted: dict[tuple[str, str], bool]) -> list[Tally]:
    """The signals grouped per post and topic, most readers first; ``accepted`` maps (topic, post id) to the
    label accepted for it. An anonymous signal (its reader unsubscribed) counts as one reader of its own."""
    groups: dict[tuple[str, str], dict[str, set[str]]] = {}
    texts: dict[tuple[str, str], str] = {}
    for n, s in enumerate(signals):
        key = (s.topic, s.post_id)
        who = s.email or f"anonymous:{n}"
        groups.setdefault(key, {"less": set(), "more": set()}).setdefault(s.kind, set()).add(who)
        texts[key] = s.text
    found = [
        Tally(post, topic, texts[(topic, post)], len(ways["less"]), len(ways["more"]), accepted.get((topic, post)))
        for (topic, post), ways in groups.items()
    ]
    return sorted(found, key=lambda t: (t.topic, -t.readers, t.post_id))
