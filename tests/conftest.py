"""Real Nginx and uvicorn on free ports in temp dirs; nothing of either is mocked."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from callback_api.devstack import Stack, local_overrides
from callback_api.settings import Settings, load_settings, merge_overrides

# In CI, property tests explore the same examples every run: a submission must not fail on a
# new random draw that no one saw. Developers keep random exploration (and its database).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
DEV_CONFIG = ROOT / "nginx-conf" / "environments" / "dev.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stack_overrides(root: Path, socket_dir: Path, **extra: Any) -> dict[str, Any]:
    base = {
        "server": {
            "listen": [
                {"address": "127.0.0.1", "port": free_port()},
                {"address": "127.0.0.1", "port": free_port(), "http2": True},
            ]
        },
        "nginx": {
            "runtime_dir": str(root / "nginx"),
            "log_dir": str(root / "log"),
            "worker_processes": "2",
        },
        "paths": {
            "temp_dir": str(root / "spool" / "body"),
            "media_root": str(root / "media"),
            "database": str(root / "landing.sqlite3"),
            "static_root": str(ROOT / "static"),
        },
        # Unix socket paths are limited to 108 bytes: keep it in a short dir.
        "app": {"socket": str(socket_dir / "app.sock"), "secret_file": str(root / "secret")},
    }
    return merge_overrides(base, extra)


@dataclass
class LiveStack:
    """A running stack plus the places a test looks at."""

    stack: Stack

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def h2c_port(self) -> int:
        return next(lst.port for lst in self.settings.server.listen if lst.http2)

    @property
    def temp_dir(self) -> Path:
        return self.settings.paths.temp_dir

    @property
    def media_root(self) -> Path:
        return self.settings.paths.media_root

    @property
    def static_root(self) -> Path:
        return self.settings.paths.static_root

    @property
    def catalog_path(self) -> Path:
        return self.settings.paths.database

    @property
    def secret(self) -> str:
        return self.settings.app.secret_file.read_text().strip()

    @property
    def app_pid(self) -> int:
        assert self.stack.app is not None
        return self.stack.app.pid

    def rows(self, where: str = "1=1") -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.catalog_path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(f"SELECT * FROM media WHERE {where}")]
        finally:
            conn.close()

    def media_path(self, media_id: str) -> Path:
        """Where a stored file lives: sharded by the id's first two byte pairs. Spelled out here,
        not taken from the store, so that the tests check the layout rather than repeat it."""
        return self.media_root / media_id[:2] / media_id[2:4] / media_id

    def media_files(self) -> list[Path]:
        return sorted(p for p in self.media_root.rglob("*") if p.is_file())

    def temp_files(self) -> list[Path]:
        return sorted(p for p in self.temp_dir.rglob("*") if p.is_file())


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., LiveStack]]:
    started: list[Stack] = []
    socket_dirs: list[str] = []

    def _make(**extra: Any) -> LiveStack:
        root = tmp_path / f"stack{len(started)}"
        socket_dir = tempfile.mkdtemp(prefix="ld-")
        socket_dirs.append(socket_dir)
        overrides = local_overrides(stack_overrides(root, Path(socket_dir), **extra))
        settings = load_settings(DEV_CONFIG, overrides)
        stack = Stack(settings, DEV_CONFIG, overrides)
        started.append(stack)
        stack.start()
        return LiveStack(stack)

    try:
        yield _make
    finally:
        for stack in reversed(started):
            stack.stop()
        for directory in socket_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def stack(make_stack: Callable[..., LiveStack]) -> LiveStack:
    return make_stack()


@pytest.fixture
def payload(tmp_path: Path) -> Callable[[int], Path]:
    """A file of n random-ish bytes (urandom blocks repeated, cheap for large sizes)."""

    def _make(size: int) -> Path:
        path = tmp_path / f"payload-{size}"
        block = os.urandom(1024 * 1024)
        with path.open("wb") as handle:
            remaining = size
            counter = 0
            while remaining:
                # Vary each block so that no two blocks of a large file are equal.
                chunk = (counter.to_bytes(8, "big") + block)[: min(remaining, len(block))]
                handle.write(chunk)
                remaining -= len(chunk)
                counter += 1
        return path

    return _make
