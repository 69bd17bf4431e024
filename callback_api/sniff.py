"""What an upload is, judged from its first bytes only (the callback reads HEAD_SIZE of them).

Magic bytes decide first, then markup and text by content, after the ideas of the WHATWG MIME
Sniffing Standard. Nothing is decoded: image dimensions come from the headers of the format.

The magic table is our own rather than a library's. puremagic 2.x needs Python 3.12 (we support
3.11); on head-only buffers puremagic 1.30 called a bare ZIP a .docx and an AVIF video/mp4 and
raised on text, and filetype (last release 2022) did not know HTML, SVG or the TIFF header.
Both return names that need a table of aliases anyway (audio/x-wav, image/x-ms-bmp), and we
parse PNG, GIF, JPEG, WebP and BMP headers for dimensions whatever we choose. A table of some
forty signatures, pinned by tests, keeps the answer deterministic and free of a dependency.
"""

from __future__ import annotations

import codecs
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

HEAD_SIZE = 8192
OCTET_STREAM = "application/octet-stream"

SVG = "image/svg+xml"
HTML = "text/html"
XHTML = "application/xhtml+xml"
XML = "application/xml"
TEXT = "text/plain"
JSON = "application/json"
# Types a browser runs scripts in when it renders them. Every SVG counts, scripted or not: a
# head-only check for <script> is beaten by 8 KiB of padding before the script.
ACTIVE_TYPES = frozenset({HTML, XHTML, XML, SVG})


@dataclass(frozen=True, slots=True)
class Sniffed:
    content_type: str
    active: bool = False
    width: int | None = None
    height: int | None = None


# (signature at offset 0, type): the first row that matches wins.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),  # cursor
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"MThd\x00\x00\x00\x06", "audio/midi"),
    (b"FLV\x01", "video/x-flv"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c", "video/x-ms-asf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"\x1f\x8b\x08", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"OTTO", "font/otf"),
    (b"\x00\x01\x00\x00\x00", "font/ttf"),
    (b"ttcf", "font/collection"),
)

# RIFF and AIFF containers name their form at offset 8.
_FORMS: dict[bytes, dict[bytes, str]] = {
    b"RIFF": {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"},
    b"FORM": {b"AIFF": "audio/aiff", b"AIFC": "audio/aiff"},
}

# ISO base media (ftyp) brands. Brands naming a still image win over the generic ones that
# HEIF and AVIF files also list (mif1, miaf), then the major brand, then compatible brands.
_IMAGE_BRANDS: tuple[tuple[str, frozenset[bytes]], ...] = (
    ("image/avif", frozenset({b"avif", b"avis"})),
    ("image/heic", frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})),
)
_BRANDS: dict[bytes, str] = {
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4P ": "audio/mp4",
    b"F4A ": "audio/mp4",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    **dict.fromkeys(
        (*b"isom iso2 iso4 iso5 iso6 avc1 M4VH M4VP dash MSNV NDAS mmp4".split(), b"M4V ", b"f4v "),
        "video/mp4",
    ),
}
# QuickTime files from before ftyp start with one of these atoms.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot"})

_DIB_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# Bytes that never occur in text (WHATWG "binary data byte"): C0 controls but TAB, LF, FF, CR, ESC.
_BINARY_BYTE = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_WHITESPACE = b"\t\n\x0c\r "
# Root elements that make a document HTML (WHATWG "identifying a resource with an unknown type").
_HTML_ROOTS = frozenset(
    b"html head script iframe h1 div font table a style title b body br p".split()
)
# Markup that makes a browser run script, anywhere in the head: this is how a polyglot (an
# image or PDF that is also HTML or SVG) is caught. An optional XML prefix (<h:script>) counts;
# the name must end there, so XMP metadata such as <dc:format> or <dc:title> does not.
_ACTIVE_MARKUP = re.compile(
    rb"<(?:[a-z0-9_.-]+:)?"
    rb"(?:script|html|head|body|svg|iframe|frame|frameset|object|embed|applet|meta|base|link"
    rb"|style|form|img|math|!doctype\s+html)(?=[\s/>]|$)"
    rb"|<\?xml-stylesheet",
    re.IGNORECASE,
)


def _u16be(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">H", data, at)[0])


def _u16le(data: bytes, at: int) -> int:
    return int(struct.unpack_from("<H", data, at)[0])


def _u32be(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])


