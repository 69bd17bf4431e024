"""Idempotency-Key through Nginx: a retry gets the first answer, one key stores one file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, raw_request, status_of

from callback_api.catalog import SqliteCatalog, ago

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 64


def _put(
    stack: LiveStack, data: bytes, key: str | None, item: str = "42", name: str = "a.txt"
) -> httpx.Response:
    return httpx.put(
        f"{stack.url}/api/items/{item}/media",
        params={"filename": name},
        content=data,
        headers={"Idempotency-Key": key} if key is not None else {},
        timeout=60,
    )


def _assert_one_stored(stack: LiveStack, media_id: str) -> None:
    assert [row["id"] for row in stack.rows()] == [media_id]
    assert [p.name for p in stack.media_files()] == [media_id]
    assert eventually(lambda: stack.temp_files() == [])


def test_a_retry_with_the_same_key_returns_the_first_result(stack: LiveStack) -> None:
    first = _put(stack, b"hello", "k-1")
    again = _put(stack, b"hello", "k-1")
    assert first.status_code == again.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    _assert_one_stored(stack, first.json()["id"])


def test_the_same_key_on_another_item_is_another_upload(stack: LiveStack) -> None:
    one = _put(stack, b"hello", "shared", item="1")
    two = _put(stack, b"hello", "shared", item="2")
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert "idempotent-replayed" not in two.headers


def test_a_refused_first_try_leaves_the_key_free(stack: LiveStack) -> None:
    refused = _put(stack, b"<html><script>alert(1)</script></html>", "k-2", name="a.jpg")
    assert refused.status_code == 415  # refused after the key was claimed
    with sqlite3.connect(stack.catalog_path) as conn:
        assert conn.execute("SELECT count(*) FROM idempotency").fetchone() == (0,)
    empty = _put(stack, b"", "k-2")  # refused before
    assert empty.status_code == 400
    stored = _put(stack, b"now a good file", "k-2")
    assert stored.status_code == 201
    assert "idempotent-replayed" not in stored.headers
    _assert_one_stored(stack, stored.json()["id"])


def test_the_same_key_with_another_upload_is_422(stack: LiveStack) -> None:
    first = _put(stack, b"hello", "k-4")
    other_size = _put(stack, b"hello, world", "k-4")
    other_name = _put(stack, b"hello", "k-4", name="b.txt")
    assert first.status_code == 201
    assert other_size.status_code == other_name.status_code == 422
    assert other_size.json() == {
        "detail": "Idempotency-Key 'k-4' was first sent with a file of 5 bytes named 'a.txt', "
        "this request has a file of 12 bytes named 'a.txt'; use a new key for a new upload",
        "code": "ERR_IDEMPOTENCY_KEY_REUSED",
    }
    assert "named 'b.txt'" in other_name.json()["detail"]
    _assert_one_stored(stack, first.json()["id"])


def test_a_retried_form_is_replayed_with_all_its_files(stack: LiveStack) -> None:
    files = [("file", ("a.txt", b"aaa", "text/plain")), ("file", ("b.png", PNG, "image/png"))]

    def post() -> httpx.Response:
        return httpx.post(
            f"{stack.url}/api/items/42/media", files=files, headers={"Idempotency-Key": "form-1"}
        )

    first, again = post(), post()
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(first.json()["items"]) == 2
    assert len(stack.rows()) == len(stack.media_files()) == 2


def test_a_retry_after_the_media_was_deleted_is_409(stack: LiveStack) -> None:
    first = _put(stack, b"hello", "k-5").json()
    assert httpx.delete(f"{stack.url}/api/media/{first['id']}").status_code == 204
    again = _put(stack, b"hello", "k-5")
    assert again.status_code == 409
    assert again.json() == {
        "detail": "the upload with Idempotency-Key 'k-5' was stored and has since been deleted",
        "code": "ERR_CONFLICT",
    }
    assert stack.rows() == [] and stack.media_files() == []


def test_a_retry_while_the_first_try_runs_is_409_with_retry_after(stack: LiveStack) -> None:
    # A claim that has not finished, as the first of two concurrent requests leaves it.
    with sqlite3.connect(stack.catalog_path) as conn:
        conn.execute(
            "INSERT INTO idempotency (item_id, key, created_at, fingerprint) VALUES (?, ?, ?, ?)",
            ("42", "k-6", ago(0), json.dumps(["raw", 5, "a.txt"])),
        )
    running = _put(stack, b"hello", "k-6")
    assert running.status_code == 409
    assert running.headers["retry-after"] == "1"
    assert running.json() == {
        "detail": "the upload with Idempotency-Key 'k-6' is still in progress",
        "code": "ERR_IN_PROGRESS",
    }
    assert stack.rows() == [] and stack.media_files() == []


def test_a_claim_whose_request_never_finished_is_taken_over_when_stale(stack: LiveStack) -> None:
    # What a crash mid-callback leaves: a claim without a result, older than any request.
    stale = ago(2 * stack.settings.longest_request_seconds + 1)
    with sqlite3.connect(stack.catalog_path) as conn:
        conn.execute(
            "INSERT INTO idempotency (item_id, key, created_at) VALUES (?, ?, ?)",
            ("42", "k-7", stale),
        )
    taken = _put(stack, b"hello", "k-7")
    assert taken.status_code == 201
    assert "idempotent-replayed" not in taken.headers
    _assert_one_stored(stack, taken.json()["id"])


def test_an_expired_key_is_a_new_upload(make_stack: Callable[..., LiveStack]) -> None:
    stack = make_stack(uploads={"idempotency_ttl": "1s"})
    first = _put(stack, b"hello", "k-8")
    time.sleep(1.1)
    later = _put(stack, b"hello", "k-8")
    assert first.status_code == later.status_code == 201
    assert later.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in later.headers
    with sqlite3.connect(stack.catalog_path) as conn:
        assert conn.execute("SELECT count(*) FROM idempotency").fetchone() == (1,)


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (b"k" * 256, "'" + "k" * 40 + "...' (256 characters)"),
        (b"two words", "'two words' (9 characters)"),
        (b"caf\xc3\xa9", "'caf\u00c3\u00a9' (5 characters)"),  # UTF-8 bytes, read as Latin-1
        (b"tab\there", "'tab\\there' (8 characters)"),
        (b"", "'' (0 characters)"),
    ],
    ids=["too-long", "space", "non-ascii", "control", "empty"],
)
def test_a_key_that_is_not_1_to_255_visible_ascii_characters_is_400(
    stack: LiveStack, key: bytes, shown: str
) -> None:
    answer = raw_request(
        stack.settings.server.listen[0].port,
        b"PUT /api/items/42/media?filename=a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 5\r\nIdempotency-Key: " + key + b"\r\n\r\nhello",
    )
    assert status_of(answer) == 400
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body == {
        "detail": f"Idempotency-Key {shown} is not 1 to 255 visible ASCII characters",
        "code": "ERR_BAD_REQUEST",
    }
    assert stack.rows() == [] and stack.media_files() == []


def test_a_key_of_255_visible_characters_is_accepted(stack: LiveStack) -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3  # every visible character
    first, again = _put(stack, b"hello", key[:255]), _put(stack, b"hello", key[:255])
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"


def test_50_concurrent_uploads_with_one_key_store_one_file_and_one_row(
    make_stack: Callable[..., LiveStack],
) -> None:
    # Limits raised so that Nginx lets all 50 through at once (they are one client here).
    # Hashing 8 MB keeps the first landing busy while the others claim: both a replay and
    # a 409 happen in most runs; the assertions hold for any interleaving.
    stack = make_stack(
        limits={"upload_rate": "1000r/s", "upload_burst": 100, "upload_connections": 100},
        uploads={"hash_sha256": True},
    )
    data = b"same bytes " * 800_000
    answers: list[httpx.Response] = []
    start = threading.Barrier(50)

    def upload() -> None:
        start.wait()
        answers.append(_put(stack, data, "one-key", name="same.bin"))

    threads = [threading.Thread(target=upload) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    created = [a for a in answers if a.status_code == 201]
    firsts = [a for a in created if "idempotent-replayed" not in a.headers]
    assert len(firsts) == 1
    media_id = firsts[0].json()["id"]
    assert {a.json()["id"] for a in created} == {media_id}
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.json()["code"] == "ERR_IN_PROGRESS"
        assert busy.headers["retry-after"] == "1"
    _assert_one_stored(stack, media_id)


def test_a_catalog_from_before_fingerprints_is_migrated_and_keeps_its_claims(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE idempotency (item_id TEXT NOT NULL, key TEXT NOT NULL, "
            "media_ids TEXT, created_at TEXT NOT NULL, PRIMARY KEY (item_id, key))"
        )
        conn.execute("INSERT INTO idempotency VALUES ('42', 'old', '[\"ab\"]', ?)", (ago(0),))
    catalog = SqliteCatalog(path, durable=False)
    try:
        claim = catalog.claim_key("42", "old", '["raw", 1, "x"]', ago(3600), ago(3600))
    finally:
        catalog.close()
    # Not ours, its result kept; no fingerprint was recorded, so none is compared.
    assert (claim.owned, claim.media_ids, claim.fingerprint) == (False, ["ab"], "")
