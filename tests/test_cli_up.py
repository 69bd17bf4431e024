"""`landing up`: one command renders, starts both processes, serves, and stops cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import DEV_CONFIG
from helpers import eventually


def _two_free_ports() -> int:
    """A port P with P+1 free too: `--port P` puts the h2c listener on P+1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free ports")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "nginx-conf" / "environments").mkdir(parents=True)
    shutil.copy(DEV_CONFIG, root / "nginx-conf" / "environments" / "dev.toml")
    shutil.copytree(DEV_CONFIG.parents[2] / "static", root / "static")
    return root


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_landing_up_serves_and_stops_both_processes_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    root = _project(tmp_path)
    port = _two_free_ports()
    up = subprocess.Popen(
        [sys.executable, "-m", "callback_api", "up", "--root", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        first_line = up.stdout.readline()
        assert first_line == f"landing (dev) is up at http://127.0.0.1:{port}  (Ctrl-C stops it)\n"
        children = _children(up.pid)
        assert len(children) == 2  # uvicorn and the Nginx master
        stored = httpx.put(
            f"http://127.0.0.1:{port}/api/items/1/media?filename=a.txt", content=b"hello"
        )
        assert stored.status_code == 201
        media_id = stored.json()["id"]
        assert (root / "var" / "media" / media_id[:2] / media_id[2:4] / media_id).read_bytes() == (
            b"hello"
        )
        assert (root / "var" / "landing.sqlite3").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        up.send_signal(stop_signal)
        assert up.wait(30) == 0
        assert up.stdout.read().endswith("landing: stopped\n")
        for child in children:
            assert eventually(lambda c=child: not Path(f"/proc/{c}").exists(), timeout=5)
    finally:
        leftovers = _children(up.pid) if up.poll() is None else []
        if up.poll() is None:
            up.kill()
            up.wait()
        for child in leftovers:
            os.kill(child, signal.SIGKILL)
        if up.stdout is not None:
            up.stdout.close()


def test_landing_up_without_nginx_says_how_to_install_it(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env = {**os.environ, "LANDING_NGINX": str(tmp_path / "no-such-nginx")}
    result = subprocess.run(
        [sys.executable, "-m", "callback_api", "up", "--root", str(root), "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"landing: Nginx is not installed (no executable at {tmp_path / 'no-such-nginx'}); "
        "install it with: sudo apt-get install -y nginx (Debian/Ubuntu)\n"
    )
