from __future__ import annotations

import random
import struct
import zlib

import pytest
from helpers import png_chunk
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_api.sniff import HEAD_SIZE, Sniffed, sniff


def png(width: int = 1, height: int = 1, extra: bytes = b"") -> bytes:
    """A complete PNG: one black RGB pixel row per line, extra chunks before IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * 3 * width for _ in range(min(height, 2))))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width: int = 640, height: int = 480, sof: int = 0xC0, before_sof: bytes = b"") -> bytes:
    """SOI, JFIF APP0, a quantisation table, then a start-of-frame header for three components."""
    app0 = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    dqt = _segment(0xDB, b"\x00" + bytes(range(1, 65)))
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + before_sof + dqt + _segment(sof, frame) + b"\xff\xd9"


def gif(width: int = 1, height: int = 1, version: bytes = b"89a") -> bytes:
    return (
        b"GIF"
        + version
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"  # two-colour global table
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
    )


def _riff(form: bytes, body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + form + body


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    data = b"\x2f" + bits.to_bytes(4, "little") + b"\x00"
    return _riff(b"WEBP", b"VP8L" + struct.pack("<I", len(data)) + data)


def webp_lossy(width: int, height: int) -> bytes:
    data = b"\x30\x01\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8
    return _riff(b"WEBP", b"VP8 " + struct.pack("<I", len(data)) + data)


def webp_extended(width: int, height: int) -> bytes:
    data = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    data += (height - 1).to_bytes(3, "little")
    return _riff(b"WEBP", b"VP8X" + struct.pack("<I", len(data)) + data)


def bmp(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 4 + len(body)) + body + b"\x00\x00\x00\x08free"


def ebml(doc_type: bytes) -> bytes:
    body = b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
    body += b"\x42\x82" + bytes([0x80 | len(doc_type)]) + doc_type
    body += b"\x42\x87\x81\x04\x42\x85\x81\x02"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67"


def mp3_frames(count: int = 3) -> bytes:
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    header = b"\xff\xfb\x90\x00"
    return (header + b"\x00" * 413) * count


PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"


def test_head_size_is_eight_kibibytes() -> None:
    assert HEAD_SIZE == 8192


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (png(1, 1), Sniffed("image/png", False, 1, 1)),
        (png(1920, 1080), Sniffed("image/png", False, 1920, 1080)),
        (jpeg(640, 480), Sniffed("image/jpeg", False, 640, 480)),
        (jpeg(3, 2, sof=0xC2), Sniffed("image/jpeg", False, 3, 2)),
        (gif(1, 1), Sniffed("image/gif", False, 1, 1)),
        (gif(300, 200, b"87a"), Sniffed("image/gif", False, 300, 200)),
        (webp_lossless(1, 1), Sniffed("image/webp", False, 1, 1)),
        (webp_lossless(16383, 2), Sniffed("image/webp", False, 16383, 2)),
        (webp_lossy(320, 240), Sniffed("image/webp", False, 320, 240)),
        (webp_extended(20000, 3), Sniffed("image/webp", False, 20000, 3)),
        (bmp(4, -3), Sniffed("image/bmp", False, 4, 3)),
        (b"II*\x00\x08\x00\x00\x00", Sniffed("image/tiff")),
        (b"MM\x00*\x00\x00\x00\x08", Sniffed("image/tiff")),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10", Sniffed("image/x-icon")),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), Sniffed("image/avif")),
        (ftyp(b"mif1", b"mif1", b"avif"), Sniffed("image/avif")),
        (ftyp(b"heic", b"mif1", b"heic"), Sniffed("image/heic")),
        (ftyp(b"mif1", b"mif1", b"miaf"), Sniffed("image/heif")),
    ],
)
def test_sniff_recognises_images_and_reads_their_size(head: bytes, expected: Sniffed) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
        (ftyp(b"XAVC", b"mp42", b"iso2"), "video/mp4"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
        (ftyp(b"3gp4", b"isom", b"3gp4"), "video/3gpp"),
        (b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat", "video/quicktime"),
        (ebml(b"webm"), "video/webm"),
        (ebml(b"matroska"), "video/x-matroska"),
        (_riff(b"AVI ", b"LIST\x04\x00\x00\x00hdrl"), "video/x-msvideo"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "video/x-flv"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + mp3_frames(1), "audio/mpeg"),
        (mp3_frames(3), "audio/mpeg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis", "audio/ogg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora", "video/ogg"),
        (_riff(b"WAVE", b"fmt \x10\x00\x00\x00\x01\x00\x01\x00"), "audio/wav"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"FORM\x00\x00\x00\x20AIFFCOMM", "audio/aiff"),
        (PDF, "application/pdf"),
        (b"%!PS-Adobe-3.0\n", "application/postscript"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
        (b"PK\x05\x06" + b"\x00" * 18, "application/zip"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "application/x-7z-compressed"),
        (b"Rar!\x1a\x07\x01\x00", "application/vnd.rar"),
        (b"\xfd7zXZ\x00\x00\x04", "application/x-xz"),
        (b"\x28\xb5\x2f\xfd\x24\x00", "application/zstd"),
        (b"wOF2\x00\x01\x00\x00", "font/woff2"),
        (b"\x00\x01\x00\x00\x00\x0f\x00\x80", "font/ttf"),
    ],
)
def test_sniff_recognises_media_documents_and_archives(head: bytes, expected: str) -> None:
    assert sniff(head) == Sniffed(expected)


def test_an_ftyp_box_of_256_bytes_is_not_taken_for_an_icon() -> None:
    head = struct.pack(">I", 256) + b"ftypisom\x00\x00\x02\x00" + b"isom" * 60
    assert sniff(head) == Sniffed("video/mp4")


def test_an_ftyp_box_with_unknown_brands_is_unknown_binary() -> None:
    assert sniff(ftyp(b"crx ", b"crx ", b"isoX")) == Sniffed("application/octet-stream")


def test_mpeg_sync_bytes_without_a_second_frame_are_unknown_binary() -> None:
    assert sniff(b"\xff\xfb\x90\x00" + b"\x01" * 100) == Sniffed("application/octet-stream")


@pytest.mark.parametrize(
    "head",
    [
        b"<!DOCTYPE html><html><body>hi</body></html>",
        b"<!doctype HTML>\n<title>x</title>",
        b'<!DOCTYPE   html PUBLIC "-//W3C//DTD HTML 4.01//EN">',
        b"  \r\n\t<HTML lang=en>",
        b"<html>",
        b"<head><meta charset=utf-8>",
        b"<script>alert(1)</script>",
        b"<iframe src=//evil>",
        b"<body onload=alert(1)>",
        b"<a href=//evil>x</a>",
        b"<p>hello",
        b"<b>bold</b>",
        b"<!-- a comment -->\n<div>x</div>",
        b"<!-- a comment -->plain words",
        b"\xef\xbb\xbf<html>",
        b"<html><body>caf\xe9 (Latin-1, not UTF-8)</body></html>",
        "\ufeff<html><script>alert(1)</script>".encode("utf-16-le"),
        "\ufeff<!DOCTYPE html>".encode("utf-16-be"),
    ],
)
def test_sniff_finds_html_by_its_first_element(head: bytes) -> None:
    assert sniff(head) == Sniffed("text/html", active=True)


@pytest.mark.parametrize(
    "head",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<svg><foreignObject><body xmlns="http://www.w3.org/1999/xhtml"/></foreignObject></svg>',
        b'<svg><a href="javascript:alert(1)"><text>x</text></a></svg>',
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- Generator: editor -->\n<svg version="1.1">',
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n<svg>',
        b"<!-- drawn by hand -->\n<svg viewBox='0 0 1 1'/>",
        b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg"/>',
    ],
)
def test_sniff_calls_every_svg_active_scripted_or_not(head: bytes) -> None:
    assert sniff(head) == Sniffed("image/svg+xml", active=True)


def test_a_script_beyond_the_head_is_why_every_svg_counts_as_active() -> None:
    padding = b"<!--" + b" " * HEAD_SIZE + b"-->"
    document = b"<svg>" + padding + b"<script>alert(1)</script></svg>"
    assert b"<script" not in document[:HEAD_SIZE]
    assert sniff(document[:HEAD_SIZE]) == Sniffed("image/svg+xml", active=True)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?><note><to>x</to></note>', "application/xml"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml">',
            "application/xhtml+xml",
        ),
        (
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>',
            "application/xhtml+xml",
        ),
        (b'<?xml version="1.0"?><?xml-stylesheet href="a.xsl"?><doc/>', "application/xml"),
    ],
)
def test_sniff_calls_xml_active(head: bytes, expected: str) -> None:
    assert sniff(head) == Sniffed(expected, active=True)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"hello world\n", "text/plain"),
        (b"", "text/plain"),
        (b"name,size\ncat.jpg,12\n", "text/plain"),
        (b"<foo>not a known element</foo>", "text/plain"),
        (b"<abbr>x</abbr>", "text/plain"),
        (b"BMW 3 series, 1998\n", "text/plain"),
        ("caf\u00e9 \u65e5\u672c \U0001f600\n".encode(), "text/plain"),
        ("\u00e9t\u00e9".encode()[:-1], "text/plain"),  # the head ends inside a character
        (b"\xef\xbb\xbfwith a byte order mark", "text/plain"),
        ("\ufeffUTF-16 text".encode("utf-16-le"), "text/plain"),
        (b'{"a": [1, 2.5, "x"], "b": null}', "application/json"),
        (b"  [1, 2, 3]\n", "application/json"),
        (b'{"a": [1, 2', "text/plain"),  # a head that ends inside the document
        (b"[section]\nkey = value\n", "text/plain"),
        (b"[" * 5000 + b"]" * 5000, "text/plain"),  # nesting too deep to parse
    ],
)
def test_sniff_recognises_text_by_its_content(head: bytes, expected: str) -> None:
    assert sniff(head) == Sniffed(expected)


@pytest.mark.parametrize(
    "head",
    [
        random.Random(8).randbytes(4096),
        b"caf\xe9 au lait",  # Latin-1: not UTF-8
        b"text with a NUL\x00 byte",
        b"text with an escape \x01",
        b"\xff\xfe\x00\xdcA\x00",  # UTF-16 with a lone low surrogate
        b"\x7fELF\x02\x01\x01\x00",
        b"MZ\x90\x00\x03\x00\x00\x00",
    ],
)
def test_sniff_falls_back_to_octet_stream_for_unknown_binary(head: bytes) -> None:
    assert sniff(head) == Sniffed("application/octet-stream")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (gif() + b"<script>alert(1)</script>", Sniffed("image/gif", True, 1, 1)),
        (gif() + b"<ScRiPt src=//evil>", Sniffed("image/gif", True, 1, 1)),
        (
            png(2, 2, png_chunk(b"tEXt", b"Comment\x00<html><body>x")),
            Sniffed("image/png", True, 2, 2),
        ),
        (
            jpeg(8, 8, before_sof=_segment(0xFE, b"<iframe src=//evil>")),
            Sniffed("image/jpeg", True, 8, 8),
        ),
        (PDF + b"<!DOCTYPE html>", Sniffed("application/pdf", True)),
        (PDF + b"<svg onload=alert(1)>", Sniffed("application/pdf", True)),
        (
            PDF + b"<h:script xmlns:h='http://www.w3.org/1999/xhtml'>",
            Sniffed("application/pdf", True),
        ),
        (b"PK\x03\x04" + b"\x00" * 26 + b"<object data=x>", Sniffed("application/zip", True)),
        (gif() + "<script>".encode("utf-16-le"), Sniffed("image/gif", True, 1, 1)),
        (b"notes: remember to escape <script> tags\n", Sniffed("text/plain", True)),
        (b"\x00\x01binary<embed src=x>", Sniffed("application/octet-stream", True)),
    ],
)
def test_sniff_flags_polyglots_that_hide_markup_in_another_format(
    head: bytes, expected: Sniffed
) -> None:
    assert sniff(head) == expected


def test_xmp_metadata_in_an_image_is_not_mistaken_for_markup() -> None:
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\x00<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>"
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description>"
        b"<dc:format>image/jpeg</dc:format><dc:title><rdf:Alt><rdf:li>x</rdf:li></rdf:Alt>"
        b"</dc:title><xmp:MetadataDate>2024</xmp:MetadataDate><tiff:Orientation>1"
        b"</tiff:Orientation><dc:description/><xmpMM:History/></rdf:Description></rdf:RDF>"
        b"</x:xmpmeta><?xpacket end='w'?>"
    )
    assert sniff(jpeg(8, 8, before_sof=_segment(0xE1, xmp))) == Sniffed("image/jpeg", False, 8, 8)


def test_jpeg_size_beyond_the_head_is_unknown() -> None:
    exif = _segment(0xE1, b"Exif\x00\x00" + b"\x00" * 9000)
    head = jpeg(4000, 3000, before_sof=exif)[:HEAD_SIZE]
    assert sniff(head) == Sniffed("image/jpeg")


def test_jpeg_with_fill_bytes_and_restart_markers_before_the_frame_still_has_a_size() -> None:
    head = b"\xff\xd8\xff\xff\xff\xd0" + jpeg(5, 7)[2:]
    assert sniff(head) == Sniffed("image/jpeg", False, 5, 7)


def test_jpeg_height_zero_means_defined_later_so_the_size_is_unknown() -> None:
    assert sniff(jpeg(100, 0)) == Sniffed("image/jpeg")


@pytest.mark.parametrize("length", [3, 8, 16, 20, 24, 26, 30])
def test_truncated_image_headers_give_no_size_and_no_error(length: int) -> None:
    for head in (
        png(5, 5),
        jpeg(5, 5),
        gif(5, 5),
        webp_lossy(5, 5),
        webp_extended(5, 5),
        bmp(5, 5),
    ):
        sniffed = sniff(head[:length])
        assert (sniffed.width, sniffed.height) in ((None, None), (5, 5))


def test_png_claiming_fifty_thousand_pixels_square_reports_the_claim() -> None:
    assert sniff(png(50_000, 50_000)[:33]) == Sniffed("image/png", False, 50_000, 50_000)


@settings(max_examples=500, deadline=None)
@given(head=st.binary(max_size=HEAD_SIZE))
def test_sniff_never_fails_and_is_deterministic_on_any_bytes(head: bytes) -> None:
    assert sniff(head) == sniff(bytes(head))


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(
        [
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
            b"\xff\xd8\xff",
            b"GIF89a",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"RIFF\x00\x00\x00\x00WEBPVP8L",
            b"RIFF\x00\x00\x00\x00WEBPVP8X",
            b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x28\x00\x00\x00",
            b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c\x00\x00\x00",
            b"\x00\x00\x00\x18ftyp",
            b"\x1a\x45\xdf\xa3",
            b"\xff\xfb",
            b"\xef\xbb\xbf<",
            b"\xff\xfe",
            b"<?xml",
            b"<!--",
        ]
    ),
    rest=st.binary(max_size=600),
)
def test_sniff_never_fails_on_a_known_signature_followed_by_garbage(
    prefix: bytes, rest: bytes
) -> None:
    sniffed = sniff(prefix + rest)
    assert sniffed.content_type
    assert sniffed.width is None or sniffed.width > 0
    assert sniffed.height is None or sniffed.height > 0
