"""What every benchmark module shares: the entry shape, the machine description, peak memory, profiling.

A benchmark module exposes ``run(quick: bool) -> dict[str, Entry]``; an `Entry` is a plain
JSON-able dict with at least ``value`` and ``unit``, and where they apply ``baseline`` (measured
in the same run), ``ratio`` (how many times better than the baseline), ``floor`` (the best any
implementation could do on this machine), ``floor_ratio`` (value over floor), ``peak_mb``,
``target`` (what the issue asks for, in words), ``target_met`` and ``notes``.
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import gc
import inspect
import multiprocessing
import os
import platform
import resource
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILE_ENV",
    "Entry",
    "Stopwatch",
    "Timers",
    "busy_cpu_s",
    "cpu_count",
    "in_child",
    "machine",
    "noise_note",
    "other_cpu",
    "peak_mb",
    "profiled",
    "rounded",
]

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


class Stopwatch:
    """Wall time, this process's CPU time and the whole machine's busy CPU over a block (``with``).

    Collects garbage first so that a previous step's garbage is not charged to the block.
    """

    wall_s: float
    cpu_s: float
    machine_cpu_s: float | None

    def __enter__(self) -> Stopwatch:
        gc.collect()
        self._busy = busy_cpu_s()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        self.machine_cpu_s = None if self._busy is None else (busy_cpu_s() or 0.0) - self._busy

    def as_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "machine_cpu_s": self.machine_cpu_s}


def other_cpu(machine_cpu_s: float | None, *ours: float) -> float | None:
    """CPU the machine spent on anything but ``ours`` (the benchmark's own processes) during a block."""
    if machine_cpu_s is None:
        return None
    return max(0.0, machine_cpu_s - sum(ours))


def _child_main(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], out: Connection) -> None:
    try:
        result = dict(target(*args))
        result.setdefault("peak_mb", peak_mb())
        result.setdefault("children_peak_mb", peak_mb(resource.RUSAGE_CHILDREN))
        out.send(result)
    except BaseException:
        out.send({"error": traceback.format_exc()})
    finally:
        out.close()


def in_child(target: Callable[..., dict[str, Any]], *args: Any, name: str, timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``target(*args)`` (a module-level function returning a JSON-able dict) in a freshly spawned
    process, so that its peak memory (``peak_mb``, added to the result) and its imports are its own."""
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(target, args, writer), name=f"bench-{name}")
    process.start()
    writer.close()
    try:
        if not reader.poll(timeout):
            raise RuntimeError(f"{name}: the benchmark process did not finish within {timeout:g} s")
        try:
            result: dict[str, Any] = reader.recv()
        except EOFError:
            raise RuntimeError(f"{name}: the benchmark process died (exit code {process.exitcode})") from None
    finally:
        process.join(60)
        if process.is_alive():
            process.terminate()
            process.join(5)
    if "error" in result:
        raise RuntimeError(f"{name}: failed in the benchmark process:\n{result['error']}")
    return result


class Timers:
    """Wall seconds and calls spent in chosen functions, by wrapping them in place (``wrap``) for one run.

    Only for a benchmark's own process: the wrappers stay until the process ends. Nested wrapped
    calls are counted in both (a step's time includes its sub-steps').
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, attr: str, key: str | None = None, keyed: Callable[..., str] | None = None) -> None:
        """Time ``owner.attr`` (a module function, method or classmethod) under ``key``, or under
        ``keyed(*args, **kwargs)`` when given (one key per status, say)."""
        raw = inspect.getattr_static(owner, attr)
        is_classmethod = isinstance(raw, classmethod)
        func = raw.__func__ if is_classmethod else raw
        name = key or attr
        seconds, calls = self.seconds, self.calls

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                which = keyed(*args, **kwargs) if keyed is not None else name
                seconds[which] += time.perf_counter() - start
                calls[which] += 1

        setattr(owner, attr, classmethod(timed) if is_classmethod else timed)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"s": round(v, 4), "calls": self.calls[k]} for k, v in sorted(self.seconds.items())}


def stop_child(conn: Connection | None, process: Any) -> None:
    """Ask a helper process (a server of the benchmark's) to stop over its pipe, then wait for it,
    terminating it if it hangs."""
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.send("stop")
        conn.close()
    if process is not None:
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)
