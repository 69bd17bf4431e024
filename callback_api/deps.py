"""The app's parts, handed to routes as FastAPI dependencies (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from callback_api.callback import Lander
from callback_api.catalog import Catalog
from callback_api.settings import Settings
from callback_api.store import MediaStore

ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


@dataclass(frozen=True)
class Parts:
    settings: Settings
    catalog: Catalog
    store: MediaStore
    lander: Lander
    secret: str


def _parts(request: Request) -> Parts:
    parts: Parts = request.app.state.parts
    return parts


PartsDep = Annotated[Parts, Depends(_parts)]
