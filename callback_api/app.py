"""``create_app(settings)``: the FastAPI app, built from one environment's settings."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from callback_api import api, auth, internal, upload_routes
from callback_api.callback import Lander
from callback_api.catalog import open_catalog
from callback_api.deps import Parts
from callback_api.errors import LandingError
from callback_api.failpoints import Failpoints
from callback_api.settings import Settings, load_settings, time_seconds
from callback_api.shared_secret import read_secret
from callback_api.store import MediaStore, check_same_filesystem

CONFIG_ENV = "LANDING_CONFIG"
OVERRIDES_ENV = "LANDING_OVERRIDES"
logger = logging.getLogger("landing")


def _error(
    status: int, detail: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def landing_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LandingError)
        if exc.status >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc.detail, exc_info=exc)
        # Some errors carry the headers a client needs (WWW-Authenticate, Retry-After).
        return _error(exc.status, exc.detail, exc.code, getattr(exc, "headers", None))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail), f"ERR_HTTP_{exc.status_code}")

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, problems, "ERR_INVALID")

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Still JSON for the client; the cause goes to the log with its traceback.
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__})", "ERR_INTERNAL")

    app.add_exception_handler(LandingError, landing_error)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def create_app(settings: Settings) -> FastAPI:
    """Check the environment (one filesystem, a secret), open the catalog, wire the routes."""
    check_same_filesystem(settings.paths.temp_dir, settings.paths.media_root)
    secret = read_secret(settings)
    verifier = auth.verifier_from(settings)  # a bad tokens file stops the start, here
    # A writer waits for the catalog up to half the callback timeout: queueing behind other
    # writers under a burst beats a 503, and the app still answers before Nginx's 504.
    catalog = open_catalog(
        settings.paths.database,
        settings.uploads.durable,
        busy_timeout_s=time_seconds(settings.uploads.callback_timeout) / 2,
    )
    store = MediaStore(settings.paths.media_root, settings.uploads.durable)
    parts = Parts(
        settings, catalog, store, Lander(settings, catalog, store, Failpoints.from_env()), secret
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.close()

    app = FastAPI(
        title="landing",
        summary="Media metadata; Nginx moves the bytes.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.parts = parts
    app.state.auth = verifier
    _install_error_handlers(app)
    # With [auth] enabled every API call needs a token (and the schema says so).
    guard = [Depends(auth.require_token)] if verifier else []
    for router in (api.router, upload_routes.router):
        app.include_router(router, dependencies=guard, responses=auth.RESPONSES if verifier else {})
    app.include_router(internal.router)
    app.router.routes.append(internal.landed_route)
    # Ahead of the documented FastAPI route for the same path, which it serves for real.
    app.router.routes.insert(0, api.content_route)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from $LANDING_CONFIG (+ overrides)."""
    import json

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise SystemExit(f"{CONFIG_ENV} must name an environment file")
    overrides = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    return create_app(load_settings(Path(path), overrides))
