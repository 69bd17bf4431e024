"""Land a file: from the body file Nginx wrote to a stored file with a ready row.

Order of one landing (DESIGN.md): validate the temp file -> sniff its head -> pending row ->
[fsync file] -> link (or, for a form, copy each part kernel-side) into the store -> [fsync dir]
-> row ready, commit. Any failure removes what this request stored and its pending rows, so
the client's error leaves nothing behind; a crash leaves pending rows for reconcile.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callback_api.catalog import Catalog, MediaRecord, now
from callback_api.content_policy import ContentPolicy, decide
from callback_api.errors import BadRequest, EmptyUpload
from callback_api.failpoints import Failpoints
from callback_api.filenames import sanitize_filename
from callback_api.idempotency import IdempotencyKeys, checked_key, fingerprint
from callback_api.landed import LandedFile, open_landed
from callback_api.multipart import (
    FilePart,
    MultipartLimits,
    boundary_from_content_type,
    copy_part,
    parse_multipart,
)
from callback_api.quota import quota_of
from callback_api.settings import Settings, time_seconds
from callback_api.sniff import HEAD_SIZE as HEAD_BYTES
from callback_api.store import MediaStore, new_media_id

_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """What Nginx told the app about one request."""

    item_id: str
    upload_path: str | None
    upload_length: str | None
    content_type: str | None
    filename: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class Landing:
    records: list[MediaRecord]
    replayed: bool
    multipart: bool


def _sha256(fd: int, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(_HASH_CHUNK, end - offset), offset)
        if not chunk:
            raise OSError(f"file ended at byte {offset}, expected {end}")
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "multipart/form-data"


class Lander:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: MediaStore,
        failpoints: Failpoints | None = None,
    ) -> None:
        self._settings = settings
        self._failpoints = failpoints or Failpoints(None)
        self._catalog = catalog
        self._store = store
        content = settings.content
        self._policy = ContentPolicy(
            allowed_types=tuple(content.allowed_types),
            max_pixels=content.max_pixels,
            active_content=content.active_content,
            check_extension=content.check_extension,
        )
        self._quota = quota_of(settings)
        self._keys = IdempotencyKeys(
            catalog,
            ttl_seconds=time_seconds(settings.uploads.idempotency_ttl),
            stale_seconds=2 * settings.longest_request_seconds,
        )
        limits = settings.multipart
        self._limits = MultipartLimits(
            max_parts=limits.max_parts,
            max_fields=limits.max_fields,
            max_field_bytes=limits.max_field_bytes,
            max_part_header_bytes=limits.max_part_header_bytes,
        )

    def land(self, upload: Upload) -> Landing:
        idempotency_key = checked_key(upload.idempotency_key)
        key = (upload.item_id, idempotency_key) if idempotency_key is not None else None
        multipart = _is_multipart(upload.content_type)
        with open_landed(
            upload.upload_path,
            upload.upload_length,
            self._settings.paths.temp_dir,
            self._settings.uploads.temp_levels,
            allow_empty=self._settings.uploads.allow_empty or multipart,
        ) as landed:
            self._failpoints.reach("validated")
            if key:
                # Claimed once the body is known to be good, and with its size, so that a
                # retry of another upload under the same key is told apart (422).
                print_ = fingerprint(multipart, landed.size, upload.filename)
                first = self._keys.claim(*key, print_)
                if first is not None:
                    return Landing(first, replayed=True, multipart=multipart)
            try:
                if multipart:
                    records = self._land_form(upload, landed, key)
                else:
                    records = self._land_raw(upload, landed, key)
            except BaseException:
                if key:
                    self._catalog.discard([], key)  # a failed first try leaves the key free
                raise
        return Landing(records, replayed=False, multipart=multipart)

    def _record(
        self,
        upload: Upload,
        raw_name: str,
        declared: str | None,
        head: bytes,
        size: int,
        sha256: str | None,
        fields: str = "{}",
    ) -> MediaRecord:
        filename = sanitize_filename(raw_name)
        decision = decide(self._policy, head, declared, filename)
        return MediaRecord(
            id=new_media_id(),
            item_id=upload.item_id,
            filename=filename,
            content_type=decision.content_type,
            size=size,
            sha256=sha256,
            created_at=now(),
            disposition=decision.disposition,
            fields=fields,
        )

    def _land_raw(
        self, upload: Upload, landed: LandedFile, key: tuple[str, str] | None
    ) -> list[MediaRecord]:
        sha256 = _sha256(landed.fd, 0, landed.size) if self._settings.uploads.hash_sha256 else None
        record = self._record(
            upload,
            upload.filename or "upload",
            upload.content_type,
            landed.head(HEAD_BYTES),
            landed.size,
            sha256,
        )
        self._commit([record], key, lambda: self._store.link_in(landed.fd, record.id))
        return [record]

    def _land_form(
        self, upload: Upload, landed: LandedFile, key: tuple[str, str] | None
    ) -> list[MediaRecord]:
        boundary = boundary_from_content_type(upload.content_type or "")
        form = parse_multipart(landed.fd, landed.size, boundary, self._limits)
        if not form.files:
            raise BadRequest("the form has no file part")
        allow_empty = self._settings.uploads.allow_empty
        fields = json.dumps(dict(form.fields), ensure_ascii=False)
        records = []
        for part in form.files:
            if part.length == 0 and not allow_empty:
                raise EmptyUpload(f"file part {part.filename!r} is empty (0 bytes)")
            head = os.pread(landed.fd, min(HEAD_BYTES, part.length), part.offset)
            sha256 = (
                _sha256(landed.fd, part.offset, part.length)
                if self._settings.uploads.hash_sha256
                else None
            )
            records.append(
                self._record(
                    upload, part.filename, part.content_type, head, part.length, sha256, fields
                )
            )

        def store_parts() -> None:
            for record, part in zip(records, form.files, strict=True):
                self._copy_part(landed.fd, part, record.id)

        self._commit(records, key, store_parts)
        return records

    def _copy_part(self, src_fd: int, part: FilePart, media_id: str) -> None:
        with self._store.create(media_id) as dst_fd:
            copy_part(src_fd, part, dst_fd)

    def _commit(
        self,
        records: Sequence[MediaRecord],
        key: tuple[str, str] | None,
        store_files: Callable[[], object],
    ) -> None:
        ids = [r.id for r in records]
        quota = self._quota
        self._catalog.insert_pending(
            records, None if quota is None else lambda usage: quota.check(usage, records)
        )
        self._failpoints.reach("pending")
        try:
            store_files()
            self._failpoints.reach("linked")
            self._catalog.mark_ready(ids, key)
            self._failpoints.reach("ready")
        except BaseException:
            for media_id in ids:
                self._store.remove(media_id)
            self._catalog.discard(ids, None)
            raise
