"""A progress line on stderr for the maintenance commands, and nothing more.

On a terminal the line is redrawn in place at most a few times a second; elsewhere (logs, CI)
a plain line is written every ``log_every`` seconds so a long run still shows it is alive.
Scans that finish quickly print nothing at all.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        quiet_for: float = 1.0,
        redraw_every: float = 0.2,
        log_every: float = 10.0,
    ) -> None:
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._started = time.monotonic()
        self._quiet_until = self._started + quiet_for
        self._every = redraw_every if self._tty else log_every
        self._next = self._quiet_until
        self._drawn = False

    def step(self, count: int = 1, total: int | None = None) -> None:
        self.done += count
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every
            self._draw(now, total)

    def _draw(self, now: float, total: int | None) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        of = f"/{total}" if total is not None else ""
        text = f"{self.label}: {self.done}{of} ({rate:.0f}/s)"
        if self._tty:
            self._stream.write(f"\r{text}\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn and self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


class NoProgress(Progress):
    """For callers (tests, other modules) that want the work without the line."""

    def step(self, count: int = 1, total: int | None = None) -> None:
        self.done += count

    def finish(self) -> None:
        return None
