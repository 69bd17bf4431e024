"""What the API answers: metadata only, never file content."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from callback_api.catalog import MediaRecord


class Media(BaseModel):
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    item_id: str
    filename: str
    content_type: str
    size: int
    sha256: str | None
    created_at: str
    url: str
    fields: dict[str, str] = {}

    @classmethod
    def of(cls, record: MediaRecord) -> Media:
        return cls(
            id=record.id,
            item_id=record.item_id,
            filename=record.filename,
            content_type=record.content_type,
            size=record.size,
            sha256=record.sha256,
            created_at=record.created_at,
            url=f"/api/media/{record.id}/content",
            fields=json.loads(record.fields),
        )


def media_json(record: MediaRecord) -> dict[str, Any]:
    """``Media.of(record)`` as JSON-ready data, without building a model (the upload path)."""
    return {
        "id": record.id,
        "item_id": record.item_id,
        "filename": record.filename,
        "content_type": record.content_type,
        "size": record.size,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "url": f"/api/media/{record.id}/content",
        "fields": json.loads(record.fields),
    }


class MediaPage(BaseModel):
    items: list[Media]
    next_cursor: str | None


class FormUpload(BaseModel):
    """The answer to a multipart upload: one entry per stored file part."""

    items: list[Media]


class ErrorBody(BaseModel):
    detail: str
    code: str
