"""Whether an upload may be stored, as what type, and how browsers may be sent it.

The sniffed type is what we store and serve; the declared type and the file name's extension
are only checked against it. Refusals are 415 (UnsupportedType), except an image whose header
claims more pixels than allowed: its type is fine, its size is not, so that is 422 (Invalid).
The pixel check reads the header's numbers and never decodes the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from callback_api.errors import Invalid, UnsupportedType
from callback_api.filenames import extension, sanitize_filename
from callback_api.sniff import SVG, Sniffed, sniff

Disposition = Literal["inline", "attachment"]

_PATTERN = re.compile(r"(\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*))")

# Declared types that say nothing about the bytes: what clients send when they do not know
# (curl --data-binary sends the form type for any file).
_GENERIC = frozenset(
    {
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "unknown/unknown",
        "application/x-www-form-urlencoded",
        "*/*",
    }
)
# Other names clients use for the types sniff() reports.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
    "image/vnd.microsoft.icon": "image/x-icon",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
    "video/x-m4v": "video/mp4",
    "application/x-gzip": "application/gzip",
    "application/x-zip-compressed": "application/zip",
    "application/x-rar-compressed": "application/vnd.rar",
    "text/xml": "application/xml",
}

# Extension -> the sniffed types a file of that name may be. An explicit table, not the host's
# mime.types, so the answer is the same on every machine. Extensions not listed are not checked.
_ZIP = ("application/zip",)
_TEXT = ("text/plain", "application/json")
_EXTENSION_TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("jpg", "jpeg", "jpe", "jfif", "pjpeg", "pjp"), ("image/jpeg",)),
    "png": ("image/png",),
    "apng": ("image/png",),
    "gif": ("image/gif",),
    "webp": ("image/webp",),
    "avif": ("image/avif",),
    **dict.fromkeys(("heic", "heif"), ("image/heic", "image/heif")),
    "bmp": ("image/bmp",),
    **dict.fromkeys(("tif", "tiff"), ("image/tiff",)),
    **dict.fromkeys(("ico", "cur"), ("image/x-icon",)),
    "svg": (SVG,),
    "svgz": ("application/gzip",),
    **dict.fromkeys(("mp4", "m4v"), ("video/mp4", "audio/mp4")),
    "m4a": ("audio/mp4", "video/mp4"),
    "mov": ("video/quicktime",),
    **dict.fromkeys(("3gp", "3g2"), ("video/3gpp",)),
    "webm": ("video/webm",),
    **dict.fromkeys(("mkv", "mka"), ("video/x-matroska",)),
    "avi": ("video/x-msvideo",),
    "flv": ("video/x-flv",),
    **dict.fromkeys(("wmv", "wma", "asf"), ("video/x-ms-asf",)),
    "mp3": ("audio/mpeg",),
    **dict.fromkeys(("ogg", "oga", "ogv", "opus"), ("audio/ogg", "video/ogg")),
    "wav": ("audio/wav",),
    "flac": ("audio/flac",),
    **dict.fromkeys(("aif", "aiff", "aifc"), ("audio/aiff",)),
    **dict.fromkeys(("mid", "midi"), ("audio/midi",)),
    "pdf": ("application/pdf",),
    **dict.fromkeys(("ps", "eps"), ("application/postscript",)),
    **dict.fromkeys(
        ("zip", "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk"), _ZIP
    ),
    **dict.fromkeys(("gz", "tgz"), ("application/gzip",)),
    "7z": ("application/x-7z-compressed",),
    "rar": ("application/vnd.rar",),
    **dict.fromkeys(("xz", "txz"), ("application/x-xz",)),
    "zst": ("application/zstd",),
    "woff": ("font/woff",),
    "woff2": ("font/woff2",),
    "otf": ("font/otf",),
    "ttf": ("font/ttf",),
    "ttc": ("font/collection",),
    # Names a browser or desktop opens as a page must hold exactly that, and text names text:
    # an "x.html" of plain text, saved and opened, would become a page.
    **dict.fromkeys(("html", "htm", "shtml"), ("text/html",)),
    **dict.fromkeys(("xhtml", "xht"), ("application/xhtml+xml", "text/html")),
    "xml": ("application/xml", SVG, "application/xhtml+xml"),
    **dict.fromkeys(("txt", "text", "csv", "tsv", "log", "md", "json"), _TEXT),
}

# Only these are shown in the browser; everything else is a download. Raster images, audio and
# video render without script; PDF viewers run apart from our origin. Text and unknown bytes
# are downloads too: an inline text/plain leans on every browser honouring nosniff.
_INLINE_FAMILIES = frozenset({"image", "media"})
_INLINE_TYPES = frozenset({"application/pdf"})


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    allowed_types: tuple[str, ...] = ("*/*",)
    max_pixels: int = 100_000_000
    active_content: Literal["refuse", "attachment"] = "refuse"
    check_extension: bool = True

    def __post_init__(self) -> None:
        for pattern in self.allowed_types:
            if not _PATTERN.fullmatch(pattern):
                raise ValueError(
                    f"allowed type {pattern!r} is not a lowercase type/subtype, type/* or */*"
                )
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels is {self.max_pixels}; it must be at least 1")
        if self.active_content not in ("refuse", "attachment"):
            raise ValueError(
                f"active_content is {self.active_content!r}; expected 'refuse' or 'attachment'"
            )

    def allows(self, content_type: str) -> bool:
        top = content_type.partition("/")[0]
        return any(p in ("*/*", content_type, f"{top}/*") for p in self.allowed_types)


@dataclass(frozen=True, slots=True)
class Decision:
    content_type: str
    disposition: Disposition
    width: int | None
    height: int | None


def _family(content_type: str) -> str:
    """What kind of thing a type names: image, media (sound or film), font or document."""
    top = content_type.partition("/")[0]
    if top in ("audio", "video") or content_type in ("application/ogg", "application/mp4"):
        return "media"
    if top in ("image", "font"):
        return top
    return "document"


def _sniffed_families(content_type: str) -> frozenset[str]:
    # An SVG is an image and an XML document: either label is honest.
    if content_type == SVG:
        return frozenset({"image", "document"})
    return frozenset({_family(content_type)})


def _normalise(declared: str | None) -> str | None:
    """The declared type without parameters, lowercase and unaliased; None when generic."""
    essence = (declared or "").partition(";")[0].strip().lower()
    if not essence or essence in _GENERIC:
        return None
    if not _PATTERN.fullmatch(essence) or "*" in essence:
        raise UnsupportedType(f"the declared type {declared!r} is not a media type")
    return _ALIASES.get(essence, essence)


def _check_declared(sniffed: Sniffed, declared: str) -> None:
    """Refuse a declared type that disagrees with the bytes about what kind of thing they are.

    A different subtype in the same family (image/png declared, JPEG bytes) is tolerated: we
    store and serve the sniffed type, so the label cannot mislead a browser. Active content
    (HTML, SVG, XML or a polyglot) is never tolerated under an image, sound or font label unless
    the label is exactly the sniffed type; the active-content rule then decides.
    """
    if declared == sniffed.content_type:
        return
    family = _family(declared)
    if sniffed.active and family != "document":
        raise UnsupportedType(
            f"the upload is active content ({sniffed.content_type}) declared as {declared}"
        )
    if family not in _sniffed_families(sniffed.content_type):
        raise UnsupportedType(f"the upload is {sniffed.content_type} but was declared {declared}")


def _check_extension(sniffed: Sniffed, filename: str) -> None:
    ext = extension(sanitize_filename(filename))
    expected = _EXTENSION_TYPES.get(ext)
    if expected is not None and sniffed.content_type not in expected:
        raise UnsupportedType(
            f"the file name ends in .{ext} but the upload is {sniffed.content_type}"
        )


def _disposition(sniffed: Sniffed) -> Disposition:
    if sniffed.active or sniffed.content_type == SVG:  # HTML, SVG and XML are always active
        return "attachment"
    if _family(sniffed.content_type) in _INLINE_FAMILIES or sniffed.content_type in _INLINE_TYPES:
        return "inline"
    return "attachment"


def decide(
    policy: ContentPolicy, head: bytes, declared_type: str | None, filename: str
) -> Decision:
    """Sniff the head and apply the policy: a Decision, or UnsupportedType / Invalid."""
    sniffed = sniff(head)
    declared = _normalise(declared_type)
    if not policy.allows(sniffed.content_type):
        shown = f" (declared {declared})" if declared else ""
        allowed = ", ".join(policy.allowed_types)
        raise UnsupportedType(
            f"{sniffed.content_type}{shown} is not an allowed type (allowed: {allowed})"
        )
    if sniffed.active and policy.active_content == "refuse":
        raise UnsupportedType(
            f"the upload is active content a browser could run ({sniffed.content_type})"
        )
    if declared is not None:
        _check_declared(sniffed, declared)
    if policy.check_extension:
        _check_extension(sniffed, filename)
    if sniffed.width is not None and sniffed.height is not None:
        pixels = sniffed.width * sniffed.height
        if pixels > policy.max_pixels:
            raise Invalid(
                f"the {sniffed.content_type} image is {sniffed.width} x {sniffed.height} "
                f"= {pixels} pixels; at most {policy.max_pixels} are allowed"
            )
    return Decision(sniffed.content_type, _disposition(sniffed), sniffed.width, sniffed.height)
