"""Replace a file whole: write a temp name beside it, then rename it over the old one.

Nginx, the app and the maintenance commands re-read these files (rendered configs, the secret,
the tokens file, the build history) while they are rewritten; a rename on one filesystem means
a reader sees the old text or the new one, never half of either.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o666) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; ``mode`` (less the umask) if it is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dot name: Nginx refuses dotfiles under /static/, and no glob of the callers sees it.
    scratch = path.with_name(f".{path.name}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(scratch, path)
