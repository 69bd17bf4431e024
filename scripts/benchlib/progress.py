"""A progress display on stderr: one rewritten line on a terminal, one line per step otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.live = self.stream.isatty()

    def _line(self, text: str) -> str:
        elapsed = time.monotonic() - self.started
        eta = ""
        if 0 < self.done < self.total:
            eta = f" ~{_clock(elapsed / self.done * (self.total - self.done))} left"
        return f"[{self.done:>4}/{self.total} {_clock(elapsed)}{eta}] {text}"

    def step(self, text: str) -> None:
        """One unit of work finished; ``text`` says which and how it went."""
        self.done = min(self.done + 1, self.total)
        self.note(text)

    def note(self, text: str) -> None:
        line = self._line(text)
        if self.live:
            self.stream.write("\r\x1b[2K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A message that stays on screen (warnings, where the output went)."""
        if self.live:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()
