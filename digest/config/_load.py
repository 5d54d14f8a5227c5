"""Reading feeds.toml: TOML parsed, each section validated, every problem one ``file:line: key: problem``
line with a "did you mean"."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, MissingVariable
from ._fields import (
    _ENV_REF,
    _empty_variables,
    _Model,
    expand_env,
    smtp_url,
    weak_secret,
)
from ._sections import (
    BlueskySettings,
    ChatSettings,
    CollectSettings,
    DigestSettings,
    MailSettings,
    NoiseSettings,
    Settings,
    Subscriber,
    SubscriptionSettings,
    Topic,
)
from ._sources import SOURCE_KINDS, HashtagSource, Source

DEFAULT_PATH = "feeds.toml"


_SECTIONS: dict[str, type[_Model]] = {
    "digest": DigestSettings,
    "collect": CollectSettings,
    "bluesky": BlueskySettings,
    "mail": MailSettings,
    "subscription": SubscriptionSettings,
    "noise": NoiseSettings,
}
_ARRAYS: dict[str, type[_Model]] = {"topics": Topic, "subscribers": Subscriber, "chats": ChatSettings}
_TOP_KEYS = (*_SECTIONS, *_ARRAYS, "sources")
# Every key a [[sources]] table may have, the kinds first (what a misspelt key most likely meant).
_SOURCE_KEYS = tuple(dict.fromkeys([*SOURCE_KINDS, *(k for m in SOURCE_KINDS.values() for k in m.model_fields)]))


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate a config file (default ``$DIGEST_CONFIG`` or ``./feeds.toml``)."""
    path = Path(path or os.environ.get("DIGEST_CONFIG") or DEFAULT_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; `digest init` writes a starter one there, "
            "or point --config / DIGEST_CONFIG at your file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return parse(text, path)


def parse(text: str, path: Path | str = DEFAULT_PATH) -> Settings:
    """Validate TOML text; raise `ConfigError` with one ``file:line: key: problem`` line per problem."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's text: it has no lineno field before 3.14, and says "at end of document" for the last line
        match = re.search(r"at line (\d+)", str(exc))
        last = max(len(text.rstrip().splitlines()), 1)
        line = match.group(1) if match else last if "end of document" in str(exc) else 1
        raise ConfigError(f"{path}:{line}: invalid TOML: {exc}") from None
    return parse_data(data, text, path)


def parse_data(data: dict[str, Any], text: str, path: Path | str = DEFAULT_PATH) -> Settings:
    """`parse` for TOML already read into ``data`` from ``text`` (which gives the lines)."""
    path = Path(path)
    lines = _KeyLines(text)
    problems: list[tuple[int, str]] = []

    def report(loc: tuple[Any, ...], message: str, after: tuple[Any, ...] | None = None) -> None:
        """Record a problem at ``loc``'s line; ``after``: list it after that key's problem (its cause)."""
        line = lines.find(loc)
        problems.append((lines.find(after) if after else line, f"{path}:{line}: {_dotted(loc)}: {message}"))

    for key in data:
        if key not in _TOP_KEYS:
            report((key,), _unknown(key, _TOP_KEYS))
    sections: dict[str, Any] = {
        name: _section(model, data.get(name, {}), (name,), report) for name, model in _SECTIONS.items()
    }
    arrays = {name: _array(model, data.get(name, []), name, report) for name, model in _ARRAYS.items()}
    sources = _sources(data.get("sources", []), report)
    if not problems:
        _cross_check(sections, arrays, sources, report)
    if problems:
        raise ConfigError([message for _, message in sorted(problems, key=lambda p: p[0])])
    tables: dict[str, Any] = {k: tuple(v) for k, v in arrays.items()}
    return Settings(path=path, sources=tuple(sources), **sections, **tables)


def _section(model: type[_Model], raw: Any, loc: tuple[Any, ...], report: Any) -> Any:
    if not isinstance(raw, Mapping):
        report(loc, f"must be a table ([{_dotted(loc)}])")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            report(loc + tuple(error["loc"]), _message(error, model))
        return None


def _array(model: type[_Model], raw: Any, name: str, report: Any) -> list[Any]:
    if not isinstance(raw, list):
        report((name,), f"must be an array of tables ([[{name}]])")
        return []
    return [_section(model, item, (name, i), report) for i, item in enumerate(raw)]


def _sources(raw: Any, report: Any) -> list[Source]:
    if not isinstance(raw, list):
        report(("sources",), "must be an array of tables ([[sources]])")
        return []
    sources = []
    for i, item in enumerate(raw):
        kinds = [k for k in SOURCE_KINDS if isinstance(item, Mapping) and k in item]
        if len(kinds) != 1:
            # An unknown key is most often the kind misspelt (feeed = ...): named first, with its line.
            unknown = [k for k in item if k not in _SOURCE_KEYS] if isinstance(item, Mapping) else []
            for key in unknown:
                report(("sources", i, key), _unknown(key, _SOURCE_KEYS))
            found = " and ".join(kinds) if kinds else "none"
            after = ("sources", i, unknown[-1]) if unknown else None
            report(("sources", i), f"needs exactly one of {', '.join(SOURCE_KINDS)} (found {found})", after)
            continue
        sources.append(_section(SOURCE_KINDS[kinds[0]], item, ("sources", i), report))
    return sources


def _cross_check(sections: dict[str, Any], arrays: dict[str, list[Any]], sources: list[Source], report: Any) -> None:
    names = [t.name for t in arrays["topics"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            report(("topics", i, "name"), f"topic {name!r} is defined twice")
    for i, sub in enumerate(arrays["subscribers"]):
        for topic in sub.topics or ():
            if topic not in names:
                report(("subscribers", i, "topics"), _unknown(topic, names, what="topic"))
    hashtags = [s.hashtag.lower() for s in sources if isinstance(s, HashtagSource)]
    for i, chat in enumerate(arrays["chats"]):
        if chat.hashtag.lower() not in hashtags:
            report(
                ("chats", i, "hashtag"),
                f"#{chat.hashtag} is not collected: add [[sources]] hashtag = {chat.hashtag!r} so the chat is read",
            )
    for i, source in enumerate(sources):
        if isinstance(source, HashtagSource) and "bluesky" in source.networks and not sections["bluesky"].has_login:
            report(
                ("sources", i, "networks"),
                'Bluesky hashtag search needs a login: set [bluesky] handle and app_password = "${BSKY_APP_PASSWORD}"',
            )
    try:
        if sections["bluesky"].app_password:
            expand_env(sections["bluesky"].app_password)
    except ValueError as exc:
        report(("bluesky", "app_password"), str(exc))
    for section, key in (("digest", "database"), ("mail", "smtp"), ("subscription", "secret")):
        try:
            expand_env(getattr(sections[section], key) or "")
        except ValueError as exc:
            report((section, key), str(exc))
    for section, key in (("digest", "database"), ("bluesky", "app_password"), ("mail", "smtp")):
        for name in _empty_variables(getattr(sections[section], key) or ""):
            report((section, key), f"environment variable {name} is set but empty")
    _check_expanded(sections, report)


def _check_expanded(sections: dict[str, Any], report: Any) -> None:
    """What can only be judged once ``${VAR}``s are read: the signing secret's strength, the SMTP URL."""
    secret, smtp = sections["subscription"].secret, sections["mail"].smtp
    with contextlib.suppress(ValueError):  # a variable that is not set is reported above
        if secret is not None and (problem := weak_secret(expand_env(secret))):
            named = ", ".join(m.group(1) for m in _ENV_REF.finditer(secret))
            report(("subscription", "secret"), f"{named or 'the secret'} {problem}")
    try:
        if smtp:
            smtp_url(expand_env(smtp))
    except MissingVariable:
        pass  # reported above, once
    except ValueError as exc:
        report(("mail", "smtp"), str(exc))


def _message(error: Mapping[str, Any], model: type[_Model]) -> str:
    if error["type"] == "extra_forbidden":
        fields = [f.alias or name for name, f in model.model_fields.items()]
        return _unknown(str(error["loc"][-1]), fields)
    if error["type"] == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _unknown(key: str, known: Iterable[str], what: str = "key") -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return f"unknown {what} {key!r}{hint}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _KeyLines:
    """Finds the line where a key path is written, for error messages (1-based array indexes)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        counts: dict[str, int] = {}
        table: tuple[Any, ...] = ()
        inside = ""  # the delimiter of the multi-line string being read: its lines are no keys or headers
        for number, line in enumerate(text.splitlines(), start=1):
            if inside:
                if line.count(inside) % 2:
                    inside = ""
                continue
            inside = next((quote for quote in ('"""', "'''") if line.count(quote) % 2), "")
            if header := self._HEADER.match(line):
                name = header.group(2).strip()
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (*name.split("."), counts[name])
                else:
                    table = tuple(name.split("."))
                self.lines.setdefault(table, number)
            elif key := self._KEY.match(line):
                path = (*table, *(k.strip("\"'") for k in key.group(1).split(".")))
                self.lines.setdefault(path, number)

    def find(self, loc: tuple[Any, ...]) -> int:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1