def _ftyp_type(head: bytes) -> str | None:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = _u32be(head, 0)
    if box_size < 16 or box_size % 4:
        return None
    major = head[8:12]
    compatible = head[16 : min(box_size, len(head))]
    brands = [major, *(compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4))]
    for content_type, image_brands in _IMAGE_BRANDS:
        if any(brand in image_brands for brand in brands):
            return content_type
    for brand in brands:
        if brand in _BRANDS:
            return _BRANDS[brand]
        if brand.startswith(b"mp4"):
            return "video/mp4"
        if brand.startswith(b"3g"):
            return "video/3gpp"
    return None


def _read_vint(data: bytes, at: int) -> tuple[int, int] | None:
    """An EBML variable-length integer at data[at]: (value, length in bytes)."""
    if at >= len(data) or data[at] == 0:
        return None
    first = data[at]
    length = 9 - first.bit_length()
    if at + length > len(data):
        return None
    value = first & ((1 << (8 - length)) - 1)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, length


def _ebml_type(head: bytes) -> str | None:
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    doc_type_at = head.find(b"\x42\x82", 4, 64)  # the DocType element of the EBML header
    if doc_type_at < 0:
        return None
    size = _read_vint(head, doc_type_at + 2)
    if size is None:
        return None
    start = doc_type_at + 2 + size[1]
    doc_type = head[start : start + size[0]].rstrip(b"\x00")
    return {b"webm": "video/webm", b"matroska": "video/x-matroska"}.get(doc_type)


