"""The page-cache reserve: timed writes get recently freed pages, not cold ones.

On these VMs memory that has sat free for a few seconds goes back to the host, and the first
touch of it afterwards costs 1.7-3 s of CPU per GiB instead of about 0.3 (BENCHMARKING.md).
Which contender met cold pages would then decide the result. So a clean reserve file is kept
in the page cache, and while an upload runs a thread drops it (``POSIX_FADV_DONTNEED``) at the
pace the upload takes free memory, always a little ahead: the kernel hands the upload the
pages it has just freed. The file is written and fsynced once, so dropping it never costs a
write and it never adds dirty pages next to the upload's own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib.units import MiB

_LEAD = 64 * MiB  # freed ahead of the consumer
_STEP = 16 * MiB
_POLL = 0.002


def _meminfo(field: str) -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/meminfo has no {field}")


def mem_free() -> int:
    return _meminfo("MemFree")


def settle(limit: int = 16 * MiB, timeout: float = 5.0) -> float:
    """Wait until the disk has no more than ``limit`` bytes of writeback in flight (a 1 GiB
    UploadFile leaves 2 GiB of dirty pages, which the kernel may start writing out), so a
    block does not pay for the previous one's I/O. Returns the seconds waited."""
    started = time.monotonic()
    while _meminfo("Writeback") > limit and time.monotonic() - started < timeout:
        time.sleep(0.05)
    return time.monotonic() - started


def read_through(path: Path, length: int | None = None) -> None:
    """Bring a file (or its first ``length`` bytes) into the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        left = os.fstat(fd).st_size if length is None else length
        while left > 0:
            chunk = os.read(fd, min(8 * MiB, left))
            if not chunk:
                break
            left -= len(chunk)
    finally:
        os.close(fd)


class Reserve:
    """A reserve file of ``capacity`` bytes; ``enabled=False`` turns the correction off."""

    def __init__(self, path: Path, capacity: int, enabled: bool = True) -> None:
        self.path = path
        self.capacity = capacity
        self.enabled = enabled
        self.released_total = 0
        if enabled:
            self._write()

    def _write(self) -> None:
        block = b"\x5a" * MiB
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(-(-self.capacity // MiB)):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def paced(self, needed: int) -> Iterator[None]:
        """Fill ``needed`` bytes of reserve, then drop them as free memory is consumed."""
        if not self.enabled:
            yield
            return
        size = min(needed + _LEAD, self.capacity)
        read_through(self.path, size)
        fd = os.open(self.path, os.O_RDONLY)
        done = threading.Event()
        # Free the lead now, before the caller starts its clock: dropping 64 MiB of cache
        # takes milliseconds, which would land inside a 1 MiB upload's timing.
        released = min(_LEAD, size)
        os.posix_fadvise(fd, size - released, released, os.POSIX_FADV_DONTNEED)

        def pace() -> None:
            nonlocal released
            start = mem_free() - released  # as if the lead were still held
            while not done.is_set():
                # Memory taken by others since the start, net of what we gave back.
                consumed = start + released - mem_free()
                while released < min(consumed + _LEAD, size):
                    step = min(_STEP, size - released)
                    os.posix_fadvise(fd, size - released - step, step, os.POSIX_FADV_DONTNEED)
                    released += step
                done.wait(_POLL)

        pacer = threading.Thread(target=pace, name="reserve-pacer", daemon=True)
        pacer.start()
        try:
            yield
        finally:
            done.set()
            pacer.join()
            os.close(fd)
            self.released_total += released

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
