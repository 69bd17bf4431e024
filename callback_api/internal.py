"""The file-landed callback. Only Nginx can reach it: unix socket, secret, `/internal/` refused."""

from __future__ import annotations

import hmac
import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from callback_api.auth import verifier_of
from callback_api.callback import Upload
from callback_api.deps import ITEM_ID, Parts, PartsDep
from callback_api.errors import Forbidden, Invalid
from callback_api.schemas import media_json
from callback_api.shared_secret import HEADER

_MAX_FILENAME = 4096


def _check_secret(parts: Parts, secret: str | None) -> None:
    # Constant-time comparison: the secret must not leak through timing.
    if secret is None or not hmac.compare_digest(secret.encode(), parts.secret.encode()):
        raise Forbidden("the callback is only for Nginx")


def _require_secret(
    parts: PartsDep, secret: Annotated[str | None, Header(alias=HEADER)] = None
) -> None:
    _check_secret(parts, secret)


router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[Depends(_require_secret)],
    include_in_schema=False,
)


_ITEM_ID = re.compile(ITEM_ID)


async def land_media(request: Request) -> Response:
    """Nginx has written a request body to disk: check it, store it, record it.

    A plain Starlette endpoint, not a FastAPI one: this route runs once per upload, and
    FastAPI's per-request machinery (dependency solving, parameter models, response
    validation) cost as much CPU as landing the file itself. Everything is checked by hand
    here, in the same order and with the same errors.
    """
    parts: Parts = request.app.state.parts
    headers = request.headers
    _check_secret(parts, headers.get(HEADER))
    # Nginx asked /internal/auth before reading the body; asking again costs a hash and
    # keeps uploads refused even under a config rendered without auth_request.
    verifier = verifier_of(request)
    if verifier is not None:
        verifier.authorize(headers.get("authorization"), request.method)
    item_id: str = request.path_params["item_id"]
    if not _ITEM_ID.match(item_id):
        raise Invalid(f"item id {item_id!r} does not match {ITEM_ID}")
    filename = request.query_params.get("filename")
    if filename is not None and len(filename) > _MAX_FILENAME:
        raise Invalid(f"filename is longer than {_MAX_FILENAME} characters")
    upload = Upload(
        item_id=item_id,
        upload_path=headers.get("x-upload-path"),
        upload_length=headers.get("x-upload-length"),
        content_type=headers.get("content-type"),
        filename=filename,
        idempotency_key=headers.get("idempotency-key"),  # checked by the Lander (400)
    )
    landing = await run_in_threadpool(parts.lander.land, upload)
    media = [media_json(r) for r in landing.records]
    body = {"items": media} if landing.multipart else media[0]
    answer_headers = {"Location": media[0]["url"]} if len(media) == 1 else {}
    if landing.replayed:
        answer_headers["Idempotent-Replayed"] = "true"
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=201,
        media_type="application/json",
        headers=answer_headers,
    )


@router.get("/auth", status_code=204, response_class=Response)
def authorize_request(
    request: Request,
    # Nginx always names the method; without it the stricter scope (write) applies.
    x_original_method: Annotated[str, Header()] = "",
) -> Response:
    """Nginx's auth_request, before it reads a body: may the original request go on?"""
    verifier = verifier_of(request)
    if verifier is not None:
        verifier.authorize(request.headers.get("authorization"), x_original_method)
    return Response(status_code=204)


# Mounted next to the router by create_app: the upload callback, the hot path.
landed_route = Route("/internal/landed/items/{item_id}", land_media, methods=["POST"])
