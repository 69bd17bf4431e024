"""The upload operations, as the OpenAPI schema shows them to clients.

Nginx serves these: a PUT or POST to ``/api/items/{item_id}/media`` never reaches the routes
below through Nginx, which lands the body on disk and calls ``/internal/landed`` instead. They
exist so that the schema describes the whole public contract (and schemathesis can fuzz it
through Nginx); called on the app's socket directly they answer 421.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response

from callback_api.deps import ITEM_ID
from callback_api.errors import Misdirected
from callback_api.idempotency import MAX_KEY_CHARS
from callback_api.schemas import ErrorBody, FormUpload, Media

_BINARY = {"type": "string", "format": "binary"}
_RAW = {"application/octet-stream": {"schema": _BINARY}}
_FORM = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "array", "items": _BINARY, "minItems": 1}},
            "additionalProperties": {"type": "string"},
        }
    }
}
_STORED_HEADERS = {
    "Location": {"description": "the stored file's content URL", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answers a retry with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why}
    for code, why in {
        400: "no body, an empty one, a bad Idempotency-Key, or a malformed request or form",
        409: "the first request with this Idempotency-Key is still running (Retry-After), "
        "or its media were deleted",
        413: "larger than the body limit, or past the item's quota",
        414: "the request line (with the file name) is too long",
        415: "a type that is not allowed, active content, or a type the name or the declared "
        "type contradicts",
        421: "sent to the app's socket instead of Nginx",
        422: "an image with too many pixels, an Idempotency-Key reused for another upload, "
        "or invalid parameters",
        429: "too many uploads from this address",
        502: "the app is not answering",
        503: "the app or the catalog is unavailable",
        504: "the app took too long",
        507: "no space left to store the upload",
    }.items()
}

router = APIRouter(prefix="/api", tags=["uploads"], responses=_ERRORS)
ItemId = Annotated[str, Path(pattern=ITEM_ID, description="the item the media belongs to")]
FileName = Annotated[
    str | None,
    Query(max_length=4096, description="the client's file name; stored sanitised"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=rf"^[!-~]{{1,{MAX_KEY_CHARS}}}$",
        description="a retry with the same key gets the first answer back",
    ),
]


def _misdirected() -> Response:
    raise Misdirected("uploads are received by Nginx; send them to its address, not the app's")


@router.put(
    "/items/{item_id}/media",
    status_code=201,
    response_model=Media,
    responses={201: {"headers": _STORED_HEADERS}},
    openapi_extra={"requestBody": {"required": True, "content": _RAW}},
)
def put_item_media(
    item_id: ItemId, filename: FileName = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """Store the request body as one file. Its type is sniffed from its bytes; a declared
    Content-Type and the name's extension are checked against it."""
    return _misdirected()


@router.post(
    "/items/{item_id}/media",
    status_code=201,
    response_model=Media | FormUpload,
    responses={201: {"headers": _STORED_HEADERS}},
    openapi_extra={"requestBody": {"required": True, "content": {**_RAW, **_FORM}}},
)
def post_item_media(
    item_id: ItemId, filename: FileName = None, idempotency_key: IdempotencyKey = None
) -> Response:
    """Store a raw body as one file (like PUT), or each file part of a form (a list)."""
    return _misdirected()
