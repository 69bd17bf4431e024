"""Idempotency-Key: a retried upload gets the first answer back instead of a second copy.

After the IETF draft (draft-ietf-httpapi-idempotency-key-header) and the large payment APIs:
the key is chosen by the client, scoped to the item, and remembered with the first request's
result for ``uploads.idempotency_ttl``. A retry while the first request still runs is a 409
with Retry-After; a retry with a different upload (size, name or kind) is a 422; a first
request that failed leaves the key free. Of many concurrent requests with one key, the
catalog lets exactly one own it (one write transaction), so one file and one row are stored.
"""

from __future__ import annotations

import json
import re

from callback_api.catalog import Catalog, MediaRecord, ago
from callback_api.errors import BadRequest, Conflict, InProgress, KeyReused
from callback_api.filenames import sanitize_filename

MAX_KEY_CHARS = 255
# Visible ASCII: a UUID, a hash or a base64 string fit; spaces, controls and anything that
# would need decoding do not.
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_CHARS}}}")


def checked_key(value: str | None) -> str | None:
    """The client's key if it is usable; None without one; else 400 naming the problem."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise BadRequest(
            f"Idempotency-Key {shown!r} ({len(value)} characters) is not 1 to {MAX_KEY_CHARS} "
            "visible ASCII characters"
        )
    return value


def fingerprint(multipart: bool, size: int, filename: str | None) -> str:
    """What a retry must repeat: the kind of body, its size and (raw bodies) the file name.

    A form's boundary changes between tries, but browsers and curl keep its length, so the
    size of a retried form is the same.
    """
    if multipart:
        return json.dumps(["form", size])
    return json.dumps(["raw", size, sanitize_filename(filename or "upload")])


def _describe(fingerprint_text: str) -> str:
    kind, size, *name = json.loads(fingerprint_text)
    what = "a form" if kind == "form" else "a file"
    return f"{what} of {size} bytes" + (f" named {name[0]!r}" if name else "")


class IdempotencyKeys:
    def __init__(self, catalog: Catalog, ttl_seconds: float, stale_seconds: float) -> None:
        self._catalog = catalog
        self._ttl = ttl_seconds
        # A claim this old never finished: its request crashed, Nginx gave up on it long ago.
        self._stale = stale_seconds

    def claim(self, item_id: str, key: str, print_: str) -> list[MediaRecord] | None:
        """None when the key is ours (go on and land); the first result to answer again;
        or 409 (still running), 422 (another upload) or 409 (its media were deleted)."""
        claim = self._catalog.claim_key(item_id, key, print_, ago(self._ttl), ago(self._stale))
        if claim.owned:
            return None
        if claim.fingerprint and claim.fingerprint != print_:
            raise KeyReused(
                f"Idempotency-Key {key!r} was first sent with {_describe(claim.fingerprint)}, "
                f"this request has {_describe(print_)}; use a new key for a new upload"
            )
        if claim.media_ids is None:
            raise InProgress(f"the upload with Idempotency-Key {key!r} is still in progress")
        records = [r for i in claim.media_ids if (r := self._catalog.get(i)) is not None]
        if not records:
            raise Conflict(
                f"the upload with Idempotency-Key {key!r} was stored and has since been deleted"
            )
        return records
