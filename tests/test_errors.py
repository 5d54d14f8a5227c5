"""digest's exceptions live in one module whose docstring draws their tree, and carry what callers
decide on as fields (``FetchError.reason``/``advice``, ``MissingVariable.name``), not in their text."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import digest
from digest import errors
from digest.errors import FetchError, MissingVariable, PermanentFetchError


def _digest_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(digest.__path__, "digest."):
        if info.name.endswith("__main__"):
            continue  # running it is the command line
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__.startswith("digest"):
                found[f"{value.__module__}.{name}"] = value
    assert len(found) > 20, found  # the walk found the package's modules
    return found


def test_every_exception_class_is_defined_in_errors() -> None:
    elsewhere = sorted(name for name, cls in _digest_exceptions().items() if cls.__module__ != "digest.errors")
    assert elsewhere == []


def test_the_docstring_draws_every_class_under_its_parent() -> None:
    drawn = _drawn_parents(errors.__doc__ or "")
    for cls in {cls for cls in _digest_exceptions().values() if cls.__module__ == "digest.errors"}:
        assert cls.__name__ in errors.__all__, cls
        assert cls.__name__ in drawn, f"{cls.__name__} is not drawn in errors' docstring"
        base = cls.__bases__[0]
        expected = "" if base.__module__ == "builtins" and base.__name__ not in drawn else base.__name__
        assert drawn[cls.__name__] == expected, f"{cls.__name__} is drawn under the wrong class"


def _drawn_parents(doc: str) -> dict[str, str]:
    """Each class drawn in the docstring's tree -> the class drawn above it one level up (its column:
    the column its name starts at)."""
    tree = doc.split("::", 1)[1].split("\n\nOnly", 1)[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in tree.splitlines():
        match = re.match(r"[\s│├└─]*([A-Z]\w+)", line)
        if not match:
            continue
        column, name = match.start(1), match.group(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else ""
        stack.append((column, name))
    return parents


def test_a_fetch_error_keeps_its_reason_apart_from_its_advice() -> None:
    exc = PermanentFetchError("HTTP 410 Gone: the feed is gone", status=410, advice="remove it from feeds.toml")
    exc.at("https://feeds.example/rss")
    assert exc.reason == "https://feeds.example/rss: HTTP 410 Gone: the feed is gone"
    assert str(exc) == f"{exc.reason}; remove it from feeds.toml"
    assert (exc.status, exc.advice) == (410, "remove it from feeds.toml")
    plain = FetchError("timed out")
    plain.at("https://feeds.example/rss")
    assert str(plain) == plain.reason == "https://feeds.example/rss: timed out"


def test_a_missing_variable_says_which_by_name() -> None:
    """The loader tells a missing ``${VAR}`` from a bad value by its class, and reports it once
    (tests/config/test_config.py checks the one line)."""
    exc = MissingVariable("SMTP_PASSWORD")
    assert isinstance(exc, ValueError) and exc.name == "SMTP_PASSWORD"
    assert str(exc) == "environment variable SMTP_PASSWORD is not set"
