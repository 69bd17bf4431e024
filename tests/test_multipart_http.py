"""HTML-form uploads through Nginx: one body file, split on disk into one stored file per part."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from conftest import LiveStack
from helpers import eventually, rss_anon_kib, sha256_bytes, sha256_of

MB = 1024 * 1024
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _nothing_stored(stack: LiveStack) -> bool:
    return stack.rows() == [] and stack.media_files() == [] and stack.temp_files() == []


def test_form_with_several_files_and_fields_stores_each_file(stack: LiveStack) -> None:
    text = b"first file\r\n--not-the-boundary\r\n" * 10
    binary = os.urandom(300_000)
    response = httpx.post(
        f"{stack.url}/api/items/42/media",
        files=[
            ("file", ("notes.txt", text, "text/plain")),
            ("file", ("tiny.png", PNG_1X1, "image/png")),
            ("file", ("blob.bin", binary, "application/octet-stream")),
        ],
        data={"caption": "holiday ☀", "album": "2026"},
    )
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert [m["filename"] for m in items] == ["notes.txt", "tiny.png", "blob.bin"]
    assert [m["size"] for m in items] == [len(text), len(PNG_1X1), len(binary)]
    assert items[1]["content_type"] == "image/png"
    assert items[0]["fields"] == {"caption": "holiday ☀", "album": "2026"}
    for media, sent in zip(items, (text, PNG_1X1, binary), strict=True):
        assert sha256_of(stack.media_path(media["id"])) == sha256_bytes(sent)
    assert sorted(r["id"] for r in stack.rows("state = 'ready'")) == sorted(m["id"] for m in items)
    assert len(stack.media_files()) == 3
    assert eventually(lambda: stack.temp_files() == [])


def test_curl_form_upload_with_a_unicode_name_lands(stack: LiveStack, tmp_path: Path) -> None:
    sent = tmp_path / "résumé 東京.txt"
    sent.write_bytes(b"plain text\n" * 1000)
    result = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{sent}", f"{stack.url}/api/items/cv/media"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    [media] = json.loads(result.stdout)["items"]
    assert media["filename"] == "résumé 東京.txt"
    assert sha256_of(stack.media_path(media["id"])) == sha256_of(sent)


def test_form_without_a_closing_boundary_is_a_400_and_stores_nothing(stack: LiveStack) -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nabc'
    response = httpx.post(
        f"{stack.url}/api/items/42/media",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "ERR_MALFORMED_MULTIPART"
    assert "no closing boundary" in response.json()["detail"]
    assert eventually(lambda: _nothing_stored(stack))


def test_form_whose_second_part_is_malformed_stores_none_of_its_files(stack: LiveStack) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="good.txt"\r\n\r\ngood\r\n'
        b'--B\r\nContent-Disposition: form-data; name="g"; filename=""\r\n\r\nbad\r\n--B--\r\n'
    )
    response = httpx.post(
        f"{stack.url}/api/items/42/media",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert response.status_code == 400
    assert "no filename" in response.json()["detail"]
    assert eventually(lambda: _nothing_stored(stack))


def test_form_with_too_many_parts_is_refused_by_the_setting(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(multipart={"max_parts": 2})
    files = [("file", (f"{n}.txt", b"x", "text/plain")) for n in range(3)]
    response = httpx.post(f"{stack.url}/api/items/42/media", files=files)
    assert response.status_code == 400
    assert "max_parts=2" in response.json()["detail"]
    assert eventually(lambda: _nothing_stored(stack))


def test_form_with_only_text_fields_is_a_400(stack: LiveStack) -> None:
    response = httpx.post(f"{stack.url}/api/items/42/media", files={"note": (None, "hi")})
    assert response.status_code == 400
    assert response.json()["detail"] == "the form has no file part"
    assert eventually(lambda: _nothing_stored(stack))


def _sampled_peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_anon_kib(pid))
        time.sleep(0.01)


def _form_body(path: Path, boundary: str, size: int) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    block = os.urandom(MB)
    with path.open("wb") as copy:
        for n in range(size // MB):
            chunk = n.to_bytes(8, "big") + block[8:]
            copy.write(chunk)
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def test_200mb_form_upload_lands_with_flat_python_memory(stack: LiveStack, tmp_path: Path) -> None:
    warm = httpx.post(f"{stack.url}/api/items/42/media", files={"f": ("w.bin", b"w" * 1000)})
    assert warm.status_code == 201
    before = rss_anon_kib(stack.app_pid)
    stop, peak = threading.Event(), [before]
    sampler = threading.Thread(target=_sampled_peak_rss, args=(stack.app_pid, stop, peak))
    sampler.start()
    sent = tmp_path / "sent.bin"
    try:
        response = httpx.post(
            f"{stack.url}/api/items/42/media",
            content=_form_body(sent, "big-boundary", 200 * MB),
            headers={"Content-Type": "multipart/form-data; boundary=big-boundary"},
            timeout=300,
        )
    finally:
        stop.set()
        sampler.join()
    assert response.status_code == 201, response.text
    [media] = response.json()["items"]
    assert media["size"] == 200 * MB
    assert sha256_of(stack.media_path(media["id"])) == sha256_of(sent)
    # Anonymous memory only: the body's memory-mapped pages are the page cache's, not the
    # app's. A generous bound that fails if a part were read into a Python object (200 MB).
    growth_mib = (peak[0] - before) / 1024
    assert growth_mib < 32, f"app anonymous RSS peaked {growth_mib:.0f} MiB above its start"
    assert eventually(lambda: stack.temp_files() == [])
