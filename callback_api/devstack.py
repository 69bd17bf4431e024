"""Run the whole stack on one machine: render, start uvicorn and Nginx, stop both by pid.

Used by ``landing up``, by the tests and by the benchmark, so that all three run the stack the
same way. Every process started here is stopped here, also when starting fails half-way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callback_api.app import CONFIG_ENV, OVERRIDES_ENV
from callback_api.render import render, write_rendered
from callback_api.settings import Settings, load_settings
from callback_api.shared_secret import ensure_secret

INSTALL_HINT = "install it with: sudo apt-get install -y nginx (Debian/Ubuntu)"


class StackError(Exception):
    """The stack could not start; the message says which part and why."""


def find_nginx() -> str:
    """$LANDING_NGINX if set, else `nginx` on PATH or in /usr/sbin (not on a user's PATH)."""
    chosen = os.environ.get("LANDING_NGINX")
    if chosen:
        if shutil.which(chosen):
            return chosen
        raise StackError(f"Nginx is not installed (no executable at {chosen}); {INSTALL_HINT}")
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise StackError(f"Nginx is not installed; {INSTALL_HINT}")
    return found


def local_overrides(settings_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run-time adjustments for a local run: a root master must keep workers as root too,
    or they could not write the temp dir (invariant 6: workers and app share a user)."""
    overrides: dict[str, Any] = json.loads(json.dumps(settings_overrides or {}))
    nginx = overrides.setdefault("nginx", {})
    if os.geteuid() == 0 and not nginx.get("user"):
        nginx["user"] = "root"
    return overrides


def prepare(settings: Settings) -> Path:
    """Create the directories and the secret, render the config; returns nginx.conf."""
    for directory in (
        settings.paths.temp_dir,
        settings.paths.media_root,
        settings.paths.database.parent,
        settings.app.socket.parent,
        settings.nginx.runtime_dir,
        settings.nginx.log_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    ensure_secret(settings)
    conf_dir = settings.nginx.runtime_dir / "conf"
    write_rendered(render(settings), conf_dir)
    return conf_dir / "nginx.conf"


def wait_until(ready: Any, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll ``ready()`` until true; fail at once if the process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with status {process.returncode} while starting")
        if ready():
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s")


def _accepts_unix(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _accepts_tcp(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes], sig: int, timeout: float = 15.0) -> None:
    """Ask politely, then insist; by pid, never by name."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    """A running Nginx + app pair."""

    settings: Settings
    config_path: Path
    overrides: dict[str, Any]
    app: subprocess.Popen[bytes] | None = None
    nginx: subprocess.Popen[bytes] | None = None
    nginx_conf: Path = field(default_factory=Path)
    # Extra environment for the app process (e.g. LANDING_FAILPOINT in crash tests).
    app_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        first = self.settings.server.listen[0]
        scheme = "https" if first.ssl else "http"
        return f"{scheme}://{first.address}:{first.port}"

    def start_app(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env[CONFIG_ENV] = str(self.config_path)
        env[OVERRIDES_ENV] = json.dumps(self.overrides)
        env.update(self.app_env)
        socket_path = self.settings.app.socket
        socket_path.unlink(missing_ok=True)
        self.app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "callback_api.app:create_app_from_env",
                "--uds",
                str(socket_path),
                "--workers",
                str(self.settings.app.workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            # Own session: a Ctrl-C reaches `landing up`, which then stops us in order.
            start_new_session=True,
        )
        wait_until(lambda: _accepts_unix(socket_path), self.app, "the app (uvicorn)", timeout)

    def start_nginx(self, timeout: float = 15.0) -> None:
        runtime = self.settings.nginx.runtime_dir
        self.nginx = subprocess.Popen(
            [
                find_nginx(),
                "-p",
                str(runtime),
                "-c",
                str(self.nginx_conf),
                "-e",
                str(self.settings.nginx.log_dir / "nginx-error.log"),
                "-g",
                "daemon off;",
            ],
            start_new_session=True,
        )
        listeners = self.settings.server.listen
        wait_until(
            lambda: all(_accepts_tcp(x.address, x.port) for x in listeners),
            self.nginx,
            "Nginx",
            timeout,
        )

    def start(self) -> None:
        self.nginx_conf = prepare(self.settings)
        try:
            self.start_app()
            self.start_nginx()
        except BaseException:
            self.stop()
            raise

    def stop_app(self) -> None:
        if self.app is not None:
            stop_process(self.app, signal.SIGTERM)

    def stop(self) -> None:
        # Nginx first (SIGQUIT: finish running requests), then the app they call.
        if self.nginx is not None:
            stop_process(self.nginx, signal.SIGQUIT)
        self.stop_app()


@contextmanager
def running_stack(config_path: Path, overrides: Mapping[str, Any] | None = None) -> Iterator[Stack]:
    """Start the stack of an environment file (plus overrides); stop it on exit, always."""
    merged = local_overrides(overrides)
    settings = load_settings(config_path, merged)
    stack = Stack(settings, config_path, merged)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
