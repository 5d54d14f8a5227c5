"""The shapes every stage passes on: a collected `Post` and its parts, and the records the store keeps
(source states, decisions, subscribers, editions, deliveries, jobs), with their statuses as `Literal`s.

Collectors turn each payload into a `Post` at the edge; nothing downstream reads raw dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from .textnorm import strip_invisible

__all__ = [
    "AcceptedExample",
    "Author",
    "Decision",
    "Delivery",
    "DeliveryStatus",
    "Document",
    "Edition",
    "Engagement",
    "ExampleOrigin",
    "Job",
    "JobStatus",
    "Media",
    "Post",
    "Recipient",
    "SourceState",
    "SourceStatus",
    "SubscriberOrigin",
    "SubscriberStatus",
    "document_of",
]

# What a source's last fetch came to: never fetched, fetched (new posts or none), unchanged, failed, gone (410).
SourceStatus = Literal["new", "ok", "not_modified", "failed", "dead"]
# A subscriber's state: awaiting the confirmation link, receiving, bouncing (an unsubscribed address
# is deleted and kept only as a suppression; "unsubscribed" is the count of those).
SubscriberStatus = Literal["pending", "confirmed", "unsubscribed", "bouncing"]
# Listed in feeds.toml, subscribed on the pages, added by `digest subscribers add` or `import`.
SubscriberOrigin = Literal["config", "web", "cli", "import"]
# A delivery's way: queued, claimed by a run (sending), handed to the server, accepted, refused.
DeliveryStatus = Literal["queued", "sending", "handed_over", "sent", "failed"]
JobStatus = Literal["running", "done", "failed"]  # a scheduled job's claim: held, finished, to be retried
ExampleOrigin = Literal["curator", "readers"]  # accepted by `digest topics feedback --accept`, or automatically


class Document(NamedTuple):
    """What the topic filter reads of a stored post: its id and `Post.document()` (a tuple, so a week's
    100,000 of them cost little)."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a post: a display name, a handle (``@user@server``, ``user.bsky.social``) and a profile URL."""

    name: str = ""
    handle: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        if self.name:  # no right-to-left override or zero-width character reaches an edition
            object.__setattr__(self, "name", strip_invisible(self.name))


@dataclass(frozen=True, slots=True)
class Media:
    """An attachment: its URL, a coarse type (image, video, audio, link, other) and its alt text."""

    url: str
    type: str = "image"
    alt: str = ""


@dataclass(frozen=True, slots=True)
class Engagement:
    """Counts a network gives for a post; ``None`` where the source says nothing (RSS)."""

    replies: int | None = None
    boosts: int | None = None
    likes: int | None = None
    quotes: int | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """One collected post, in the one shape every network and feed format is turned into.

    ``uri`` is the post's canonical identity (ActivityPub URI, ``at://`` URI, feed guid or
    canonical link); ``id`` is a short stable hash of it, so the same post seen through two
    sources or two servers is stored once.
    """

    id: str
    uri: str
    source: str
    url: str
    published: datetime
    author: Author = field(default_factory=Author)
    title: str = ""
    text: str = ""
    html: str = ""
    language: str | None = None
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    media: tuple[Media, ...] = ()
    is_reply: bool = False
    in_reply_to: str = ""  # the parent's URL or URI; "server:id" when only a server-local Mastodon id is known
    is_boost: bool = False
    is_quote: bool = False
    boosted_by: str = ""
    content_warning: str = ""
    sensitive: bool = False
    engagement: Engagement = field(default_factory=Engagement)

    def __post_init__(self) -> None:
        for name in ("title", "content_warning"):  # every parser's posts pass here: cleaned once, at the edge
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, strip_invisible(value))

    def document(self) -> str:
        """The text the topic filter reads: title, body, hashtags and image alt text."""
        return document_of(self.title, self.text, self.tags, [m.alt for m in self.media])


def document_of(title: str, text: str, tags: Iterable[str], alts: Iterable[str]) -> str:
    """`Post.document` from a post's parts (the store reads them without building the `Post`)."""
    parts = [title, text, " ".join(f"#{t}" for t in tags), *alts]
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Publication:
    """A feed as its readers know it: ``name`` (feeds.toml's, else the feed's own title) and the feed's
    own ``title`` (which a feed with no author gives its posts as their author)."""

    name: str
    title: str = ""


@dataclass(slots=True)
class SourceState:
    """What the store remembers about one fetched endpoint between runs.

    ``key`` names the endpoint (``feed:URL``, ``mastodon:@user@server``, ``hashtag:#tag@server``,
    ``bluesky:handle``); ``url`` is where it is fetched now (a permanent redirect updates it).
    """

    key: str
    kind: str
    url: str
    status: SourceStatus = "new"
    last_error: str = ""
    failures: int = 0
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    next_attempt: datetime | None = None
    etag: str = ""
    last_modified: str = ""
    cursor: str = ""
    newest_post: datetime | None = None
    gap_possible: bool = False
    note: str = ""
    body_hash: str = ""  # of the last feed body read: the same body again is not parsed again
    title: str = ""  # the feed's own title, as last read: the publication's name on cards when feeds.toml gives none


@dataclass(frozen=True, slots=True)
class Decision:
    """The topic filter's verdict on one post: the topics it is kept under (none: dropped as
    off-topic), every topic's score and threshold, and the noise profile's score."""

    topics: tuple[str, ...]
    scores: dict[str, float]
    thresholds: dict[str, float]
    noise_score: float

    @property
    def kept(self) -> bool:
        return bool(self.topics)

    def to_json(self) -> str:
        """The record as a JSON object."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Decision:
        """Rebuild a record written by `to_json`."""
        data = json.loads(text)
        return cls(tuple(data["topics"]), data["scores"], data["thresholds"], float(data["noise_score"]))


@dataclass(frozen=True, slots=True)
class Recipient:
    """A subscriber a digest goes to: address, name, and the topics chosen (None: every topic)."""

    email: str
    name: str = ""
    topics: tuple[str, ...] | None = None
    status: SubscriberStatus = "confirmed"
    origin: SubscriberOrigin = "config"
    bounces: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One edition to one subscriber for one week, and how far it got."""

    week: str
    email: str
    path: str
    status: DeliveryStatus  # "sending": claimed by a run
    message_id: str
    attempts: int = 0
    answer: str = ""
    error: str = ""
    uncertain: int = 0  # times a crash left its handover unconfirmed (then sent again, or not, per [mail])


@dataclass(frozen=True, slots=True)
class Edition:
    """One edition for one topic selection: subject, HTML (CSS inlined) and plain text.

    Until `compose.personalize` fills them in, ``html`` and ``text`` hold the placeholders. ``path`` is
    where the web copy lives under the public URL (`compose.edition_path`); ``created_at`` is when the
    store first kept it (None until then).
    """

    week: str
    subject: str
    html: str
    text: str
    topics: tuple[str, ...]
    path: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled job (``send``, ``collect``, ``chat``) for one period, and who holds it."""

    name: str
    period: str  # the ISO week, or the collection slot
    status: JobStatus
    owner: str  # host:pid:start of the process running it (`store.leases`)
    attempts: int
    detail: str  # a one-line summary, or the error
    started_at: datetime
    updated_at: datetime  # the lease: a running job renews it


@dataclass(frozen=True, slots=True)
class AcceptedExample:
    """A readers' signal a topic accepted as a labelled example: the post's text, for the topic or against it."""

    topic: str
    post_id: str
    text: str
    label: bool  # True: about the topic; False: not
    origin: ExampleOrigin
    accepted_at: datetime
