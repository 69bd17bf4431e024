"""Clients that leave, stall or outwait the app: every upload ends stored whole or not at all.

A client abort mid-body is pinned in test_upload_path.py. Here: the client leaves while the
callback runs (`proxy_ignore_client_abort on` keeps the request, so the upload is stored and
the client just does not hear), a body that stalls past `client_body_timeout` (Nginx cuts it
with 408), and an app slower than the callback timeout (504, and nothing stored).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from conftest import LiveStack
from helpers import app_client, eventually, sha256_bytes, sha256_of

MB = 1024 * 1024


def _access_log(stack: LiveStack, name: str) -> list[dict[str, Any]]:
    path = stack.settings.nginx.log_dir / "nginx-access.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["uri"].endswith(f"filename={name}")]


def _open_upload(stack: LiveStack, name: str, length: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.settings.server.listen[0].port))
    sock.sendall(
        f"PUT /api/items/42/media?filename={name} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
        + first
    )
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a killed client or a dropped network would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _stored_by_name(stack: LiveStack) -> dict[str, str]:
    """filename -> sha256 of its stored file, for every ready row; asserts rows match files."""
    rows = stack.rows()
    assert all(r["state"] == "ready" for r in rows), rows
    files = {p.name: p for p in stack.media_files()}
    assert sorted(files) == sorted(r["id"] for r in rows)
    return {r["filename"]: sha256_of(files[r["id"]]) for r in rows}


def test_client_gone_during_the_callback_still_gets_its_upload_stored_whole(
    stack: LiveStack,
) -> None:
    body = os.urandom(300_000)
    os.kill(stack.app_pid, signal.SIGSTOP)  # hold the callback
    try:
        sock = _open_upload(stack, "left.bin", len(body), body)
        assert eventually(lambda: [p.stat().st_size for p in stack.temp_files()] == [len(body)])
        time.sleep(0.1)  # Nginx has sent the callback; the app is holding it
        _reset(sock)
        time.sleep(0.2)
    finally:
        os.kill(stack.app_pid, signal.SIGCONT)
    assert eventually(lambda: len(_access_log(stack, "left.bin")) == 1)
    [entry] = _access_log(stack, "left.bin")
    # The app answered 201; Nginx could send none of it to the departed client.
    assert (entry["status"], entry["bytes_sent"]) == (201, 0)
    assert _stored_by_name(stack) == {"left.bin": sha256_bytes(body)}
    assert eventually(lambda: stack.temp_files() == [])


def test_clients_closing_right_after_the_body_leave_each_upload_whole_or_absent(
    stack: LiveStack,
) -> None:
    sent = {}
    for n in range(20):
        name = f"gone{n}.bin"
        body = os.urandom(50_000 + n * 10_000)
        sent[name] = sha256_bytes(body)
        sock = _open_upload(stack, name, len(body), body)
        if n % 2:
            _reset(sock)
        else:
            sock.close()
    assert eventually(lambda: _all_logged(stack, sent))
    stored = _stored_by_name(stack)
    for name, digest in stored.items():
        assert sent[name] == digest, name
    # Whatever Nginx logged as 201 is stored; whatever is not stored was never acknowledged.
    for name in sent:
        [entry] = _access_log(stack, name)
        assert (entry["status"] == 201) == (name in stored), entry
    assert eventually(lambda: stack.temp_files() == [])


def _all_logged(stack: LiveStack, names: dict[str, str]) -> bool:
    return all(len(_access_log(stack, name)) == 1 for name in names)


def test_body_stalling_past_the_body_timeout_is_cut_and_leaves_nothing(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(uploads={"body_timeout": "1s"})
    sock = _open_upload(stack, "stall.bin", MB, os.urandom(300_000))
    sock.settimeout(10)
    assert eventually(lambda: len(stack.temp_files()) == 1)
    started = time.monotonic()
    with sock:
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
    waited = time.monotonic() - started
    # Nginx gives up after 1s without a byte and closes without an answer (a 408 in its log).
    assert answer == b""
    assert waited < 5, f"Nginx held a stalled body for {waited:.1f}s"
    assert eventually(lambda: len(_access_log(stack, "stall.bin")) == 1)
    [entry] = _access_log(stack, "stall.bin")
    assert (entry["status"], entry["upstream_time"]) == (408, "")
    assert eventually(lambda: stack.temp_files() == [])
    assert stack.rows() == [] and stack.media_files() == []


def test_app_slower_than_the_callback_timeout_gives_504_and_stores_nothing(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(uploads={"callback_timeout": "1s"})
    body = os.urandom(200_000)
    os.kill(stack.app_pid, signal.SIGSTOP)
    try:
        sock = _open_upload(stack, "late.bin", len(body), body)
        sock.settimeout(10)
        with sock:
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 504 ")
        assert b'"detail": "the app took too long to answer"' in answer
        # Nginx ends the request, so its temp file is gone before the app even looks.
        assert eventually(lambda: stack.temp_files() == [])
    finally:
        os.kill(stack.app_pid, signal.SIGCONT)
    # The app wakes up, finds no body file and stores nothing.
    with app_client(stack.settings.app.socket) as app:
        assert app.get("/api/items/42/media").status_code == 200
    time.sleep(0.3)
    assert stack.rows() == [] and stack.media_files() == []
