"""Build multipart/form-data bodies byte by byte, the way browsers and curl -F lay them out."""

from __future__ import annotations


def file_part(
    name: str,
    filename: str | bytes,
    content: bytes,
    content_type: str | None = "application/octet-stream",
) -> bytes:
    raw_name = filename.encode() if isinstance(filename, str) else filename
    head = f'Content-Disposition: form-data; name="{name}"; filename="'.encode() + raw_name + b'"'
    if content_type is not None:
        head += f"\r\nContent-Type: {content_type}".encode()
    return head + b"\r\n\r\n" + content


def field_part(name: str, value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + raw


def raw_part(headers: bytes, content: bytes) -> bytes:
    """A part with exactly these header lines (CRLF-separated, no final CRLF)."""
    return headers + b"\r\n\r\n" + content


def multipart_body(
    boundary: bytes,
    parts: list[bytes],
    preamble: bytes = b"",
    epilogue: bytes = b"\r\n",
    padding: bytes = b"",
) -> bytes:
    """``preamble`` must end with CRLF when not empty; ``padding`` follows each opening boundary."""
    opened = b"".join(b"--" + boundary + padding + b"\r\n" + part + b"\r\n" for part in parts)
    return preamble + opened + b"--" + boundary + b"--" + epilogue
