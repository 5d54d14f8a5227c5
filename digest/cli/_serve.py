"""`digest serve`: the subscription pages and the archive, with the schedule beside them."""

from __future__ import annotations

import click

from ._app import State, cli
from ._output import err


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
    state: State,
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

    from .. import serving
    from ..schedule import Scheduler
    from ..store import Store
    from ..subscribers import secret_of
    from ..web import create_app

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
