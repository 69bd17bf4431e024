"""Hostile file names through Nginx, in a raw PUT's query string and in a form's filename:
stored under the sanitised name (in the row, the answer and the download header) or refused,
never a 500, never a file outside the media root."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, raw_request, sha256_of, status_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multipart_bodies import file_part, multipart_body

from callback_api.filenames import content_disposition, sanitize_filename

BOUNDARY = b"----landingFilenames7MA4YWxkTrZu0gW"
FORM_TYPE = "multipart/form-data; boundary=" + BOUNDARY.decode()
LONG_2_BYTE = "\u00e9" * 2048  # 4 KiB of UTF-8
LONG_3_BYTE = "\u8a9e" * 1366  # 4 KiB of UTF-8

# (id, name as the client means it, name stored)
HOSTILE = [
    ("dot-dot-slash", "../../etc/passwd", "passwd"),
    ("absolute", "/etc/passwd", "passwd"),
    ("backslashes", "..\\..\\windows\\system32\\x.dll", "x.dll"),
    ("nul", "a\x00b.txt", "ab.txt"),
    ("fullwidth-dots", "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd", "passwd"),
    ("two-fullwidth-dots", "\uff0e\uff0e", "upload"),
    ("rtl-override", "invoice\u202efdp.exe", "invoicefdp.exe"),
    ("zero-width-and-bom", "\ufeffre\u200bport.txt", "report.txt"),
    ("dot-dot", "..", "upload"),
    ("nfd", "cafe\u0301.txt", "caf\u00e9.txt"),
    ("line-break", "a\r\nX-Evil: 1.txt", "aX-Evil: 1.txt"),
    ("hidden-dotfile", ".htaccess", "htaccess"),
    ("4kb-of-2-byte-characters", LONG_2_BYTE, "\u00e9" * 127),
    ("4kb-of-3-byte-characters", LONG_3_BYTE, "\u8a9e" * 85),
]
# What a form's quoted-string cannot carry: browsers send %0D%0A and %22 instead.
FORM_UNSAFE = {"line-break"}


def _root_files(stack: LiveStack) -> set[Path]:
    root = stack.media_root.parent
    return {p for p in root.rglob("*") if p.is_file()}


def _assert_stored_safely(
    stack: LiveStack, answer: dict[str, object], expected: str, before: set[Path]
) -> None:
    media_id = str(answer["id"])
    assert answer["filename"] == expected
    assert len(expected.encode()) <= 255
    [row] = stack.rows(f"id = '{media_id}'")
    assert row["filename"] == expected
    stored = stack.media_path(media_id)
    assert stored.read_bytes() == b"hello"
    assert eventually(lambda: stack.temp_files() == [])
    # Nothing new next to the media root but the books Nginx and SQLite keep.
    books = (stack.settings.nginx.log_dir, stack.settings.nginx.runtime_dir)
    new = {
        p
        for p in _root_files(stack) - before
        if not p.is_relative_to(stack.media_root)
        and not any(p.is_relative_to(d) for d in books)
        and not p.name.startswith(stack.catalog_path.name)
    }
    assert new == set()
    assert stored in stack.media_files()
    download = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    disposition = download.headers["content-disposition"]
    assert disposition == content_disposition(row["disposition"], expected)
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition


@pytest.fixture
def passwd_unchanged() -> Callable[[], None]:
    digest = sha256_of(Path("/etc/passwd"))

    def check() -> None:
        assert sha256_of(Path("/etc/passwd")) == digest
        assert os.stat("/etc/passwd").st_nlink == 1

    return check


@pytest.mark.parametrize(
    ("raw", "expected"),
    [pytest.param(raw, expected, id=case) for case, raw, expected in HOSTILE if len(raw) < 100],
)
def test_a_hostile_name_in_the_query_is_stored_sanitised(
    stack: LiveStack, raw: str, expected: str, passwd_unchanged: Callable[[], None]
) -> None:
    before = _root_files(stack)
    response = httpx.put(
        f"{stack.url}/api/items/42/media", params={"filename": raw}, content=b"hello"
    )
    assert response.status_code == 201, response.text
    _assert_stored_safely(stack, response.json(), expected, before)
    passwd_unchanged()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(raw, expected, id=case)
        for case, raw, expected in HOSTILE
        if case not in FORM_UNSAFE
    ],
)
def test_a_hostile_name_in_a_form_is_stored_sanitised(
    stack: LiveStack, raw: str, expected: str, passwd_unchanged: Callable[[], None]
) -> None:
    before = _root_files(stack)
    body = multipart_body(BOUNDARY, [file_part("file", raw, b"hello", "text/plain")])
    response = httpx.post(
        f"{stack.url}/api/items/42/media", content=body, headers={"Content-Type": FORM_TYPE}
    )
    assert response.status_code == 201, response.text
    [answer] = response.json()["items"]
    _assert_stored_safely(stack, answer, expected, before)
    passwd_unchanged()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Typed into the URL by hand: the app decodes %2f to "/" and keeps the last part.
        (b"..%2f..%2fetc%2fpasswd", "passwd"),
        (b"%2fetc%2fpasswd", "passwd"),
        (b"a%00b.txt", "ab.txt"),
        (b"%E2%80%AEtxt.exe", "txt.exe"),
        # Encoded twice: one decoding leaves "%2f", a harmless three-character text.
        (b"..%252f..%252fetc%252fpasswd", "%2f..%2fetc%2fpasswd"),
    ],
)
def test_an_encoded_name_typed_into_the_url_is_decoded_once_and_sanitised(
    stack: LiveStack, query: bytes, expected: str, passwd_unchanged: Callable[[], None]
) -> None:
    before = _root_files(stack)
    answer = raw_request(
        stack.settings.server.listen[0].port,
        b"PUT /api/items/42/media?filename=" + query + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    assert status_of(answer) == 201
    _assert_stored_safely(stack, json.loads(answer.split(b"\r\n\r\n", 1)[1]), expected, before)
    passwd_unchanged()


@pytest.mark.parametrize("raw", [LONG_2_BYTE, LONG_3_BYTE], ids=["2-byte", "3-byte"])
def test_a_4kb_name_in_the_query_is_a_json_414_and_stores_nothing(
    stack: LiveStack, raw: str
) -> None:
    # Percent-encoded it is 12 KiB, more than Nginx's 8k request line buffer.
    response = httpx.put(
        f"{stack.url}/api/items/42/media", params={"filename": raw}, content=b"hello"
    )
    assert response.status_code == 414
    assert response.json()["code"] == "ERR_HTTP_414"
    assert stack.rows() == [] and stack.media_files() == [] and stack.temp_files() == []


def test_raw_non_ascii_bytes_in_the_url_are_refused_and_store_nothing(stack: LiveStack) -> None:
    # Browsers and curl --data-urlencode always percent-encode; Nginx passes raw bytes on,
    # and uvicorn refuses a request target that is not ASCII with its own plain-text 400.
    answer = raw_request(
        stack.settings.server.listen[0].port,
        "PUT /api/items/42/media?filename=invoice\u202efdp.exe HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    assert status_of(answer) == 400
    assert stack.rows() == [] and stack.media_files() == []
    assert eventually(lambda: stack.temp_files() == [])


@pytest.mark.parametrize(
    "request_line",
    [
        b"PUT /api/items/42/media?filename=my cat.jpg HTTP/1.1",
        b"PUT /api/items/42/media?filename=a\x00b HTTP/1.1",
        b"PUT /api/items/42/media?filename=\x7f\x01 HTTP/1.1",
        b"GARBAGE",
    ],
    ids=["space", "raw-nul", "raw-controls", "garbage"],
)
def test_a_name_that_breaks_the_request_line_is_a_json_400_not_a_500(
    stack: LiveStack, request_line: bytes
) -> None:
    answer = raw_request(
        stack.settings.server.listen[0].port,
        request_line + b"\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    assert status_of(answer) == 400
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "detail": "the request is malformed (request line, headers or chunked framing); "
        "nothing was stored",
        "code": "ERR_HTTP_400",
    }
    assert stack.rows() == [] and stack.media_files() == [] and stack.temp_files() == []


@pytest.mark.parametrize(
    ("filename", "detail"),
    [
        (b"a\r\nX-Evil: 1.txt", "malformed Content-Disposition of part 1: cannot parse"),
        (b'a".txt', "malformed Content-Disposition of part 1: cannot parse"),
        (b"", "part 'file' has content but no filename"),
    ],
    ids=["line-break", "bare-quote", "empty"],
)
def test_a_name_a_form_cannot_carry_is_a_400_and_stores_nothing(
    stack: LiveStack, filename: bytes, detail: str
) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", filename, b"hello", "text/plain")])
    response = httpx.post(
        f"{stack.url}/api/items/42/media", content=body, headers={"Content-Type": FORM_TYPE}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "ERR_MALFORMED_MULTIPART"
    assert response.json()["detail"].startswith(detail)
    assert stack.rows() == [] and stack.media_files() == []
    assert eventually(lambda: stack.temp_files() == [])


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_SETTINGS
@given(name=st.text(max_size=200))
def test_any_name_in_the_query_is_stored_as_its_sanitised_form(stack: LiveStack, name: str) -> None:
    response = httpx.put(
        f"{stack.url}/api/items/42/media", params={"filename": name}, content=b"hello"
    )
    assert response.status_code == 201, (name, response.text)
    assert response.json()["filename"] == sanitize_filename(name)


@_SETTINGS
@given(name=st.text(st.characters(exclude_characters='"\r\n'), min_size=1, max_size=200))
def test_any_name_a_form_can_carry_is_stored_as_its_sanitised_form(
    stack: LiveStack, name: str
) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", name, b"hello", "text/plain")])
    response = httpx.post(
        f"{stack.url}/api/items/42/media", content=body, headers={"Content-Type": FORM_TYPE}
    )
    assert response.status_code == 201, (name, response.text)
    assert response.json()["items"][0]["filename"] == sanitize_filename(name)
