"""Writing feeds.toml: new ``[[sources]]`` tables after the last one, every other byte kept, the
result read back before and after it is written."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import config
from ..errors import ConfigError, SourceError
from ..files import replace_atomically


def append_sources(path: Path, entries: Sequence[Mapping[str, Any]]) -> str:
    """Write ``[[sources]]`` tables into a config file after its last one (at the end when it has
    none), leaving every other byte as it was; return the text inserted. The result is checked to
    load as before plus the new entries; after writing, the file is loaded again and put back as it
    was if that fails. Raise `SourceError` when nothing could be written."""
    try:
        original = path.read_bytes()
        text = original.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot be read: {exc}") from None
    new_text, inserted = insert_sources(text, entries)
    _verify(path, text, new_text, entries)
    _replace(path, new_text.encode("utf-8"), expect=original)
    try:
        config.load(path)
    except ConfigError as exc:
        _replace(path, original)
        raise SourceError(f"{path}: left as it was: with the new entry it did not load: {exc.problems[0]}") from None
    return inserted


def insert_sources(text: str, entries: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The config text with ``[[sources]]`` tables for ``entries`` inserted after the last
    ``[[sources]]`` table's content (its last key and any comment lines right under it) or at the
    end, and the inserted text. Pure."""
    nl = "\r\n" if "\r\n" in text else "\n"
    tables = nl.join(_sources_table(e, nl) for e in entries)
    offset = _end_of_last_sources(text)
    before, after = text[:offset], text[offset:]
    lead = "" if not before or before.endswith(nl) else nl
    if (before + lead).strip() and not (before + lead).endswith(nl + nl):
        lead += nl
    tail = nl if after.strip() and not after.startswith(nl) else ""
    inserted = lead + tables + tail
    return before + inserted + after, inserted


def _sources_table(entry: Mapping[str, Any], nl: str) -> str:
    """One ``[[sources]]`` table as tomlkit writes it (bare keys, basic strings), written directly:
    tomlkit takes a millisecond a table, which was most of a 100,000-feed import. The values are
    strings and lists of strings; a JSON string is a TOML basic string once DEL is escaped too, and
    `_verify` reads the result back before anything is written."""

    def value(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False).replace("\x7f", "\\u007f")

    return nl.join(["[[sources]]", *(f"{key} = {value(v)}" for key, v in entry.items())]) + nl


def _end_of_last_sources(text: str) -> int:
    """Offset just after the last ``[[sources]]`` table's content; the text's end when there is none."""
    lines = _classify(text)
    headers = [i for i, (_, kind, name) in enumerate(lines) if kind == "aot" and name == "sources"]
    if not headers:
        return len(text)
    start = headers[-1]
    end = next((i for i in range(start + 1, len(lines)) if lines[i][1] in ("aot", "table")), len(lines))
    last = max((i for i in range(start, end) if lines[i][1] == "content"), default=start)
    run = last
    while run + 1 < end and lines[run + 1][1] == "comment":
        run += 1
    if run + 1 >= len(lines) or lines[run + 1][1] == "blank":
        last = run  # comments right under the last key, then a blank line or the end: the table's own
    return lines[last + 1][0] if last + 1 < len(lines) else len(text)


def _classify(text: str) -> list[tuple[int, str, str]]:
    """Each line's offset and kind (blank, comment, content, table, aot) with a header's table name.
    Lines inside multi-line strings and arrays count as content."""
    result: list[tuple[int, str, str]] = []
    offset, state, depth = 0, "", 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if state or depth:
            kind, name = "content", ""
        elif not stripped:
            kind, name = "blank", ""
        elif stripped.startswith("#"):
            kind, name = "comment", ""
        elif header := re.match(r"^\s*(\[\[?)\s*(.+?)\s*\]", line):
            kind = "aot" if header.group(1) == "[[" else "table"
            name = re.sub(r"\s*\.\s*", ".", header.group(2)).replace('"', "").replace("'", "")
            result.append((offset, kind, name))
            offset += len(line)
            continue
        else:
            kind, name = "content", ""
        result.append((offset, kind, name))
        state, depth = _scan_line(line, state, depth)
        offset += len(line)
    return result


def _scan_line(line: str, state: str, depth: int) -> tuple[str, int]:
    """Carry the multi-line string (``\"\"\"``/``'''``) and bracket depth across one line."""
    i = 0
    while i < len(line):
        if state:
            if state == '"""' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(state[0] * 3, i):
                run = len(line[i:]) - len(line[i:].lstrip(state[0]))
                state, i = "", i + run
                continue
            i += 1
            continue
        ch = line[i]
        if ch == "#":
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            state, i = line[i : i + 3], i + 3
        elif ch in "\"'":
            i = _string_end(line, i)
        else:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            i += 1
    return state, max(depth, 0)


def _string_end(line: str, start: int) -> int:
    quote, i = line[start], start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return i


def _verify(path: Path, text: str, new_text: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """The new text must read as the old plus the new entries, and be a valid configuration."""
    try:
        before, after = tomllib.loads(text), tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"{path}: left as it was: the entry could not be appended: {exc}") from None
    expected = {**before, "sources": [*before.get("sources", []), *(dict(e) for e in entries)]}
    if after != expected:
        raise SourceError(
            f"{path}: left as it was: its [[sources]] cannot be extended in place "
            "(sources written as an inline array?); add the entry by hand"
        )
    try:
        config.parse_data(after, new_text, path)  # the TOML read once: a large import's file is big
    except ConfigError as exc:
        raise SourceError(f"{path}: left as it was: with the new entry it would not load: {exc.problems[0]}") from None


def _replace(path: Path, data: bytes, expect: bytes | None = None) -> None:
    """Write a file atomically, keeping its permissions; refuse if it changed since it was read."""
    try:
        if expect is not None and path.read_bytes() != expect:
            raise SourceError(f"{path}: changed while sources were being added; nothing written, try again")
        replace_atomically(path, data, mode=path.stat().st_mode & 0o7777)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be written: {exc.strerror or exc}") from None
