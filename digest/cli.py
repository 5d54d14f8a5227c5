"""The ``digest`` command: parse arguments, call the library, turn its errors into exit codes.

Exit status: 0 the work was done, 1 the work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import sys
import webbrowser
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, clock
from . import config as config_mod
from .errors import ConfigError, DigestError, UsageError, one_line
from .models import Decision, Post

if TYPE_CHECKING:  # annotations only: the commands import what they use, so start-up stays light
    from .collect import SourceResult
    from .delivery import SendReport
    from .store import FilterRun

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DRY_RUN_SHOWN = 10  # addresses a dry run prints per edition (its --json lists them all)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Command(click.Command):
    """Every digest command: it notes whether ``--json`` was asked for, so that `main` can answer a
    failure in JSON too."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[_JSON] = bool(ctx.params.get("as_json"))
        return super().invoke(ctx)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are `_Group`s, so their commands are `_Command`s


_JSON = "digest.json"
_COMPLETE = "_DIGEST_COMPLETE"  # click's shell completion variable for a program called digest


def _json_flag(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--json`` flag of a command: ``what`` it prints instead of its lines."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


class _State:
    def __init__(self, config_path: str | None, verbose: int = 0) -> None:
        self.config_path = config_path
        self.verbose = verbose

    def settings(self) -> config_mod.Settings:
        return config_mod.load(self.config_path)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="DIGEST_CONFIG",
    type=click.Path(dir_okay=False),
    help="The configuration file (default ./feeds.toml; also DIGEST_CONFIG).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what digest does on stderr: -v each step and source (INFO), -vv every request too (DEBUG).",
)
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """digest reads the accounts, hashtags and feeds you follow, keeps what is on topic
    and mails a weekly digest.

    \b
    Examples:
      digest check                      validate feeds.toml and summarise it
      digest collect                    gather new posts into the store
      digest filter                     keep what is on topic, record why
      digest topics show                what was kept and dropped
      digest --config other.toml collect --json
      digest -v collect                 the same, saying what each source did

    Shell completion (bash, zsh, fish): see `digest init --help`.
    """
    ctx.obj = _State(config_path, verbose)
    if verbose:
        _log_to_stderr(verbose)


def _log_to_stderr(verbose: int) -> None:
    """``-v``: digest's INFO lines on stderr (an HTTP client's line per request only with ``-vv``)."""
    import logging

    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


@cli.command()
@click.option("--force", is_flag=True, help="Replace an existing file with the starter.")
@click.option(
    "--systemd",
    is_flag=True,
    help="Print systemd service and timer units for collection and the weekly run instead (writes nothing).",
)
@click.pass_obj
def init(state: _State, force: bool, systemd: bool) -> None:
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
    from .starter import systemd_units, write_starter

    if systemd:
        out.print(systemd_units(state.settings()), markup=False, end="")
        return
    path = Path(state.config_path or os.environ.get("DIGEST_CONFIG") or config_mod.DEFAULT_PATH)
    write_starter(path, force=force)
    out.print(
        f"wrote {path}: a starter to edit (sources, topics, [mail], [subscription]), then `digest check`", markup=False
    )


@cli.command()
@_json_flag("the summary")
@click.pass_obj
def check(state: _State, as_json: bool) -> None:
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
    from .advice import warnings
    from .collect import jobs_for
    from .store import display_url

    settings = state.settings()
    jobs = jobs_for(settings)
    kinds = Counter(type(s).__name__.removesuffix("Source").lower() for s in settings.sources)
    endpoints = Counter(job.kind for job in jobs)
    advice = warnings(settings)
    if as_json:
        _print_json({**_check_summary(settings, kinds, endpoints), "warnings": advice})
        return
    out.print(f"{settings.path}: OK")
    described = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    out.print(f"  sources:     {sum(kinds.values())} ({described}); {len(jobs)} endpoints to fetch", end="")
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
    secrets = config_mod.secret_names(settings)
    if secrets:
        out.print(f"  secrets:     read from the environment: {', '.join(secrets)}")
    for line in advice:
        err.print(f"warning: {line}", markup=False)


def _check_summary(settings: config_mod.Settings, kinds: Counter[str], endpoints: Counter[str]) -> dict[str, Any]:
    """``check --json``: what the lines say, as data."""
    from .periods import in_progress
    from .store import display_url
    from .subscribers import counts

    return {
        "config": str(settings.path),
        "ok": True,
        "sources": {"total": sum(kinds.values()), "kinds": dict(sorted(kinds.items())), "endpoints": dict(endpoints)},
        "topics": [t.name for t in settings.topics],
        "subscribers": {"listed": len(settings.subscribers), "store": counts(settings)},
        "mail": settings.mail.mode,
        "store": display_url(settings.database_url),
        "schedule": {
            "send_on": settings.digest.send_on,
            "timezone": settings.digest.timezone,
            "next_send": in_progress(settings, _now()).due.isoformat(),
        },
        "chats": [{"hashtag": c.hashtag, "when": c.when, "duration": c.duration} for c in settings.chats],
        "secrets": config_mod.secret_names(settings),
    }


