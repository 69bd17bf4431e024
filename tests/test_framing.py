"""Ambiguous or broken HTTP framing is refused by Nginx itself: the app is never called.

Request smuggling starts where two parsers disagree on where a body ends. Here only Nginx
parses the client's framing, and it refuses every ambiguous case before the callback: the
access log shows no upstream time, the temp dir, the media root and the catalog stay empty.
Raw sockets, because curl and httpx normalise what they send.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEV_CONFIG, LiveStack, stack_overrides
from helpers import eventually, raw_request, status_of

from callback_api.devstack import Stack, local_overrides
from callback_api.settings import load_settings

MB = 1024 * 1024


@pytest.fixture(scope="module")
def refusing_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """One stack for all refused requests: none of them may leave anything behind."""
    socket_dir = tempfile.mkdtemp(prefix="ld-")
    overrides = local_overrides(
        stack_overrides(tmp_path_factory.mktemp("framing"), Path(socket_dir))
    )
    stack = Stack(load_settings(DEV_CONFIG, overrides), DEV_CONFIG, overrides)
    try:
        stack.start()
        yield LiveStack(stack)
    finally:
        stack.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _send(port: int, data: bytes) -> bytes:
    """Like raw_request, but Nginx may reset the connection after answering, since it
    refuses to read the rest of a broken body: keep what arrived before the reset."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


def _request(name: str, headers: bytes, body: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"PUT /api/items/42/media?filename=" + name.encode() + b" " + version + b"\r\n"
        b"Host: x\r\n" + headers + b"\r\n" + body
    )


def _access_log(stack: LiveStack) -> list[dict[str, Any]]:
    path = stack.settings.nginx.log_dir / "nginx-access.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _logged(stack: LiveStack, name: str) -> dict[str, Any] | None:
    entries = [e for e in _access_log(stack) if e["uri"].endswith(f"filename={name}")]
    return entries[-1] if entries else None


def _assert_refused_by_nginx(stack: LiveStack, name: str, status: int, answer: bytes) -> None:
    assert status_of(answer) == status
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"\r\nContent-Type: application/json" in head
    assert json.loads(body)["code"] == f"ERR_HTTP_{status}"
    assert eventually(lambda: _logged(stack, name) is not None)
    entry = _logged(stack, name)
    assert entry is not None
    assert entry["status"] == status
    # Nginx logs an empty $upstream_response_time when it never contacted the app.
    assert entry["upstream_time"] == ""
    assert eventually(lambda: stack.temp_files() == [])
    assert stack.media_files() == []
    assert stack.rows() == []


CHUNKED = b"Transfer-Encoding: chunked\r\n"
FRAMING_CASES = {
    "content-length-then-chunked": (
        b"Content-Length: 5\r\n" + CHUNKED,
        b"5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunked-then-content-length": (
        CHUNKED + b"Content-Length: 5\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "two-different-content-lengths": (
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"hello!",
        400,
    ),
    "signed-content-length": (b"Content-Length: +5\r\n", b"hello", 400),
    "space-before-colon-in-transfer-encoding": (
        b"Transfer-Encoding : chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunk-size-not-hex": (CHUNKED, b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "negative-chunk-size": (CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-overflowing-64-bits": (
        CHUNKED,
        b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunk-shorter-than-its-size": (CHUNKED, b"3\r\nhello\r\n0\r\n\r\n", 400),
    "unsupported-transfer-coding": (
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        501,
    ),
}


@pytest.mark.parametrize("case", sorted(FRAMING_CASES))
def test_ambiguous_or_broken_framing_is_refused_before_the_app(
    refusing_stack: LiveStack, case: str
) -> None:
    stack = refusing_stack
    headers, body, status = FRAMING_CASES[case]
    answer = raw_request(stack.settings.server.listen[0].port, _request(case, headers, body))
    _assert_refused_by_nginx(stack, case, status, answer)


def test_transfer_encoding_in_an_http_1_0_request_is_refused_before_the_app(
    refusing_stack: LiveStack,
) -> None:
    stack = refusing_stack
    # HTTP/1.0 has no chunked coding: a proxy speaking 1.0 would read this body differently.
    request = _request("http10", CHUNKED, b"5\r\nhello\r\n0\r\n\r\n", version=b"HTTP/1.0")
    answer = raw_request(stack.settings.server.listen[0].port, request)
    _assert_refused_by_nginx(stack, "http10", 400, answer)


def test_bad_chunk_after_a_megabyte_on_disk_leaves_no_temp_file(
    refusing_stack: LiveStack,
) -> None:
    stack = refusing_stack
    # The first chunk is larger than the body buffer, so Nginx has already written it to the
    # temp file when it meets the broken chunk; `clean` must still remove that file.
    first = os.urandom(2 * MB)
    body = f"{len(first):x}\r\n".encode() + first + b"\r\nnot-hex\r\nxyz\r\n0\r\n\r\n"
    answer = _send(stack.settings.server.listen[0].port, _request("late", CHUNKED, body))
    _assert_refused_by_nginx(stack, "late", 400, answer)


def test_well_formed_chunked_request_on_the_same_stack_reaches_the_app(stack: LiveStack) -> None:
    # The control case: the same raw bytes, correctly framed, are stored.
    request = _request("fine", CHUNKED + b"Connection: close\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    answer = raw_request(stack.settings.server.listen[0].port, request)
    assert status_of(answer) == 201
    assert eventually(lambda: _logged(stack, "fine") is not None)
    entry = _logged(stack, "fine")
    assert entry is not None and entry["upstream_time"] != ""
    assert [p.read_bytes() for p in stack.media_files()] == [b"hello"]
    assert [r["size"] for r in stack.rows()] == [5]
    assert eventually(lambda: stack.temp_files() == [])
