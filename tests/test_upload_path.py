"""The upload path end to end: real Nginx lands the body, the callback stores and records it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import (
    app_client,
    eventually,
    raw_request,
    rss_kib,
    sha256_bytes,
    sha256_of,
    status_of,
)

MB = 1024 * 1024


def _upload(
    stack: LiveStack, method: str, path: Path, item: str = "42", **params: str
) -> httpx.Response:
    with path.open("rb") as body:
        return httpx.request(
            method,
            f"{stack.url}/api/items/{item}/media",
            params={"filename": path.name, **params},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=120,
        )


def _assert_stored(stack: LiveStack, answer: dict[str, object], sent: Path) -> None:
    media_id = str(answer["id"])
    stored = stack.media_path(media_id)
    assert sha256_of(stored) == sha256_of(sent)
    [row] = stack.rows(f"id = '{media_id}'")
    assert row["state"] == "ready"
    assert row["size"] == sent.stat().st_size == answer["size"]
    assert stack.media_files() == [stored]


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("size", [1024, 50 * MB])
def test_raw_upload_lands_the_same_bytes(
    stack: LiveStack, payload: Callable[[int], Path], method: str, size: int
) -> None:
    sent = payload(size)
    response = _upload(stack, method, sent)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["item_id"] == "42"
    assert answer["filename"] == sent.name
    assert answer["url"] == f"/api/media/{answer['id']}/content"
    assert response.headers["location"] == answer["url"]
    _assert_stored(stack, answer, sent)
    assert eventually(lambda: stack.temp_files() == [])


def test_chunked_upload_lands_the_same_bytes(
    stack: LiveStack, payload: Callable[[int], Path]
) -> None:
    sent = payload(3 * MB + 17)
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-T",
            str(sent),
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect:",
            f"{stack.url}/api/items/42/media?filename=chunked.bin",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    answer = json.loads(result.stdout)
    assert answer["size"] == sent.stat().st_size
    _assert_stored(stack, answer, sent)


def test_http2_upload_lands_the_same_bytes(
    stack: LiveStack, payload: Callable[[int], Path]
) -> None:
    sent = payload(2 * MB + 5)
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "-T",
            str(sent),
            "-w",
            "\n%{http_version}",
            f"http://127.0.0.1:{stack.h2c_port}/api/items/42/media?filename=h2.bin",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    body, version = result.stdout.rsplit(b"\n", 1)
    assert version == b"2"
    _assert_stored(stack, json.loads(body), sent)


def test_client_sent_upload_path_is_ignored(stack: LiveStack) -> None:
    before = sha256_of(Path("/etc/passwd"))
    response = httpx.put(
        f"{stack.url}/api/items/42/media?filename=x.txt",
        content=b"hello from the client\n",
        headers={"X-Upload-Path": "/etc/passwd", "X-Upload-Length": "5"},
    )
    assert response.status_code == 201, response.text
    stored = stack.media_files()
    assert [p.read_bytes() for p in stored] == [b"hello from the client\n"]
    assert sha256_of(Path("/etc/passwd")) == before
    assert os.stat("/etc/passwd").st_nlink == 1


def test_client_sent_upload_path_without_a_body_is_not_used(stack: LiveStack) -> None:
    answer = raw_request(
        stack.settings.server.listen[0].port,
        b"PUT /api/items/42/media?filename=p HTTP/1.1\r\nHost: x\r\n"
        b"X-Upload-Path: /etc/passwd\r\nConnection: close\r\n\r\n",
    )
    assert status_of(answer) == 400
    assert b"no body" in answer
    assert stack.rows() == [] and stack.media_files() == []


def test_callback_is_refused_from_outside_nginx(stack: LiveStack) -> None:
    through_nginx = httpx.post(
        f"{stack.url}/internal/landed/items/42?filename=a", headers={"X-Upload-Path": "/etc/passwd"}
    )
    assert through_nginx.status_code == 404
    with app_client(stack.settings.app.socket) as app:
        no_secret = app.post("/internal/landed/items/42", headers={"X-Upload-Path": "/etc/passwd"})
        wrong_secret = app.post(
            "/internal/landed/items/42",
            headers={"X-Upload-Path": "/etc/passwd", "X-Landing-Secret": "x" * 43},
        )
    assert no_secret.status_code == wrong_secret.status_code == 403
    assert no_secret.json()["code"] == "ERR_FORBIDDEN"
    assert stack.rows() == [] and stack.media_files() == []


def test_callback_with_the_secret_still_refuses_paths_outside_the_temp_dir(
    stack: LiveStack,
) -> None:
    with app_client(stack.settings.app.socket) as app:
        answer = app.post(
            "/internal/landed/items/42",
            headers={"X-Upload-Path": "/etc/passwd", "X-Landing-Secret": stack.secret},
        )
    assert answer.status_code == 403
    assert "not under the temp dir" in answer.json()["detail"]
    assert stack.rows() == [] and stack.media_files() == []
    assert os.stat("/etc/passwd").st_nlink == 1


def test_landed_file_of_another_user_is_refused(stack: LiveStack) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root to create a file owned by another user")
    fake = stack.temp_dir / "1" / "32" / "0000000321"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not nginx's")
    os.chown(fake, 65534, 65534)
    with app_client(stack.settings.app.socket) as app:
        answer = app.post(
            "/internal/landed/items/42",
            headers={"X-Upload-Path": str(fake), "X-Landing-Secret": stack.secret},
        )
    assert answer.status_code == 403
    assert "not owned by the app's user" in answer.json()["detail"]
    assert stack.rows() == [] and stack.media_files() == []


def test_put_without_a_body_is_a_400(stack: LiveStack) -> None:
    answer = raw_request(
        stack.settings.server.listen[0].port,
        b"PUT /api/items/42/media?filename=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert status_of(answer) == 400
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body == {"detail": "the request has no body", "code": "ERR_BAD_REQUEST"}
    assert stack.rows() == [] and stack.media_files() == []


def test_zero_byte_upload_is_refused_as_empty(stack: LiveStack) -> None:
    response = httpx.put(f"{stack.url}/api/items/42/media?filename=empty.txt", content=b"")
    assert response.status_code == 400
    assert response.json()["code"] == "ERR_EMPTY_UPLOAD"
    assert stack.rows() == [] and stack.media_files() == []
    assert eventually(lambda: stack.temp_files() == [])


def test_zero_byte_upload_is_stored_when_allowed(make_stack: Callable[..., LiveStack]) -> None:
    stack = make_stack(uploads={"allow_empty": True})
    response = httpx.put(f"{stack.url}/api/items/42/media?filename=empty.txt", content=b"")
    assert response.status_code == 201
    assert response.json()["size"] == 0
    assert [p.stat().st_size for p in stack.media_files()] == [0]


def test_upload_over_the_limit_is_413_and_stores_nothing(
    make_stack: Callable[..., LiveStack], payload: Callable[[int], Path]
) -> None:
    stack = make_stack(uploads={"max_body_size": "1m"})
    response = _upload(stack, "PUT", payload(2 * MB))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"] == "the upload is larger than the limit of 1m"
    assert stack.temp_files() == []
    assert stack.rows() == [] and stack.media_files() == []


def test_app_down_gives_502_and_leaves_no_temp_file(
    stack: LiveStack, payload: Callable[[int], Path]
) -> None:
    stack.stack.stop_app()
    response = _upload(stack, "PUT", payload(5 * MB))
    assert response.status_code == 502
    assert response.json()["detail"] == "the app is not answering"
    assert eventually(lambda: stack.temp_files() == [])
    assert stack.media_files() == []


def test_client_abort_mid_body_leaves_no_temp_file_and_no_row(stack: LiveStack) -> None:
    port = stack.settings.server.listen[0].port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"PUT /api/items/42/media?filename=cut.bin HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 10485760\r\n\r\n" + os.urandom(MB)
        )
        assert eventually(lambda: len(stack.temp_files()) == 1)
    assert eventually(lambda: stack.temp_files() == [])
    time.sleep(0.2)
    assert stack.rows() == [] and stack.media_files() == []


def test_metadata_never_returns_file_content(stack: LiveStack) -> None:
    marker = b"MARKER-" + os.urandom(8).hex().encode()
    created = httpx.put(f"{stack.url}/api/items/7/media?filename=m.txt", content=marker * 100)
    media_id = created.json()["id"]
    listing = httpx.get(f"{stack.url}/api/items/7/media")
    one = httpx.get(f"{stack.url}/api/media/{media_id}")
    for response in (created, listing, one):
        assert response.headers["content-type"] == "application/json"
        assert marker not in response.content
    assert [m["id"] for m in listing.json()["items"]] == [media_id]
    assert one.json()["size"] == len(marker) * 100


def test_listing_is_paginated_oldest_first(stack: LiveStack) -> None:
    ids = [
        httpx.put(f"{stack.url}/api/items/p/media?filename={n}.txt", content=b"x" * (n + 1)).json()[
            "id"
        ]
        for n in range(3)
    ]
    first = httpx.get(f"{stack.url}/api/items/p/media", params={"limit": 2}).json()
    assert [m["id"] for m in first["items"]] == ids[:2]
    second = httpx.get(
        f"{stack.url}/api/items/p/media", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [m["id"] for m in second["items"]] == ids[2:]
    assert second["next_cursor"] is None


def test_delete_removes_row_and_file(stack: LiveStack) -> None:
    media_id = httpx.put(f"{stack.url}/api/items/42/media?filename=d.txt", content=b"bye").json()[
        "id"
    ]
    assert len(stack.media_files()) == 1
    response = httpx.delete(f"{stack.url}/api/media/{media_id}")
    assert response.status_code == 204
    assert stack.rows() == [] and stack.media_files() == []
    assert httpx.get(f"{stack.url}/api/media/{media_id}").status_code == 404
    assert httpx.delete(f"{stack.url}/api/media/{media_id}").json()["code"] == "ERR_NOT_FOUND"


def test_content_is_sent_by_nginx_with_ranges_and_etag(stack: LiveStack) -> None:
    data = os.urandom(100_000)
    media_id = httpx.put(f"{stack.url}/api/items/42/media?filename=r.bin", content=data).json()[
        "id"
    ]
    full = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    assert full.status_code == 200
    assert sha256_bytes(full.content) == sha256_bytes(data)
    assert full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes"
    assert "x-accel-redirect" not in full.headers
    part = httpx.get(f"{stack.url}/api/media/{media_id}/content", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    again = httpx.get(
        f"{stack.url}/api/media/{media_id}/content", headers={"If-None-Match": full.headers["etag"]}
    )
    assert again.status_code == 304


def test_stored_media_is_not_reachable_by_its_internal_path(stack: LiveStack) -> None:
    media_id = httpx.put(f"{stack.url}/api/items/42/media?filename=s.txt", content=b"s").json()[
        "id"
    ]
    internal = f"/_landing/media/{media_id[:2]}/{media_id[2:4]}/{media_id}"
    assert httpx.get(stack.url + internal).status_code == 404


def test_durable_upload_lands_the_same_bytes(
    make_stack: Callable[..., LiveStack], payload: Callable[[int], Path]
) -> None:
    stack = make_stack(uploads={"durable": True})
    sent = payload(4 * MB)
    response = _upload(stack, "PUT", sent)
    assert response.status_code == 201
    _assert_stored(stack, response.json(), sent)


def test_python_memory_does_not_grow_across_20_uploads_of_50mb(
    stack: LiveStack, payload: Callable[[int], Path]
) -> None:
    sent = payload(50 * MB)
    for _ in range(3):  # warm-up: imports, thread pool, SQLite caches
        assert _upload(stack, "PUT", sent).status_code == 201
    before = rss_kib(stack.app_pid)
    for _ in range(20):
        assert _upload(stack, "PUT", sent).status_code == 201
    growth_kib = rss_kib(stack.app_pid) - before
    # A generous bound: one 50 MB upload read into memory would be 51200 KiB.
    assert growth_kib < 8 * 1024, f"app RSS grew by {growth_kib} KiB over 20 uploads"
    assert len(stack.rows()) == 23
    assert len(stack.media_files()) == 23