@cli.command(name="collect")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table; errors still go to stderr.")
@click.pass_obj
def collect_cmd(state: _State, as_json: bool, quiet: bool) -> None:
    """Fetch every configured source once and store new posts.

    Sources are fetched concurrently; one failing source never stops the rest.
    Meant to run often (hourly from cron or a systemd timer): unchanged feeds
    answer 304 and cost almost nothing. Runs started together (cron beside
    `digest serve`, other machines on one database) share the sources: each
    fetches what it claims and reports the rest as held by other runs, and a
    source fetched less than [collect] refetch_after ago is not fetched again.
    Exits 0 when the run completed, even if some sources failed, and 1 only
    when every source that was tried failed.

    \b
    Examples:
      digest collect
      digest collect --json
      digest collect --quiet       # for cron
    """
    from .collect import collect, jobs_for
    from .store import Store

    settings = state.settings()
    jobs = jobs_for(settings)
    with Store.open(settings.database_url) as store, _progress(len(jobs), quiet or as_json) as advance:
        report = collect(settings, store, jobs=jobs, on_result=advance)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    elif not quiet:
        _print_collect_summary(report.as_dict())
    elif report.count("failed"):
        for e in report.as_dict()["errors"]:
            err.print(f"{e['source']}: {e['error']}", markup=False)
    if report.all_failed:
        raise SystemExit(EXIT_FAILED)


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[SourceResult], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield lambda result: None
        return
    columns = (
        TextColumn("collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=total)

        def advance(result: SourceResult) -> None:
            progress.update(task, advance=1, description=result.key[:60])

        yield advance


def _print_collect_summary(summary: dict[str, Any]) -> None:
    from .collect import held_line

    table = Table(title="digest collect", title_justify="left")
    held = bool(summary["held_elsewhere"])
    columns = ["kind", "sources", "fetched", "not modified", "failed", "skipped", "new posts"]
    keys = ["sources", "ok", "not_modified", "failed", "skipped", "new_posts"]
    if held:  # only when other runs share the sources
        columns.insert(-1, "other runs")
        keys.insert(-1, "held_elsewhere")
    for column in columns:
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in summary["kinds"].items():
        table.add_row(kind, *(str(row[k]) for k in keys))
    out.print(table)
    for error in summary["errors"]:
        out.print(f"[red]failed[/red]  {error['source']}: {error['error']}", markup=True, highlight=False)
    for item in summary["skipped_sources"]:
        out.print(f"skipped {item['source']}: {item['reason']}", markup=False)
    for item in summary["notes"]:
        out.print(f"note    {item['source']}: {item['note']}", markup=False)
    out.print(f"{summary['new_posts']} new posts from {summary['sources']} sources.")
    if held:
        out.print(held_line(len(summary["held_elsewhere"])), markup=False)


def _now() -> datetime:
    return clock.now()


@contextmanager
def _busy(message: str, quiet: bool) -> Iterator[None]:
    """A spinner on a terminal while one long step runs; nothing otherwise."""
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


@cli.command(name="filter")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No spinner and no table.")
@click.pass_obj
def filter_cmd(state: _State, as_json: bool, quiet: bool) -> None:
    """Run the topic filter over the window's posts and record every decision.

    Each post is kept under zero, one or several topics; `digest topics show`
    lists the result and `digest topics explain` says why.

    \b
    Examples:
      digest filter
      digest filter --json
    """
    from .pipeline import run_filter
    from .store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store, _busy("filtering posts by topic", quiet or as_json):
        run = run_filter(settings, store, now=_now())
    summary = _run_summary(run)
    if as_json:
        out.print_json(json.dumps(summary))
    elif not quiet:
        out.print(
            f"{summary['posts']} posts from {run.since:%Y-%m-%d %H:%M} to {run.until:%Y-%m-%d %H:%M} UTC: "
            f"{summary['kept']} kept, {summary['dropped']} dropped as off-topic."
        )
        for name, count in summary["topics"].items():
            out.print(f"  {name}: {count}", markup=False)


def _run_summary(run: FilterRun) -> dict[str, Any]:
    per_topic = Counter(t for _, d in run.verdicts for t in d.topics)
    return {
        "run": run.id,
        "ran_at": run.ran_at.isoformat(),
        "since": run.since.isoformat(),
        "until": run.until.isoformat(),
        "posts": len(run.verdicts),
        "kept": sum(1 for _, d in run.verdicts if d.topics),
        "dropped": sum(1 for _, d in run.verdicts if not d.topics),
        "topics": {name: per_topic.get(name, 0) for name in run.topics},
    }


@cli.group()
def topics() -> None:
    """Inspect the topic filter: what it kept, what it dropped, and why."""


@topics.command(name="show")
@click.option("--json", "as_json", is_flag=True, help="Print every decision as JSON.")
@click.option("--limit", default=15, show_default=True, help="Posts shown per table (the JSON has them all).")
@click.pass_obj
def topics_show(state: _State, as_json: bool, limit: int) -> None:
    """List the last filter run's kept posts per topic, and the dropped ones.

    \b
    Examples:
      digest topics show
      digest topics show --limit 50
      digest topics show --json > decisions.json
    """
    from .store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        run = store.last_filter_run()
        if run is None:
            raise DigestError("the filter has not run yet; run `digest filter` first")
        posts = {p.id: p for p in store.posts(run.since, run.until)}
    rows = [(posts[pid], d) for pid, d in run.verdicts if pid in posts]
    if as_json:
        out.print_json(json.dumps(_show_json(run, rows)))
        return
    for name in run.topics:
        kept = sorted(((p, d) for p, d in rows if name in d.topics), key=lambda r: -r[1].scores.get(name, 0))
        _decision_table(f"{name}: {len(kept)} kept", kept, name, limit)
    dropped = sorted(((p, d) for p, d in rows if not d.topics), key=lambda r: -max(r[1].scores.values(), default=0))
    _decision_table(f"Dropped as off-topic: {len(dropped)}", dropped, None, limit)


def _show_json(run: FilterRun, rows: list[tuple[Post, Decision]]) -> dict[str, Any]:
    def item(post: Post, decision: Decision) -> dict[str, Any]:
        return {
            "id": post.id,
            "url": post.url,
            "author": post.author.handle or post.author.name,
            "text": (post.title or post.text)[:280],
            "topics": list(decision.topics),
            "scores": decision.scores,
            "noise_score": decision.noise_score,
        }

    return {
        "run": _run_summary(run),
        "kept": {name: [item(p, d) for p, d in rows if name in d.topics] for name in run.topics},
        "dropped": [item(p, d) for p, d in rows if not d.topics],
    }


def _decision_table(title: str, rows: list[tuple[Post, Decision]], topic: str | None, limit: int) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("score", justify="right")
    table.add_column("author", overflow="ellipsis", max_width=28)
    table.add_column("post", overflow="ellipsis", max_width=70, no_wrap=True)
    table.add_column("id")
    for post, decision in rows[:limit]:
        score = decision.scores.get(topic, 0) if topic else max(decision.scores.values(), default=0)
        text = " ".join((post.title or post.text).split())
        table.add_row(f"{score:.2f}", post.author.handle or post.author.name, text, post.id)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more (--limit, or --json for all)"
    out.print(table)


@topics.command(name="explain")
@click.argument("post")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.pass_obj
def topics_explain(state: _State, post: str, as_json: bool) -> None:
    """Say why one post was kept or dropped: its score against each topic and
    threshold, and the terms that weighed most.

    POST is a post id (from `digest topics show`) or the post's URL.

    \b
    Examples:
      digest topics explain 3f9a1c0d2b7e4a51
      digest topics explain https://mastodon.social/@someone/113456789
    """
    from .curate import touching
    from .pipeline import explain_post
    from .store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        found, explanation = explain_post(settings, store, post)
        recorded = store.last_filter_run().decision(found.id)  # type: ignore[union-attr]
        readers = touching(settings, store, found)
    decision = recorded or explanation.decision
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": found.id,
                    "url": found.url,
                    "topics": list(decision.topics),
                    "scores": decision.scores,
                    "thresholds": decision.thresholds,
                    "noise_score": decision.noise_score,
                    "terms": {k: [list(t) for t in v] for k, v in explanation.terms.items()},
                    "examples": {
                        k: [
                            {"text": t, "label": label, "similarity": cos, "shift": shift} for t, label, cos, shift in v
                        ]
                        for k, v in explanation.examples.items()
                    },
                    "readers": readers,
                }
            )
        )
        return
    verdict = f"kept under {', '.join(decision.topics)}" if decision.topics else "dropped as off-topic"
    out.print(
        f"{found.url}\n{found.author.handle or found.author.name}: {' '.join(found.text.split())[:200]}", markup=False
    )
    out.print(f"decision: {verdict} (noise score {decision.noise_score:.2f})", markup=False)
    for name, score in decision.scores.items():
        mark = "kept" if name in decision.topics else "below" if score < decision.thresholds[name] else "lost to noise"
        out.print(f"  {name}: score {score:.2f}, threshold {decision.thresholds[name]:.2f} ({mark})", markup=False)
        terms = ", ".join(f"{term} {weight:+.2f}" for term, weight in explanation.terms.get(name, ()))
        if terms:
            out.print(f"    terms: {terms}", markup=False)
        for text, label, cos, shift in explanation.examples.get(name, ()):
            way = "more like this" if label else "not for me"
            example = " ".join(text.split())[:80]
            out.print(
                f"    moved {shift:+.2f} by accepted example ({way}, similarity {cos:.2f}): {example}", markup=False
            )
    _print_readers(readers)
    if recorded and recorded.topics != explanation.decision.topics:
        out.print("note: the topics changed since that run; `digest filter` records fresh decisions", markup=False)


def _print_readers(readers: dict[str, Any]) -> None:
    """The readers' signals `topics explain` found touching a post (see `curate.touching`)."""
    way = {True: "for", False: "against"}
    lines = [
        f"  {s['topic']}: {s['not_for_me']} not for me, {s['more_like_this']} more like this"
        for s in readers["signals"]
    ]
    lines += [f"  accepted as an example {way[a['label']]} {a['topic']} ({a['origin']})" for a in readers["accepted"]]
    lines += [f"  like accepted example {e['post']} ({way[e['label']]} {e['topic']})" for e in readers["like_examples"]]
    out.print("readers' signals: " + ("none" if not lines else ""), markup=False)
    for line in lines:
        out.print(line, markup=False)


