"""Processes under test: CPU and memory, free ports, start and stop by pid.

CPU is read from the kernel's per-process CPU clock (``clock_gettime`` on the clock id of
another pid), which counts every thread, exited ones included, to the nanosecond. The
``utime + stime`` of ``/proc/<pid>/stat`` counts the same but only in 10 ms ticks, too coarse
for the ~1 ms a callback costs; it remains the fallback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchlib.units import KiB
from callback_api.devstack import stop_process, wait_until

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


class ProcessGone(Exception):
    """A process under test exited while it was being measured."""


def _process_clock(pid: int) -> int:
    # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) from the kernel's posix-timers.h.
    return (~pid << 3) | 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads, dead ones included."""
    try:
        return time.clock_gettime(_process_clock(pid))
    except OSError:
        pass
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessGone(f"process {pid} is gone") from None
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK


def total_cpu(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        raise ProcessGone(f"process {pid} is gone") from None
    raise KeyError(f"/proc/{pid}/status has no {key}")


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * KiB


def peak_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * KiB


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    """Direct children, e.g. the workers of an Nginx master."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        raise ProcessGone(f"process {pid} is gone") from None


def free_port() -> int:
    """A port the kernel just reported free on loopback (Nginx needs a number in its config)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bound_socket() -> socket.socket:
    """A listening loopback socket to hand to uvicorn with ``--fd``: no port race at all."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, timeout: float = 30.0
) -> None:
    wait_until(ready, process, what, timeout)


def stop(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Stop one process we started, by its pid: politely, then for sure."""
    stop_process(process, sig, timeout)


@dataclass(frozen=True)
class Watched:
    """The processes whose CPU and memory a contender is charged with."""

    python: int | None = None  # the Python process whose memory is reported
    python_others: Sequence[int] = ()  # charged for CPU too: a supervisor, more workers
    nginx: Sequence[int] = ()

    def cpu(self) -> tuple[float, float]:
        py = cpu_seconds(self.python) if self.python else 0.0
        return py + total_cpu(self.python_others), total_cpu(self.nginx)
