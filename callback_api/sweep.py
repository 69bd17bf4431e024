"""``landing sweep``: body files Nginx will never remove.

Nginx writes each body to ``<temp_dir>/<levels>/<10 digits>`` and removes it when the request
ends (``client_body_in_file_only clean``). Only a crash of Nginx itself (SIGKILL, power loss)
leaves one behind. While a body is being written its mtime moves at least every
``body_timeout``; after the last byte the callback has ``callback_timeout``; so a file that
has not changed for longer than the longest request belongs to no request. Nothing else in
the temp dir is ever touched.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from callback_api.progress import NoProgress, Progress
from callback_api.settings import Settings

_TEMP_NAME = re.compile(r"^\d{10}$")


@dataclass
class SweepReport:
    applied: bool
    min_age_seconds: float
    scanned: int = 0
    stale: list[Path] = field(default_factory=list)
    stale_bytes: int = 0
    removed: list[Path] = field(default_factory=list)
    recent: int = 0
    foreign: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        verb = "removed" if self.applied else "would remove"
        text = (
            f"sweep: {self.scanned} body file(s) scanned; {verb} {len(self.stale)} stale "
            f"({self.stale_bytes} bytes, unchanged for over {self.min_age_seconds:.0f}s); "
            f"{self.recent} in use"
        )
        if self.foreign:
            text += f"; {len(self.foreign)} other file(s) left alone"
        if not self.applied and self.stale:
            text += "; run with --apply to remove them"
        return text


def is_temp_name(relative: Path, levels: tuple[int, ...]) -> bool:
    """``1/23/0000000123`` for levels ``1 2``: each level is the name's trailing digits."""
    parts = relative.parts
    if len(parts) != len(levels) + 1 or not _TEMP_NAME.match(parts[-1]):
        return False
    name, end = parts[-1], len(parts[-1])
    for level, directory in zip(levels, parts[:-1], strict=True):
        if directory != name[end - level : end]:
            return False
        end -= level
    return True


def last_change(info: os.stat_result) -> float:
    # ctime too: a link or chmod by the app is activity of the request as well.
    return max(info.st_mtime, info.st_ctime)


def cutoff(settings: Settings, now: float | None, min_age: float | None) -> tuple[float, float]:
    """(min age, the moment before which a change is that old): ``min_age`` defaults to the
    longest request. Taken once per run: a file only grows older while it is scanned."""
    limit = settings.longest_request_seconds if min_age is None else min_age
    return limit, (time.time() if now is None else now) - limit


def sweep(
    settings: Settings,
    apply: bool = False,
    progress: Progress | None = None,
    now: float | None = None,
    min_age: float | None = None,
) -> SweepReport:
    """Find (and with ``apply`` remove) body files older than the longest request."""
    progress = progress or NoProgress("sweep")
    limit, before = cutoff(settings, now, min_age)
    report = SweepReport(applied=apply, min_age_seconds=limit)
    temp_dir = settings.paths.temp_dir
    levels = settings.uploads.temp_levels
    for directory, dirs, files in os.walk(temp_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            progress.step()
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or not is_temp_name(
                path.relative_to(temp_dir), levels
            ):
                report.foreign.append(path)
                continue
            report.scanned += 1
            if last_change(info) >= before:
                report.recent += 1
                continue
            report.stale.append(path)
            report.stale_bytes += info.st_size
            if apply and _still_stale(path, info, before):
                path.unlink(missing_ok=True)
                report.removed.append(path)
    progress.finish()
    return report


def _still_stale(path: Path, seen: os.stat_result, before: float) -> bool:
    """The same inode, still untouched: Nginx cannot reuse a name that still exists."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    same = (info.st_ino, info.st_dev) == (seen.st_ino, seen.st_dev)
    return same and last_change(info) < before