@topics.command(name="feedback")
@click.option(
    "--accept",
    "accepted",
    multiple=True,
    metavar="POST",
    help="Teach the topic from the signals on POST (id or URL), the way most of its readers pressed. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the signals as JSON.")
@click.pass_obj
def topics_feedback(state: _State, accepted: tuple[str, ...], as_json: bool) -> None:
    """List readers' signals per topic: each post, how many readers pressed
    "not for me" and "more like this", and whether it was accepted.

    With --accept, the signals on those posts become the topic's labelled
    examples, which the filter learns from in later weeks. Until then a
    signal changes only its own reader's editions; a topic with
    accept_after = N accepts a post by itself once N readers agree.

    \b
    Examples:
      digest topics feedback
      digest topics feedback --accept 3f9a1c0d2b7e4a51 --accept 77aa01c2d3e4f5a6
    """
    from .curate import accept, feedback
    from .store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        if accepted:
            done = accept(settings, store, accepted, _now())
            for post_id, topic, label in done:
                err.print(f"accepted {post_id} as an example {'for' if label else 'against'} {topic}", markup=False)
        tallies = feedback(settings, store)
    rows = [
        {
            "topic": t.topic,
            "post": t.post_id,
            "readers": t.readers,
            "not_for_me": t.less,
            "more_like_this": t.more,
            "accepted": t.accepted,
            "text": " ".join(t.text.split())[:300],
        }
        for t in tallies
    ]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no reader has pressed a button yet", markup=False)
        return
    table = Table(title="readers' signals", title_justify="left")
    for column in ("topic", "post", "readers", "not for me", "more like this", "accepted", "text"):
        table.add_column(column, justify="right" if column in ("readers", "not for me", "more like this") else "left")
    labels = {None: "", True: "for", False: "against"}
    for t in tallies:
        text = " ".join(t.text.split())
        table.add_row(t.topic, t.post_id, str(t.readers), str(t.less), str(t.more), labels[t.accepted], text[:80])
    out.print(table)


@cli.command()
@click.option("--subscriber", "email", help="Preview the edition this subscriber gets (their topics).")
@click.option("--topics", "topic_list", help="Preview these topics, comma-separated (default: all).")
@click.option("--week", help="An ISO week such as 2026-W47 (default: the edition in progress, its posts so far).")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write it (default: digest-preview-WEEK.html).")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in your web browser.")
@click.option("--text", "as_text", is_flag=True, help="The plain-text part instead of the HTML.")
@_json_flag("what was written (file, week, period, counts; the edition goes to the file)")
@click.pass_obj
def preview(
    state: _State,
    email: str | None,
    topic_list: str | None,
    week: str | None,
    out: str | None,
    open_browser: bool,
    as_text: bool,
    as_json: bool,
) -> None:
    """Compose an edition from the stored posts and write it to a file to look at.

    By default the edition in progress: the posts since the last send time, which
    the next send time completes. The filter runs first (as the weekly job would)
    and its decisions are recorded.

    \b
    Examples:
      digest preview --open
      digest preview --topics "Interoperability" --week 2026-W47 --open
      digest preview --subscriber reader@example.org --text
    """
    from .compose import personalize
    from .periods import edition_for
    from .pipeline import composer_for
    from .store import Store

    settings = state.settings()
    topics = _selection(settings, email, topic_list)
    period = edition_for(settings, week, _now(), complete=False)
    with Store.open(settings.database_url) as store, _busy("composing", False):
        composer = composer_for(settings, store, now=_now(), period=period)
    edition = composer.edition(topics)
    if edition is None:
        raise DigestError(
            f"no posts matched {', '.join(topics)} in {composer.week}: an empty week sends nothing "
            "(set [digest] quiet_week = true for a one-line note)"
        )
    links = _preview_links(settings)
    edition = personalize(
        edition, unsubscribe_url=links + "unsubscribe", preferences_url=links + "preferences", name=""
    )
    body = edition.text if as_text else edition.html
    numbers = composer.counts(topics)
    counts = f"{edition.week}{'' if period.complete else ' so far'}: {numbers.summary}"
    if as_text and not out and not open_browser and not as_json:
        out_console = Console(highlight=False, soft_wrap=True, markup=False)
        out_console.print(body, markup=False)
        err.print(counts, markup=False)
        return
    path = Path(out or f"digest-preview-{edition.week}.{'txt' if as_text else 'html'}").resolve()
    path.write_text(body, encoding="utf-8")
    if as_json:
        _print_json(
            {
                "file": str(path),
                "week": edition.week,
                "period": {"since": period.since.isoformat(), "until": period.until.isoformat()},
                "complete": period.complete,
                "topics": list(edition.topics),
                "subject": edition.subject,
                "counts": numbers.as_dict(),
            }
        )
    else:
        err.print(f"wrote {path}: {edition.subject}\n{counts}", markup=False)
    if open_browser:
        _open_in_browser(path)


def _open_in_browser(path: Path) -> None:
    """Open a file in the web browser, or say that none was found (a server, a container, ssh)."""
    if not webbrowser.open(path.as_uri()):
        err.print(f"no web browser found to open it; open {path} yourself", markup=False)


def _selection(settings: config_mod.Settings, email: str | None, topic_list: str | None) -> list[str]:
    names = [t.name for t in settings.topics]
    if email:
        match = next((s for s in settings.subscribers if s.email.lower() == email.lower()), None)
        if match is None:
            raise DigestError(f"{email}: no such subscriber in {settings.path}")
        return list(match.topics or names)
    if topic_list:
        chosen = [t.strip() for t in topic_list.split(",") if t.strip()]
        unknown = [t for t in chosen if t not in names]
        if unknown:
            raise click.UsageError(f"unknown topic {unknown[0]!r}; configured: {', '.join(names)}")
        return chosen
    return names


def _preview_links(settings: config_mod.Settings) -> str:
    base = settings.subscription.public_url
    return f"{base.rstrip('/')}/preview/" if base else "#"


@cli.command()
@click.option("--week", help="An ISO week such as 2026-W47 (default: the last completed edition).")
@click.option("--dry-run", is_flag=True, help="Compose and list who would get which edition; send nothing.")
@click.option("--to", "only", metavar="EMAIL", help="Send only to this (confirmed) subscriber.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only problems, on stderr.")
@click.pass_obj
def send(state: _State, week: str | None, dry_run: bool, only: str | None, as_json: bool, quiet: bool) -> None:
    """Send the last completed edition to every confirmed subscriber, exactly once each.

    An edition covers the posts from the previous send time (send_on) to its own,
    so it is complete, and can be sent, from its send time on: before Friday's
    send time, `digest send` sends last Friday's edition (a re-run finds it sent).
    A --week still in progress or not begun is refused (exit 2).

    Safe to run again: whoever already has this edition is skipped, and
    after a crash a re-run sends only what was not handed over. With no [mail]
    smtp, messages are written to the outbox folder as .eml files.

    \b
    Examples:
      digest send --dry-run
      digest send
      digest send --week 2026-W47 --to reader@example.org
    """
    from .pipeline import send_week
    from .store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store, _bar("sending", quiet or as_json) as progress:
        report = send_week(settings, store, now=_now(), week=week, only=only, dry_run=dry_run, on_progress=progress)
    _print_send(report, settings, as_json, quiet)
    if report.stopped or (report.deferred and not report.sent):
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print both summaries as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; only problems, on stderr (for cron).")
@click.pass_obj
def run(state: _State, as_json: bool, quiet: bool) -> None:
    """The weekly job: collect, filter, compose and send this week's edition.

    Each step is also a command of its own (collect, filter, preview, send).
    Run it from cron or a systemd timer at your send_on time; see the README.

    \b
    Examples:
      digest run
      digest run --quiet      # for cron
    """
    from .collect import held_line, jobs_for
    from .pipeline import run_week
    from .store import Store

    settings = state.settings()
    jobs = jobs_for(settings)
    with Store.open(settings.database_url) as store, _week_progress(len(jobs), quiet or as_json) as (advance, sending):
        week = run_week(settings, store, _now(), jobs=jobs, on_result=advance, on_progress=sending)
    collected, report = week.collected, week.sent
    if as_json:
        out.print_json(json.dumps({"collect": collected.as_dict(), "send": report.as_dict()}))
    else:
        if not quiet:
            c = collected
            out.print(
                f"collected: {c.new_posts} new posts; {c.count('ok') + c.count('not_modified')} sources answered, "
                f"{c.count('failed')} failed",
                markup=False,
            )
            if c.count("held_elsewhere"):
                out.print(held_line(c.count("held_elsewhere")), markup=False)
        for e in collected.as_dict()["errors"]:
            err.print(f"{e['source']}: {e['error']}", markup=False)
        _print_send(report, settings, False, quiet)
    if report.stopped:
        raise SystemExit(EXIT_FAILED)


