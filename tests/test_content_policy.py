from __future__ import annotations

import struct
from typing import Literal

import pytest
from helpers import png_chunk
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_api.content_policy import ContentPolicy, Decision, decide
from callback_api.errors import Invalid, UnsupportedType

PERMISSIVE = ContentPolicy(active_content="attachment")


def png_header(width: int, height: int) -> bytes:
    """Signature and IHDR only: no pixel data exists for anything to decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)


def jpeg(width: int, height: int) -> bytes:
    frame = struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xc0" + frame


def gif(width: int = 1, height: int = 1) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x3b"


PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_a_png_is_stored_as_png_and_shown_inline() -> None:
    decision = decide(ContentPolicy(), png_header(1, 1), "image/png", "cat.png")
    assert decision == Decision("image/png", "inline", 1, 1)


def test_a_png_claiming_fifty_thousand_pixels_square_is_refused_without_decoding() -> None:
    head = png_header(50_000, 50_000)
    assert len(head) == 33  # the IHDR header and nothing else: there is nothing to decode
    with pytest.raises(Invalid) as caught:
        decide(ContentPolicy(), head, "image/png", "bomb.png")
    assert caught.value.status == 422
    assert caught.value.detail == (
        "the image/png image is 50000 x 50000 = 2500000000 pixels; at most 100000000 are allowed"
    )


def test_an_image_of_exactly_max_pixels_is_allowed() -> None:
    decision = decide(ContentPolicy(max_pixels=12), gif(4, 3), None, "a.gif")
    assert decision == Decision("image/gif", "inline", 4, 3)


def test_an_image_one_pixel_over_max_pixels_is_refused() -> None:
    with pytest.raises(Invalid, match="4 x 3 = 12 pixels; at most 11 are allowed"):
        decide(ContentPolicy(max_pixels=11), gif(4, 3), None, "a.gif")


def test_html_is_refused_as_active_content_by_default() -> None:
    with pytest.raises(UnsupportedType) as caught:
        decide(ContentPolicy(), HTML, "text/html", "page.html")
    assert caught.value.status == 415
    assert caught.value.detail == "the upload is active content a browser could run (text/html)"


def test_html_is_stored_as_an_attachment_when_the_policy_allows_active_content() -> None:
    decision = decide(PERMISSIVE, HTML, "text/html", "page.html")
    assert decision == Decision("text/html", "attachment", None, None)


def test_html_renamed_jpg_is_refused_for_its_extension() -> None:
    with pytest.raises(UnsupportedType) as caught:
        decide(PERMISSIVE, HTML, None, "holiday.jpg")
    assert caught.value.detail == "the file name ends in .jpg but the upload is text/html"


def test_a_jpeg_named_png_is_refused_for_its_extension() -> None:
    with pytest.raises(UnsupportedType, match=r"ends in \.png but the upload is image/jpeg"):
        decide(ContentPolicy(), jpeg(8, 8), None, "photo.png")


def test_a_jpeg_named_png_is_stored_when_extensions_are_not_checked() -> None:
    policy = ContentPolicy(check_extension=False)
    assert decide(policy, jpeg(8, 6), None, "photo.png") == Decision("image/jpeg", "inline", 8, 6)


def test_plain_text_named_html_is_refused_so_that_a_download_never_opens_as_a_page() -> None:
    with pytest.raises(UnsupportedType, match=r"ends in \.html but the upload is text/plain"):
        decide(ContentPolicy(), b"just words", None, "notes.html")


@pytest.mark.parametrize("filename", ["photo.JPG", "photo.jpeg", "photo.xyz", "photo", "photo."])
def test_matching_unknown_or_missing_extensions_are_not_contradictions(filename: str) -> None:
    assert decide(ContentPolicy(), jpeg(8, 6), None, filename) == (
        Decision("image/jpeg", "inline", 8, 6)
    )


def test_the_extension_is_read_from_the_sanitised_name() -> None:
    # Raw, the extension would be "png" plus a zero-width space: unknown, so never checked.
    with pytest.raises(UnsupportedType, match=r"ends in \.png but the upload is image/gif"):
        decide(ContentPolicy(), gif(), None, "photo.png\u200b")


def test_an_allowed_list_of_images_refuses_a_pdf() -> None:
    with pytest.raises(UnsupportedType) as caught:
        decide(ContentPolicy(allowed_types=("image/*",)), PDF, "application/pdf", "doc.pdf")
    assert caught.value.detail == (
        "application/pdf (declared application/pdf) is not an allowed type (allowed: image/*)"
    )


def test_an_allowed_list_of_images_accepts_any_image() -> None:
    policy = ContentPolicy(allowed_types=("image/*",))
    assert decide(policy, gif(2, 2), None, "a.gif") == Decision("image/gif", "inline", 2, 2)


def test_an_allowed_list_of_exact_types_refuses_other_subtypes() -> None:
    policy = ContentPolicy(allowed_types=("image/png", "application/pdf"))
    assert decide(policy, PDF, None, "a.pdf") == Decision("application/pdf", "inline", None, None)
    with pytest.raises(UnsupportedType, match=r"^image/gif is not an allowed type"):
        decide(policy, gif(), None, "a.gif")


def test_unknown_binary_is_refused_when_only_images_are_allowed() -> None:
    with pytest.raises(UnsupportedType, match=r"application/octet-stream \(declared image/png\)"):
        decide(ContentPolicy(allowed_types=("image/*",)), b"\x00\x01\x02\x03", "image/png", "x")


def test_a_jpeg_declared_as_png_is_tolerated_and_stored_as_jpeg() -> None:
    decision = decide(ContentPolicy(), jpeg(8, 6), "image/png", "photo.jpg")
    assert decision == Decision("image/jpeg", "inline", 8, 6)


def test_a_pdf_declared_as_an_image_is_refused() -> None:
    with pytest.raises(UnsupportedType) as caught:
        decide(ContentPolicy(), PDF, "image/png", "doc.pdf")
    assert caught.value.detail == "the upload is application/pdf but was declared image/png"


def test_text_declared_as_video_is_refused() -> None:
    with pytest.raises(
        UnsupportedType, match="the upload is text/plain but was declared video/mp4"
    ):
        decide(ContentPolicy(), b"hello", "video/mp4", "clip")


def test_html_declared_as_an_image_is_refused_even_when_active_content_is_allowed() -> None:
    with pytest.raises(UnsupportedType) as caught:
        decide(PERMISSIVE, HTML, "image/png", "x")
    assert caught.value.detail == "the upload is active content (text/html) declared as image/png"


def test_svg_declared_as_a_raster_image_is_refused() -> None:
    with pytest.raises(UnsupportedType, match=r"active content \(image/svg\+xml\) declared as"):
        decide(PERMISSIVE, SVG, "image/png", "logo.svg")


@pytest.mark.parametrize("declared", ["image/svg+xml", "application/xml", "text/xml", None])
def test_svg_is_stored_as_an_attachment_under_an_honest_label(declared: str | None) -> None:
    decision = decide(PERMISSIVE, SVG, declared, "logo.svg")
    assert decision == Decision("image/svg+xml", "attachment", None, None)


def test_svg_is_refused_by_default_as_active_content() -> None:
    with pytest.raises(UnsupportedType, match=r"active content a browser could run"):
        decide(ContentPolicy(), SVG, "image/svg+xml", "logo.svg")


def test_a_polyglot_gif_is_refused_by_default() -> None:
    with pytest.raises(UnsupportedType, match=r"active content a browser could run \(image/gif\)"):
        decide(ContentPolicy(), gif() + b"<script>alert(1)</script>", "image/gif", "cat.gif")


def test_a_polyglot_gif_is_an_attachment_when_active_content_is_allowed() -> None:
    head = gif() + b"<script>alert(1)</script>"
    assert decide(PERMISSIVE, head, "image/gif", "cat.gif") == (
        Decision("image/gif", "attachment", 1, 1)
    )


def test_a_polyglot_gif_declared_as_another_image_type_is_refused() -> None:
    with pytest.raises(
        UnsupportedType, match=r"active content \(image/gif\) declared as image/png"
    ):
        decide(PERMISSIVE, gif() + b"<svg onload=alert(1)>", "image/png", "cat.gif")


@pytest.mark.parametrize(
    "declared",
    [
        None,
        "",
        "application/octet-stream",
        "Application/Octet-Stream; charset=binary",
        "binary/octet-stream",
        "application/x-www-form-urlencoded",
        "*/*",
    ],
)
def test_generic_or_missing_declared_types_are_not_contradictions(declared: str | None) -> None:
    assert decide(ContentPolicy(), jpeg(8, 6), declared, "a.jpg") == (
        Decision("image/jpeg", "inline", 8, 6)
    )


@pytest.mark.parametrize("declared", ["image/jpg", "IMAGE/JPEG; q=1", "image/pjpeg"])
def test_declared_aliases_and_parameters_are_understood(declared: str) -> None:
    assert decide(ContentPolicy(), jpeg(8, 6), declared, "a.jpg") == (
        Decision("image/jpeg", "inline", 8, 6)
    )


@pytest.mark.parametrize(
    "declared", ["text/csv", "application/vnd.ms-excel", "application/json", "text/plain"]
)
def test_text_under_any_document_label_is_tolerated(declared: str) -> None:
    assert decide(ContentPolicy(), b"name,size\ncat,1\n", declared, "list.csv") == (
        Decision("text/plain", "attachment", None, None)
    )


def test_an_mp4_declared_as_audio_is_tolerated() -> None:
    assert decide(ContentPolicy(), MP4, "audio/mp4", "song.mp4") == (
        Decision("video/mp4", "inline", None, None)
    )


@pytest.mark.parametrize("declared", ["png", "image/", "image/*", "a/b/c", "image/png\r\nX: y"])
def test_a_declared_type_that_is_not_a_media_type_is_refused(declared: str) -> None:
    with pytest.raises(UnsupportedType, match="is not a media type"):
        decide(ContentPolicy(), jpeg(8, 6), declared, "a.jpg")


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"plain words", "a.txt", Decision("text/plain", "attachment", None, None)),
        (b'{"a": 1}', "a.json", Decision("application/json", "attachment", None, None)),
        (b"\x00\x01\x02", "a.bin", Decision("application/octet-stream", "attachment", None, None)),
        (
            b"PK\x03\x04" + b"\x00" * 26,
            "a.docx",
            Decision("application/zip", "attachment", None, None),
        ),
        (PDF, "a.pdf", Decision("application/pdf", "inline", None, None)),
        (MP4, "a.mp4", Decision("video/mp4", "inline", None, None)),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "a.mp3", Decision("audio/mpeg", "inline", None, None)),
    ],
)
def test_only_images_audio_video_and_pdf_are_shown_inline(
    head: bytes, filename: str, expected: Decision
) -> None:
    assert decide(ContentPolicy(), head, None, filename) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowed_types": ("image",)}, "allowed type 'image' is not"),
        ({"allowed_types": ("Image/PNG",)}, "allowed type 'Image/PNG' is not"),
        ({"allowed_types": ("*/png",)}, "allowed type '\\*/png' is not"),
        ({"max_pixels": 0}, "max_pixels is 0; it must be at least 1"),
        ({"active_content": "allow"}, "active_content is 'allow'"),
    ],
)
def test_a_bad_policy_is_refused_when_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ContentPolicy(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    head=st.one_of(
        st.binary(max_size=512),
        st.sampled_from([png_header(3, 2), jpeg(8, 6), gif(), PDF, HTML, SVG, MP4]).flatmap(
            lambda known: st.binary(max_size=64).map(lambda tail: known + tail)
        ),
    ),
    declared=st.one_of(
        st.none(), st.text(max_size=40), st.sampled_from(["image/png", "text/html"])
    ),
    filename=st.text(max_size=40),
    active_content=st.sampled_from(["refuse", "attachment"]),
)
def test_decide_either_decides_safely_or_raises_a_domain_error(
    head: bytes,
    declared: str | None,
    filename: str,
    active_content: Literal["refuse", "attachment"],
) -> None:
    try:
        decision = decide(ContentPolicy(active_content=active_content), head, declared, filename)
    except (UnsupportedType, Invalid):
        return
    assert decision.disposition in ("inline", "attachment")
    if decision.content_type in ("text/html", "image/svg+xml", "application/xml"):
        assert decision.disposition == "attachment"
        assert active_content == "attachment"
