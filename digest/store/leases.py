"""Who holds a claim: an owner name that says which process on which machine, and whether it is gone.

A claim (a delivery being sent, a scheduled job) carries its owner and a lease time. Another process
takes it over when the lease has lapsed, or at once when the owner ran on this machine and that
process no longer exists (killed, crashed): a re-run right after a crash need not wait out the lease.
"""

from __future__ import annotations

import os
import socket
from functools import cache

__all__ = ["is_gone", "this_process"]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (Linux): state first, start time at 19."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, telling a reused pid from the original."""
    fields = _stat(pid)
    return fields[19] if fields else None


@cache
def this_process() -> str:
    """``host:pid:start``, the owner name of this process's claims."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def is_gone(owner: str) -> bool:
    """True when ``owner`` names a process of this machine that has ended; False for another machine's."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    fields = _stat(pid)
    if fields is None:
        return False  # no /proc: a live pid is taken as the owner
    return fields[0] in ("Z", "X") or (bool(start) and fields[19] != start)  # a zombie, or the pid reused
