"""landing itself, as shipped: started through ``callback_api.devstack`` like ``landing up``.

Imported lazily: the harness still measures everything else when the core cannot start, and
says why landing is missing in the output instead of failing the whole run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchlib.contenders import CONCURRENT, EVERY, SERIES, SMALL, Contender, ready_http
from benchlib.floor import FloorSettings
from benchlib.http import Request, Response, raw_request
from benchlib.procs import Watched, children_of, command_line, free_port, wait_ready

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


def overrides(
    root: Path, port: int, durable: bool, workers: int = 1, socket_dir: Path | None = None
) -> dict[str, Any]:
    """Everything the run owns lives under ``root``: one filesystem, nothing under var/.
    The app's socket may go elsewhere: a unix socket path is limited to 107 bytes."""
    return {
        "server": {"listen": [{"address": "127.0.0.1", "port": port}]},
        "nginx": {"runtime_dir": str(root / "nginx"), "log_dir": str(root / "log")},
        "paths": {
            "temp_dir": str(root / "spool"),
            "media_root": str(root / "media"),
            "database": str(root / "landing.sqlite3"),
        },
        "app": {
            "socket": str((socket_dir or root / "run") / "app.sock"),
            "secret_file": str(root / "secret"),
            "workers": workers,
        },
        "uploads": {"durable": durable},
        # All benchmark traffic comes from 127.0.0.1, so the per-address limits (dev: 1000 r/s,
        # exactly the small-upload aim) would measure the limiter, not the stack.
        "limits": {
            "upload_rate": "1000000r/s",
            "upload_burst": 1000000,
            "upload_connections": 1024,
        },
    }


class Landing(Contender):
    has_nginx = True

    def __init__(
        self, root: Path, durable: bool, workers: int = 1, env_file: Path = DEV_ENV
    ) -> None:
        self.key = "landing-durable" if durable else "landing"
        self.label = "landing, durable" if durable else "landing"
        self.how = "Nginx body file + callback + link + SQLite row" + (
            ", fsync of file, dir and WAL" if durable else ", no fsync"
        )
        # The memory series is about the design, not about fsync; once is enough.
        self.experiments = EVERY - {SERIES} if durable else EVERY
        if workers > 1:
            # staging runs 2 app workers, prod 4: what one more process buys on two cores.
            self.key += f"-{workers}w"
            self.label += f", {workers} app workers"
            self.how += f"; {workers} uvicorn workers (CPU of all, RSS of one)"
            self.experiments = frozenset({SMALL, CONCURRENT})
        super().__init__(root)
        self.durable = durable
        self.workers = workers
        self.env_file = env_file
        self.settings_json = ""

    def start(self, stack: ExitStack) -> None:
        from callback_api.devstack import running_stack

        self.port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        socket_dir = Path(tempfile.mkdtemp(prefix="landing-bench-"))
        stack.callback(shutil.rmtree, socket_dir, True)
        settings = overrides(self.root, self.port, self.durable, self.workers, socket_dir)
        running = stack.enter_context(running_stack(self.env_file, settings))
        assert running.app is not None and running.nginx is not None
        self.media = running.settings.paths.media_root
        self.settings_json = running.settings.model_dump_json()
        nginx = running.nginx
        wait_ready(nginx, lambda: ready_http(self.port), f"{self.key} (Nginx)")
        app = running.app
        python, others = app.pid, []
        if self.workers > 1:
            # uvicorn's supervisor binds the socket, then spawns the workers; multiprocessing
            # may add a resource tracker child, charged for CPU but not taken for memory.
            def workers() -> list[int]:
                return [p for p in children_of(app.pid) if "spawn_main" in command_line(p)]

            wait_ready(app, lambda: len(workers()) >= self.workers, "app workers")
            python = workers()[0]
            others = [p for p in children_of(app.pid) if p != python] + [app.pid]
        self.watched = Watched(
            python=python, python_others=others, nginx=(nginx.pid, *children_of(nginx.pid))
        )

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
