"""Hashtag chat recaps: a weekly chat's questions in order, the best answers under each.

A chat such as #HITsm floods hundreds of posts in an hour: a host posts numbered questions
(``T1: ...``, ``Q2.``, sub-questions ``T3a``/``T3b``), participants answer (``A1 ...``, ``T1 ...``,
or by replying), and people lurk afterwards. `recap` turns the window's posts into a `Recap`:

1. The chat's posts: those in the window carrying the hashtag, the host's, and replies into them
   (a reply need not repeat the tag). Boosts and posts outside the window are ignored.
2. Questions: the host's posts with a T/Q label (at the start, or opening a later sentence before the
   question itself: ``Welcome to #HITsm! T1: ...``); without a host (or when the host posted none),
   the first post of each T/Q label by anyone; when nobody labelled anything, the window is cut
   into equal slices and the best post of each slice heads it.
3. Answers: an ``A1``/``A1:``/``A1a``/``T1``/``Q1`` label first; then reply-threading (a reply to a
   question, or to anything already matched to it); then time: an on-topic post (by the filter's
   scores) with neither answers the question it follows, while that question's turn lasts; what is
   left is "other".
4. Ranking, the same for answers and "other": ``log(1 + likes + boosts + replies) + log(1 +
   distinct repliers) + topic score``; ties go to the earlier post. At most ``per_question``
   answers a question, one per author.

Pure functions: no clock, no store, no network.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from .models import Post
from .rank import account_key

if TYPE_CHECKING:
    from .config import ChatSettings

__all__ = ["Question", "Recap", "chat_windows", "current_or_next_window", "open_chats", "recap"]

PER_QUESTION = 5  # answers shown under a question
OTHER_LIMIT = 5  # "Other highlights" shown
SLICE = timedelta(minutes=15)  # time-slicing: about one slice per quarter hour, 1 to 6 slices
MAX_SLICES = 6

# What may come before a label: mentions (a reply starts with them), hashtags, "RT".
_LEAD = re.compile(r"^(?:\s*(?:[@#][\w.@-]+|RT\b)[\s:,]*)*\s*", re.IGNORECASE)
# T1, T1:, Q2., T3a, Topic 4 -, Question 5)
_QUESTION = re.compile(
    r"(?:(?P<letter>[TQ])|(?P<word>topic|question)\s*)(?P<num>\d{1,2})(?P<sub>[a-z])?(?!\w)\s*[:.)\-–—/]?\s*",
    re.IGNORECASE,
)
# the same label later in a post's opening: a sentence starts with it, a separator follows it
_LATER_QUESTION = re.compile(
    r"(?:(?<=[.!?…])|(?<=\n))\s+(?:#\w+\s+)*"
    r"(?:(?P<letter>[TQ])|(?P<word>topic|question)\s*)(?P<num>\d{1,2})(?P<sub>[a-z])?(?!\w)\s*[:.)\-–—/]\s*",
    re.IGNORECASE,
)
OPENING = 200  # characters of a post in which a question label may sit
# A1, A1:, A1a, T1, Q1 (participants often repeat the question's label)
_ANSWER = re.compile(r"(?P<letter>[ATQ])(?P<num>\d{1,2})(?P<sub>[a-z])?(?!\w)\s*[:.)\-–—/]?\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Question:
    """One question of a chat: its label (``T1``, ``T3a``; ``Part 2`` when time-sliced), its text without
    the label, the post that asked it, the best answers (best first) and a link to the question."""

    label: str
    text: str
    post: Post
    answers: tuple[Post, ...]
    link: str


@dataclass(frozen=True, slots=True)
class Recap:
    """A chat's recap: the window, how many accounts took part, the questions in order, the best posts
    matched to none ("other highlights") and a link to the whole thread. ``mode`` says how the
    questions were found: ``host``, ``labels`` (anyone's T/Q labels) or ``slices`` (time-slicing)."""

    hashtag: str
    start: datetime
    end: datetime
    participants: int
    questions: tuple[Question, ...]
    other: tuple[Post, ...]
    thread_url: str
    mode: str = "host"
    posts: int = 0

    @property
    def shown(self) -> frozenset[str]:
        """Ids of every post the recap shows: an edition does not repeat them in topic sections."""
        ids = {q.post.id for q in self.questions}
        ids |= {a.id for q in self.questions for a in q.answers}
        return frozenset(ids | {p.id for p in self.other})

    @property
    def empty(self) -> bool:
        return not self.questions and not self.other


# -- windows -------------------------------------------------------------------------------------


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _window_on(chat: ChatSettings, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, chat.schedule[1], zone).astimezone(UTC)
    return start, start + chat.length


def chat_windows(
    chat: ChatSettings, week_start: datetime, week_end: datetime, tz: str | tzinfo
) -> list[tuple[datetime, datetime]]:
    """The chat's windows (UTC, oldest first) that end within ``(week_start, week_end]``: a chat belongs
    to the edition in which it finishes, so none is recapped half-collected or twice."""
    zone = _zone(tz)
    weekday = chat.schedule[0]
    day = (week_start - chat.length).astimezone(zone).date() - timedelta(days=1)
    last = week_end.astimezone(zone).date()
    found = []
    while day <= last:
        if day.weekday() == weekday:
            start, end = _window_on(chat, day, zone)
            if week_start < end <= week_end:
                found.append((start, end))
        day += timedelta(days=1)
    return found


def current_or_next_window(chat: ChatSettings, now: datetime, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """The window running at ``now``, or the next one to start (UTC)."""
    zone = _zone(tz)
    day = (now - chat.length).astimezone(zone).date() - timedelta(days=1)
    while True:
        if day.weekday() == chat.schedule[0]:
            start, end = _window_on(chat, day, zone)
            if end > now:
                return start, end
        day += timedelta(days=1)


def open_chats(
    chats: Iterable[ChatSettings],
    now: datetime,
    tz: str | tzinfo,
    *,
    before: timedelta = timedelta(minutes=5),
    after: timedelta = timedelta(minutes=30),
) -> list[ChatSettings]:
    """The chats to collect often at ``now``: from ``before`` their start to ``after`` their end
    (latecomers and the answers that trickle in afterwards)."""
    found = []
    for chat in chats:
        start, end = current_or_next_window(chat, now - after, tz)
        if start - before <= now < end + after:
            found.append(chat)
    return found


# -- recap ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Label:
    letter: str
    num: int
    sub: str
    rest: str

    @property
    def key(self) -> tuple[int, str]:
        return self.num, self.sub


def _question_label(text: str) -> _Label | None:
    """The post's question label: at its start (after mentions and hashtags), or later in its opening,
    before the question itself, where a sentence starts with one and a separator follows it
    ("Welcome to #HITsm! T1: ..."); "a Q3 report", "wait for T1." and "T1 in 5 minutes" later on are no labels."""
    body = _LEAD.sub("", text, count=1)
    match = _QUESTION.match(body)
    if match is None:
        opening = body[: min(len(body), OPENING, (body.find("?") + 1) or len(body))]
        match = _LATER_QUESTION.search(opening)
    if not match:
        return None
    letter = (match["letter"] or "T").upper()
    return _Label(letter, int(match["num"]), (match["sub"] or "").lower(), body[match.end() :])


def _answer_label(text: str) -> tuple[int, str] | None:
    match = _ANSWER.match(_LEAD.sub("", text, count=1))
    return (int(match["num"]), (match["sub"] or "").lower()) if match else None


def _aliases(post: Post) -> set[str]:
    """Every way a reply may name this post: its URL, its URI, and ``server:id`` for a Mastodon status
    whose URL ends in its (server-local) id."""
    found = {post.uri, post.url} - {""}
    for address in (post.url, post.uri):
        try:
            parts = urlsplit(address)
        except ValueError:
            continue
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if parts.hostname and last.isdigit():
            found |= {f"{parts.hostname}:{last}", f"{parts.netloc}:{last}"}
    return found


def _same_account(handle: str, host: str) -> bool:
    return bool(host) and handle.strip().lstrip("@").lower() == host.strip().lstrip("@").lower()


def _chat_posts(posts: Iterable[Post], tag: str, host: str, start: datetime, end: datetime) -> list[Post]:
    """The window's posts that belong to the chat, oldest first: tagged, the host's, and replies into them."""
    unique = {p.id: p for p in posts if start <= p.published < end and not p.is_boost}
    ordered = sorted(unique.values(), key=lambda p: (p.published, p.id))
    marker = re.compile(rf"#{re.escape(tag)}\b", re.IGNORECASE)
    chosen: list[Post] = []
    known: set[str] = set()
    for post in ordered:
        tagged = tag in (t.lower() for t in post.tags) or bool(marker.search(post.text))
        if tagged or _same_account(post.author.handle, host) or post.in_reply_to in known:
            chosen.append(post)
            known |= _aliases(post)
    return chosen


def _strip_tag(text: str, tag: str) -> str:
    text = re.sub(rf"(?:\s*#{re.escape(tag)}\b)+[\s.!]*$", "", text.strip(), flags=re.IGNORECASE)
    return text.strip()


def recap(
    posts: Sequence[Post],
    chat: ChatSettings,
    window: tuple[datetime, datetime],
    topic_scores: Mapping[str, float] | None = None,
    *,
    server: str | None = None,
    per_question: int = PER_QUESTION,
    other_limit: int = OTHER_LIMIT,
) -> Recap:
    """The recap of one chat window (see the module doc).

    ``topic_scores`` maps a post id to its best topic score; when given, a post not in it (or scored
    0) is chatter: never an "other highlight" nor a time-slice answer, and ranked last as an answer.
    ``server`` is where the hashtag page is linked when the host is not a Mastodon account.
    """
    start, end = window
    tag = chat.hashtag.lower()
    host = chat.host or ""
    chat_posts = _chat_posts(posts, tag, host, start, end)
    by_alias = {alias: p for p in chat_posts for alias in _aliases(p)}
    repliers = _repliers(chat_posts, by_alias)
    scores = topic_scores or {}

    def rank(post: Post) -> tuple[float, datetime, str]:
        counts = post.engagement
        total = (counts.likes or 0) + (counts.boosts or 0) + (counts.replies or 0)
        value = math.log1p(max(total, 0)) + math.log1p(len(repliers[post.id])) + scores.get(post.id, 0.0)
        return -round(value, 9), post.published, post.id

    def relevant(post: Post) -> bool:
        return topic_scores is None or topic_scores.get(post.id, 0.0) > 0

    mode, asked = _questions(chat_posts, host)
    rest = [p for p in chat_posts if p.id not in {q.id for q, _ in asked} and not _same_account(p.author.handle, host)]
    if mode == "slices":
        heads, matched = _slices(rest, start, end, chat.length, rank, relevant, by_alias)
        labels = [(post, f"Part {i}", post.text) for i, post in heads]
        rest = [p for p in rest if p.id not in {post.id for _, post in heads}]
    else:
        labels = [(post, f"{label.letter}{label.num}{label.sub}", label.rest) for post, label in asked]
        matched = _match_answers(rest, asked, by_alias, relevant if topic_scores is not None else None, end)
    questions = []
    for post, label, text in labels:
        answers = sorted((p for p in rest if matched.get(p.id) == post.id), key=rank)
        questions.append(Question(label, _strip_tag(text, tag), post, _one_per_author(answers, per_question), post.url))
    other = sorted((p for p in rest if p.id not in matched and relevant(p)), key=rank)
    return Recap(
        hashtag=chat.hashtag,
        start=start,
        end=end,
        participants=len({account_key(p) for p in chat_posts}),
        questions=tuple(questions),
        other=tuple(other[:other_limit]),
        thread_url=_thread_url(chat, server),
        mode=mode,
        posts=len(chat_posts),
    )


def _repliers(chat_posts: Sequence[Post], by_alias: Mapping[str, Post]) -> dict[str, set[str]]:
    """Post id -> the distinct accounts (other than its author) that replied to it."""
    found: dict[str, set[str]] = defaultdict(set)
    for post in chat_posts:
        parent = by_alias.get(post.in_reply_to) if post.in_reply_to else None
        if parent is not None and account_key(parent) != account_key(post):
            found[parent.id].add(account_key(post))
    return found


def _questions(chat_posts: Sequence[Post], host: str) -> tuple[str, list[tuple[Post, _Label]]]:
    """How questions were found, and the question posts with their labels, in label order."""
    labelled = [(p, label) for p in chat_posts if (label := _question_label(p.text))]
    by_host = [(p, label) for p, label in labelled if _same_account(p.author.handle, host)]
    mode, candidates = ("host", by_host) if by_host else ("labels", labelled)
    if not candidates:
        return "slices", []
    # one post per label: one that asks something ("T1 is up in 5 minutes!" does not), then the oldest;
    # a later post with the same label answers it
    first: dict[tuple[int, str], tuple[Post, _Label]] = {}
    for post, label in sorted(candidates, key=lambda c: ("?" not in c[1].rest, c[0].published, c[0].id)):
        first.setdefault(label.key, (post, label))
    return mode, [first[key] for key in sorted(first)]


def _match_answers(
    rest: Sequence[Post],
    asked: Sequence[tuple[Post, _Label]],
    by_alias: Mapping[str, Post],
    relevant: Callable[[Post], bool] | None = None,
    end: datetime | None = None,
) -> dict[str, str]:
    """Post id -> the id of the question post it answers, for every post matched (oldest first, so a
    reply finds its parent already matched). With ``relevant`` (the filter's scores), an on-topic post
    with no label and no thread answers the question it follows in time (see `_by_time`)."""
    by_key = {label.key: post for post, label in asked}
    by_num: dict[int, list[Post]] = defaultdict(list)
    for post, label in asked:
        by_num[label.num].append(post)
    question_ids = {post.id for post, _ in asked}
    following = _by_time(asked, end)
    matched: dict[str, str] = {}

    def threaded(post: Post) -> str | None:
        seen: set[str] = set()
        current = post
        while current.in_reply_to and current.id not in seen:
            seen.add(current.id)
            parent = by_alias.get(current.in_reply_to)
            if parent is None:
                return None
            if parent.id in question_ids:
                return parent.id
            if parent.id in matched:
                return matched[parent.id]
            current = parent
        return None

    for post in rest:
        answer = _answer_label(post.text)
        found = None
        if answer is not None and answer in by_key:
            found = by_key[answer].id
        elif answer is not None and not answer[1] and by_num.get(answer[0]):
            # "A3" when the host asked T3a and T3b: the thread says which, else the latest asked before it
            options = by_num[answer[0]]
            via = threaded(post)
            before = [q for q in options if q.published <= post.published]
            found = via if via in {q.id for q in options} else (before[-1] if before else options[0]).id
        found = found or threaded(post)
        if not found and relevant is not None and not post.in_reply_to and relevant(post):
            found = following(post.published)
        if found:
            matched[post.id] = found
    return matched


def _by_time(asked: Sequence[tuple[Post, _Label]], end: datetime | None) -> Callable[[datetime], str | None]:
    """Which question a post published at a moment follows: the last asked before it, while its turn
    lasts (until the next question; the last one's lasts as long as the typical turn, the median gap
    between questions, or to the window's end when it was the only one). None before the first."""
    asked_at = sorted((post.published, post.id) for post, _ in asked)
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(asked_at)]
    last_turn = timedelta(seconds=statistics.median(gaps)) if gaps else None

    def following(moment: datetime) -> str | None:
        before = [(at, pid) for at, pid in asked_at if at <= moment]
        if not before:
            return None
        at, pid = before[-1]
        if len(before) == len(asked_at):  # after the last question
            until = at + last_turn if last_turn is not None else end
            if until is not None and moment >= until:
                return None
        return pid

    return following


def _slices(
    rest: Sequence[Post],
    start: datetime,
    end: datetime,
    length: timedelta,
    rank: Callable[[Post], tuple[float, datetime, str]],
    relevant: Callable[[Post], bool],
    by_alias: Mapping[str, Post],
) -> tuple[list[tuple[int, Post]], dict[str, str]]:
    """No labels anywhere: equal slices of the window (about one a quarter hour), each headed by its best
    relevant post that starts a thread; such a post answers the head of its slice, and a reply follows
    its parent, whatever slice it falls in. Returns the heads (numbered 1, 2 ... in order) and the matches."""
    count = max(1, min(MAX_SLICES, round(length / SLICE)))
    step = (end - start) / count
    pool = [p for p in rest if relevant(p)]
    in_pool = {p.id for p in pool}
    parent_of = {p.id: parent for p in pool if p.in_reply_to and (parent := by_alias.get(p.in_reply_to))}
    roots = [p for p in pool if p.id not in parent_of or parent_of[p.id].id not in in_pool]

    def slice_of(post: Post) -> int:
        return min(count - 1, int((post.published - start) / step))

    members: dict[int, list[Post]] = defaultdict(list)
    for post in roots:
        members[slice_of(post)].append(post)
    best = {i: min(members[i], key=rank) for i in range(count) if members[i]}
    heads = [(n, best[i]) for n, i in enumerate(sorted(best), start=1)]
    head_ids = {head.id for head in best.values()}
    matched: dict[str, str] = {}
    for post in pool:  # oldest first: a parent is matched before its replies
        parent = parent_of.get(post.id)
        if post.id in head_ids:
            continue
        if parent is not None and parent.id in in_pool:
            found = parent.id if parent.id in head_ids else matched.get(parent.id)
            if found:
                matched[post.id] = found
        else:
            matched[post.id] = best[slice_of(post)].id
    return heads, matched


def _one_per_author(answers: Sequence[Post], limit: int) -> tuple[Post, ...]:
    chosen: list[Post] = []
    authors: set[str] = set()
    for post in answers:
        if account_key(post) not in authors and len(chosen) < limit:
            chosen.append(post)
            authors.add(account_key(post))
    return tuple(chosen)


def _thread_url(chat: ChatSettings, server: str | None) -> str:
    """The hashtag's page on the host's server (or on ``server``; Bluesky's for a Bluesky host)."""
    tag = quote(chat.hashtag)
    host = chat.host or ""
    if host.startswith("@") and host.count("@") == 2:
        return f"https://{host.rsplit('@', 1)[1]}/tags/{tag}"
    if host:
        return f"https://bsky.app/hashtag/{tag}"
    return f"https://{server}/tags/{tag}" if server else ""
