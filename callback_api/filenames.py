"""Client file names: made safe to store as metadata and to send in Content-Disposition.

The name is never a path (the store names files by server ids), yet a sanitised name must still
be one harmless component: no separator, no NUL or control character, never "." or "..", no
characters that hide or reorder text, bounded in UTF-8 bytes. sanitize(sanitize(x)) == sanitize(x).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal
from urllib.parse import quote

FALLBACK_NAME = "upload"

# Separators a client, an OS or a careless later consumer might split on, with the lookalikes
# that render as a slash or backslash: fullwidth solidus, division slash, fraction slash, big
# solidus, fullwidth and small reverse solidus, set minus, reverse solidus operator, big reverse.
_SEPARATORS = re.compile("[/\\\\\uff0f\u2215\u2044\u29f8\uff3c\ufe68\u2216\u29f5\u29f9]")

# Dot lookalikes become real dots, so that two fullwidth dots cannot pass as a name and read as
# ".." to a later consumer. NFKC would fold them too, but it also rewrites ordinary text.
_DOTS = str.maketrans(
    {"\uff0e": ".", "\u2024": ".", "\ufe52": ".", "\u2025": "..", "\u2026": "..."}
)

# Invisible letters and marks that are not format characters (Cf) but hide text all the same:
# Hangul fillers, the combining grapheme joiner, Khmer inherent vowels, Mongolian selectors.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f")
# ZWNJ and ZWJ are format characters that Persian, Indic scripts and emoji sequences need;
# they join or separate glyphs but neither reorder nor hide a name's letters.
_KEPT_FORMAT = frozenset("\u200c\u200d")
# Cc: C0, DEL, C1. Cf: bidi controls, zero-width spaces, BOM, tags. Cs: lone surrogates (cannot
# be UTF-8). Zl, Zp: line and paragraph separators.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Leading dots hide a file; Windows drops trailing dots and spaces when it saves one.
_EDGE = re.compile(r"[\s.]*")

# An extension longer than this is not worth keeping when the name must be cut.
_MAX_EXTENSION_BYTES = 16


def _visible(char: str) -> bool:
    if char in _KEPT_FORMAT:
        return True
    return char not in _INVISIBLE and unicodedata.category(char) not in _DROPPED_CATEGORIES


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of text that fits in max_bytes of UTF-8, whole characters only."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Dropping bytes that do not decode removes only the tail of the last, cut character.
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _lstrip(text: str) -> str:
    match = _EDGE.match(text)  # anchored at the start, so linear in the length
    return text if match is None else text[match.end() :]


def _trim(name: str) -> str:
    return _lstrip(_lstrip(name)[::-1])[::-1]


def _bound(name: str, max_bytes: int) -> str:
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = dot + ext
    suffix_bytes = len(suffix.encode("utf-8"))
    if stem and suffix_bytes <= _MAX_EXTENSION_BYTES and suffix_bytes < max_bytes:
        short_stem = _trim(_cut(stem, max_bytes - suffix_bytes))
        if short_stem:
            return short_stem + suffix
    return _trim(_cut(name, max_bytes))


def sanitize_filename(raw: str, max_bytes: int = 255) -> str:
    """One harmless name component from whatever a client sent; "upload" if nothing is left."""
    if max_bytes < len(FALLBACK_NAME):
        raise ValueError(f"max_bytes is {max_bytes}; it must be at least {len(FALLBACK_NAME)}")
    # Drop hidden characters first: removing one between a letter and a combining mark lets NFC
    # compose them, so normalising afterwards keeps the result stable on a second pass.
    name = "".join(char for char in raw if _visible(char))
    name = unicodedata.normalize("NFC", name).translate(_DOTS)
    name = _SEPARATORS.split(name)[-1]
    name = _bound(_trim(name), max_bytes)
    return name or FALLBACK_NAME


def extension(filename: str) -> str:
    """The lowercase extension of the last name component, without the dot; "" if none."""
    base = _SEPARATORS.split(filename)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem.strip(".") or not ext.strip():
        return ""
    return ext.lower()


def _ascii_fallback(name: str) -> str:
    # Letters with accents keep their base letter ("café" -> "cafe"); anything else that is not
    # printable ASCII, and the quote, backslash and percent sign (some agents decode %XX in the
    # plain parameter, RFC 6266 appendix D), becomes "_".
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in stripped)
    return fallback or FALLBACK_NAME  # a name of combining marks alone has no base letters


def content_disposition(disposition: Literal["inline", "attachment"], filename: str) -> str:
    """An RFC 6266 header value: a plain ASCII filename, plus filename* (RFC 5987) if needed."""
    if disposition not in ("inline", "attachment"):
        raise ValueError(f"disposition is {disposition!r}; expected 'inline' or 'attachment'")
    name = sanitize_filename(filename)  # idempotent: a stored name comes back unchanged
    fallback = _ascii_fallback(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        # quote() leaves only ALPHA, DIGIT and "_.-~", all of them RFC 5987 attr-chars.
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
