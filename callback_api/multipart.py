"""Split a multipart/form-data body that Nginx landed as one file, without reading it into Python.

Boundaries are found with ``mmap.find`` (a C search over the page cache, no copy); file parts are
returned as (offset, length) and copied kernel-side by ``copy_part``. Only part headers and
small text fields are ever sliced into ``bytes``, so memory does not grow with the body.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from callback_api.errors import MalformedMultipart


@dataclass(frozen=True)
class MultipartLimits:
    max_parts: int = 100  # all parts, files and fields, skipped "no file chosen" parts included
    max_fields: int = 50  # simple text fields
    max_field_bytes: int = 64 * 1024  # one text field's value
    max_part_header_bytes: int = 8 * 1024  # all header lines of one part


@dataclass(frozen=True)
class FilePart:
    field_name: str
    filename: str  # as sent (quoted-string unescaped, filename* preferred), not sanitised
    content_type: str | None  # as declared in the part
    offset: int  # byte offset of the content in the body file
    length: int  # content length in bytes, 0 allowed


@dataclass(frozen=True)
class Form:
    files: list[FilePart]
    fields: list[tuple[str, str]]  # simple text fields, in body order


# RFC 2046 bchars: 1..70 of these, and the last one is not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# One "; name=value" parameter; the value is a quoted-string or a bare token.
_PARAM = re.compile(
    r';[ \t]*([^\s=;"]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]*))[ \t]*(?=;|\Z)'
)
# Only \" and \\ are escapes: browsers send a raw backslash in a name (a\b.txt stays a\b.txt).
_QUOTED_PAIR = re.compile(r'\\(["\\])')
# Browsers (WHATWG) never escape: they percent-encode `"`, so a quoted value cannot hold one,
# and a name ending in a backslash arrives as `"...\"`. Tried when the RFC form fails.
_BROWSER_PARAM = re.compile(r';[ \t]*([^\s=;"]+)[ \t]*=[ \t]*"([^"]*)"[ \t]*(?=;|\Z)')
_COPY_CHUNK = 1 << 30  # the kernel caps one copy_file_range call near 2 GiB anyway


def boundary_from_content_type(content_type: str) -> bytes:
    """The boundary parameter of a multipart/form-data Content-Type, checked against RFC 2046."""
    kind, params = _parse_params(content_type, f"Content-Type {content_type!r}")
    if kind != "multipart/form-data":
        raise MalformedMultipart(f"Content-Type {content_type!r} is not multipart/form-data")
    if "boundary" not in params:
        raise MalformedMultipart(f"Content-Type {content_type!r} has no boundary parameter")
    boundary = params["boundary"]
    if not _BOUNDARY.fullmatch(boundary):
        raise MalformedMultipart(
            f"Content-Type has an invalid boundary parameter {boundary!r}: "
            "RFC 2046 allows 1 to 70 letters, digits or '()+_,-./:=? (no trailing space)"
        )
    return boundary.encode("ascii")


def parse_multipart(fd: int, size: int, boundary: bytes, limits: MultipartLimits) -> Form:
    """Locate every part of the ``size``-byte body in ``fd``; content is given by offsets only."""
    if not _BOUNDARY.fullmatch(boundary.decode("ascii", errors="replace")):
        raise MalformedMultipart(f"invalid multipart boundary {boundary!r}")
    if size == 0:
        raise MalformedMultipart(f"multipart body is empty: boundary {boundary!r} never appears")
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as body:
        body.madvise(mmap.MADV_SEQUENTIAL)  # one forward pass: let the kernel read ahead and drop
        return _split(body, size, boundary, limits)


def copy_part(src_fd: int, part: FilePart, dst_fd: int) -> None:
    """Copy the part's content kernel-side to ``dst_fd`` at its current position."""
    done = 0
    while done < part.length:
        count = min(part.length - done, _COPY_CHUNK)
        copied = os.copy_file_range(src_fd, dst_fd, count, part.offset + done)
        if copied == 0:  # the source is shorter than the part says: never loop forever
            raise OSError(
                errno.EIO,
                f"copy_file_range copied 0 bytes of part {part.field_name!r} at body offset "
                f"{part.offset + done} with {part.length - done} bytes left: body file too short",
            )
        done += copied


