"""A minimal HTTP/1.1 client for uploads and downloads on loopback.

Why not curl: on two cores the client competes with the server, and curl spends 0.5-0.75 s of
CPU per GiB copying the body through user space (BENCHMARKING.md). This client sends the body
with ``sendfile(2)`` from the page cache and drops a response body past its first 64 KiB in
the kernel (``MSG_TRUNC``), so the bytes cross no user-space buffer on our side; its own CPU
is still measured (per thread) and reported apart. No ``Expect: 100-continue``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BODY_KEPT = 64 * 1024  # enough for any JSON answer; larger bodies are counted, not kept
_BOUNDARY = "benchboundary7MA4YWxk"


@dataclass(frozen=True)
class Request:
    """An upload: a head, then ``prefix + file + suffix`` as the body (multipart or raw)."""

    method: str
    target: str
    content_type: str
    prefix: bytes = b""
    suffix: bytes = b""
    extra_headers: tuple[tuple[str, str], ...] = ()

    def head(self, host: str, length: int) -> bytes:
        lines = [
            f"{self.method} {self.target} HTTP/1.1",
            f"Host: {host}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.prefix) + length + len(self.suffix)}",
            *(f"{name}: {value}" for name, value in self.extra_headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    length: int
    seconds: float = 0.0
    keep_alive: bool = True

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Reader:
    """Buffered reading from a blocking socket into one reused buffer."""

    sock: socket.socket
    buffer: bytearray = field(default_factory=lambda: bytearray(1024 * 1024))
    pending: bytes = b""

    def _recv(self, limit: int, discard: bool = False) -> int:
        # MSG_TRUNC on TCP: the kernel drops the bytes without copying them to us, so a
        # download's body costs the client almost nothing; the server's work is unchanged.
        flags = socket.MSG_TRUNC if discard else 0
        count = self.sock.recv_into(self.buffer, min(limit, len(self.buffer)), flags)
        if count == 0:
            raise ConnectionError("the server closed the connection mid-response")
        return count

    def until(self, marker: bytes, limit: int = 65536) -> bytes:
        data = self.pending
        while marker not in data:
            if len(data) > limit:
                raise ConnectionError(f"no {marker!r} within {limit} bytes")
            data += self.buffer[: self._recv(len(self.buffer))]
        end = data.index(marker) + len(marker)
        self.pending = data[end:]
        return data[:end]

    def exactly(self, length: int) -> tuple[bytes, int]:
        """Read ``length`` bytes; keep only the first ``_BODY_KEPT`` of them."""
        take = min(length, len(self.pending))
        kept = bytearray(self.pending[: min(take, _BODY_KEPT)])
        self.pending = self.pending[take:]
        left = length - take
        while left:
            if len(kept) < _BODY_KEPT:
                count = self._recv(min(left, _BODY_KEPT - len(kept)))
                kept += self.buffer[:count]
            else:
                count = self._recv(left, discard=True)
            left -= count
        return bytes(kept), length


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ConnectionError(f"not an HTTP/1.x status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def read_response(reader: _Reader, method: str = "PUT") -> Response:
    status, headers = _parse_head(reader.until(b"\r\n\r\n"))
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body, length = b"", 0
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        kept = bytearray()
        length = 0
        while True:
            size = int(reader.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n")
                break
            data, _ = reader.exactly(size)
            kept += data[: max(0, _BODY_KEPT - len(kept))]
            length += size
            reader.until(b"\r\n")
        body = bytes(kept)
    elif "content-length" in headers:
        body, length = reader.exactly(int(headers["content-length"]))
    else:
        raise ConnectionError("a response without length: this client needs keep-alive framing")
    keep_alive = headers.get("connection", "").lower() != "close"
    return Response(status, headers, body, length, keep_alive=keep_alive)


class Connection:
    """One keep-alive connection to a loopback port; reconnects when the server closes it."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float | None = None) -> None:
        self.port = port
        self.host = host
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: _Reader | None = None

    def _open(self) -> tuple[socket.socket, _Reader]:
        if self._sock is None or self._reader is None:
            self._sock = socket.create_connection((self.host, self.port), self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = _Reader(self._sock)
        return self._sock, self._reader

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def upload(self, request: Request, payload: Path, length: int) -> Response:
        """Send one upload, body from ``payload`` by sendfile; times the whole exchange."""
        started = time.perf_counter()
        sock, reader = self._open()
        try:
            sock.sendall(request.head(f"{self.host}:{self.port}", length) + request.prefix)
            if length:
                with open(payload, "rb") as body:
                    sent = sock.sendfile(body, 0, length)
                if sent != length:
                    raise ConnectionError(f"sent {sent} of {length} bytes of {payload}")
            if request.suffix:
                sock.sendall(request.suffix)
            response = read_response(reader, request.method)
        except BaseException:
            self.close()
            raise
        response.seconds = time.perf_counter() - started
        if not response.keep_alive:
            self.close()
        return response

    def get(self, target: str) -> Response:
        started = time.perf_counter()
        sock, reader = self._open()
        try:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            response = read_response(reader, "GET")
        except BaseException:
            self.close()
            raise
        response.seconds = time.perf_counter() - started
        if not response.keep_alive:
            self.close()
        return response


def multipart_request(target: str, filename: str, boundary: str = _BOUNDARY) -> Request:
    """A one-file form, as a browser sends it: ``prefix + bytes + suffix``."""
    prefix = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    suffix = f"\r\n--{boundary}--\r\n".encode()
    return Request("POST", target, f"multipart/form-data; boundary={boundary}", prefix, suffix)


def raw_request(method: str, target: str) -> Request:
    return Request(method, target, "application/octet-stream")


def fill_payload(path: Path, length: int) -> None:
    """Random bytes (nothing compresses, nothing sniffs as a known type), written once."""
    if path.exists() and path.stat().st_size == length:
        return
    with open(path, "wb") as out:
        left = length
        while left:
            chunk = os.urandom(min(left, 4 * 1024 * 1024))
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