@contextmanager
def _week_progress(
    total: int, quiet: bool
) -> Iterator[tuple[Callable[[SourceResult], None], Callable[[int, int], None]]]:
    """`digest run`'s bars on one display (rich allows one at a time): collecting, then sending."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield (lambda result: None), (lambda done, total: None)
        return
    columns = (
        TextColumn("{task.fields[step]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        collecting, sending = progress.add_task("", total=total, step="collecting"), list[TaskID]()

        def collected(result: SourceResult) -> None:
            progress.update(collecting, advance=1, description=result.key[:60])

        def sent(done: int, total: int) -> None:
            if not sending:
                progress.update(collecting, visible=False)
                sending.append(progress.add_task("", total=total, step="sending"))
            progress.update(sending[0], completed=done, total=total)

        yield collected, sent


@contextmanager
def _bar(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield lambda done, total: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def _print_send(report: SendReport, settings: config_mod.Settings, as_json: bool, quiet: bool) -> None:
    from .periods import describe

    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for email, reason in report.failed:
        err.print(f"failed   {email}: {reason}", markup=False)
    for email, reason in report.deferred:
        err.print(f"deferred {email}: {reason}", markup=False)
    for email, mid, resent in report.uncertain:
        what = "sent again with the same Message-ID" if resent else "not sent again ([mail] uncertain = skip)"
        err.print(f"uncertain {email}: a crashed run handed it over unconfirmed; {what} {mid}", markup=False)
    if report.stopped:
        err.print(report.stopped, markup=False)
    if quiet:
        return
    if report.held_elsewhere:
        out.print(f"{len(report.held_elsewhere)} being sent by another run right now", markup=False)
    if report.period is not None:
        p = report.period
        out.print(
            f"{report.week}: the edition of {describe(settings, p.since)} to {describe(settings, p.until)}; "
            f"the next is due {describe(settings, report.next_due or p.due)}",
            markup=False,
        )
    verb = "would send" if report.dry_run else "sent"
    count = sum(len(people) for people in report.planned.values()) if report.dry_run else len(report.sent)
    line = (
        f"{report.week}: {verb} {count}, skipped {len(report.already_sent)} already sent, "
        f"failed {len(report.failed)}, deferred {len(report.deferred)}; {_plural(report.recipients, 'confirmed subscriber')}"
    )
    out.print(line, markup=False)
    for path, people in report.planned.items():
        shown = ", ".join(people[:DRY_RUN_SHOWN]) + (
            f" and {len(people) - DRY_RUN_SHOWN} more" if len(people) > DRY_RUN_SHOWN else ""
        )
        out.print(f"  {path} -> {_plural(len(people), 'subscriber')}: {shown}", markup=False)
    if report.nothing_to_send:
        out.print(f"nothing this week for {len(report.nothing_to_send)} (their topics had no posts)", markup=False)
    if report.via == "outbox" and report.sent and not report.dry_run:
        out.print(f"no [mail] smtp configured: messages written to {settings.outbox_dir / report.week}", markup=False)


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    help="Where to leave the files (default: a new temporary folder).",
)
@click.option("--no-open", is_flag=True, help="Do not open the edition in a browser (for terminals).")
@click.pass_obj
def demo(state: _State, folder: str | None, no_open: bool) -> None:
    """A first minute with digest: no internet and no config needed.

    Serves a sample week (health-IT accounts, a #HITsm chat, a blog, and the lunch
    photos that come along) on 127.0.0.1, runs the real pipeline against it
    (collect over HTTP, filter, compose, send to the outbox) in a temporary folder,
    prints what was kept and dropped, and opens the edition in your browser.

    \b
    Examples:
      digest demo
      digest demo --no-open --dir ./demo
    """
    import tempfile

    from .demo import run_demo

    where = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="digest-demo-"))
    result = run_demo(where, say=lambda line: out.print(line, markup=False))
    for topic, lines in result.kept.items():
        out.print(f"\nkept under {topic} ({len(lines)}):", markup=False)
        for line in lines[:4]:
            out.print(f"  + {line}", markup=False)
    if result.counts.in_chats:
        out.print(f"\nin the chat recap ({result.counts.in_chats}):", markup=False)
        for line in result.recap:
            out.print(f"  {line}", markup=False)
    out.print(f"\nleft out as off-topic ({len(result.dropped)}):", markup=False)
    for line in result.dropped:
        out.print(f"  - {line}", markup=False)
    out.print(f"\n4. the edition: {result.preview}\n   the email, as sent: {result.outbox}", markup=False)
    out.print(f"   try: digest --config {result.folder / 'feeds.toml'} topics show", markup=False)
    if not no_open:
        _open_in_browser(result.preview)


# -- hashtag chats ------------------------------------------------------------------------------------


@cli.group()
def chats() -> None:
    """Weekly hashtag chats ([[chats]]): when they run, and what their recap shows."""


@chats.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the chats as JSON.")
@click.pass_obj
def chats_list(state: _State, as_json: bool) -> None:
    """List the configured chats with their next window (or the one running now).

    From 5 minutes before a chat until 30 minutes after it, `digest serve`
    collects the chat's hashtag every 5 minutes; with cron, add the line the
    README gives for your chat's time.

    \b
    Examples:
      digest chats list
      digest chats list --json
    """
    from zoneinfo import ZoneInfo

    from .chats import current_or_next_window

    settings = state.settings()
    zone = ZoneInfo(settings.digest.timezone)
    now = _now()
    rows: list[dict[str, Any]] = []
    for chat in settings.chats:
        start, end = current_or_next_window(chat, now, zone)
        rows.append(
            {
                "hashtag": chat.hashtag,
                "host": chat.host,
                "when": chat.when,
                "duration": chat.duration,
                "running": start <= now,
                "start": start.astimezone(zone).isoformat(),
                "end": end.astimezone(zone).isoformat(),
            }
        )
    if as_json:
        out.print_json(json.dumps({"timezone": settings.digest.timezone, "chats": rows}))
        return
    if not rows:
        out.print(f"{settings.path}: no [[chats]] configured", markup=False)
        return
    table = Table(title=f"chats (times in {settings.digest.timezone})", title_justify="left")
    for column in ("hashtag", "host", "every", "next window"):
        table.add_column(column)
    for row in rows:
        start, end = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        window = f"{start:%a %Y-%m-%d %H:%M}-{end:%H:%M}" + (" (running now)" if row["running"] else "")
        table.add_row(f"#{row['hashtag']}", row["host"] or "-", f"{row['when']} for {row['duration']}", window)
    out.print(table)


@chats.command(name="recap")
@click.option(
    "--week", help="An ISO week such as 2026-W47: the last chat of that edition (default: the one in progress)."
)
@_json_flag("the recap")
@click.pass_obj
def chats_recap(state: _State, week: str | None, as_json: bool) -> None:
    """Print the recap of the last chat as the edition's text part shows it.

    For a curator to check what the edition will say: the questions in order,
    the best answers under each, and the other highlights. Nothing is recorded.

    \b
    Examples:
      digest chats recap
      digest chats recap --week 2026-W47
    """
    from .compose import chat_text
    from .periods import edition_for
    from .pipeline import last_chat_recap
    from .store import Store

    settings = state.settings()
    if not settings.chats:
        raise DigestError(f"{settings.path}: no [[chats]] configured")
    with Store.open(settings.database_url) as store:
        made = last_chat_recap(
            settings, store, now=_now(), period=edition_for(settings, week, _now(), complete=False) if week else None
        )
    if made is None:
        raise DigestError("no configured chat ended in this edition's period")
    if made.empty:
        raise DigestError(
            f"#{made.hashtag}, {made.start:%Y-%m-%d %H:%M} UTC: nothing was collected during the chat "
            "(is its hashtag collected often enough? see `digest chats list`)"
        )
    if as_json:
        _print_json(_recap_dict(made))
        return
    how = {
        "host": "the host's numbered questions",
        "labels": "numbered questions posted by anyone (none by the host)",
        "slices": "slices of the hour (nobody numbered questions)",
    }[made.mode]
    out.print(chat_text([made], settings.digest.timezone, settings.templates_dir).strip("\n"), markup=False)
    err.print(f"\n{made.posts} chat posts; questions from {how}.", markup=False)


def _recap_dict(recap: Any) -> dict[str, Any]:
    """``chats recap --json``: the questions in order, each with its best answers, then the other highlights."""

    def post(p: Post) -> dict[str, str]:
        return {"author": p.author.name or p.author.handle, "handle": p.author.handle, "url": p.url, "text": p.text}

    return {
        "hashtag": recap.hashtag,
        "start": recap.start.isoformat(),
        "end": recap.end.isoformat(),
        "participants": recap.participants,
        "posts": recap.posts,
        "mode": recap.mode,
        "thread_url": recap.thread_url,
        "questions": [
            {"label": q.label, "text": q.text, "url": q.link, "answers": [post(a) for a in q.answers]}
            for q in recap.questions
        ],
        "other": [post(p) for p in recap.other],
    }


# -- managing sources: add, import, export, list, status ---------------------------------------


@cli.group()
def sources() -> None:
    """Manage what digest follows: add sources, import and export OPML, see how each fares.

    Changes are written into feeds.toml after its last [[sources]] table; every other
    line of the file (comments, order, spacing) stays exactly as it was.
    """


@sources.command(name="add")
@click.argument("source")
@click.option("--name", help="A display name (default: the feed's own title).")
@click.option(
    "--server",
    "servers",
    multiple=True,
    help="For a #hashtag: a Mastodon server to look it up on (repeat it; default [collect] servers).",
)
@click.option("--pick", type=click.IntRange(min=1), help="A website offering several feeds: add the Nth.")
@click.option("--all", "pick_all", is_flag=True, help="A website offering several feeds: add them all.")
@click.option("--no-check", is_flag=True, help="Write it without fetching it first (a website URL is taken as a feed).")
@_json_flag("what was added and skipped (no prompt: --pick or --all)")
@click.pass_obj
def sources_add(
    state: _State,
    source: str,
    name: str | None,
    servers: tuple[str, ...],
    pick: int | None,
    pick_all: bool,
    no_check: bool,
    as_json: bool,
) -> None:
    """Add SOURCE to feeds.toml after fetching it once to check it.

    SOURCE is a feed URL; a website (its feeds are found from <link rel="alternate"> or
    common paths such as /feed; with several, you pick one on a terminal, or pass
    --pick N or --all); a Mastodon account @user@server; a Bluesky handle
    (name.bsky.social, or @custom.domain); or a #hashtag (looked up on [collect]
    servers unless --server is given). A source already followed, or one that does
    not answer with a feed, is refused with the reason.

    \b
    Examples:
      digest sources add https://blog.hl7.org/rss.xml
      digest sources add https://www.healthcareittoday.com --pick 1
      digest sources add @someone@mastodon.social --name "Someone"
      digest sources add someone.bsky.social
      digest sources add '#FHIR' --server mastodon.social --server hachyderm.io
    """
    from .sources import ChoiceNeeded, add_source

    settings = state.settings()
    interactive = sys.stdin is not None and sys.stdin.isatty() and err.is_terminal and not as_json
    choose = _choose_feeds if interactive else None
    try:
        report = add_source(
            settings,
            source,
            now=_now(),
            name=name,
            servers=servers or None,
            check=not no_check,
            pick=pick,
            pick_all=pick_all,
            choose=choose,
        )
    except ChoiceNeeded as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        _print_json(
            {
                "path": str(report.path),
                "page": report.page or None,
                "checked": report.checked,
                "added": [{"source": c.source.describe(), "title": c.title, "posts": c.posts} for c in report.added],
                "skipped": [{"source": where, "reason": reason} for where, reason in report.skipped],
            }
        )
        return
    for where, reason in report.skipped:
        err.print(f"skipped {where}: {reason}", markup=False)
    found = f" (found on {report.page})" if report.page else ""
    for checked in report.added:
        detail = f"{checked.posts} posts now" if report.checked else "not checked"
        out.print(f"added {checked.source.describe()}{found}: {detail}; written to {report.path}", markup=False)


def _choose_feeds(page: str, candidates: list[Any]) -> list[int]:
    """Ask on the terminal which of a page's feeds to add: a number, several (1,3) or 'all'."""
    err.print(f"{page} offers {len(candidates)} feeds:", markup=False)
    for i, candidate in enumerate(candidates, start=1):
        err.print(f"  {i}. {candidate.describe()}", markup=False)

    def parse(answer: str) -> list[int]:
        if answer.strip().lower() == "all":
            return list(range(len(candidates)))
        try:
            picked = [int(part) - 1 for part in answer.replace(" ", "").split(",") if part]
        except ValueError:
            raise click.UsageError("answer with numbers such as 1 or 1,3, or 'all'") from None
        if not picked or any(not 0 <= i < len(candidates) for i in picked):
            raise click.UsageError(f"choose between 1 and {len(candidates)}")
        return picked

    return click.prompt("Add which (1,3 or all)", default="1", value_proc=parse, err=True)


