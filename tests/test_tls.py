"""A TLS environment as prod renders it (HTTP/2, HSTS, redirect), live on free ports."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import LiveStack, free_port
from helpers import self_signed


def test_a_tls_environment_serves_http2_with_hsts_and_redirects_plain_http(
    make_stack: Callable[..., LiveStack], tmp_path: Path, payload: Callable[[int], Path]
) -> None:
    cert, key = self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "localhost")
    port, plain = free_port(), free_port()
    stack = make_stack(
        server={
            "listen": [{"address": "127.0.0.1", "port": port, "ssl": True, "http2": True}],
            "tls": {
                "certificate": str(cert),
                "key": str(key),
                "hsts_max_age": 63072000,
                "redirect_http_port": plain,
            },
        }
    )
    sent = payload(3 * 1024 * 1024)
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(cert), "--http2", "-T", str(sent), "-D", "-",
         "-w", "\n%{http_version}", f"https://localhost:{port}/api/items/42/media?filename=t.bin"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    head, rest = result.stdout.split(b"\r\n\r\n", 1)
    body, version = rest.rsplit(b"\n", 1)
    assert version == b"2"
    assert head.startswith(b"HTTP/2 201")
    assert b"strict-transport-security: max-age=63072000; includeSubDomains" in head
    media_id = json.loads(body)["id"]
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        content = client.get(f"https://localhost:{port}/api/media/{media_id}/content")
    assert content.content == sent.read_bytes()
    assert content.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    redirect = httpx.get(f"http://127.0.0.1:{plain}/api/items/42/media?x=1")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://localhost:{port}/api/items/42/media?x=1"
    assert stack.temp_files() == []
