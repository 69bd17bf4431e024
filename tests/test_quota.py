"""Per-item quotas through Nginx: 413 past a limit, nothing stored, exact under concurrency."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import DEV_CONFIG, LiveStack
from helpers import eventually

from callback_api.settings import SettingsError, load_settings

# Limits raised so that Nginx lets concurrent uploads from one address through.
OPEN_LIMITS = {"upload_rate": "1000r/s", "upload_burst": 100, "upload_connections": 100}


def _put(stack: LiveStack, data: bytes, item: str = "42", **headers: str) -> httpx.Response:
    return httpx.put(
        f"{stack.url}/api/items/{item}/media?filename=q.txt",
        content=data,
        headers=headers,
        timeout=60,
    )


def _assert_stored(stack: LiveStack, count: int) -> None:
    assert len(stack.rows()) == count
    assert len(stack.media_files()) == count
    assert eventually(lambda: stack.temp_files() == [])


def test_an_upload_past_the_file_quota_is_413_and_stores_nothing(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_files_per_item": 2})
    first = _put(stack, b"one").json()
    assert _put(stack, b"two").status_code == 201
    over = _put(stack, b"three")
    assert over.status_code == 413
    assert over.json() == {
        "detail": "item '42' holds 2 file(s); 1 more would pass its quota of 2 file(s)",
        "code": "ERR_QUOTA_EXCEEDED",
    }
    _assert_stored(stack, 2)
    # Another item has its own quota; a delete frees room at once.
    assert _put(stack, b"elsewhere", item="43").status_code == 201
    assert httpx.delete(f"{stack.url}/api/media/{first['id']}").status_code == 204
    assert _put(stack, b"three").status_code == 201
    _assert_stored(stack, 3)


def test_an_upload_past_the_byte_quota_is_413_and_stores_nothing(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_bytes_per_item": "1k"})
    assert _put(stack, b"a" * 600).status_code == 201
    over = _put(stack, b"b" * 600)
    assert over.status_code == 413
    assert over.json()["detail"] == (
        "item '42' holds 600 bytes; 600 more would pass its quota of 1024 bytes"
    )
    assert _put(stack, b"c" * 424).status_code == 201  # exactly full is allowed
    _assert_stored(stack, 2)


def test_a_form_that_would_pass_the_quota_is_refused_whole(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_files_per_item": 2})
    files = [("file", (f"{n}.txt", b"x" * (n + 1), "text/plain")) for n in range(3)]
    response = httpx.post(f"{stack.url}/api/items/42/media", files=files)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "item '42' holds 0 file(s); 3 more would pass its quota of 2 file(s)"
    )
    _assert_stored(stack, 0)


def test_concurrent_uploads_to_one_item_store_exactly_the_file_quota(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_files_per_item": 5}, limits=OPEN_LIMITS)
    statuses: list[int] = []
    start = threading.Barrier(30)

    def upload(n: int) -> None:
        start.wait()
        statuses.append(_put(stack, f"file {n}".encode()).status_code)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 5 + [413] * 25
    _assert_stored(stack, 5)


def test_concurrent_uploads_to_one_item_never_pass_the_byte_quota(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_bytes_per_item": "1m"}, limits=OPEN_LIMITS)
    statuses: list[int] = []
    start = threading.Barrier(20)

    def upload() -> None:
        start.wait()
        statuses.append(_put(stack, b"z" * 300_000).status_code)

    threads = [threading.Thread(target=upload) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 3 x 300 000 bytes fit in 1 MiB, a fourth does not.
    assert sorted(statuses) == [201] * 3 + [413] * 17
    assert sum(row["size"] for row in stack.rows()) == 900_000
    _assert_stored(stack, 3)


def test_an_upload_refused_by_the_quota_leaves_its_idempotency_key_free(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(quota={"max_files_per_item": 1})
    first = _put(stack, b"first").json()
    over = _put(stack, b"second", **{"Idempotency-Key": "k"})  # refused after the claim
    assert over.status_code == 413
    with sqlite3.connect(stack.catalog_path) as conn:
        assert conn.execute("SELECT count(*) FROM idempotency").fetchone() == (0,)
    assert httpx.delete(f"{stack.url}/api/media/{first['id']}").status_code == 204
    stored = _put(stack, b"second", **{"Idempotency-Key": "k"})
    assert stored.status_code == 201
    assert "idempotent-replayed" not in stored.headers


@pytest.mark.parametrize(
    ("quota", "problem"),
    [
        ({"max_files_per_item": 0}, "quota.max_files_per_item: Input should be greater than"),
        ({"max_bytes_per_item": "lots"}, "quota.max_bytes_per_item: Value error, 'lots' is not"),
        ({"max_items": 3}, "quota.max_items: Extra inputs are not permitted"),
    ],
)
def test_bad_quota_settings_name_the_field(
    tmp_path: Path, quota: dict[str, object], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings(DEV_CONFIG, {"quota": quota}, base_dir=tmp_path)
