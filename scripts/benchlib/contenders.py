"""The contenders: each starts its processes, uploads one file, and says what to charge it with.

All of them store into directories under one root (one filesystem), listen on loopback, and
are stopped by pid through the ``ExitStack`` that started them, also when the run fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchlib.apps import MEDIA_ENV
from benchlib.floor import FloorSettings, start_floor, write_floor_conf
from benchlib.http import Connection, Request, Response, multipart_request, raw_request
from benchlib.procs import Watched, bound_socket, children_of, free_port, stop, wait_ready

SCRIPTS_DIR = Path(__file__).resolve().parent.parent


class UploadFailed(Exception):
    """A contender answered an upload with an error; the message has its answer."""


@dataclass(frozen=True)
class Outcome:
    seconds: float
    client_cpu: float  # CPU of the thread that sent the upload
    server_cpu: float = 0.0  # CPU of a per-upload process (dd); servers are read from /proc
    stored: Path | None = None


def ready_http(port: int) -> bool:
    connection = Connection(port, timeout=1.0)
    try:
        connection.get("/_ready")
    except OSError:
        return False
    finally:
        connection.close()
    return True


def empty_dir(directory: Path) -> None:
    """Remove what a block stored, keeping the directory itself (the app expects it)."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


SIZES, SMALL, SERIES, CONCURRENT = "sizes", "small", "series", "concurrent"
EVERY = frozenset({SIZES, SMALL, SERIES, CONCURRENT})


class Contender(ABC):
    key: str
    label: str
    how: str
    has_python = True
    has_nginx = False
    over_http = True
    experiments: frozenset[str] = EVERY

    def __init__(self, root: Path) -> None:
        self.root = root / self.key
        self.media = self.root / "media"
        self.port = 0
        self.watched = Watched()

    @abstractmethod
    def start(self, stack: ExitStack) -> None: ...

    @property
    def request(self) -> Request:
        raise NotImplementedError(f"{self.key} is not uploaded to over HTTP")

    def stored_path(self, response: Response) -> Path | None:
        return self.media / str(response.json()["name"])

    def upload(self, payload: Path, size: int) -> Outcome:
        connection = Connection(self.port)
        cpu = time.thread_time()
        try:
            response = connection.upload(self.request, payload, size)
        finally:
            connection.close()
        cpu = time.thread_time() - cpu
        if response.status not in (200, 201, 204):
            raise UploadFailed(
                f"{self.key}: HTTP {response.status} for {size} bytes: {response.body[:300]!r}"
            )
        return Outcome(response.seconds, cpu, stored=self.stored_path(response))

    def media_dirs(self) -> list[Path]:
        return [self.media]


class DiskWrite(Contender):
    key, label = "disk", "`dd` to the media dir"
    how = "`dd bs=1M` of the payload into the same filesystem (page cache, no fsync)"
    has_python = False
    over_http = False
    experiments = frozenset({SIZES})

    def start(self, stack: ExitStack) -> None:
        self.media.mkdir(parents=True, exist_ok=True)

    def upload(self, payload: Path, size: int) -> Outcome:
        target = self.media / uuid.uuid4().hex
        started = time.perf_counter()
        process = subprocess.Popen(
            ["dd", f"if={payload}", f"of={target}", "bs=1M", f"count={size}", "iflag=count_bytes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise UploadFailed(f"dd exited with {process.returncode}")
        return Outcome(seconds, 0.0, usage.ru_utime + usage.ru_stime, target)


class NginxAlone(Contender):
    key, label = "nginx", "Nginx alone"
    how = (
        "same body settings, callback replaced by a body-less proxy to `return 204`; "
        "body file kept, deleted after the block like landing's"
    )
    has_python = False
    has_nginx = True
    experiments = EVERY - {SERIES}

    def __init__(self, root: Path, nginx: str, settings: FloorSettings) -> None:
        super().__init__(root)
        self.nginx = nginx
        self.settings = settings

    def start(self, stack: ExitStack) -> None:
        self.port = free_port()
        conf = write_floor_conf(self.root, self.port, self.settings)
        self.media = self.root / "files"
        process = start_floor(self.nginx, self.root, conf)
        stack.callback(stop, process, signal.SIGQUIT)  # graceful, by pid
        wait_ready(process, lambda: ready_http(self.port), "Nginx alone")
        self.watched = Watched(nginx=(process.pid, *children_of(process.pid)))

    @property
    def request(self) -> Request:
        return raw_request("PUT", "/upload?filename=payload.bin")

    def stored_path(self, response: Response) -> Path | None:
        return Path(response.headers["x-upload-path"])  # kept by Nginx; deleted by the harness

    def media_dirs(self) -> list[Path]:
        return [self.root / "temp"]


class _Uvicorn(Contender):
    factory: str

    def start(self, stack: ExitStack) -> None:
        self.media.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **{MEDIA_ENV: str(self.media), "TMPDIR": str(self.root)})
        listener = bound_socket()
        self.port = listener.getsockname()[1]
        with listener:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    f"benchlib.apps:{self.factory}",
                    "--app-dir",
                    str(SCRIPTS_DIR),
                    "--fd",
                    str(listener.fileno()),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env=env,
                pass_fds=(listener.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        stack.callback(stop, process)
        wait_ready(process, lambda: ready_http(self.port), f"uvicorn ({self.key})")
        self.watched = Watched(python=process.pid)


class UploadFileCopy(_Uvicorn):
    key, label, factory = "uploadfile", "FastAPI `UploadFile`", "create_uploadfile_app"
    how = "multipart form, `shutil.copyfileobj(file.file, out)` in a sync route"

    @property
    def request(self) -> Request:
        return multipart_request("/upload", "payload.bin")


class UploadFileChunks(_Uvicorn):
    key, label, factory = "chunks", "`UploadFile`, 2 MiB reads", "create_chunks_app"
    how = "multipart form, `await file.read(2 MiB)` loop in an async route"

    @property
    def request(self) -> Request:
        return multipart_request("/upload", "payload.bin")


class RawStream(_Uvicorn):
    key, label, factory = "stream", "raw `request.stream()`", "create_stream_app"
    how = "raw PUT body, `async for chunk in request.stream()` written to a file"

    @property
    def request(self) -> Request:
        return raw_request("PUT", "/upload")


class FileResponseApp(_Uvicorn):
    key, label, factory = "fileresponse", "FastAPI `FileResponse`", "create_fileresponse_app"
    how = "`FileResponse(path)` from uvicorn, no Nginx"
