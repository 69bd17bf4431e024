"""Content rules through Nginx: each refusal is a JSON 415/422 that leaves nothing behind, and
active content that is let in is only ever sent as a sandboxed attachment."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, png_chunk

SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'"


def png(width: int, height: int, pixels: bytes = b"\x00\x00\x00\x00\x00") -> bytes:
    """A PNG whose header claims width x height; the pixel data is whatever is given."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(pixels))
        + png_chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/items/42/media')</script></body></html>"
SVG_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SVG_ONLOAD = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'
# A GIF that is also a page: browsers that sniff find the <script>, image decoders a GIF.
POLYGLOT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
    b"<script>alert(document.domain)</script>"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# A JPEG whose comment segment (COM) holds a page.
POLYGLOT_JPEG = (
    JPEG[:20] + b"\xff\xfe\x00\x30<html><script>alert(1)</script></html>    " + JPEG[20:]
)
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _put(
    stack: LiveStack, name: str, data: bytes, content_type: str | None = None
) -> httpx.Response:
    return httpx.put(
        f"{stack.url}/api/items/42/media",
        params={"filename": name},
        content=data,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=30,
    )


def _assert_refused(response: httpx.Response, status: int, code: str, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": detail, "code": code}


def _assert_nothing_left(stack: LiveStack) -> None:
    assert stack.media_files() == []
    assert stack.rows() == []
    assert eventually(lambda: stack.temp_files() == [])


REFUSED = [
    pytest.param(
        "report.pdf",
        png(1, 1),
        None,
        "the file name ends in .pdf but the upload is image/png",
        id="png-named-pdf",
    ),
    pytest.param(
        "cat.png",
        JPEG,
        None,
        "the file name ends in .png but the upload is image/jpeg",
        id="jpeg-named-png",
    ),
    pytest.param(
        "cat.jpg",
        HTML,
        "image/jpeg",
        "the upload is active content a browser could run (text/html)",
        id="html-renamed-jpg",
    ),
    pytest.param(
        "x.svg",
        SVG_SCRIPT,
        "image/svg+xml",
        "the upload is active content a browser could run (image/svg+xml)",
        id="svg-with-script",
    ),
    pytest.param(
        "x.svg",
        SVG_ONLOAD,
        None,
        "the upload is active content a browser could run (image/svg+xml)",
        id="svg-with-onload",
    ),
    pytest.param(
        "dot.gif",
        POLYGLOT_GIF,
        "image/gif",
        "the upload is active content a browser could run (image/gif)",
        id="polyglot-gif",
    ),
    pytest.param(
        "photo.jpg",
        POLYGLOT_JPEG,
        "image/jpeg",
        "the upload is active content a browser could run (image/jpeg)",
        id="polyglot-jpeg",
    ),
    pytest.param(
        "doc.pdf",
        PDF,
        "image/png",
        "the upload is application/pdf but was declared image/png",
        id="pdf-declared-png",
    ),
]


@pytest.mark.parametrize(("name", "data", "declared", "detail"), REFUSED)
def test_refused_content_is_415_and_leaves_nothing(
    stack: LiveStack, name: str, data: bytes, declared: str | None, detail: str
) -> None:
    response = _put(stack, name, data, declared)
    _assert_refused(response, 415, "ERR_UNSUPPORTED_TYPE", detail)
    _assert_nothing_left(stack)


def test_html_renamed_jpg_is_refused_for_its_name_even_when_active_content_is_allowed(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(content={"active_content": "attachment"})
    response = _put(stack, "cat.jpg", HTML)
    _assert_refused(
        response,
        415,
        "ERR_UNSUPPORTED_TYPE",
        "the file name ends in .jpg but the upload is text/html",
    )
    _assert_nothing_left(stack)


def test_a_png_claiming_50000_by_50000_pixels_is_422_without_being_decoded(
    stack: LiveStack,
) -> None:
    # 2.5 billion pixels (10 GB decoded); the body is 80 bytes and is never decoded.
    bomb = png(50_000, 50_000)
    started = time.monotonic()
    response = _put(stack, "huge.png", bomb, "image/png")
    elapsed = time.monotonic() - started
    _assert_refused(
        response,
        422,
        "ERR_INVALID",
        "the image/png image is 50000 x 50000 = 2500000000 pixels; at most 100000000 are allowed",
    )
    assert len(bomb) < 100 and elapsed < 2
    _assert_nothing_left(stack)


def test_max_pixels_is_a_setting(make_stack: Callable[..., LiveStack]) -> None:
    stack = make_stack(content={"max_pixels": 100})
    assert _put(stack, "ok.png", png(10, 10)).status_code == 201
    response = _put(stack, "big.png", png(11, 10))
    _assert_refused(
        response,
        422,
        "ERR_INVALID",
        "the image/png image is 11 x 10 = 110 pixels; at most 100 are allowed",
    )
    assert len(stack.rows()) == 1


def test_allowed_types_refuse_what_is_not_listed(make_stack: Callable[..., LiveStack]) -> None:
    stack = make_stack(content={"allowed_types": ["image/*", "application/pdf"]})
    assert _put(stack, "a.png", png(1, 1)).status_code == 201
    assert _put(stack, "a.pdf", PDF).status_code == 201
    response = _put(stack, "notes.txt", b"just some text\n")
    _assert_refused(
        response,
        415,
        "ERR_UNSUPPORTED_TYPE",
        "text/plain is not an allowed type (allowed: image/*, application/pdf)",
    )
    assert len(stack.rows()) == len(stack.media_files()) == 2


def test_a_form_with_one_refused_part_stores_none_of_its_parts(stack: LiveStack) -> None:
    files = [
        ("file", ("ok.png", png(1, 1), "image/png")),
        ("file", ("cat.jpg", HTML, "image/jpeg")),
    ]
    response = httpx.post(f"{stack.url}/api/items/42/media", files=files)
    _assert_refused(
        response,
        415,
        "ERR_UNSUPPORTED_TYPE",
        "the upload is active content a browser could run (text/html)",
    )
    _assert_nothing_left(stack)


ACTIVE = [
    pytest.param("page.html", HTML, "text/html", id="html"),
    pytest.param("drawing.svg", SVG_ONLOAD, "image/svg+xml", id="svg"),
    pytest.param("dot.gif", POLYGLOT_GIF, "image/gif", id="polyglot-gif"),
]


@pytest.mark.parametrize(("name", "data", "served_as"), ACTIVE)
def test_active_content_allowed_in_is_only_ever_a_sandboxed_attachment(
    make_stack: Callable[..., LiveStack], name: str, data: bytes, served_as: str
) -> None:
    stack = make_stack(content={"active_content": "attachment"})
    created = _put(stack, name, data)
    assert created.status_code == 201, created.text
    assert created.json()["content_type"] == served_as
    url = f"{stack.url}/api/media/{created.json()['id']}/content"
    full = httpx.get(url)
    part = httpx.get(url, headers={"Range": "bytes=0-9"})
    head = httpx.head(url)
    for response, status in ((full, 200), (part, 206), (head, 200)):
        assert response.status_code == status
        headers = response.headers
        assert headers["content-type"] == served_as
        assert headers["content-disposition"] == f'attachment; filename="{name}"'
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == SANDBOX
    assert full.content == data
    assert part.content == data[:10]


def test_a_plain_image_is_inline_and_carries_no_sandbox(stack: LiveStack) -> None:
    created = _put(stack, "dot.png", png(1, 1)).json()
    response = httpx.get(f"{stack.url}/api/media/{created['id']}/content")
    assert response.headers["content-disposition"] == 'inline; filename="dot.png"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
