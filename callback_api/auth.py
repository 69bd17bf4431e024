"""Bearer tokens: who may upload, read and delete.

Nginx asks the app before it stores one byte of an upload (``auth_request`` to
``/internal/auth``); the app checks the token again on every API call and in the callback, so
a config rendered without the check still refuses. Tokens are random strings handed to
clients; the app holds only their SHA-256 digests, one per line of ``auth.tokens_file``:

    # sha256 of the token                                             scopes      label
    07a2edcfc19a7e2af0d8e072e36a6192a8ccbc801908f0d22470c5b26900325a  read,write  ci-uploader

A leaked digest file gives no token away, a token is revoked by deleting its line, and the
file is read again whenever it changes (replace it atomically: write a copy, then ``mv``).
Tokens must be random (``secrets.token_urlsafe(32)``, 256 bits): that is why a plain digest,
without salt or stretching, is enough, as it is for API keys at the large hosts.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callback_api.errors import Forbidden, Unauthenticated, Unavailable
from callback_api.replace_file import replace_file
from callback_api.schemas import ErrorBody
from callback_api.settings import Settings

Scope = Literal["read", "write"]
SCOPES: frozenset[str] = frozenset({"read", "write"})
MAX_TOKEN_CHARS = 1024

_READ_METHODS = frozenset({"GET", "HEAD"})
_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
# RFC 6750 b64token (RFC 7235 token68).
_TOKEN68 = re.compile(r"^[A-Za-z0-9._~+/-]+=*$")
_FORMAT = "expected '<sha256 of the token> <scopes> [label]', scopes read, write or read,write"


class TokenFileError(Exception):
    """The tokens file is missing or unusable; the message names the file (and line)."""


@dataclass(frozen=True)
class Grant:
    """What one accepted token may do, and the name it goes by in logs."""

    label: str
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token for a client and the digest that goes into the tokens file."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def scope_of(method: str) -> Scope:
    """Reading needs ``read``; everything else (upload, delete) needs ``write``."""
    return "read" if method.upper() in _READ_METHODS else "write"


def parse_tokens(text: str, source: Path) -> dict[str, Grant]:
    """Digest -> grant, from the text of a tokens file; errors name the line."""
    grants: dict[str, Grant] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 2:
            raise TokenFileError(f"{source}:{number}: {_FORMAT}")
        digest, scopes_text, *label = words
        if not _DIGEST.match(digest):
            # Never echo the value: an operator may have pasted the token instead of its digest.
            raise TokenFileError(
                f"{source}:{number}: the first word is not a SHA-256 digest (64 hex digits); "
                "store the digest of a token, never the token"
            )
        scopes = frozenset(scopes_text.split(","))
        if not scopes <= SCOPES:
            raise TokenFileError(f"{source}:{number}: unknown scope in {scopes_text!r}; {_FORMAT}")
        digest = digest.lower()
        if digest in grants:
            raise TokenFileError(f"{source}:{number}: the same digest is listed twice")
        grants[digest] = Grant(" ".join(label) or digest[:12], scopes)
    return grants


class TokenVerifier:
    """Checks ``Authorization: Bearer`` against the tokens file, re-read when it changes."""

    def __init__(self, path: Path, realm: str, public_reads: bool) -> None:
        self.path = path
        self.realm = realm
        self.public_reads = public_reads
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._grants: dict[str, Grant] = {}
        self._load()  # at start a bad file stops the app; later it fails closed (503)

    def _load(self) -> dict[str, Grant]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise TokenFileError(
                f"{self.path}: no tokens file; auth.enabled is true, so list the SHA-256 "
                "digests of accepted tokens there (docs/security.md)"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(f"{self.path}: the tokens file is not a regular file")
        if info.st_mode & stat.S_IWOTH:
            raise TokenFileError(f"{self.path}: anyone may write the tokens file (chmod o-w)")
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp != self._stamp:
                text = self.path.read_text(encoding="utf-8")
                self._grants = parse_tokens(text, self.path)
                self._stamp = stamp
            return self._grants

    def _challenge(self, error: str | None = None, description: str | None = None) -> str:
        # RFC 6750 section 3; realm and description contain no quote or backslash.
        value = f'Bearer realm="{self.realm}"'
        if error:
            value += f', error="{error}", error_description="{description}"'
        return value

    def _token(self, authorization: str | None) -> str:
        if not authorization:
            raise Unauthenticated("a bearer token is required", self._challenge())
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            detail = "the Authorization header must be 'Bearer <token>'"
            raise Unauthenticated(detail, self._challenge("invalid_request", detail))
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN68.match(token):
            detail = f"the bearer token is not 1-{MAX_TOKEN_CHARS} token68 characters"
            raise Unauthenticated(detail, self._challenge("invalid_token", detail))
        return token

    def authorize(self, authorization: str | None, method: str) -> Grant | None:
        """The grant of the request's token, or None when no token is needed; else 401/403/503."""
        scope = scope_of(method)
        if scope == "read" and self.public_reads:
            return None
        token = self._token(authorization)
        try:
            grants = self._load()
        except (TokenFileError, OSError, UnicodeDecodeError) as exc:
            raise Unavailable(f"tokens cannot be checked: {exc}") from exc
        grant = grants.get(hash_token(token))
        if grant is None:
            detail = "the bearer token is not valid"
            raise Unauthenticated(detail, self._challenge("invalid_token", detail))
        if scope not in grant.scopes:
            raise Forbidden(f"the bearer token may not {scope} (it may {', '.join(grant.scopes)})")
        return grant


def verifier_of(request: Request) -> TokenVerifier | None:
    verifier: TokenVerifier | None = request.app.state.auth
    return verifier


# What a guarded route may answer besides its own results, for the OpenAPI schema.
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "no bearer token, or not a valid one",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    403: {"model": ErrorBody, "description": "the token may not do this (read or write)"},
    503: {"model": ErrorBody, "description": "tokens cannot be checked now"},
}


# Declares the scheme in the OpenAPI schema; the header itself is parsed above, so that each
# way of getting it wrong has its own answer.
_BEARER = HTTPBearer(auto_error=False, description="a token listed in auth.tokens_file")


def require_token(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> None:
    """Route dependency: the request's token must allow its method (a no-op without auth)."""
    verifier = verifier_of(request)
    if verifier is not None:
        verifier.authorize(request.headers.get("authorization"), request.method)


def verifier_from(settings: Settings) -> TokenVerifier | None:
    section = settings.auth
    if not section.enabled:
        return None
    return TokenVerifier(section.tokens_file, section.realm, section.public_reads)


def add_token(path: Path, scopes: str, label: str) -> str:
    """Issue a token: append its digest to the tokens file atomically; return the token.

    The token itself is never written anywhere: the caller hands it to the client once.
    """
    if not frozenset(scopes.split(",")) <= SCOPES:
        raise TokenFileError(f"unknown scope in {scopes!r}; use read, write or read,write")
    if not re.fullmatch(r"[A-Za-z0-9._@:/-]{0,64}", label):
        raise TokenFileError(f"label {label!r}: up to 64 of A-Z a-z 0-9 . _ @ : / -")
    try:
        text = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        text, mode = "", 0o640
    parse_tokens(text, path)  # never extend a file the app would refuse
    token, digest = new_token()
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"{digest} {scopes} {label}".rstrip() + "\n"
    # A new file, then rename: the app re-reads a changed file and must never see half of one.
    replace_file(path, text, mode & ~0o002)
    return token