@sources.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Fetch each feed once first and skip the dead ones, saying why.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def sources_import(state: _State, file: str, check: bool, as_json: bool) -> None:
    """Add every feed of FILE.opml (an export of Feedly, Inoreader, NetNewsWire,
    Miniflux, FreshRSS or any reader) to feeds.toml, in one write.

    Feeds already followed and feeds listed twice are skipped, so importing the same
    file again adds nothing. Feeds are written without being fetched unless --check
    is given. Mastodon and Bluesky RSS URLs become those accounts (and hashtags),
    read through their APIs. A file that is not well-formed is refused with its line,
    and nothing is written.

    \b
    Examples:
      digest sources import feedly.opml
      digest sources import subscriptions.xml --check
    """
    from .sources import import_opml

    settings = state.settings()
    report = import_opml(settings, file, now=_now(), check=check)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for source, why, reason in report.skipped:
        if why != "followed":
            err.print(f"skipped {source}: {reason}", markup=False)
    words = {"followed": "already followed", "twice": "listed twice", "dead": "dead", "invalid": "invalid"}
    why = ", ".join(f"{n} {words[w]}" for w, n in report.counts().items())
    out.print(f"added {len(report.added)}, skipped {len(report.skipped)}{f' ({why})' if why else ''}", markup=False)


