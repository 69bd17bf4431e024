"""Small helpers shared by the tests: hashing, raw HTTP, polling, the app's socket, PNG chunks
and throwaway certificates."""

from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC over type and data (RFC 2083)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def self_signed(cert: Path, key: Path, common_name: str) -> tuple[Path, Path]:
    """A throwaway P-256 certificate and key, valid for two days, written by openssl."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def raw_request(port: int, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send bytes exactly as given (curl and httpx normalise requests) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def app_client(socket_path: Path) -> httpx.Client:
    """A client that talks to the app directly on its unix socket, bypassing Nginx."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://app")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def rss_anon_kib(pid: int) -> int:
    """Anonymous resident memory: the heap, not pages of memory-mapped files."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise LookupError(f"no RssAnon for pid {pid}")
