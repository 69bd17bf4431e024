"""CORS answered by Nginx, per-client limits answered as JSON 429, client timeouts, all live."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually

ORIGIN = "https://app.example"
MB = 1024 * 1024


@pytest.fixture
def cors_stack(make_stack: Callable[..., LiveStack]) -> LiveStack:
    return make_stack(cors={"allowed_origins": [ORIGIN]}, uploads={"max_body_size": "1m"})


def test_nginx_answers_the_preflight_of_an_upload_from_an_allowed_origin(
    cors_stack: LiveStack,
) -> None:
    response = httpx.options(
        f"{cors_stack.url}/api/items/42/media",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )
    assert response.status_code == 204
    headers = response.headers
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-methods"] == "GET, PUT, POST, DELETE, OPTIONS"
    assert headers["access-control-allow-headers"] == (
        "Content-Type, Idempotency-Key, Authorization"
    )
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == "Origin"
    assert cors_stack.rows() == []


def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_stack: LiveStack) -> None:
    response = httpx.options(
        f"{cors_stack.url}/api/media/{'0' * 32}",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert response.status_code == 204
    assert [h for h in response.headers if h.startswith("access-control-")] == []


def test_an_upload_from_an_allowed_origin_can_read_location_and_replay_headers(
    cors_stack: LiveStack,
) -> None:
    headers = {"Origin": ORIGIN, "Idempotency-Key": "k-1"}
    url = f"{cors_stack.url}/api/items/42/media?filename=a.txt"
    first = httpx.put(url, content=b"hello", headers=headers)
    again = httpx.put(url, content=b"hello", headers=headers)
    assert first.status_code == again.status_code == 201
    for response in (first, again):
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["access-control-expose-headers"] == (
            "Location, Idempotent-Replayed"
        )
    assert again.headers["idempotent-replayed"] == "true"
    content = httpx.get(f"{cors_stack.url}{first.headers['location']}", headers={"Origin": ORIGIN})
    assert content.content == b"hello"
    assert content.headers["access-control-allow-origin"] == ORIGIN


def test_nginx_own_413_is_readable_by_a_page_on_an_allowed_origin(cors_stack: LiveStack) -> None:
    response = httpx.put(
        f"{cors_stack.url}/api/items/42/media?filename=big.bin",
        content=os.urandom(2 * MB),
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.json()["code"] == "ERR_HTTP_413"


def test_uploads_over_the_rate_are_refused_with_a_json_429_before_the_body_is_stored(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(limits={"upload_rate": "1r/m", "upload_burst": 0})
    url = f"{stack.url}/api/items/42/media?filename=a.txt"
    assert httpx.put(url, content=b"first").status_code == 201
    refused = httpx.put(url, content=b"second")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {
        "detail": "too many requests from this address; retry later",
        "code": "ERR_HTTP_429",
    }
    assert len(stack.rows()) == 1
    assert stack.temp_files() == []
    # Reads are not rate limited.
    assert httpx.get(f"{stack.url}/api/items/42/media").status_code == 200


def test_a_second_concurrent_upload_over_the_connection_limit_is_a_429(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(limits={"upload_connections": 1})
    port = stack.settings.server.listen[0].port
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(
            b"PUT /api/items/42/media?filename=slow.bin HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2097152\r\nConnection: close\r\n\r\n" + os.urandom(MB)
        )
        assert eventually(lambda: len(stack.temp_files()) == 1)
        second = httpx.put(f"{stack.url}/api/items/42/media?filename=b.txt", content=b"b")
        assert second.status_code == 429
        assert second.json()["code"] == "ERR_HTTP_429"
        slow.sendall(os.urandom(MB))
        assert slow.recv(65536).startswith(b"HTTP/1.1 201 ")


def test_a_client_that_never_finishes_its_headers_is_dropped(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(limits={"header_timeout": "1s"})
    port = stack.settings.server.listen[0].port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/items/42/media HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert 0.8 < time.monotonic() - started < 5


def test_a_stalled_body_times_out_and_leaves_no_temp_file(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(uploads={"body_timeout": "1s"})
    port = stack.settings.server.listen[0].port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"PUT /api/items/42/media?filename=stall.bin HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2097152\r\n\r\n" + os.urandom(MB)
        )
        assert eventually(lambda: len(stack.temp_files()) == 1)
        assert eventually(lambda: stack.temp_files() == [], timeout=5)
    assert stack.rows() == []
