"""The README is part of the product: its architecture list names every module of ``digest/`` once,
and its command table lists exactly the CLI's commands."""

from __future__ import annotations

import re
from pathlib import Path

import click

from digest.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "digest"
OPTIONAL = {"__init__.py", "__main__.py"}  # a package's plumbing: listed where it does something


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def _architecture() -> dict[str, list[str]]:
    """The tree under ``digest/`` in the Architecture section: each folder's entries, in order."""
    tree = re.search(r"```\ndigest/\n(.*?)```", _section("Architecture"), re.S)
    assert tree, "the Architecture section has no ```digest/ ...``` tree"
    entries: dict[str, list[str]] = {"": []}
    folder = ""
    for line in tree.group(1).splitlines():
        match = re.match(r"^( +)(\S+)", line)
        if not match:
            break  # the package's tree ends at the first unindented line (templates/, tests/)
        depth, name = len(match.group(1)), match.group(2)
        if depth == 2:
            folder = name.rstrip("/") if name.endswith("/") else ""
            entries[""].append(name)
            if folder:
                entries[folder] = []
        elif folder:
            entries[folder].append(name)
    return entries


def test_the_architecture_list_names_every_module_once() -> None:
    listed = _architecture()
    top = listed[""]
    assert len(top) == len(set(top)), f"listed twice: {sorted({n for n in top if top.count(n) > 1})}"
    modules = {p.name for p in PACKAGE.glob("*.py")} - OPTIONAL
    packages = {f"{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    assert set(top) - OPTIONAL == modules | packages
    for package in packages:
        name = package.rstrip("/")
        inside = listed.get(name, [])
        if inside:  # a folder whose modules are listed lists them all, once each
            assert len(inside) == len(set(inside)), f"{name}/: listed twice"
            assert set(inside) - OPTIONAL == {p.name for p in (PACKAGE / name).glob("*.py")} - OPTIONAL, name


def _commands(group: click.Group, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found.add(f"{prefix}{name}")
    return found


def test_the_command_table_lists_exactly_the_cli_commands() -> None:
    rows = re.findall(r"^\| `digest ([a-z][a-z ]*?)(?: [A-Z][^`]*)?` \|", _section("Commands"), re.M)
    assert len(rows) == len(set(rows)), "a command has two rows"
    assert set(rows) == _commands(cli)


def test_the_license_is_the_one_pyproject_names_and_the_readme_says_where_digest_comes_from() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    start = _section("Quick start (a fresh machine, Python 3.11+)")
    assert "installed from this repository" in start and "`pip install digest` would get something else" in start


def test_the_status_box_names_only_commands_that_exist_and_every_cron_line_is_given_once() -> None:
    """Issue 14 found the Status box calling built commands "being built" and the hourly cron line twice."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    status = re.search(r"^> Status: (.*?)\n\n", readme, re.S | re.M)
    assert status, "the README has no Status box"
    words = " ".join(line.removeprefix("> ") for line in status.group(1).splitlines())
    named = set(re.findall(r"`(?:digest )?([a-z]+)`", words))
    assert named and named <= set(cli.commands), sorted(named - set(cli.commands))
    assert not re.search(r"being built|in progress|not yet", words), words
    cron = [
        line.strip()
        for block in re.findall(r"```cron\n(.*?)```", readme, re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert cron and len(cron) == len(set(cron)), cron
