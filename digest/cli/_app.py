"""The root command and its global options (--config, -v), and `main`: the one place a failure
becomes words on stderr and an exit status.

Exit status: 0 the work was done, 1 the work failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, DigestError, UsageError, one_line
from ._output import err, out

if TYPE_CHECKING:
    from ..config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
_GLOBAL_OPTIONS = ("--config", "--verbose", "-v")  # the root command's, which a subcommand does not take
_COMPLETE = "_DIGEST_COMPLETE"  # click's shell completion variable for a program called digest


class State:
    def __init__(self, config_path: str | None, verbose: int = 0) -> None:
        self.config_path = config_path
        self.verbose = verbose

    def settings(self) -> Settings:
        from ..config import load  # pydantic and the address checks: only for the commands that read it

        return load(self.config_path)


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
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _show_version(ctx, value),
    help="Show the version and exit.",
)
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
    ctx.obj = State(config_path, verbose)
    if verbose:
        _log_to_stderr(verbose)


def _show_version(ctx: click.Context, value: bool) -> None:
    """``--version``, as click's own option prints it; the version is read only when asked for."""
    if value and not ctx.resilient_parsing:
        from .. import __version__

        click.echo(f"digest, version {__version__}", color=ctx.color)
        ctx.exit()


def _log_to_stderr(verbose: int) -> None:
    """``-v``: digest's INFO lines on stderr (an HTTP client's line per request only with ``-vv``)."""
    import logging

    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


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
    except click.exceptions.NoArgsIsHelpError as exc:  # `digest` or `digest sources` alone: their help, as -h
        out.print(exc.format_message(), markup=False, highlight=False)
        sys.exit(EXIT_OK)
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
    message = exc.format_message()
    if isinstance(exc, click.NoSuchOption) and exc.option_name in _GLOBAL_OPTIONS and ctx is not None:
        command = ctx.command_path.partition(" ")[2]  # `digest check --config x`: given after the command
        message += f" ({exc.option_name} goes before the command: digest {exc.option_name} ... {command})"
    err.print(f"error: {message}", markup=False)


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
        from ..store import environment_failure

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
