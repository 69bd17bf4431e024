"""Static assets and protected downloads, both sent by a real Nginx with the headers they need."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import LiveStack

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
HASHED = "app.3f9a0c1d2e4b5a69.js"
GIF = (  # a 1x1 GIF
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _upload(stack: LiveStack, name: str, data: bytes, item: str = "42") -> str:
    response = httpx.put(
        f"{stack.url}/api/items/{item}/media", params={"filename": name}, content=data
    )
    assert response.status_code == 201, response.text
    media_id: str = response.json()["id"]
    return media_id


def test_download_is_authorised_by_the_app_and_sent_by_nginx_with_its_headers(
    stack: LiveStack,
) -> None:
    data = os.urandom(64 * 1024)
    media_id = _upload(stack, "café ü.bin", data)
    response = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    assert response.status_code == 200
    assert response.content == data
    headers = response.headers
    assert headers["content-disposition"] == (
        "attachment; filename=\"cafe u.bin\"; filename*=UTF-8''caf%C3%A9%20%C3%BC.bin"
    )
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"')
    assert "x-accel-redirect" not in headers
    # Bytes of no known type are never shown inline, so they get the sandbox too.
    assert headers["content-security-policy"] == SANDBOX


def test_an_image_is_shown_inline_without_a_sandbox(stack: LiveStack) -> None:
    media_id = _upload(stack, "dot.gif", GIF)
    response = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    assert response.content == GIF
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["content-disposition"] == 'inline; filename="dot.gif"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers


def test_a_byte_range_of_a_download_comes_from_nginx(stack: LiveStack) -> None:
    data = bytes(range(256)) * 40
    media_id = _upload(stack, "r.bin", data)
    part = httpx.get(
        f"{stack.url}/api/media/{media_id}/content", headers={"Range": "bytes=1000-1099"}
    )
    assert part.status_code == 206
    assert part.content == data[1000:1100]
    assert part.headers["content-range"] == f"bytes 1000-1099/{len(data)}"
    assert part.headers["x-content-type-options"] == "nosniff"
    tail = httpx.get(f"{stack.url}/api/media/{media_id}/content", headers={"Range": "bytes=-5"})
    assert tail.content == data[-5:]


def test_active_content_is_an_attachment_in_a_sandbox(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(content={"active_content": "attachment"})
    media_id = _upload(stack, "drawing.svg", SVG)
    response = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    assert response.status_code == 200
    assert response.content == SVG
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-disposition"] == 'attachment; filename="drawing.svg"'
    assert response.headers["content-security-policy"] == SANDBOX
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_stored_file_swapped_for_a_symlink_is_refused(stack: LiveStack, tmp_path: Path) -> None:
    media_id = _upload(stack, "s.txt", b"mine")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for download")
    [stored] = stack.media_files()
    stored.unlink()
    stored.symlink_to(secret)
    response = httpx.get(f"{stack.url}/api/media/{media_id}/content")
    assert response.status_code == 403
    assert b"not for download" not in response.content


def test_unknown_media_is_a_json_404_from_the_app(stack: LiveStack) -> None:
    response = httpx.get(f"{stack.url}/api/media/{'0' * 32}/content")
    assert response.status_code == 404
    assert response.json()["code"] == "ERR_NOT_FOUND"


def _static_stack(make_stack: Callable[..., LiveStack], static: Path) -> LiveStack:
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>landing</title>" + " " * 400)
    (static / "upload.css").write_text("body { margin: 0; }\n" * 50)
    (static / "assets" / HASHED).write_text("console.log('plain');\n" * 30)
    (static / "assets" / f"{HASHED}.gz").write_bytes(gzip.compress(b"/* precompressed */"))
    (static / ".landing-builds.json").write_text('{"builds": []}')
    return make_stack(paths={"static_root": str(static)})


def test_hashed_assets_are_cached_for_a_year_and_the_rest_revalidates(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    stack = _static_stack(make_stack, tmp_path / "static")
    hashed = httpx.get(f"{stack.url}/static/assets/{HASHED}")
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    plain = httpx.get(f"{stack.url}/static/upload.css")
    assert plain.headers["cache-control"] == "no-cache"
    again = httpx.get(
        f"{stack.url}/static/upload.css", headers={"If-None-Match": plain.headers["etag"]}
    )
    assert again.status_code == 304
    page = httpx.get(f"{stack.url}/")
    assert page.text.startswith("<!doctype html>")
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_text_assets_are_gzipped_and_precompressed_files_are_preferred(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    stack = _static_stack(make_stack, tmp_path / "static")
    with httpx.Client(headers={"Accept-Encoding": "gzip"}) as client:
        css = client.get(f"{stack.url}/static/upload.css")
        precompressed = client.get(f"{stack.url}/static/assets/{HASHED}")
    assert css.headers["content-encoding"] == "gzip"
    assert css.headers["vary"] == "Accept-Encoding"
    assert css.text == "body { margin: 0; }\n" * 50
    assert precompressed.headers["content-encoding"] == "gzip"
    assert precompressed.text == "/* precompressed */"
    identity = httpx.get(
        f"{stack.url}/static/assets/{HASHED}", headers={"Accept-Encoding": "identity"}
    )
    assert identity.text == "console.log('plain');\n" * 30


def test_dotfiles_under_static_are_not_served(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    stack = _static_stack(make_stack, tmp_path / "static")
    assert httpx.get(f"{stack.url}/static/.landing-builds.json").status_code == 404
