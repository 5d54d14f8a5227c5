"""What every benchmark module shares: the entry shape, the machine description, peak memory, profiling.

A benchmark module exposes ``run(quick: bool) -> dict[str, Entry]``; an `Entry` is a plain
JSON-able dict with at least ``value`` and ``unit``, and where they apply ``baseline`` (measured
in the same run), ``ratio`` (how many times better than the baseline), ``floor`` (the best any
implementation could do on this machine), ``floor_ratio`` (value over floor), ``peak_mb``,
``target`` (what the issue asks for, in words), ``target_met`` and ``notes``.
"""

from __future__ import annotations

import cProfile
import os
import platform
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PROFILE_ENV", "Entry", "busy_cpu_s", "cpu_count", "machine", "noise_note", "peak_mb", "profiled", "rounded"]

Entry = dict[str, Any]

# When set to a directory, benchmarks write cProfile files there (``python -m bench --profile DIR``).
PROFILE_ENV = "BENCH_PROFILE"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def machine() -> str:
    """CPU model, cores, RAM and Python version, in one line."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f", {int(line.split()[1]) / 1024 / 1024:.1f} GB RAM"
                break
    except OSError:
        pass
    return (
        f"{model}, {cpu_count()} cores{ram}, "
        f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} {platform.release()}"
    )


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory in MB of this process (or, with RUSAGE_CHILDREN, its largest waited-for child)."""
    kb = resource.getrusage(who).ru_maxrss  # kilobytes on Linux
    return round(kb / 1024, 1)


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all processes, all cores; Linux only)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def noise_note(other_cpu_s: float | None, wall_s: float, cores: int) -> str | None:
    """A warning when processes outside the benchmark used a noticeable share of the machine."""
    if other_cpu_s is None or other_cpu_s <= 0.1 * wall_s * cores:
        return None
    return (
        f"other processes (or the hypervisor) used about {other_cpu_s:.1f} CPU-s of the {wall_s * cores:.1f} "
        "available during this run: the timing is inflated, run again on a quiet machine"
    )


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits)


@contextmanager
def profiled(name: str) -> Iterator[None]:
    """Profile the block with cProfile into ``$BENCH_PROFILE/NAME.prof`` when that variable is set."""
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(str(Path(folder) / f"{name}.prof"))
