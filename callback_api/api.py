"""The public API: metadata of stored media. File bytes are always sent by Nginx."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from callback_api.auth import verifier_of
from callback_api.deps import ITEM_ID, Parts, PartsDep
from callback_api.errors import Invalid, NotFound
from callback_api.filenames import content_disposition
from callback_api.schemas import ErrorBody, Media, MediaPage
from callback_api.store import MEDIA_ID as MEDIA_ID_RE
from callback_api.store import MEDIA_ID_PATTERN

# Browsers must never run stored active content in our origin.
SANDBOX_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
ACCEL_PREFIX = "/_landing/media/"

# Every error is an ErrorBody, 422 included (not FastAPI's list of validation errors); 503
# when the catalog stays locked past its busy timeout.
router = APIRouter(
    prefix="/api",
    tags=["media"],
    responses={code: {"model": ErrorBody} for code in (404, 422, 503)},
)
ItemId = Annotated[str, Path(pattern=ITEM_ID, description="the item the media belongs to")]
MediaId = Annotated[str, Path(pattern=MEDIA_ID_PATTERN, description="a media id (32 hex digits)")]


@router.get("/items/{item_id}/media", response_model=MediaPage)
def read_item_media(
    parts: PartsDep,
    item_id: ItemId,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=MEDIA_ID_PATTERN)] = None,
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


def content_response(parts: Parts, media_id: str) -> Response:
    """Headers that make Nginx send the stored file (X-Accel-Redirect); no body from us."""
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


@router.get("/media/{media_id}/content", response_class=Response)
# HEAD too: clients ask for the size and type of a download before they fetch it. Left out
# of the schema, where it would repeat GET (and clash with its operation id).
@router.head("/media/{media_id}/content", response_class=Response, include_in_schema=False)
def read_media_content(parts: PartsDep, media_id: MediaId) -> Response:
    """The file itself: authorised here, sent by Nginx (X-Accel-Redirect), ranges included."""
    # create_app serves this path with `serve_media_content` below (same checks, same
    # answer); this declaration is what the OpenAPI schema shows for it.
    return content_response(parts, media_id)


async def serve_media_content(request: Request) -> Response:
    """`read_media_content` as a plain Starlette endpoint: one runs per download, and
    FastAPI's per-request machinery cost more than the lookup itself."""
    verifier = verifier_of(request)
    if verifier is not None:
        verifier.authorize(request.headers.get("authorization"), request.method)
    media_id: str = request.path_params["media_id"]
    if not MEDIA_ID_RE.match(media_id):
        raise Invalid(f"media id {media_id!r} does not match {MEDIA_ID_PATTERN}")
    parts: Parts = request.app.state.parts
    return await run_in_threadpool(content_response, parts, media_id)


# Mounted ahead of the router by create_app.
content_route = Route("/api/media/{media_id}/content", serve_media_content, methods=["GET"])


@router.delete("/media/{media_id}", status_code=204, response_class=Response)
def delete_media(parts: PartsDep, media_id: MediaId) -> Response:
    """Remove the row, then the file (a crash in between leaves a file reconcile removes)."""
    record = parts.catalog.delete(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id!r}")
    parts.store.remove(media_id)
    return Response(status_code=204)
