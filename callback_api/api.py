"""The public API: metadata of stored media. File bytes are always sent by Nginx."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from callback_api.deps import ITEM_ID, PartsDep
from callback_api.errors import NotFound
from callback_api.filenames import content_disposition
from callback_api.schemas import ErrorBody, Media, MediaPage

# Browsers must never run stored active content in our origin.
SANDBOX_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
ACCEL_PREFIX = "/_landing/media/"
MEDIA_ID = r"^[0-9a-f]{32}$"

# Every error is an ErrorBody, 422 included (not FastAPI's list of validation errors); 503
# when the catalog stays locked past its busy timeout.
router = APIRouter(
    prefix="/api",
    tags=["media"],
    responses={code: {"model": ErrorBody} for code in (404, 422, 503)},
)
ItemId = Annotated[str, Path(pattern=ITEM_ID, description="the item the media belongs to")]
MediaId = Annotated[str, Path(pattern=MEDIA_ID, description="a media id (32 hex digits)")]


@router.get("/items/{item_id}/media", response_model=MediaPage)
def read_item_media(
    parts: PartsDep,
    item_id: ItemId,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=MEDIA_ID)] = None,
) -> MediaPage:
    """List an item's media, oldest first; pass `next_cursor` back as `cursor` for more."""
    records, next_cursor = parts.catalog.list_item(item_id, limit, cursor)
    return MediaPage(items=[Media.of(r) for r in records], next_cursor=next_cursor)


@router.get("/media/{media_id}", response_model=Media)
def read_media(parts: PartsDep, media_id: MediaId) -> Media:
    """One file's metadata."""
    record = parts.catalog.get(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id!r}")
    return Media.of(record)


@router.get("/media/{media_id}/content", response_class=Response)
# HEAD too: clients ask for the size and type of a download before they fetch it. Left out
# of the schema, where it would repeat GET (and clash with its operation id).
@router.head("/media/{media_id}/content", response_class=Response, include_in_schema=False)
def read_media_content(parts: PartsDep, media_id: MediaId) -> Response:
    """The file itself: authorised here, sent by Nginx (X-Accel-Redirect), ranges included."""
    record = parts.catalog.get(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id!r}")
    headers = {
        "X-Accel-Redirect": ACCEL_PREFIX + parts.store.relative_path(media_id),
        "Content-Disposition": content_disposition(record.disposition, record.filename),
        # The sniffed type as it is: media_type= would add "charset=utf-8" to any text/*,
        # a guess about bytes nobody decoded.
        "Content-Type": record.content_type,
    }
    if record.disposition == "attachment":
        headers["X-Landing-CSP"] = SANDBOX_CSP
    return Response(status_code=200, headers=headers)


@router.delete("/media/{media_id}", status_code=204, response_class=Response)
def delete_media(parts: PartsDep, media_id: MediaId) -> Response:
    """Remove the row, then the file (a crash in between leaves a file reconcile removes)."""
    record = parts.catalog.delete(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id!r}")
    parts.store.remove(media_id)
    return Response(status_code=204)
