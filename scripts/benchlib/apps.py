"""The usual ways, as FastAPI users write them; each runs in its own uvicorn process.

uvicorn imports these with ``--factory`` and ``--app-dir scripts``; ``BENCH_MEDIA_DIR`` names
the directory each one stores into (on the same filesystem as everything else), and ``TMPDIR``
points python-multipart's spool file there too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

MEDIA_ENV = "BENCH_MEDIA_DIR"
CHUNK = 2 * 1024 * 1024
_NAME = r"^[0-9a-f]{32}$"


def _media_dir() -> Path:
    value = os.environ.get(MEDIA_ENV)
    if not value:
        raise SystemExit(f"{MEDIA_ENV} must name the directory to store uploads in")
    return Path(value)


def create_uploadfile_app() -> FastAPI:
    """The FastAPI tutorial way: a multipart ``UploadFile`` copied with ``copyfileobj``."""
    media = _media_dir()
    app = FastAPI()

    @app.post("/upload", status_code=201)
    def create_upload(file: UploadFile) -> dict[str, object]:
        name = uuid.uuid4().hex
        with open(media / name, "wb") as out:
            shutil.copyfileobj(file.file, out)
            size = out.tell()
        return {"name": name, "size": size}

    return app


def create_chunks_app() -> FastAPI:
    """The "streaming fix": the same ``UploadFile``, read and written 2 MiB at a time."""
    media = _media_dir()
    app = FastAPI()

    @app.post("/upload", status_code=201)
    async def create_upload(file: UploadFile) -> dict[str, object]:
        name = uuid.uuid4().hex
        size = 0
        with open(media / name, "wb") as out:
            while chunk := await file.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
        return {"name": name, "size": size}

    return app


def create_stream_app() -> FastAPI:
    """No multipart: the raw body from ``request.stream()`` written as it arrives."""
    media = _media_dir()
    app = FastAPI()

    @app.put("/upload", status_code=201)
    async def create_upload(request: Request) -> dict[str, object]:
        name = uuid.uuid4().hex
        size = 0
        with open(media / name, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
                size += len(chunk)
        return {"name": name, "size": size}

    return app


def create_fileresponse_app() -> FastAPI:
    """Downloads the usual way: ``FileResponse`` streams the file through Python."""
    media = _media_dir()
    app = FastAPI()

    @app.get("/files/{name}")
    async def read_file(name: Annotated[str, PathParam(pattern=_NAME)]) -> FileResponse:
        return FileResponse(media / name, media_type="application/octet-stream")

    return app