def _split(body: mmap.mmap, size: int, boundary: bytes, limits: MultipartLimits) -> Form:
    dash = b"--" + boundary
    delimiter = b"\r\n" + dash
    # The first boundary opens the body, or follows a preamble and its CRLF.
    if body[: len(dash)] == dash:
        pos = 0
    else:
        pos = body.find(delimiter)
        if pos == -1:
            raise MalformedMultipart(f"multipart boundary {boundary!r} never appears in the body")
        pos += 2
    files: list[FilePart] = []
    fields: list[tuple[str, str]] = []
    number = 0
    while True:  # pos is at "--boundary"
        after = pos + len(dash)
        if body[after : after + 2] == b"--":
            return Form(files=files, fields=fields)  # close delimiter; the epilogue is ignored
        number += 1
        if number > limits.max_parts:
            raise MalformedMultipart(f"multipart body has more than max_parts={limits.max_parts}")
        limit = limits.max_part_header_bytes
        line_end = body.find(b"\r\n", after, after + limit)
        if line_end == -1 or body[after:line_end].strip(b" \t"):
            if line_end == -1 and after + limit >= size:
                raise _truncated(number)
            raise MalformedMultipart(f"unexpected bytes after the boundary opening part {number}")
        headers_end = body.find(b"\r\n\r\n", line_end, line_end + 6 + limit)
        if headers_end == -1:
            if line_end + 6 + limit >= size:
                raise _truncated(number)
            raise MalformedMultipart(
                f"headers of part {number} are larger than max_part_header_bytes={limit}"
            )
        start = headers_end + 4
        end = body.find(delimiter, start)
        if end == -1:
            raise _truncated(number)
        raw = body[line_end + 2 : headers_end] if headers_end > line_end else b""
        name, filename, content_type = _parse_part_headers(raw, number)
        if filename is None:
            if end - start > limits.max_field_bytes:
                raise MalformedMultipart(
                    f"field {name!r} is larger than max_field_bytes={limits.max_field_bytes}"
                )
            if len(fields) == limits.max_fields:
                raise MalformedMultipart(
                    f"multipart body has more than max_fields={limits.max_fields} text fields"
                )
            try:
                fields.append((name, body[start:end].decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise MalformedMultipart(f"field {name!r} is not valid UTF-8: {exc}") from None
        elif filename or end > start:
            if not filename:
                raise MalformedMultipart(f"part {name!r} has content but no filename")
            files.append(FilePart(name, filename, content_type, start, end - start))
        # else: filename="" and no content is a browser's "no file chosen": nothing to keep
        pos = end + 2


def _truncated(number: int) -> MalformedMultipart:
    return MalformedMultipart(
        f"multipart body has no closing boundary: it ends inside part {number} (truncated?)"
    )


def _parse_part_headers(raw: bytes, number: int) -> tuple[str, str | None, str | None]:
    """(name, filename or None for a text field, declared Content-Type) of one part."""
    disposition: str | None = None
    content_type: str | None = None
    # Browsers send names and filenames as raw UTF-8; a bad byte must not lose the whole upload.
    for line in raw.decode("utf-8", errors="replace").split("\r\n") if raw else []:
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip():
            raise MalformedMultipart(f"part {number} has a malformed header line {line[:80]!r}")
        key = key.lower()
        if key == "content-disposition":
            if disposition is not None:
                raise MalformedMultipart(f"part {number} has two Content-Disposition headers")
            disposition = value.strip()
        elif key == "content-type":
            content_type = value.strip()
    if disposition is None:
        raise MalformedMultipart(f"part {number} has no Content-Disposition header")
    what = f"Content-Disposition of part {number}"
    kind, params = _parse_params(disposition, what)
    if kind != "form-data":
        raise MalformedMultipart(f"malformed {what}: {disposition[:80]!r} is not form-data")
    name = params.get("name")
    if not name:
        raise MalformedMultipart(f"malformed {what}: it has no name")
    if "filename*" in params:
        return name, _decode_ext_value(params["filename*"], what), content_type
    return name, params.get("filename"), content_type


def _parse_params(value: str, what: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=b; c="d"`` into the lower-cased type and its parameters."""
    kind, semicolon, rest = value.partition(";")
    rest = semicolon + rest  # each parameter match starts at its ";"
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest) and rest[pos:].strip(" \t") != ";":  # a trailing ";" is harmless
        match = _PARAM.match(rest, pos)
        if match is not None:
            key, quoted, token = match.groups()
            value = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else token
        else:
            match = _BROWSER_PARAM.match(rest, pos)
            if match is None:
                raise MalformedMultipart(f"malformed {what}: cannot parse {rest[pos:][:80]!r}")
            key, value = match.groups()
        key = key.lower()
        if key in params:
            raise MalformedMultipart(f"malformed {what}: parameter {key!r} appears twice")
        params[key] = value
        pos = match.end()
    return kind.strip().lower(), params


def _decode_ext_value(value: str, what: str) -> str:
    """RFC 5987 ``charset'language'percent-encoded``, e.g. ``UTF-8''caf%C3%A9.txt``."""
    charset, quote1, rest = value.partition("'")
    _language, quote2, encoded = rest.partition("'")
    if not (quote1 and quote2):
        raise MalformedMultipart(f"malformed {what}: filename* {value[:80]!r} is not RFC 5987")
    if charset.lower() not in ("utf-8", "iso-8859-1"):
        raise MalformedMultipart(f"malformed {what}: filename* has charset {charset[:20]!r}")
    return unquote_to_bytes(encoded).decode(charset.lower(), errors="replace")
