"""The ``digest`` command: parse arguments, call the library, turn its errors into exit codes.

Exit status: 0 the work was done, 1 the work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from . import config as config_mod
from .collect import SourceResult, collect, jobs_for
from .errors import ConfigError, DigestError
from .store import Store

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def settings(self) -> config_mod.Settings:
        return config_mod.load(self.config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="DIGEST_CONFIG",
    type=click.Path(dir_okay=False),
    help="The configuration file (default ./feeds.toml; also DIGEST_CONFIG).",
)
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """digest reads the accounts, hashtags and feeds you follow, keeps what is on topic
    and mails a weekly digest.

    \b
    Examples:
      digest check                      validate feeds.toml and summarise it
      digest collect                    gather new posts into the store
      digest --config other.toml collect --json
    """
    ctx.obj = _State(config_path)


@cli.command()
@click.pass_obj
def check(state: _State) -> None:
    """Validate the configuration and print a short summary.

    A bad configuration exits with status 2 and one line per problem, naming the
    file, line and key.

    \b
    Example:
      digest --config feeds.toml check
    """
    settings = state.settings()
    jobs = jobs_for(settings)
    kinds = Counter(type(s).__name__.removesuffix("Source").lower() for s in settings.sources)
    endpoints = Counter(job.kind for job in jobs)
    out.print(f"{settings.path}: OK")
    described = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    out.print(f"  sources:     {sum(kinds.values())} ({described}); {len(jobs)} endpoints to fetch", end="")
    out.print(f" ({', '.join(f'{n} {k}' for k, n in sorted(endpoints.items()))})" if jobs else "")
    topics = ", ".join(t.name for t in settings.topics) or "none yet"
    out.print(f"  topics:      {len(settings.topics)} ({topics})")
    out.print(f"  subscribers: {len(settings.subscribers)} listed in the file")
    out.print(f"  mail:        {settings.mail.mode}")
    out.print(f"  store:       {settings.database_url}")
    out.print(
        f"  schedule:    every {settings.digest.send_on} {settings.digest.timezone}, covering {settings.digest.window_days} days"
    )
    secrets = _secret_names(settings)
    if secrets:
        out.print(f"  secrets:     read from the environment: {', '.join(secrets)}")


def _secret_names(settings: config_mod.Settings) -> list[str]:
    values = [settings.bluesky.app_password or "", settings.mail.smtp or ""]
    return sorted({m.group(1) for v in values for m in config_mod._ENV_REF.finditer(v)})


@cli.command(name="collect")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table; errors still go to stderr.")
@click.pass_obj
def collect_cmd(state: _State, as_json: bool, quiet: bool) -> None:
    """Fetch every configured source once and store new posts.

    Sources are fetched concurrently; one failing source never stops the rest.
    Meant to run often (hourly from cron or a systemd timer): unchanged feeds
    answer 304 and cost almost nothing. Exits 0 when the run completed, even if
    some sources failed, and 1 only when every source failed.

    \b
    Examples:
      digest collect
      digest collect --json
      digest collect --quiet       # for cron
    """
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
    table = Table(title="digest collect", title_justify="left")
    for column in ("kind", "sources", "fetched", "not modified", "failed", "skipped", "new posts"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in summary["kinds"].items():
        values = (row["sources"], row["ok"], row["not_modified"], row["failed"], row["skipped"], row["new_posts"])
        table.add_row(kind, *map(str, values))
    out.print(table)
    for error in summary["errors"]:
        out.print(f"[red]failed[/red]  {error['source']}: {error['error']}", markup=True, highlight=False)
    for item in summary["skipped_sources"]:
        out.print(f"skipped {item['source']}: {item['reason']}", markup=False)
    for item in summary["notes"]:
        out.print(f"note    {item['source']}: {item['note']}", markup=False)
    out.print(f"{summary['new_posts']} new posts from {summary['sources']} sources.")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, mapping library errors to messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(EXIT_FAILED)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False)
        sys.exit(EXIT_USAGE)
    except DigestError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_FAILED)