@sources.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@_json_flag('{"file", "feeds", "left_out"}')
@click.pass_obj
def sources_export(state: _State, file: str, as_json: bool) -> None:
    """Write the sources to FILE.opml (OPML 2.0), for a feed reader or `digest sources import`.

    Feeds are written as they are; Mastodon accounts, hashtags (one feed per server) and
    Bluesky accounts as their public RSS URLs; each kind in its own folder.

    \b
    Example:
      digest sources export sources.opml
    """
    from .sources import export_opml

    settings = state.settings()
    report = export_opml(settings, file, now=_now())
    if as_json:
        _print_json({"file": str(file), "feeds": report.feeds, "left_out": report.left_out})
        return
    for item in report.left_out:
        err.print(f"left out {item}", markup=False)
    err.print(f"wrote {report.feeds} feeds to {file}", markup=False)


@sources.command(name="list")
@click.option("--json", "as_json", is_flag=True, help='Print [{"kind", "key", "name", "status"}] as JSON.')
@click.pass_obj
def sources_list(state: _State, as_json: bool) -> None:
    """List every endpoint digest fetches (a hashtag has one per server): kind, key,
    name and the last fetch's status.

    \b
    Examples:
      digest sources list
      digest sources list --json
    """
    from .sources import status_of

    rows = status_of(state.settings(), now=_now())
    if as_json:
        out.print_json(json.dumps([{k: r.as_dict()[k] for k in ("kind", "key", "name", "status")} for r in rows]))
        return
    table = Table(title=f"{len(rows)} sources", title_justify="left")
    for column in ("kind", "key", "name", "status"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.kind, r.key, r.name, r.status)
    out.print(table)


