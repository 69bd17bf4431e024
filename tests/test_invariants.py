"""Invariants of DESIGN.md that no other test file pins on its own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import DEV_CONFIG, LiveStack
from helpers import eventually

from callback_api.app import create_app
from callback_api.settings import load_settings
from callback_api.shared_secret import ensure_secret
from callback_api.store import StorageError


@contextmanager
def _traced(pid: int, calls: str) -> Iterator[Path]:
    """strace every thread of a running process; yields the log, complete after the block."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed to watch the app's fsync calls: apt-get install strace")
    log = Path(tempfile.mkstemp(prefix="strace-")[1])
    tids = [f"-p{tid}" for tid in os.listdir(f"/proc/{pid}/task")]
    tracer = subprocess.Popen(
        [strace, "-f", "-y", "-qq", "-e", f"trace={calls}", "-o", str(log), *tids],
        stderr=subprocess.DEVNULL,
    )
    try:
        # strace attaches asynchronously; an attached thread shows a TracerPid.
        assert eventually(
            lambda: all(
                "TracerPid:\t0" not in Path(f"/proc/{pid}/task/{t[2:]}/status").read_text()
                for t in tids
            ),
            timeout=10,
        )
        yield log
    finally:
        time.sleep(0.2)
        tracer.terminate()
        tracer.wait(10)


def _upload(stack: LiveStack) -> str:
    response = httpx.put(f"{stack.url}/api/items/42/media?filename=d.bin", content=os.urandom(4096))
    assert response.status_code == 201
    media_id: str = response.json()["id"]
    return media_id


def test_a_durable_201_comes_after_fsync_of_file_directory_and_catalog(
    make_stack: Callable[..., LiveStack],
) -> None:
    """Invariant 2: acknowledged means durable."""
    stack = make_stack(uploads={"durable": True})
    _upload(stack)  # warm-up: shard directories, SQLite connection
    with _traced(stack.app_pid, "fsync,fdatasync,linkat") as log:
        media_id = _upload(stack)
    trace = log.read_text()
    log.unlink()
    temp = re.escape(str(stack.temp_dir))
    shard = re.escape(str(stack.media_root / media_id[:2] / media_id[2:4]))
    file_sync = re.search(rf"fsync\(\d+<{temp}/\d+/\d+/\d{{10}}>\)", trace)
    link = re.search(rf"linkat\(.*{media_id}", trace)
    dir_sync = re.search(rf"fsync\(\d+<{shard}>\)", trace)
    wal_syncs = list(re.finditer(r"f(data)?sync\(\d+<[^>]*landing\.sqlite3-wal>\)", trace))
    assert file_sync and link and dir_sync and wal_syncs, trace
    assert file_sync.start() < link.start() < dir_sync.start() < wal_syncs[-1].start()
    # The pending row's commit is not synced (it promises nothing); the ready one is, once.
    assert len(wal_syncs) == 1, trace


def test_a_non_durable_environment_does_not_fsync_uploads(stack: LiveStack) -> None:
    assert stack.settings.uploads.durable is False
    _upload(stack)
    with _traced(stack.app_pid, "fsync,fdatasync") as log:
        _upload(stack)
    trace = log.read_text()
    log.unlink()
    assert str(stack.temp_dir) not in trace
    assert str(stack.media_root) not in trace


def test_app_refuses_to_start_when_temp_dir_and_media_root_are_on_two_filesystems(
    tmp_path: Path,
) -> None:
    """Invariant 5: one filesystem, so that landing is a link, never a copy."""
    shm = Path(tempfile.mkdtemp(prefix="landing-", dir="/dev/shm"))
    try:
        assert os.stat(shm).st_dev != os.stat(tmp_path).st_dev
        settings = load_settings(
            DEV_CONFIG,
            {
                "paths": {
                    "temp_dir": str(shm / "body"),
                    "media_root": str(tmp_path / "media"),
                    "database": str(tmp_path / "c.sqlite3"),
                },
                "app": {"secret_file": str(tmp_path / "secret")},
            },
        )
        ensure_secret(settings)
        with pytest.raises(StorageError) as caught:
            create_app(settings)
        assert str(caught.value) == (
            f"temp dir {shm / 'body'} and media root {tmp_path / 'media'} are on different "
            "filesystems; put both on one filesystem so that a landed file can be linked, "
            "not copied"
        )
        assert not (tmp_path / "c.sqlite3").exists()
    finally:
        shutil.rmtree(shm)


def test_the_rendered_config_and_the_app_read_the_same_settings(stack: LiveStack) -> None:
    """Invariant 7: one model feeds both; every path Nginx uses is the app's."""
    conf = stack.stack.nginx_conf.read_text()
    s = stack.settings
    assert f"client_body_temp_path {s.paths.temp_dir} 1 2;" in conf
    assert f"alias {s.paths.media_root}/;" in conf
    assert f"server unix:{s.app.socket};" in conf
    assert f"client_max_body_size {s.uploads.max_body_size};" in conf
    assert f"include {s.secret_conf};" in conf
    assert stack.secret in s.secret_conf.read_text()
    assert stack.secret not in conf
