"""``landing clean-static``: remove hashed build assets no recent build names.

Deploys copy each new build into the static root next to the old one, so that a page loaded
before the deploy can still fetch the assets it names. This prunes the assets that neither the
current build manifest nor the ``keep - 1`` builds before it name.

What it may delete is narrow on purpose (the seed's ``find | grep -E "[a-f0-9]{16}" | xargs
rm -f`` over the uploads folder deleted user uploads whose ids are hex):
- only regular files under the static root, found without following symlinks, each checked
  again with realpath + containment before it is removed;
- only names of the form ``name.<8-64 hex>.ext`` (render.HASHED_ASSET), optionally ``.gz``
  or ``.br``; a bare media id has no name and no extension, so it never matches;
- never a file any kept manifest names, and nothing at all if the manifest names no file
  that exists (a wrong manifest or a wrong root must not empty the site).
The settings refuse a media root, temp dir or quarantine inside the static root.

The builds seen so far are recorded in ``<static root>/.landing-builds.json`` (Nginx refuses
dotfiles under /static/), written only with ``apply``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from callback_api.catalog import now as iso_now
from callback_api.progress import NoProgress, Progress
from callback_api.render import HASHED_ASSET
from callback_api.replace_file import replace_file

HISTORY = ".landing-builds.json"
_COMPRESSED = (".gz", ".br")


class ManifestError(Exception):
    """The manifest cannot be used; the message names the file and why."""


@dataclass
class CleanReport:
    applied: bool
    builds_kept: int
    named: int = 0
    scanned: int = 0
    stale: list[Path] = field(default_factory=list)
    stale_bytes: int = 0
    removed: list[Path] = field(default_factory=list)
    unhashed: int = 0

    def summary(self) -> str:
        verb = "removed" if self.applied else "would remove"
        text = (
            f"clean-static: {self.scanned} file(s) scanned, {self.named} named by the last "
            f"{self.builds_kept} build(s); {verb} {len(self.stale)} stale hashed asset(s) "
            f"({self.stale_bytes} bytes); {self.unhashed} unhashed file(s) left alone"
        )
        if not self.applied and self.stale:
            text += "; run with --apply to remove them"
        return text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _relative_name(value: str) -> str | None:
    """A manifest value as a path relative to the static root (URLs under /static/ too)."""
    path = value.split("?", 1)[0].split("#", 1)[0]
    for prefix in ("/static/", "static/", "/"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        return None
    return pure.as_posix()


def manifest_names(manifest: Path) -> set[str]:
    """Every string value of a JSON manifest (Vite's, webpack's or a flat map), as a path."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{manifest}: no such manifest") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{manifest}: not a JSON manifest: {exc}") from None
    return {name for s in _strings(data) if (name := _relative_name(s))}


def _load_history(static_root: Path) -> list[dict[str, Any]]:
    path = static_root / HISTORY
    if not path.exists():
        return []
    builds: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["builds"]
    return builds


def _base_name(name: str) -> str:
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _inside(root_real: str, path: Path) -> bool:
    real = os.path.realpath(path)
    return os.path.commonpath([real, root_real]) == root_real and real != root_real


def clean_static(
    static_root: Path,
    manifest: Path,
    keep: int = 3,
    apply: bool = False,
    progress: Progress | None = None,
) -> CleanReport:
    """Find (and with ``apply`` delete) hashed assets that the last ``keep`` builds do not name."""
    if keep < 1:
        raise ManifestError(f"keep must be at least 1 (the current build), got {keep}")
    progress = progress or NoProgress("clean-static")
    current = manifest_names(manifest)
    if not any((static_root / name).is_file() for name in current):
        raise ManifestError(
            f"{manifest} names no file that exists under {static_root}; "
            "refusing to clean with the wrong manifest or the wrong static root"
        )
    digest = hashlib.sha256("\n".join(sorted(current)).encode()).hexdigest()
    history = _load_history(static_root)
    if not history or history[-1]["digest"] != digest:
        history.append({"digest": digest, "recorded_at": iso_now(), "files": sorted(current)})
    kept = history[-keep:]
    named = {name for build in kept for name in build["files"]}
    report = CleanReport(applied=apply, builds_kept=len(kept), named=len(named))

    root_real = os.path.realpath(static_root)
    for directory, dirs, files in os.walk(static_root):
        # Dot directories (.vite, the history) hold no served assets.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            progress.step()
            path = Path(directory) / name
            info = os.lstat(path)
            if name.startswith(".") or not stat.S_ISREG(info.st_mode):
                continue
            report.scanned += 1
            relative = path.relative_to(static_root).as_posix()
            if not HASHED_ASSET.match(_base_name(name)):
                report.unhashed += 1
                continue
            if relative in named or _base_name(relative) in named:
                continue
            report.stale.append(path)
            report.stale_bytes += info.st_size
            if apply and _inside(root_real, path):
                path.unlink(missing_ok=True)
                report.removed.append(path)
    progress.finish()
    if apply:
        replace_file(static_root / HISTORY, json.dumps({"builds": kept}, indent=2) + "\n")
    return report