@sources.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print every source's record as JSON.")
@click.pass_obj
def sources_status(state: _State, as_json: bool) -> None:
    """Show how each source fares, to see which are worth following.

    Per endpoint: the last fetch and when, consecutive failures, the last success,
    posts collected this week, the share the topic filter dropped in its last run,
    and a hint when a source is dead (gone, resting after failures, or silent for
    30 days) or mostly noise (the filter dropped 60% or more of at least 5 posts).

    \b
    Examples:
      digest sources status
      digest sources status --json | jq '.[] | select(.hint_kind == "noise")'
    """
    from .sources import status_of

    now = _now()
    rows = status_of(state.settings(), now=now)
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in rows]))
        return
    table = Table(title=f"{len(rows)} sources", title_justify="left")
    for column in ("kind", "source", "last fetch", "fails", "last success", "week", "dropped", "hint"):
        table.add_column(column, overflow="fold", justify="right" if column in ("fails", "week", "dropped") else "left")
    colours = {"dead": "red", "failing": "yellow", "noise": "magenta", "quiet": "dim"}
    for r in rows:
        dropped = f"{r.dropped_share:.0%} of {r.filtered}" if r.dropped_share is not None else "-"
        table.add_row(
            r.kind,
            escape(r.name or r.key.split(":", 1)[1]),
            f"{r.status} {_ago(r.last_attempt, now)}".strip(),
            str(r.failures),
            _ago(r.last_success, now) or "never",
            str(r.posts_week),
            dropped,
            f"[{colours[r.hint_kind]}]{r.hint_kind}[/]" if r.hint_kind else "",
        )
    out.print(table)
    for r in rows:
        if r.hint_kind:
            out.print(f"[{colours[r.hint_kind]}]{r.hint_kind:<7}[/] {escape(r.key)}: {escape(r.hint)}")
    for r in rows:
        if r.note:
            out.print(f"note    {r.key}: {r.note}", markup=False)
    kinds = Counter(r.hint_kind for r in rows if r.hint_kind)
    if kinds:
        out.print(", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())), markup=False)


def _ago(when: datetime | None, now: datetime) -> str:
    """``5m ago``, ``3h ago``, ``2d ago``, or '' for never."""
    if when is None:
        return ""
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


@cli.command(name="eval")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--sweep", "run_sweep", is_flag=True, help="Sample many batches: on-topic shares and batch sizes.")
@click.option(
    "--feedback",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="FEEDBACK.csv (text,label): run as if readers' signals on these posts were accepted as examples.",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 100),
    default=None,
    help="With --sweep: batches sampled per cell (default 5).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def eval_cmd(state: _State, data: str, run_sweep: bool, feedback: str | None, seeds: int | None, as_json: bool) -> None:
    """Measure the topic filter on labelled posts: DATA.csv with columns text,label.

    `label` is a topic name (several joined by |) or empty for off-topic. The
    filter runs exactly as the weekly job would, the whole file as one batch,
    with the topics of the configuration; plain keyword matching (a post kept
    under every topic whose keywords it contains) is scored beside it.

    With --sweep, the filter runs on many batches sampled from the file
    instead: at on-topic shares from 5% to 95% (900 posts, fewer when the file
    is short of either kind) and at sizes from 30 to 1,000 posts (40% on-topic),
    each with --seeds random samples. A table per sweep gives the mean and the
    lowest seed's F1 (macro over topics), precision, recall, off-topic chatter
    dropped and on-topic posts kept under a wrong topic, the keyword baseline,
    then the cells that miss the quality targets.

    With --feedback, the rows of FEEDBACK.csv (text,label) join the fit as
    accepted readers' examples: a labelled row "more like this" under its
    topics, an off-topic row "not for me" under every topic.

    \b
    Examples:
      digest --config topics.toml eval labelled.csv
      digest --config topics.toml eval held-out.csv --feedback pressed.csv
      digest --config topics.toml eval labelled.csv --json
      digest --config topics.toml eval labelled.csv --sweep
      digest --config topics.toml eval labelled.csv --sweep --seeds 2 --json
    """
    from .evaluate import check, evaluate, feedback_examples, sweep
    from .pipeline import noise_profile
    from .topics import TopicSpec, with_examples

    if seeds is not None and not run_sweep:
        raise click.UsageError("--seeds goes with --sweep")
    settings = state.settings()
    if not settings.topics:
        raise ConfigError(f"{settings.path}: no [[topics]] configured; eval measures them")
    texts, labels = read_labelled(data)
    noise = noise_profile(settings)
    topics: Sequence[TopicSpec] = settings.topics
    if feedback is not None:
        names = [t.name for t in settings.topics]
        topics, noise = with_examples(topics, noise, feedback_examples(*read_labelled(feedback), names))
    if run_sweep:
        with _bar("sweeping", as_json) as progress:
            try:
                report = sweep(texts, labels, topics, noise=noise, seeds=seeds or 5, on_progress=progress)
            except ValueError as exc:
                raise DigestError(f"{data}: {exc}") from None
        if as_json:
            out.print_json(json.dumps(report))
        else:
            with _wide():
                _print_sweep(data, report, check(report))
        return
    with _busy(f"filtering {len(texts)} posts", as_json):
        report = evaluate(texts, labels, topics, noise=noise)
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(title=f"digest eval {data}", title_justify="left")
    for column in ("topic", "precision", "recall", "F1", "support", "keyword F1"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    baseline = report["keyword_baseline"]
    for name, row in report["topics"].items():
        values = (row["precision"], row["recall"], row["f1"])
        table.add_row(name, *(f"{v:.3f}" for v in values), str(row["support"]), f"{baseline['topics'][name]['f1']:.3f}")
    out.print(table)
    off = report["off_topic"]
    out.print(
        f"macro-F1 {report['macro_f1']:.3f}; off-topic rows dropped: {off['dropped']:.1%} of {off['rows']}; "
        f"on-topic rows kept under a wrong topic: {report['wrong_topic']:.1%}; {report['posts_per_second']:,.0f} posts/s"
    )
    out.print(
        f"keyword baseline (kept on any keyword): macro-F1 {baseline['macro_f1']:.3f}; off-topic rows dropped: "
        f"{baseline['off_topic']['dropped']:.1%}; kept under a wrong topic: {baseline['wrong_topic']:.1%}"
    )


_SWEEP_STATS = ("f1", "precision", "recall", "chatter_dropped")  # mean and lowest seed, then wrong_topic


@contextmanager
def _wide(columns: int = 132) -> Iterator[None]:
    """Wide tables: on a terminal its width, else (a file, a pipe) ``columns`` rather than rich's 80."""
    width = out.width
    if not out.is_terminal:
        out.width = max(width, columns)
    try:
        yield
    finally:
        out.width = width


def _print_sweep(data: str, report: dict[str, Any], misses: list[str]) -> None:
    """`digest eval --sweep`: a table per sweep (shares, sizes), per-topic F1 with several topics, the misses."""
    several = len(report["topics"]) > 1
    f1 = "macro-F1" if several else "F1"
    titles = {
        "shares": f"on-topic share, batches of {report['share_size']} (fewer when the data is short)",
        "sizes": f"batch size, {report['size_share']:.0%} on-topic",
    }
    for kind in ("shares", "sizes"):
        table = Table(
            title=f"digest eval --sweep {data}: {titles[kind]}; {report['seeds']} seed(s) each",
            title_justify="left",
        )
        headers: tuple[str, ...] = (
            "share",
            "n",
            f"{f1}\nmean",
            "\nmin",
            "precision\nmean",
            "\nmin",
            "recall\nmean",
            "\nmin",
        )
        headers += ("chatter\ndropped", "\nmin", "wrong\ntopic", "\nmax", f"keyword\n{f1}", "keyword\nchatter")
        for column in headers:
            table.add_column(column, justify="right")
        for cell in report[kind]:
            n = str(cell["n"]) if cell["n"] == cell["requested_n"] else f"{cell['n']}/{cell['requested_n']}"
            stats = [cell[k][which] for k in _SWEEP_STATS for which in ("mean", "min")]
            stats += [cell["wrong_topic"]["mean"], cell["wrong_topic"]["max"], *cell["keyword_baseline"].values()]
            table.add_row(f"{cell['share']:g}", n, *(f"{v:.3f}" for v in stats))
        out.print(table)
        if several:
            per_topic = Table(title=f"mean F1 per topic ({kind})", title_justify="left")
            per_topic.add_column("share", justify="right")
            per_topic.add_column("n", justify="right")
            for name in report["topics"]:
                per_topic.add_column(name, justify="right")
            for cell in report[kind]:
                row = [f"{cell['share']:g}", str(cell["n"]), *(f"{v:.3f}" for v in cell["topics"].values())]
                per_topic.add_row(*row)
            out.print(per_topic)
    worst = report["worst"]
    out.print(
        f"worst: mean {f1} {worst['f1']['value']:.3f} at {worst['f1']['cell']}; lowest chatter dropped "
        f"{worst['chatter_dropped']['value']:.3f} at {worst['chatter_dropped']['cell']}; lowest recall "
        f"{worst['recall']['value']:.3f} at {worst['recall']['cell']}",
        markup=False,
    )
    if not misses:
        out.print("every quality target met.")
        return
    out.print(f"{len(misses)} quality targets missed:")
    for miss in misses:
        out.print(f"  {miss}", markup=False)


def read_labelled(path: str) -> tuple[list[str], list[set[str]]]:
    """Rows of a text,label CSV: the texts, and each row's set of topic names (empty: off-topic)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise DigestError(f"{path}: no {' or '.join(sorted(missing))} column (expected text,label)")
        texts, labels = [], []
        for row in reader:
            texts.append(row["text"] or "")
            labels.append({name.strip() for name in (row["label"] or "").split("|") if name.strip()})
    return texts, labels


# -- the subscription pages and the curator's subscriber commands ------------------------------------


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep 127.0.0.1 behind a proxy)."
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--no-schedule", is_flag=True, help="Serve the pages only: no collection, no weekly send.")
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    show_default=True,
    help="Take the client address and scheme from X-Forwarded-For/-Proto sent by --forwarded-allow-ips.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Comma-separated addresses of reverse proxies whose X-Forwarded-* headers are trusted.",
)
@click.option("--access-log", is_flag=True, help="Log every request (paths carry subscriber tokens: keep it private).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much the server and the schedule log.",
)
@click.pass_obj
def serve(
    state: _State,
    host: str,
    port: int,
    no_schedule: bool,
    proxy_headers: bool,
    forwarded_allow_ips: str,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the subscription pages and the archive, and run the schedule.

    Readers subscribe, confirm, change topics and unsubscribe on these pages; past
    editions and an Atom feed are public. Beside the pages, sources are collected
    every [digest] collect_every and the weekly job (what `digest run` does) runs
    at send_on, once per week even across restarts. Needs [subscription]
    public_url and secret. Put it behind a reverse proxy for TLS (see the README).

    \b
    Examples:
      digest serve
      digest serve --host 127.0.0.1 --port 8080 --access-log
      digest serve --no-schedule          # pages only; cron runs `digest run`
    """
    import logging

    from . import serving
    from .schedule import Scheduler
    from .store import Store
    from .subscribers import secret_of
    from .web import create_app

    settings = state.settings()
    secret_of(settings)
    if state.verbose:  # the global -v/-vv wins over --log-level
        log_level = "debug" if state.verbose > 1 else "info"
    if log_level.lower() != "debug":  # one line per fetch only when debugging
        logging.getLogger("httpx").setLevel(logging.WARNING)
    with Store.open(settings.database_url) as store:
        scheduler = None if no_schedule else Scheduler(settings, store)
        app = create_app(settings, store, scheduler=scheduler)
        err.print(_serving_line(settings.subscription.public_url or "", host, port, no_schedule), markup=False)
        serving.run(
            app,
            host=host,
            port=port,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            access_log=access_log,
            log_level=log_level,
        )


def _serving_line(public_url: str, host: str, port: int, no_schedule: bool) -> str:
    """``serve``'s first line: where it listens, where readers reach it (when that differs), and the schedule."""
    local = f"http://{host}:{port}"
    where = local if public_url.rstrip("/") == local else f"{local} (readers reach it at {public_url})"
    return f"serving the subscription pages on {where}; " + (
        "no schedule (--no-schedule)" if no_schedule else "collecting and sending on the schedule"
    )


@cli.group()
def subscribers() -> None:
    """Manage subscribers: list, add, remove, import and export.

    Readers usually subscribe themselves on the pages of `digest serve`. An
    address that unsubscribed is kept only as a hash (the suppression list):
    `add` and `import` refuse it, so nobody is added back silently.
    """


@subscribers.command(name="list")
@click.option("--json", "as_json", is_flag=True, help='Print [{"email", "state", "topics"}] as JSON.')
@click.option(
    "--state", "only", type=click.Choice(["pending", "confirmed", "unsubscribed", "bouncing"]), help="Only this state."
)
@click.pass_obj
def subscribers_list(state: _State, as_json: bool, only: str | None) -> None:
    """List subscribers with their state and topics.

    Addresses listed in feeds.toml are included. People who unsubscribed
    through the pages are kept only as hashes: they are counted, not listed.

    \b
    Examples:
      digest subscribers list
      digest subscribers list --state pending
      digest subscribers list --json
    """
    from .store import Store
    from .subscribers import listing

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        rows = [r for r in listing(settings, store, now=_now()) if not only or r["state"] == only]
        counts = store.subscriber_counts()
    if as_json:
        out.print_json(json.dumps([{"email": r["email"], "state": r["state"], "topics": r["topics"]} for r in rows]))
        return
    table = Table(title=f"{len(rows)} subscribers", title_justify="left")
    for column in ("email", "state", "topics", "from"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["email"], r["state"], ", ".join(r["topics"]), r["origin"])
    out.print(table)
    out.print(_counts_line(counts), markup=False)


@subscribers.command(name="add")
@click.argument("email")
@click.option("--topics", "topic_list", help="Topics, comma-separated (default: all).")
@click.option("--confirmed", is_flag=True, help="They asked you directly: no confirmation email.")
@_json_flag('{"email", "state", "topics", "confirmation_sent"}')
@click.pass_obj
def subscribers_add(state: _State, email: str, topic_list: str | None, confirmed: bool, as_json: bool) -> None:
    """Add a subscriber (or change an existing one's topics).

    With [subscription] double_opt_in (the default) and no --confirmed, the
    address is pending and gets a confirmation email. An address that
    unsubscribed is refused: only they can subscribe again, on the pages.

    \b
    Examples:
      digest subscribers add reader@example.org
      digest subscribers add reader@example.org --topics "FHIR,Privacy" --confirmed
    """
    from .store import Store
    from .subscribers import add

    settings = state.settings()
    address = _address(email)
    topics = [t.strip() for t in topic_list.split(",") if t.strip()] if topic_list is not None else None
    with Store.open(settings.database_url) as store:
        added = add(settings, store, address, topics, confirmed=confirmed, now=_now())
    if as_json:
        topics = list(added.topics or [t.name for t in settings.topics])
        pending = added.status == "pending"
        _print_json({"email": added.email, "state": added.status, "topics": topics, "confirmation_sent": pending})
        return
    note = "; a confirmation email was sent" if added.status == "pending" else ""
    out.print(f"{added.email}: {added.status}{note}", markup=False)


@subscribers.command(name="remove")
@click.argument("email")
@click.option("--suppress", is_flag=True, help="Block an address that never subscribed from imports and adds.")
@_json_flag('{"email", "result"}')
@click.pass_obj
def subscribers_remove(state: _State, email: str, suppress: bool, as_json: bool) -> None:
    """Unsubscribe an address: its data goes, a suppression (its hash) stays.

    An address that never subscribed is left alone (and said so), unless
    --suppress asks for it to be blocked, as when someone asks never to be added.

    \b
    Examples:
      digest subscribers remove reader@example.org
      digest subscribers remove someone@example.org --suppress
    """
    from .store import Store
    from .subscribers import Removal, remove

    settings = state.settings()
    address = _address(email)
    with Store.open(settings.database_url) as store:
        done = remove(settings, store, address, now=_now(), suppress=suppress)
    if as_json:
        _print_json({"email": address, "result": done.name.lower()})
        return
    said = {
        Removal.UNSUBSCRIBED: "unsubscribed; its suppression stays, so no import adds it back",
        Removal.NOT_SUBSCRIBED: "was not subscribed; nothing changed (--suppress blocks it from imports and adds)",
        Removal.ALREADY_UNSUBSCRIBED: "had already unsubscribed; nothing changed",
        Removal.SUPPRESSED: "was not subscribed; suppressed, so no import or add takes it",
    }[done]
    out.print(f"{address}: {said}", markup=False)


def _address(raw: str) -> str:
    """An address from the command line, normalized; a malformed one is bad usage (exit 2) naming it."""
    from .subscribers import InvalidInput, normalize_email

    try:
        return normalize_email(raw)
    except InvalidInput as exc:
        raise UsageError(f"{raw!r}: {exc}") from None


@subscribers.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def subscribers_import(state: _State, file: str, as_json: bool) -> None:
    """Add the people in FILE.csv as confirmed subscribers.

    Columns: email, and optionally topics (several joined by |) and name. Only
    import people who asked to receive the digest. Suppressed addresses are
    skipped, existing subscribers are left as they are, and a bad row is
    reported with its line while the rest go on.

    \b
    Examples:
      digest subscribers import readers.csv
      digest subscribers import readers.csv --json
    """
    from .store import Store
    from .subscribers import import_csv

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        report = import_csv(settings, store, file, now=_now())
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for line, reason in report.invalid:
        err.print(f"{file}:{line}: {reason}", markup=False)
    out.print(
        f"added {len(report.added)}, already subscribed {len(report.existing)}, "
        f"skipped as unsubscribed {len(report.suppressed)}, invalid {len(report.invalid)}",
        markup=False,
    )


@subscribers.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@_json_flag('{"file", "subscribers"}')
@click.pass_obj
def subscribers_export(state: _State, file: str, as_json: bool) -> None:
    """Write every subscriber to FILE.csv (email, name, topics, state, and the
    reader's own feedback signals), readable by `import`.

    \b
    Example:
      digest subscribers export readers.csv
    """
    from .store import Store
    from .subscribers import export_csv

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        rows = export_csv(settings, store, file, now=_now())
    if as_json:
        _print_json({"file": str(file), "subscribers": rows})
        return
    err.print(f"wrote {_plural(rows, 'subscriber')} to {file}", markup=False)


def _plural(count: int, word: str) -> str:
    """``1 subscriber``, ``2 subscribers``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("confirmed", "pending", "unsubscribed", "bouncing"))


def _store_counts(settings: config_mod.Settings) -> str:
    """``; in the store: 3 confirmed, ...`` for `check`, or nothing before the store exists."""
    from .errors import StoreError
    from .subscribers import counts

    try:
        found = counts(settings)
    except StoreError as exc:
        return f"; the store cannot be read: {exc}"
    return f"; in the store: {_counts_line(found)}" if found is not None else ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; every failure becomes one line on stderr (and, for a ``--json``
    command, ``{"error": ...}`` on stdout) and an exit status. No traceback reaches a user unless
    ``DIGEST_DEBUG=1`` asks for it."""
    instruction = os.environ.get(_COMPLETE)
    if instruction:  # the shell asking for completions (see `digest init --help`), as click's own main does
        from click.shell_completion import shell_complete

        sys.exit(shell_complete(cli, {}, "digest", _COMPLETE, instruction))
    meta: dict[str, Any] = {}
    try:
        with cli.make_context("digest", list(sys.argv[1:] if argv is None else argv)) as ctx:
            meta = ctx.meta
            cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _show_usage_error(exc)
        if meta.get(_JSON):
            out.print_json(json.dumps({"error": f"error: {exc.format_message()}", "exit_status": EXIT_USAGE}))
        sys.exit(EXIT_USAGE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("DIGEST_DEBUG") == "1":
            raise
        lines, status = _failure(exc)
        for line in lines:
            err.print(line, markup=False)
        if meta.get(_JSON):
            out.print_json(json.dumps({"error": "\n".join(lines), "exit_status": status}))
        sys.exit(status)


def _show_usage_error(exc: click.ClickException) -> None:
    """click's usage errors in digest's one style: the usage line, then ``error: ...`` (lower-case)."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        err.print(ctx.get_usage(), markup=False)
        err.print(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n", markup=False)
    err.print(f"error: {exc.format_message()}", markup=False)


def _failure(exc: Exception) -> tuple[list[str], int]:
    """What to tell a person about a failure, and the exit status: the one place errors become words."""
    if isinstance(exc, ConfigError):
        return exc.problems, EXIT_USAGE
    if isinstance(exc, UsageError):
        return [f"error: {exc}"], EXIT_USAGE
    if isinstance(exc, DigestError):
        return [f"error: {exc}"], EXIT_FAILED
    sa_exc = sys.modules.get("sqlalchemy.exc")  # not imported: the failure cannot be the database's
    if sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError):
        from .store import environment_failure

        reason = environment_failure(exc) or one_line(getattr(exc, "orig", None) or exc, 300)
        return [f"error: the database: {reason}"], EXIT_FAILED
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        hint = "; free some space and run it again" if exc.errno == errno.ENOSPC else ""
        return [f"error: {where}{exc.strerror or exc}{hint}"], EXIT_FAILED
    return [
        f"error: internal error: {type(exc).__name__}: {one_line(exc, 300)} "
        "(a bug in digest; DIGEST_DEBUG=1 shows the traceback to report)"
    ], EXIT_FAILED
