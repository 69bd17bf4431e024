"""The secret Nginx sends with every callback, kept in files that are never committed.

The app reads ``app.secret_file``; Nginx includes a one-line snippet next to it that sets the
header. Both are written together by ``ensure_secret`` so they cannot disagree.
"""

from __future__ import annotations

import re
import secrets

from callback_api.replace_file import replace_file
from callback_api.settings import Settings

HEADER = "X-Landing-Secret"
_VALID = re.compile(r"^[A-Za-z0-9_-]{32,256}$")


class SecretError(Exception):
    """The secret file is missing or unusable; the message names the file."""


def read_secret(settings: Settings) -> str:
    path = settings.app.secret_file
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SecretError(
            f"{path}: no secret file; create one with `landing secret --env {settings.name}`"
        ) from None
    if not _VALID.match(value):
        raise SecretError(f"{path}: the secret must be 32-256 characters of [A-Za-z0-9_-]")
    return value


def ensure_secret(settings: Settings, rotate: bool = False) -> str:
    """Create the secret and its Nginx snippet if missing (or on rotation); return the secret."""
    if rotate or not settings.app.secret_file.exists():
        replace_file(settings.app.secret_file, secrets.token_urlsafe(32) + "\n", 0o600)
    value = read_secret(settings)
    snippet = f'proxy_set_header {HEADER} "{value}";\n'
    conf = settings.secret_conf
    if rotate or not conf.exists() or conf.read_text(encoding="ascii") != snippet:
        replace_file(conf, snippet, 0o600)
    return value
