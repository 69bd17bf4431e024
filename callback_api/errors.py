"""One catalogue of coded errors, turned into JSON responses in one place (app.py)."""

from __future__ import annotations


class LandingError(Exception):
    """An error with a stable code, an HTTP status and a message that names the bad input."""

    code = "ERR_LANDING"
    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(LandingError):
    code, status = "ERR_BAD_REQUEST", 400


class EmptyUpload(LandingError):
    code, status = "ERR_EMPTY_UPLOAD", 400


class MalformedMultipart(LandingError):
    code, status = "ERR_MALFORMED_MULTIPART", 400


class Unauthorized(LandingError):
    code, status = "ERR_UNAUTHORIZED", 401


class Forbidden(LandingError):
    code, status = "ERR_FORBIDDEN", 403


class NotFound(LandingError):
    code, status = "ERR_NOT_FOUND", 404


class Conflict(LandingError):
    code, status = "ERR_CONFLICT", 409


class TooLarge(LandingError):
    code, status = "ERR_TOO_LARGE", 413


class UnsupportedType(LandingError):
    code, status = "ERR_UNSUPPORTED_TYPE", 415


class Invalid(LandingError):
    code, status = "ERR_INVALID", 422


class Unavailable(LandingError):
    code, status = "ERR_UNAVAILABLE", 503


class InsufficientStorage(LandingError):
    code, status = "ERR_INSUFFICIENT_STORAGE", 507


class Unauthenticated(Unauthorized):
    """401 with the challenge a client needs to try again (RFC 6750 ``WWW-Authenticate``)."""

    def __init__(self, detail: str, challenge: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": challenge}


class InProgress(Conflict):
    """409: the first request with this Idempotency-Key has not finished; try again soon."""

    code = "ERR_IN_PROGRESS"

    def __init__(self, detail: str, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class KeyReused(Invalid):
    """422: an Idempotency-Key sent again with a different request (another file or name)."""

    code = "ERR_IDEMPOTENCY_KEY_REUSED"


class QuotaExceeded(TooLarge):
    """413: storing this upload would take its item over a configured quota."""

    code = "ERR_QUOTA_EXCEEDED"


class Misdirected(LandingError):
    """421: a request the app cannot answer because it should have gone to Nginx."""

    code, status = "ERR_MISDIRECTED", 421
