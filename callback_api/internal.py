"""The file-landed callback. Only Nginx can reach it: unix socket, secret, `/internal/` refused."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from callback_api.auth import require_token, verifier_of
from callback_api.callback import Upload
from callback_api.deps import ITEM_ID, PartsDep
from callback_api.errors import Forbidden
from callback_api.schemas import ErrorBody, FormUpload, Media
from callback_api.shared_secret import HEADER


def _require_secret(
    parts: PartsDep, secret: Annotated[str | None, Header(alias=HEADER)] = None
) -> None:
    # Constant-time comparison: the secret must not leak through timing.
    if secret is None or not hmac.compare_digest(secret.encode(), parts.secret.encode()):
        raise Forbidden("the callback is only for Nginx")


router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[Depends(_require_secret)],
    include_in_schema=False,
)


@router.post(
    "/landed/items/{item_id}",
    status_code=201,
    responses={400: {"model": ErrorBody}, 403: {"model": ErrorBody}, 415: {"model": ErrorBody}},
    # Nginx asked /internal/auth before reading the body; asking again costs a hash and keeps
    # uploads refused even under a config rendered without auth_request.
    dependencies=[Depends(require_token)],
)
def land_media(
    parts: PartsDep,
    item_id: Annotated[str, Path(pattern=ITEM_ID)],
    filename: Annotated[str | None, Query(max_length=4096)] = None,
    x_upload_path: Annotated[str | None, Header()] = None,
    x_upload_length: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,  # checked by the Lander (400)
) -> Response:
    """Nginx has written a request body to disk: check it, store it, record it."""
    landing = parts.lander.land(
        Upload(
            item_id=item_id,
            upload_path=x_upload_path,
            upload_length=x_upload_length,
            content_type=content_type,
            filename=filename,
            idempotency_key=idempotency_key,
        )
    )
    media = [Media.of(r) for r in landing.records]
    body = (
        FormUpload(items=media).model_dump(mode="json")
        if landing.multipart
        else media[0].model_dump(mode="json")
    )
    headers = {"Location": media[0].url} if len(media) == 1 else {}
    if landing.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=201, headers=headers)


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
