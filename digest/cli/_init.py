"""`digest init` (a starter feeds.toml, systemd units) and `digest check` (validate and summarise)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import clock
from ..wording import plural
from ._app import State, cli
from ._output import counts_line, err, json_flag, out, print_json

if TYPE_CHECKING:
    from ..config import Settings


@cli.command()
@click.option("--force", is_flag=True, help="Replace an existing file with the starter.")
@click.option(
    "--systemd",
    is_flag=True,
    help="Print systemd service and timer units for collection and the weekly run instead (writes nothing).",
)
@click.pass_obj
def init(state: State, force: bool, systemd: bool) -> None:
    """Write a starter feeds.toml (or --config PATH), to edit and check.

    The starter follows a health-IT audience (news sites, blogs, the #HITsm,
    #HealthIT and #FHIR hashtags) with three topics: replace them with yours,
    then `digest check`. An existing file is kept unless --force.

    --systemd prints, for the existing feeds.toml, ready-to-copy units with this
    machine's paths: digest-collect (hourly) and digest-weekly (at send_on in
    the digest's time zone), each a service and a timer, and how to enable them.

    \b
    Shell completion (click's): add one line to your shell's start-up file:
      bash  eval "$(_DIGEST_COMPLETE=bash_source digest)"     (~/.bashrc)
      zsh   eval "$(_DIGEST_COMPLETE=zsh_source digest)"      (~/.zshrc)
      fish  _DIGEST_COMPLETE=fish_source digest | source      (~/.config/fish/completions/digest.fish)

    \b
    Examples:
      digest init && digest check
      digest --config /srv/digest/feeds.toml init
      digest init --systemd > digest-units.txt
    """
    from ..config import DEFAULT_PATH
    from ..starter import systemd_units, write_starter

    if systemd:
        out.print(systemd_units(state.settings()), markup=False, end="")
        return
    path = Path(state.config_path or os.environ.get("DIGEST_CONFIG") or DEFAULT_PATH)
    write_starter(path, force=force)
    out.print(
        f"wrote {path}: a starter to edit (sources, topics, [mail], [subscription]), then `digest check`", markup=False
    )


@cli.command()
@json_flag("the summary")
@click.pass_obj
def check(state: State, as_json: bool) -> None:
    """Validate the configuration and print a short summary.

    A bad configuration exits with status 2 and one line per problem, naming the
    file, line and key. What loads but will not work as meant is a warning on
    stderr (exit 0): a topic the filter can never match, topics named alike
    but for case, the default From address, and no [subscription] public_url
    (preference and unsubscribe links are then mails someone must act on).

    \b
    Example:
      digest --config feeds.toml check
    """
    from ..advice import warnings
    from ..config import secret_names
    from ..dburl import display_url
    from ..endpoints import endpoints as endpoints_of

    settings = state.settings()
    jobs = endpoints_of(settings)
    kinds = Counter(type(s).__name__.removesuffix("Source").lower() for s in settings.sources)
    endpoints = Counter[str](job.kind for job in jobs)
    advice = warnings(settings)
    if as_json:
        print_json({**_check_summary(settings, kinds, endpoints), "warnings": advice})
        return
    out.print(f"{settings.path}: OK")
    described = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    out.print(f"  sources:     {sum(kinds.values())} ({described}); {plural(len(jobs), 'endpoint')} to fetch", end="")
    out.print(f" ({', '.join(f'{n} {k}' for k, n in sorted(endpoints.items()))})" if jobs else "")
    topics = ", ".join(t.name for t in settings.topics) or "none yet"
    out.print(f"  topics:      {len(settings.topics)} ({topics})")
    out.print(f"  subscribers: {len(settings.subscribers)} listed in the file{_store_counts(settings)}")
    out.print(f"  mail:        {settings.mail.mode}")
    out.print(f"  store:       {display_url(settings.database_url)}", markup=False)
    out.print(
        f"  schedule:    every {settings.digest.send_on} {settings.digest.timezone}; "
        "each edition covers the posts since the one before"
    )
    if settings.chats:
        chats = ", ".join(f"#{c.hashtag} {c.when} for {c.duration}" for c in settings.chats)
        out.print(f"  chats:       {chats} (recapped; see `digest chats list`)", markup=False)
    secrets = secret_names(settings)
    if secrets:
        out.print(f"  secrets:     read from the environment: {', '.join(secrets)}")
    for line in advice:
        err.print(f"warning: {line}", markup=False)


def _check_summary(settings: Settings, kinds: Counter[str], endpoints: Counter[str]) -> dict[str, Any]:
    """``check --json``: what the lines say, as data."""
    from ..config import secret_names
    from ..dburl import display_url
    from ..periods import in_progress

    return {
        "config": str(settings.path),
        "ok": True,
        "sources": {"total": sum(kinds.values()), "kinds": dict(sorted(kinds.items())), "endpoints": dict(endpoints)},
        "topics": [t.name for t in settings.topics],
        "subscribers": {"listed": len(settings.subscribers), "store": _stored_counts(settings)},
        "mail": settings.mail.mode,
        "store": display_url(settings.database_url),
        "schedule": {
            "send_on": settings.digest.send_on,
            "timezone": settings.digest.timezone,
            "next_send": in_progress(settings, clock.now()).due.isoformat(),
        },
        "chats": [{"hashtag": c.hashtag, "when": c.when, "duration": c.duration} for c in settings.chats],
        "secrets": secret_names(settings),
    }


def _store_counts(settings: Settings) -> str:
    """``; in the store: 3 confirmed, ...`` for `check`, or nothing before the store exists."""
    from ..errors import StoreError

    try:
        found = _stored_counts(settings)
    except StoreError as exc:
        return f"; the store cannot be read: {exc}"
    return f"; in the store: {counts_line(found)}" if found is not None else ""


def _stored_counts(settings: Settings) -> dict[str, int] | None:
    """Subscribers by state in the store, or None before it exists; the store's code (SQLAlchemy)
    is loaded only when the store is not a SQLite file of this schema, which a glance reads."""
    from ..dburl import database_exists
    from ..glance import subscriber_counts

    if not database_exists(settings.database_url):
        return None
    glanced = subscriber_counts(settings.database_url)
    if glanced is not None:
        return glanced
    from ..subscribers import counts

    return counts(settings)
