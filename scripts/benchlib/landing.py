"""landing itself, as shipped: started through ``callback_api.devstack`` like ``landing up``.

Imported lazily: the harness still measures everything else when the core cannot start, and
says why landing is missing in the output instead of failing the whole run.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchlib.contenders import Contender, _ready_http
from benchlib.floor import FloorSettings
from benchlib.http import Request, Response, raw_request
from benchlib.procs import Watched, children_of, free_port, wait_ready

REPO = Path(__file__).resolve().parents[2]
DEV_ENV = REPO / "nginx-conf" / "environments" / "dev.toml"
ITEM = "bench"


def floor_settings(env_file: Path = DEV_ENV) -> tuple[FloorSettings, str | None]:
    """The body settings the floor must share with landing; defaults (and why) if unreadable."""
    try:
        from callback_api.settings import load_settings

        settings = load_settings(env_file)
    except Exception as exc:  # the core may be mid-change; the reason goes into the report
        return FloorSettings(), f"{type(exc).__name__}: {exc}"
    return (
        FloorSettings(
            body_buffer_size=settings.uploads.body_buffer_size,
            temp_levels=tuple(settings.uploads.temp_levels),
            worker_processes=settings.nginx.worker_processes,
            worker_connections=settings.nginx.worker_connections,
        ),
        None,
    )


def overrides(root: Path, port: int, durable: bool) -> dict[str, Any]:
    """Everything the run owns lives under ``root``: one filesystem, nothing under var/."""
    return {
        "server": {"listen": [{"address": "127.0.0.1", "port": port}]},
        "nginx": {"runtime_dir": str(root / "nginx"), "log_dir": str(root / "log")},
        "paths": {
            "temp_dir": str(root / "spool"),
            "media_root": str(root / "media"),
            "database": str(root / "landing.sqlite3"),
        },
        "app": {"socket": str(root / "run" / "app.sock"), "secret_file": str(root / "secret")},
        "uploads": {"durable": durable},
    }


class Landing(Contender):
    has_nginx = True

    def __init__(self, root: Path, durable: bool, env_file: Path = DEV_ENV) -> None:
        self.key = "landing-durable" if durable else "landing"
        self.label = "landing, durable" if durable else "landing"
        self.how = "Nginx body file + callback + link + SQLite row" + (
            ", fsync of file, dir and WAL" if durable else ", no fsync"
        )
        super().__init__(root)
        self.durable = durable
        self.env_file = env_file
        self.settings_json = ""

    def start(self, stack: ExitStack) -> None:
        from callback_api.devstack import running_stack

        self.port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        running = stack.enter_context(
            running_stack(self.env_file, overrides(self.root, self.port, self.durable))
        )
        assert running.app is not None and running.nginx is not None
        self.media = running.settings.paths.media_root
        self.settings_json = running.settings.model_dump_json()
        nginx = running.nginx
        wait_ready(nginx, lambda: _ready_http(self.port), f"{self.key} (Nginx)")
        self.watched = Watched(python=running.app.pid, nginx=(nginx.pid, *children_of(nginx.pid)))

    @property
    def request(self) -> Request:
        return raw_request("PUT", f"/api/items/{ITEM}/media?filename=payload.bin")

    def stored_path(self, response: Response) -> Path | None:
        media_id = str(response.json()["id"])
        return self.media / media_id[:2] / media_id[2:4] / media_id

    def content_target(self, response: Response) -> str:
        return str(response.json()["url"])

    def settings_summary(self) -> dict[str, Any]:
        settings: dict[str, Any] = json.loads(self.settings_json or "{}")
        return {"uploads": settings.get("uploads"), "nginx": settings.get("nginx")}
