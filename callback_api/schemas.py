"""What the API answers: metadata only, never file content."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from callback_api.catalog import MediaRecord
from callback_api.store import MEDIA_ID_PATTERN


class Media(BaseModel):
    id: str = Field(pattern=MEDIA_ID_PATTERN)
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
        return cls(**media_json(record))


def media_json(record: MediaRecord) -> dict[str, Any]:
    """A record as the API shows it, as plain data: the upload path answers with it without
    building a model; ``Media.of`` builds the model from it."""
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