# MPEG audio without an ID3 tag: two frame headers in a row, the second where the first one's
# length says (layers II and III; MPEG 1, 2 and 2.5).
_MPEG_BITRATES = {
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(head: bytes, at: int) -> int | None:
    if at + 4 > len(head) or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    version = (head[at + 1] >> 3) & 3  # 3: MPEG 1, 2: MPEG 2, 0: MPEG 2.5, 1: reserved
    layer = 4 - ((head[at + 1] >> 1) & 3)  # bits 01 are layer III, 10 layer II
    bitrate_index, rate_index = head[at + 2] >> 4, (head[at + 2] >> 2) & 3
    if version == 1 or layer not in (2, 3) or bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _MPEG_BITRATES[(1 if version == 3 else 2, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    per_frame = 72 if layer == 3 and version != 3 else 144
    return per_frame * bitrate // rate + ((head[at + 2] >> 1) & 1)


def _mpeg_audio_type(head: bytes) -> str | None:
    length = _mpeg_frame_length(head, 0)
    if length is None or _mpeg_frame_length(head, length) is None:
        return None
    return "audio/mpeg"


def _container_type(head: bytes) -> str | None:
    form = _FORMS.get(head[:4])
    if form is not None and len(head) >= 12:
        return form.get(head[8:12])
    if head.startswith(b"OggS\x00"):
        return "video/ogg" if b"\x80theora" in head[:64] else "audio/ogg"
    if head.startswith(b"BM") and len(head) >= 18:
        # "BM" alone starts ordinary text too ("BMW ..."): require a known DIB header size.
        return "image/bmp" if struct.unpack_from("<I", head, 14)[0] in _DIB_HEADER_SIZES else None
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    return None


_MAGIC: tuple[Callable[[bytes], str | None], ...] = (
    _container_type,
    _ebml_type,
    _mpeg_audio_type,
)


def _magic_type(head: bytes) -> str | None:
    # An ftyp box of 256 bytes starts 00 00 01 00, the icon signature: look at boxes first.
    content_type = _ftyp_type(head)
    if content_type is not None:
        return content_type
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    for match in _MAGIC:
        content_type = match(head)
        if content_type is not None:
            return content_type
    return None


def _decode(head: bytes, encoding: str) -> str | None:
    # The head may end inside a character; final=False keeps that tail from counting as an error.
    try:
        return codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return None


def _as_text(head: bytes) -> bytes | None:
    """The head as UTF-8 without a byte order mark, or None if it is not text."""
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        text = _decode(head[2:], "utf-16-be" if head[0] == 0xFE else "utf-16-le")
        view = None if text is None else text.encode("utf-8", errors="replace")
    else:
        view = head.removeprefix(b"\xef\xbb\xbf")
        if _decode(view, "utf-8") is None:
            return None
    if view is None or _BINARY_BYTE.search(view):
        return None
    return view


def _skip(view: bytes, at: int, end_marker: bytes) -> int | None:
    end = view.find(end_marker, at)
    return None if end < 0 else end + len(end_marker)


_TAG = re.compile(rb"<([a-z][a-z0-9:._-]*)", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!doctype\s+([a-z][a-z0-9:._-]*)", re.IGNORECASE)


def _tag_name(view: bytes, at: int) -> tuple[bytes, bool]:
    """The lowercase name of the tag opened at view[at] ("<"), and whether it ends cleanly."""
    match = _TAG.match(view, at)
    if match is None:
        return b"", False
    after = view[match.end() : match.end() + 1]
    return match.group(1).lower(), after in (b"", b">", b"/") or after in _WHITESPACE


def _markup_type(view: bytes) -> str | None:
    """HTML, SVG or XML from the document's prolog and root element."""
    at = len(view) - len(view.lstrip(_WHITESPACE))
    xml = view.startswith(b"<?xml", at)
    comment_first = view.startswith(b"<!--", at)
    for _ in range(64):  # a prolog of a few declarations, comments and a doctype at most
        at = len(view) - len(view[at:].lstrip(_WHITESPACE))
        doctype = _DOCTYPE.match(view, at)
        if doctype is not None:
            root = doctype.group(1).lower()
            if root == b"svg":
                return SVG
            if root == b"html":
                return XHTML if xml else HTML
        if view.startswith(b"<!--", at):
            next_at = _skip(view, at + 4, b"-->")
        elif view.startswith((b"<?", b"<!"), at):
            next_at = _skip(view, at + 2, b">")
        else:
            break
        if next_at is None:
            break
        at = next_at
    name, clean_end = _tag_name(view, at)
    local = name.rpartition(b":")[2]
    if local == b"svg":
        return SVG
    if local == b"html":
        return XHTML if xml else HTML
    if xml:
        return XML
    if (name in _HTML_ROOTS and clean_end) or comment_first:
        return HTML
    return None


def _is_json(view: bytes) -> bool:
    # Only a head that holds a whole JSON document counts; a longer one stays text/plain.
    if not view.lstrip(_WHITESPACE).startswith((b"{", b"[")):
        return False
    try:
        json.loads(view)
    except (ValueError, RecursionError):
        return False
    return True


def _content_type(head: bytes) -> str:
    magic = _magic_type(head)
    if magic is not None:
        return magic
    view = _as_text(head)
    # Markup is looked for in non-UTF-8 text too: a Latin-1 page is still a page.
    markup = _markup_type(head.removeprefix(b"\xef\xbb\xbf") if view is None else view)
    if markup is not None:
        return markup
    if view is None:
        return OCTET_STREAM
    return JSON if _is_json(view) else TEXT


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return _u32be(head, 16), _u32be(head, 20)


def _gif_size(head: bytes) -> tuple[int, int] | None:
    return (_u16le(head, 6), _u16le(head, 8)) if len(head) >= 10 else None


# Start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None  # lost the segment chain: corrupt, or not a JPEG after all
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        at += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data: no frame header before it
            return None
        length = _u16be(head, at)
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if at + 7 > len(head):
                return None
            return _u16be(head, at + 5), _u16be(head, at + 3)  # width follows height
        at += length
    return None  # the frame header lies beyond the head (a large EXIF block, say)


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return _u16le(head, 26) & 0x3FFF, _u16le(head, 28) & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    if struct.unpack_from("<I", head, 14)[0] == 12:  # BITMAPCOREHEADER: unsigned 16-bit sizes
        return (_u16le(head, 18), _u16le(head, 20)) if len(head) >= 22 else None
    if len(head) < 26:
        return None
    width, height = struct.unpack_from("<ii", head, 18)
    return int(width), abs(int(height))  # a negative height means rows run top-down


_SIZE_PARSERS: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "image/png": _png_size,
    "image/gif": _gif_size,
    "image/jpeg": _jpeg_size,
    "image/webp": _webp_size,
    "image/bmp": _bmp_size,
}


def _dimensions(content_type: str, head: bytes) -> tuple[int | None, int | None]:
    parser = _SIZE_PARSERS.get(content_type)
    size = None if parser is None else parser(head)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None, None  # unknown; zero is not a size either (JPEG height 0: "see DNL")
    return size


def _has_active_markup(head: bytes) -> bool:
    if _ACTIVE_MARKUP.search(head):
        return True
    # Markup in UTF-16 hides behind NUL bytes; look again without them.
    return b"\x00" in head and _ACTIVE_MARKUP.search(head.replace(b"\x00", b"")) is not None


def sniff(head: bytes) -> Sniffed:
    """The type, activeness and (for images) dimensions of an upload, from its first bytes."""
    content_type = _content_type(head)
    active = content_type in ACTIVE_TYPES or _has_active_markup(head)
    width, height = _dimensions(content_type, head)
    return Sniffed(content_type, active, width, height)
