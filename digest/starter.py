"""`digest init`: the starter feeds.toml (shipped in the package, since a wheel has no repository),
and systemd service and timer units for collection and the weekly run, with this machine's paths."""

from __future__ import annotations

import getpass
import shlex
import shutil
import sys
from importlib.resources import files
from pathlib import Path

from .config import Settings
from .errors import UsageError

__all__ = ["STARTER", "starter_text", "systemd_units", "write_starter"]

STARTER = "starter.toml"  # the repository's feeds.toml, copied into the package (a test keeps them equal)
_DAYS = {"monday": "Mon", "tuesday": "Tue", "wednesday": "Wed", "thursday": "Thu", "friday": "Fri"}
_DAYS |= {"saturday": "Sat", "sunday": "Sun"}


def starter_text() -> str:
    return files(__package__).joinpath(STARTER).read_text(encoding="utf-8")


def write_starter(path: Path, *, force: bool = False) -> Path:
    """Write the starter feeds.toml to ``path``; an existing file is kept unless ``force``."""
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists; edit it, or pass --force to replace it with the starter")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_text(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be written: {exc.strerror or exc}") from None
    return path


def executable() -> list[str]:
    """How this machine runs this digest: its console script beside the running Python (a virtualenv's
    ``bin/digest``), else ``python -m digest`` with this interpreter."""
    beside = Path(sys.executable).with_name("digest")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("digest")
    return [str(Path(found).resolve())] if found else [sys.executable, "-m", "digest"]


def on_calendar(send_on: str, timezone: str) -> str:
    """``friday 07:00`` in ``America/New_York`` as systemd's ``OnCalendar=Fri *-*-* 07:00:00 America/New_York``."""
    day, at = send_on.lower().split()
    hour, minute = at.split(":")
    return f"{_DAYS[day]} *-*-* {int(hour):02d}:{int(minute):02d}:00 {timezone}"


def systemd_units(settings: Settings, *, command: list[str] | None = None, user: str | None = None) -> str:
    """Four units, each under a ``# /etc/systemd/system/NAME`` line, then how to enable them: collection
    hourly and the weekly job at ``send_on`` in the digest's time zone (a missed run happens at boot)."""
    config = settings.path.resolve()
    run = shlex.join([*(command or executable()), "--config", str(config)])
    user = user or getpass.getuser()
    units = {
        "digest-collect.service": _service("Collect new posts for digest", f"{run} collect --quiet", config, user),
        "digest-collect.timer": _timer("Collect for digest every hour", "hourly", "digest-collect.service"),
        "digest-weekly.service": _service(
            "digest's weekly job: collect, filter, compose, send", f"{run} run --quiet", config, user
        ),
        "digest-weekly.timer": _timer(
            "digest's weekly edition at send_on",
            on_calendar(settings.digest.send_on, settings.digest.timezone),
            "digest-weekly.service",
        ),
    }
    parts = [f"# /etc/systemd/system/{name}\n{body}" for name, body in units.items()]
    parts.append(
        "# then, as root:\n"
        "#   systemctl daemon-reload\n"
        "#   systemctl enable --now digest-collect.timer digest-weekly.timer\n"
        "#   systemctl list-timers 'digest-*'    # when each runs next\n"
    )
    return "\n".join(parts)


def _service(description: str, exec_start: str, config: Path, user: str) -> str:
    return (
        f"[Unit]\nDescription={description}\nWants=network-online.target\nAfter=network-online.target\n\n"
        f"[Service]\nType=oneshot\nUser={user}\nWorkingDirectory={config.parent}\nExecStart={exec_start}\n"
    )


def _timer(description: str, calendar: str, unit: str) -> str:
    return (
        f"[Unit]\nDescription={description}\n\n"
        f"[Timer]\nOnCalendar={calendar}\nPersistent=true\nUnit={unit}\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
