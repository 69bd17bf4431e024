from __future__ import annotations

import errno
import hashlib
import os
import random
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from helpers import sha256_bytes, sha256_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multipart_bodies import field_part, file_part, multipart_body, raw_part

from callback_api.errors import MalformedMultipart
from callback_api.multipart import (
    FilePart,
    Form,
    MultipartLimits,
    boundary_from_content_type,
    copy_part,
    parse_multipart,
)

BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"
DASH = b"--" + BOUNDARY


def _parse(path: Path, boundary: bytes = BOUNDARY, limits: MultipartLimits | None = None) -> Form:
    fd = os.open(path, os.O_RDONLY)
    try:
        return parse_multipart(fd, os.fstat(fd).st_size, boundary, limits or MultipartLimits())
    finally:
        os.close(fd)


def _land(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "body"
    path.write_bytes(body)
    return path


def _parse_body(tmp_path: Path, body: bytes, limits: MultipartLimits | None = None) -> Form:
    return _parse(_land(tmp_path, body), limits=limits)


def _copy_all(body_path: Path, form: Form, out_dir: Path) -> list[Path]:
    """Copy every file part into its own new file with copy_part; return their paths."""
    paths = []
    src = os.open(body_path, os.O_RDONLY)
    try:
        for index, part in enumerate(form.files):
            path = out_dir / f"part-{index}"
            dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                copy_part(src, part, dst)
            finally:
                os.close(dst)
            paths.append(path)
    finally:
        os.close(src)
    return paths


def _copied_sha256(tmp_path: Path, body: bytes) -> list[str]:
    body_path = _land(tmp_path, body)
    return [sha256_of(p) for p in _copy_all(body_path, _parse(body_path), tmp_path)]


# --- files round-trip -------------------------------------------------------------------------


def test_one_file_part_is_located_and_copied_exactly(tmp_path: Path) -> None:
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    body = multipart_body(BOUNDARY, [file_part("file", "cat.png", content, "image/png")])
    body_path = _land(tmp_path, body)

    form = _parse(body_path)

    offset = body.index(content)
    assert form == Form(
        files=[FilePart("file", "cat.png", "image/png", offset, len(content))], fields=[]
    )
    [copied] = _copy_all(body_path, form, tmp_path)
    assert sha256_of(copied) == sha256_bytes(content)


def test_several_file_parts_are_copied_in_order(tmp_path: Path) -> None:
    contents = [b"first file\n", b"second" * 1000, b"3"]
    parts = [file_part(f"file{i}", f"f{i}.bin", c) for i, c in enumerate(contents)]

    assert _copied_sha256(tmp_path, multipart_body(BOUNDARY, parts)) == [
        sha256_bytes(c) for c in contents
    ]


def test_content_with_boundary_fragments_round_trips(tmp_path: Path) -> None:
    content = (
        b"\r\n" + DASH[:-1] + b"\r\n"  # the delimiter minus its last byte
        b"x" + DASH + b"\r\n"  # the boundary not preceded by CRLF
        b"y" + DASH + b"--\r\n"  # a close delimiter not preceded by CRLF
        b"\r\n--" + b"\r\n" + DASH[:-1]
    )

    assert _copied_sha256(tmp_path, multipart_body(BOUNDARY, [file_part("f", "a", content)])) == [
        sha256_bytes(content)
    ]


def test_crlf_at_the_start_and_end_of_content_round_trips(tmp_path: Path) -> None:
    contents = [b"\r\nmiddle\r\n", b"\r\n\r\n", b"\r\n", b"\n\r"]
    parts = [file_part("f", f"{i}.txt", c) for i, c in enumerate(contents)]

    assert _copied_sha256(tmp_path, multipart_body(BOUNDARY, parts)) == [
        sha256_bytes(c) for c in contents
    ]


def test_random_binary_content_round_trips(tmp_path: Path) -> None:
    content = random.Random(1).randbytes(3 * 1024 * 1024)
    assert b"\r\n" + DASH not in content

    assert _copied_sha256(tmp_path, multipart_body(BOUNDARY, [file_part("f", "r", content)])) == [
        sha256_bytes(content)
    ]


def test_an_empty_file_part_is_kept_with_length_zero(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", "empty.txt", b"", "text/plain")])
    body_path = _land(tmp_path, body)

    form = _parse(body_path)

    offset = body.index(b"text/plain\r\n\r\n") + len(b"text/plain\r\n\r\n")
    assert form.files == [FilePart("file", "empty.txt", "text/plain", offset, 0)]
    [copied] = _copy_all(body_path, form, tmp_path)
    assert copied.read_bytes() == b""


def test_a_no_file_chosen_part_is_skipped(tmp_path: Path) -> None:
    parts = [file_part("avatar", "", b""), field_part("title", "cat")]

    assert _parse_body(tmp_path, multipart_body(BOUNDARY, parts)) == Form(
        files=[], fields=[("title", "cat")]
    )


def test_text_fields_are_kept_in_order_between_files(tmp_path: Path) -> None:
    parts = [
        field_part("title", "A cat"),
        file_part("file", "cat.jpg", b"jpeg", "image/jpeg"),
        field_part("note", "naïve ☕\r\nline two"),
        field_part("empty", ""),
        field_part("title", "again"),
    ]

    form = _parse_body(tmp_path, multipart_body(BOUNDARY, parts))

    assert form.fields == [
        ("title", "A cat"),
        ("note", "naïve ☕\r\nline two"),
        ("empty", ""),
        ("title", "again"),
    ]
    assert [(f.field_name, f.filename, f.length) for f in form.files] == [("file", "cat.jpg", 4)]


def test_a_part_without_content_type_gives_none(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", "a.bin", b"x", content_type=None)])

    assert _parse_body(tmp_path, body).files[0].content_type is None


# --- filenames ---------------------------------------------------------------------------------


def test_a_unicode_filename_sent_as_raw_utf8_is_decoded(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", "café ☕ 猫.txt", b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == "café ☕ 猫.txt"


def test_filename_star_is_preferred_over_filename(tmp_path: Path) -> None:
    headers = (
        b'Content-Disposition: form-data; name="file"; filename="cafe.txt"; '
        b"filename*=UTF-8''caf%C3%A9%20%E2%98%95.txt"
    )
    body = multipart_body(BOUNDARY, [raw_part(headers, b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == "café ☕.txt"


def test_filename_star_in_latin1_is_decoded(tmp_path: Path) -> None:
    headers = b"Content-Disposition: form-data; name=file; filename*=iso-8859-1'fr'caf%E9.txt"
    body = multipart_body(BOUNDARY, [raw_part(headers, b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == "café.txt"


def test_invalid_utf8_in_a_filename_is_replaced_not_refused(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", b"caf\xe9.txt", b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == "caf\ufffd.txt"


def test_quoted_pairs_are_unescaped_and_other_backslashes_kept(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", b'a\\"b\\\\c\\d.txt', b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == 'a"b\\c\\d.txt'


@pytest.mark.parametrize(("sent", "parsed"), [(b"\\", "\\"), (b"dir\\", "dir\\")])
def test_a_browser_name_ending_in_a_backslash_is_kept(
    tmp_path: Path, sent: bytes, parsed: str
) -> None:
    # Browsers never escape, so `filename="\"` is a name of one backslash, not an open quote
    # (found by hypothesis through Nginx: it was a 400).
    body = multipart_body(BOUNDARY, [file_part("file", sent, b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == parsed


def test_browser_percent_escapes_in_filename_are_kept_as_sent(tmp_path: Path) -> None:
    # Browsers escape '"' as %22 but leave '%' alone, so decoding would corrupt "100%22.txt".
    body = multipart_body(BOUNDARY, [file_part("file", "say %22hi%22%0D%0A.txt", b"x")])

    assert _parse_body(tmp_path, body).files[0].filename == "say %22hi%22%0D%0A.txt"


def test_unquoted_parameters_and_header_case_are_accepted(tmp_path: Path) -> None:
    headers = (
        b"content-disposition: Form-Data; NAME=file; Filename=plain.txt ;\r\n"
        b"CONTENT-TYPE: text/plain"
    )
    body = multipart_body(BOUNDARY, [raw_part(headers, b"x")])

    [part] = _parse_body(tmp_path, body).files
    assert (part.field_name, part.filename, part.content_type) == (
        "file",
        "plain.txt",
        "text/plain",
    )


# --- framing -----------------------------------------------------------------------------------


def test_preamble_and_epilogue_are_ignored(tmp_path: Path) -> None:
    preamble = b"This is the preamble, with " + DASH + b" inside a line.\r\n"
    epilogue = b"\r\nepilogue\r\n" + DASH + b"\r\n" + field_part("ghost", "boo") + b"\r\n"
    body = multipart_body(BOUNDARY, [field_part("a", "1")], preamble=preamble, epilogue=epilogue)

    assert _parse_body(tmp_path, body) == Form(files=[], fields=[("a", "1")])


def test_a_crlf_before_the_first_boundary_is_an_empty_preamble(tmp_path: Path) -> None:
    body = b"\r\n" + multipart_body(BOUNDARY, [field_part("a", "1")])

    assert _parse_body(tmp_path, body) == Form(files=[], fields=[("a", "1")])


def test_transport_padding_after_a_boundary_is_allowed(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [field_part("a", "1"), field_part("b", "2")], padding=b" \t ")

    assert _parse_body(tmp_path, body) == Form(files=[], fields=[("a", "1"), ("b", "2")])


def test_a_body_built_by_httpx_is_split(tmp_path: Path) -> None:
    content = random.Random(2).randbytes(100_000)
    request = httpx.Request(
        "POST",
        "http://landing.invalid/api/items/1/media",
        data={"title": "cat"},
        files={"file": ("cat.jpg", content, "image/jpeg")},
    )
    body_path = _land(tmp_path, request.read())

    form = _parse(body_path, boundary_from_content_type(request.headers["content-type"]))

    assert form.fields == [("title", "cat")]
    [(part, copied)] = zip(form.files, _copy_all(body_path, form, tmp_path), strict=True)
    assert (part.field_name, part.filename, part.content_type) == ("file", "cat.jpg", "image/jpeg")
    assert sha256_of(copied) == sha256_bytes(content)


def _capture_curl_upload(curl_args: list[str]) -> tuple[str, bytes]:
    """Run curl against a one-shot socket on a free port; return its Content-Type and body."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        with subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "-H", "Expect:", *curl_args, url]
        ) as curl:
            try:
                conn, _ = server.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        assert chunk, "curl closed before sending its headers"
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    lines = head.decode().split("\r\n")[1:]
                    headers = {
                        k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)
                    }
                    while len(body) < int(headers["content-length"]):
                        chunk = conn.recv(65536)
                        assert chunk, "curl closed before sending its body"
                        body += chunk
                    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
                assert curl.wait(timeout=10) == 0
            finally:
                if curl.poll() is None:
                    curl.kill()
    return headers["content-type"], body


def test_a_body_sent_by_curl_form_is_split(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    content = random.Random(3).randbytes(50_000)
    source.write_bytes(content)
    content_type, body = _capture_curl_upload(
        ["-F", "title=cat", "-F", f"file=@{source};type=image/png;filename=café ☕.png"]
    )
    body_path = _land(tmp_path, body)

    form = _parse(body_path, boundary_from_content_type(content_type))

    assert form.fields == [("title", "cat")]
    [part] = form.files
    assert (part.field_name, part.filename, part.content_type) == (
        "file",
        "café ☕.png",
        "image/png",
    )
    [copied] = _copy_all(body_path, form, tmp_path)
    assert sha256_of(copied) == sha256_bytes(content)


# --- malformed bodies --------------------------------------------------------------------------


def test_a_body_without_the_boundary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, b"just some bytes\r\n--another-boundary\r\n")
    assert caught.value.detail == f"multipart boundary {BOUNDARY!r} never appears in the body"


def test_an_empty_body_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, b"")
    assert caught.value.detail == f"multipart body is empty: boundary {BOUNDARY!r} never appears"


@pytest.mark.parametrize(
    ("cut", "part"),
    [
        pytest.param(lambda b: b[:-40], 1, id="inside-content"),
        pytest.param(lambda b: b[: b.index(b"filename")], 1, id="inside-headers"),
        pytest.param(lambda b: b[: b.rindex(DASH) + len(DASH)], 2, id="after-a-boundary"),
        pytest.param(lambda b: b[: b.rindex(DASH) + len(DASH) + 1], 2, id="half-a-close"),
    ],
)
def test_a_truncated_body_is_refused(
    tmp_path: Path, cut: Callable[[bytes], bytes], part: int
) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", "a.txt", b"hello " * 20)])

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, cut(body))
    assert caught.value.detail == (
        f"multipart body has no closing boundary: it ends inside part {part} (truncated?)"
    )


def test_content_containing_a_full_delimiter_followed_by_junk_is_refused(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("f", "a", b"x\r\n" + DASH + b"junk")])

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body)
    assert caught.value.detail == "unexpected bytes after the boundary opening part 2"


def test_more_parts_than_max_parts_are_refused(tmp_path: Path) -> None:
    body = multipart_body(
        BOUNDARY, [file_part("f", "", b""), field_part("a", "1"), field_part("b", "2")]
    )

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body, MultipartLimits(max_parts=2))
    assert caught.value.detail == "multipart body has more than max_parts=2"


def test_more_fields_than_max_fields_are_refused(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [field_part(f"f{i}", "v") for i in range(3)])

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body, MultipartLimits(max_fields=2))
    assert caught.value.detail == "multipart body has more than max_fields=2 text fields"


def test_a_field_larger_than_max_field_bytes_is_refused(tmp_path: Path) -> None:
    limits = MultipartLimits(max_field_bytes=4)
    assert _parse_body(tmp_path, multipart_body(BOUNDARY, [field_part("note", "1234")]), limits)

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, multipart_body(BOUNDARY, [field_part("note", "12345")]), limits)
    assert caught.value.detail == "field 'note' is larger than max_field_bytes=4"


def test_a_field_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, multipart_body(BOUNDARY, [field_part("note", b"caf\xe9")]))
    assert caught.value.detail.startswith("field 'note' is not valid UTF-8: ")


def test_part_headers_larger_than_max_part_header_bytes_are_refused(tmp_path: Path) -> None:
    body = multipart_body(BOUNDARY, [file_part("file", "x" * 9000, b"small content" * 1000)])

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body)
    assert caught.value.detail == "headers of part 1 are larger than max_part_header_bytes=8192"


def test_part_headers_exactly_at_max_part_header_bytes_are_accepted(tmp_path: Path) -> None:
    headers = b'Content-Disposition: form-data; name="f"; filename="' + b"x" * 50 + b'"'
    body = multipart_body(BOUNDARY, [raw_part(headers, b"content")])
    limits = MultipartLimits(max_part_header_bytes=len(headers))
    assert _parse_body(tmp_path, body, limits).files[0].length == 7

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body, MultipartLimits(max_part_header_bytes=len(headers) - 1))
    assert caught.value.detail == (
        f"headers of part 1 are larger than max_part_header_bytes={len(headers) - 1}"
    )


def test_a_file_part_with_content_but_no_filename_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, multipart_body(BOUNDARY, [file_part("avatar", "", b"data")]))
    assert caught.value.detail == "part 'avatar' has content but no filename"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (
            b"Content-Type: text/plain",
            "part 1 has no Content-Disposition header",
        ),
        (
            b"Content-Disposition form-data",
            "part 1 has a malformed header line 'Content-Disposition form-data'",
        ),
        (
            b'Content-Disposition: form-data; name="a"\r\nContent-Disposition: form-data; name="b"',
            "part 1 has two Content-Disposition headers",
        ),
        (
            b'Content-Disposition: attachment; name="a"',
            "malformed Content-Disposition of part 1: 'attachment; name=\"a\"' is not form-data",
        ),
        (
            b'Content-Disposition: form-data; filename="a.txt"',
            "malformed Content-Disposition of part 1: it has no name",
        ),
        (
            b'Content-Disposition: form-data; name=""',
            "malformed Content-Disposition of part 1: it has no name",
        ),
        (
            b'Content-Disposition: form-data; name="a',
            "malformed Content-Disposition of part 1: cannot parse '; name=\"a'",
        ),
        (
            b"Content-Disposition: form-data; name",
            "malformed Content-Disposition of part 1: cannot parse '; name'",
        ),
        (
            b"Content-Disposition: form-data; name=a b",
            "malformed Content-Disposition of part 1: cannot parse '; name=a b'",
        ),
        (
            b'Content-Disposition: form-data; name="a"; NAME="b"',
            "malformed Content-Disposition of part 1: parameter 'name' appears twice",
        ),
        (
            b'Content-Disposition: form-data; name="a"; filename*=a.txt',
            "malformed Content-Disposition of part 1: filename* 'a.txt' is not RFC 5987",
        ),
        (
            b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-16''a.txt",
            "malformed Content-Disposition of part 1: filename* has charset 'UTF-16'",
        ),
    ],
)
def test_malformed_part_headers_are_refused(tmp_path: Path, headers: bytes, detail: str) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, multipart_body(BOUNDARY, [raw_part(headers, b"x")]))
    assert caught.value.detail == detail


def test_a_part_without_headers_is_refused(tmp_path: Path) -> None:
    body = DASH + b"\r\n\r\ncontent\r\n" + DASH + b"--\r\n"

    with pytest.raises(MalformedMultipart) as caught:
        _parse_body(tmp_path, body)
    assert caught.value.detail == "part 1 has no Content-Disposition header"


def test_an_invalid_boundary_argument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        _parse(_land(tmp_path, b"--\r\n"), boundary=b"")
    assert caught.value.detail == "invalid multipart boundary b''"


# --- copy_part ---------------------------------------------------------------------------------


def test_copy_part_raises_when_the_body_file_is_shorter_than_the_part(tmp_path: Path) -> None:
    src_path = _land(tmp_path, b"0123456789")
    dst_path = tmp_path / "out"
    part = FilePart("file", "a.txt", None, offset=8, length=10)
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(dst_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(
            OSError, match="copied 0 bytes of part 'file' at body offset 10"
        ) as caught:
            copy_part(src, part, dst)
    finally:
        os.close(src)
        os.close(dst)
    assert caught.value.errno == errno.EIO
    assert dst_path.read_bytes() == b"89"


# --- boundary_from_content_type ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc123", b"abc123"),
        ('multipart/form-data; boundary="abc 123:?"', b"abc 123:?"),
        ("Multipart/Form-Data; BOUNDARY=abc", b"abc"),
        ("multipart/form-data;charset=utf-8;boundary=----x", b"----x"),
        ('multipart/form-data; boundary="' + "b" * 70 + '"', b"b" * 70),
        ("multipart/form-data; boundary=a;", b"a"),
    ],
)
def test_the_boundary_is_read_from_the_content_type(content_type: str, boundary: bytes) -> None:
    assert boundary_from_content_type(content_type) == boundary


@pytest.mark.parametrize(
    ("content_type", "detail"),
    [
        (
            "multipart/form-data",
            "Content-Type 'multipart/form-data' has no boundary parameter",
        ),
        (
            "multipart/form-data; charset=utf-8",
            "Content-Type 'multipart/form-data; charset=utf-8' has no boundary parameter",
        ),
        (
            "multipart/mixed; boundary=abc",
            "Content-Type 'multipart/mixed; boundary=abc' is not multipart/form-data",
        ),
        (
            "multipart/form-data; boundary=" + "b" * 71,
            "Content-Type has an invalid boundary parameter '" + "b" * 71 + "': RFC 2046 allows "
            "1 to 70 letters, digits or '()+_,-./:=? (no trailing space)",
        ),
        (
            'multipart/form-data; boundary=""',
            "Content-Type has an invalid boundary parameter '': RFC 2046 allows "
            "1 to 70 letters, digits or '()+_,-./:=? (no trailing space)",
        ),
        (
            'multipart/form-data; boundary="a{b}"',
            "Content-Type has an invalid boundary parameter 'a{b}': RFC 2046 allows "
            "1 to 70 letters, digits or '()+_,-./:=? (no trailing space)",
        ),
        (
            'multipart/form-data; boundary="ab "',
            "Content-Type has an invalid boundary parameter 'ab ': RFC 2046 allows "
            "1 to 70 letters, digits or '()+_,-./:=? (no trailing space)",
        ),
        (
            "multipart/form-data; boundary=é",
            "Content-Type has an invalid boundary parameter 'é': RFC 2046 allows "
            "1 to 70 letters, digits or '()+_,-./:=? (no trailing space)",
        ),
        (
            'multipart/form-data; boundary="abc',
            "malformed Content-Type 'multipart/form-data; boundary=\"abc': "
            "cannot parse '; boundary=\"abc'",
        ),
        (
            "multipart/form-data; boundary=a; boundary=b",
            "malformed Content-Type 'multipart/form-data; boundary=a; boundary=b': "
            "parameter 'boundary' appears twice",
        ),
    ],
)
def test_a_bad_boundary_parameter_is_refused(content_type: str, detail: str) -> None:
    with pytest.raises(MalformedMultipart) as caught:
        boundary_from_content_type(content_type)
    assert caught.value.detail == detail


# --- property: whatever goes in comes back out -------------------------------------------------

_BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
_FILENAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\r\n')


@st.composite
def _uploads(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    boundary = draw(st.text(_BCHARS, min_size=1, max_size=70).filter(lambda b: b[-1] != " "))
    raw = boundary.encode()
    dash = b"--" + raw
    delimiter = b"\r\n" + dash
    # Pieces that look like the delimiter without being it: every proper prefix of it, the
    # boundary away from a line start, a close delimiter inside a line, bare CR/LF.
    fragments = [delimiter[:k] for k in range(1, len(delimiter))]
    fragments += [dash, dash + b"--", b"x" + dash + b"\r\n", b"\r", b"\n", b"\r\n\r\n"]
    piece = st.one_of(st.binary(max_size=40), st.sampled_from(fragments))
    content = st.lists(piece, max_size=12).map(b"".join).filter(lambda c: delimiter not in c)
    files = draw(
        st.lists(st.tuples(st.text(_FILENAME_CHARS, min_size=1, max_size=30), content), max_size=6)
    )
    return raw, files


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upload=_uploads(), padding=st.sampled_from([b"", b" ", b"\t \t"]), preamble=st.booleans())
def test_any_files_round_trip_through_parse_and_copy(
    upload: tuple[bytes, list[tuple[str, bytes]]], padding: bytes, preamble: bool
) -> None:
    boundary, files = upload
    parts = [file_part(f"f{i}", name, content) for i, (name, content) in enumerate(files)]
    body = multipart_body(
        boundary, parts, preamble=b"preamble\r\n" if preamble else b"", padding=padding
    )
    with tempfile.TemporaryFile() as src:
        src.write(body)
        src.flush()
        form = parse_multipart(src.fileno(), len(body), boundary, MultipartLimits())
        assert [(p.field_name, p.filename) for p in form.files] == [
            (f"f{i}", name) for i, (name, _) in enumerate(files)
        ]
        for part, (_, content) in zip(form.files, files, strict=True):
            with tempfile.TemporaryFile() as dst:
                copy_part(src.fileno(), part, dst.fileno())
                dst.seek(0)
                assert dst.read() == content


# --- memory does not grow with the body --------------------------------------------------------

_SAMPLER = """
import select, sys
def rss_anon_kb():
    with open(f"/proc/{sys.argv[1]}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise SystemExit("no RssAnon line")
peak = rss_anon_kb()
print(peak, flush=True)
while not select.select([sys.stdin], [], [], 0.001)[0]:
    peak = max(peak, rss_anon_kb())
print(peak, flush=True)
"""


@contextmanager
def _peak_anon_growth() -> Iterator[list[int]]:
    """Peak growth of this process's anonymous memory (bytes) while the block runs.

    Sampled every millisecond from another process: a C call holding the GIL (mmap.find, a
    big read) cannot hide an allocation from it. mmap'd file pages are RssFile, not counted.
    """
    growth: list[int] = []
    command = [sys.executable, "-c", _SAMPLER, str(os.getpid())]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as sampler:
        assert sampler.stdin is not None and sampler.stdout is not None
        try:
            baseline = int(sampler.stdout.readline())
            yield growth
            sampler.stdin.write("stop\n")
            sampler.stdin.flush()
            growth.append((int(sampler.stdout.readline()) - baseline) * 1024)
        finally:
            if sampler.poll() is None:
                sampler.kill()


def _write_large_body(path: Path, file_sizes: list[int]) -> list[str]:
    """Write a multipart body with generated file parts; return each part's sha256."""
    chunk = random.Random(4).randbytes(1024 * 1024)
    assert b"\r\n" + DASH not in chunk + chunk
    digests = []
    with path.open("wb") as out:
        out.write(b"preamble\r\n")
        for index, size in enumerate(file_sizes):
            out.write(DASH + b"\r\n" + file_part(f"f{index}", f"big{index}.bin", b""))
            digest = hashlib.sha256()
            for _ in range(size // len(chunk)):
                out.write(chunk)
                digest.update(chunk)
            digests.append(digest.hexdigest())
            out.write(b"\r\n")
        out.write(DASH + b"--\r\n")
    return digests


def test_a_200_mb_body_is_split_and_copied_in_constant_memory(tmp_path: Path) -> None:
    body_path = tmp_path / "body"
    digests = _write_large_body(body_path, [120 * 1024 * 1024, 80 * 1024 * 1024])
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    with _peak_anon_growth() as growth:
        form = _parse(body_path)
        copied = _copy_all(body_path, form, out_dir)

    assert growth[0] < 16 * 1024 * 1024, f"anonymous memory grew by {growth[0]} bytes"
    assert [p.length for p in form.files] == [120 * 1024 * 1024, 80 * 1024 * 1024]
    assert [sha256_of(p) for p in copied] == digests


def test_the_memory_sampler_sees_a_body_read_into_python(tmp_path: Path) -> None:
    body_path = tmp_path / "body"
    _write_large_body(body_path, [64 * 1024 * 1024])

    with _peak_anon_growth() as growth:
        data = body_path.read_bytes()

    assert len(data) > 64 * 1024 * 1024
    assert growth[0] > 48 * 1024 * 1024
