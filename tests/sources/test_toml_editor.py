"""The feeds.toml editor (`sources.insert_sources`) as a property: for any valid TOML document of the shapes
a feeds.toml has (keys, tables, ``[[sources]]`` and other arrays of tables, comments, blank lines,
multi-line strings and arrays that look like headers, LF or CRLF), adding a source keeps every other
byte and the result reads back as the same document plus that source, last among the sources."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.sources import insert_sources

# Printable text, and the characters that trip a line scanner: quotes, brackets, hashes, backslashes.
TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\"#[]\\'="), max_size=12
)
NAMES = st.sampled_from(["name", "feed", "title", "keywords", "servers", "a-b", "x_1"])
URLS = st.builds(
    lambda host, path: f"https://{host}.example/{path}", st.from_regex(r"[a-z]{1,8}", fullmatch=True), TEXT
)


def basic(text: str) -> str:
    """A TOML basic string (a JSON string with DEL escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


@st.composite
def values(draw: st.DrawFn) -> str:
    """One value as written in a file: a string (basic, literal, multi-line), a number, a boolean, or an
    array (one line, or one item a line with comments), some of them holding header-like text."""
    kind = draw(st.sampled_from(["basic", "literal", "multiline", "int", "bool", "array", "long array"]))
    text = draw(TEXT)
    if kind == "basic":
        return basic(text)
    if kind == "literal":
        return "'" + text.replace("'", "").replace("\n", "") + "'"
    if kind == "multiline":
        body = draw(st.sampled_from(["[[sources]]", "[digest]", "# not a comment", "a = 1", text.replace('"', "")]))
        return f'"""\n{body}\n"""'
    if kind == "int":
        return str(draw(st.integers(-1000, 1000)))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    items = [basic(t) for t in draw(st.lists(TEXT, max_size=3))]
    if kind == "array":
        return "[" + ", ".join(items) + "]"
    return (
        "[\n" + "".join(f"  {item},  # {draw(TEXT).replace(chr(10), '')}\n" for item in items) + "  '[[sources]]',\n]"
    )


@st.composite
def bodies(draw: st.DrawFn) -> list[str]:
    """A table's lines: distinct keys with values, comments and blank lines between them."""
    lines: list[str] = []
    for key in draw(st.lists(NAMES, unique=True, max_size=4)):
        lines += draw(st.lists(st.sampled_from(["", "# a comment", "  # [[sources]] in a comment"]), max_size=2))
        lines.append(f"{key} = {draw(values())}" + draw(st.sampled_from(["", "  # trailing [[x]]"])))
    lines += draw(st.lists(st.sampled_from(["", "# after the last key"]), max_size=2))
    return lines


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A feeds.toml-shaped document: top-level keys, then tables and arrays of tables in any order."""
    lines = draw(bodies())
    used: set[str] = set()
    for header in draw(st.lists(st.sampled_from(["digest", "mail", "[sources]", "[topics]", "[chats]"]), max_size=6)):
        if not header.startswith("[") and header in used:
            continue  # a plain table is defined once
        used.add(header)
        lines.append(f"[{header}]")
        lines += draw(bodies())
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    text = nl.join(lines) + draw(st.sampled_from(["", nl, nl + nl]))
    return text


def expected(before: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    return {**before, "sources": [*before.get("sources", []), entry]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents(), st.fixed_dictionaries({"feed": URLS}, optional={"name": TEXT, "servers": st.lists(TEXT, max_size=2)})
)
def test_adding_a_source_keeps_every_other_byte_and_reads_back(text: str, entry: dict[str, Any]) -> None:
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # only valid documents are the editor's input (a key drawn twice by two tables' bodies)
    if isinstance(before.get("sources"), dict):
        return  # a [sources] table, not an array of them: no feeds.toml has one
    new, inserted = insert_sources(text, [entry])
    # one contiguous insertion: what is before it and after it is the old text, byte for byte
    assert len(new) == len(text) + len(inserted)
    cuts = range(len(text) + 1)
    assert any(new[i : i + len(inserted)] == inserted and new[:i] + new[i + len(inserted) :] == text for i in cuts), (
        text,
        new,
    )
    # and it reads back as the old document plus the new source, last among the sources
    after = tomllib.loads(new)
    wanted = {k: list(v) if isinstance(v, list | tuple) else v for k, v in entry.items()}
    assert after == expected(before, wanted)
