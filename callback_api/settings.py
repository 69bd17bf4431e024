"""The one settings model of an environment: it feeds the Nginx templates and the app alike.

An environment is a TOML file (``nginx-conf/environments/<env>.toml``). Nothing here is read at
import time; ``load_settings`` builds a model from a file plus optional overrides (tests, the
``up`` command), so several environments can live in one process.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# Characters that could end a directive, open a block, start a variable or break quoting if
# a value reached the Nginx config unescaped.
_NGINX_UNSAFE = re.compile(r"[;{}\"'\\$#`\s]")
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_TIME = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_RATE = re.compile(r"^[1-9]\d*r/[sm]$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MAX_OFF_T = 2**63 - 1  # Nginx parses sizes into an off_t
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(Exception):
    """Settings that cannot be used; the message names the file and the field."""


def _nginx_safe(value: str) -> str:
    bad = _NGINX_UNSAFE.search(value)
    if bad:
        raise ValueError(f"{value!r} contains {bad.group()!r}, which would break the Nginx config")
    if not value:
        raise ValueError("must not be empty")
    return value


def _nginx_safe_path(value: Path) -> Path:
    _nginx_safe(str(value))
    return value


def _nginx_size(value: str) -> str:
    if not _SIZE.match(value):
        raise ValueError(f"{value!r} is not an Nginx size (a number with an optional k, m or g)")
    if size_bytes(value) > _MAX_OFF_T:
        raise ValueError(f"{value!r} is more than Nginx can hold (2^63 - 1 bytes)")
    return value


def _nginx_time(value: str) -> str:
    if not _TIME.match(value):
        raise ValueError(f"{value!r} is not an Nginx time (a number with ms, s, m, h or d)")
    return value


def _nginx_rate(value: str) -> str:
    if not _RATE.match(value):
        raise ValueError(f"{value!r} is not an Nginx rate (such as 10r/s or 600r/m)")
    return value


def _origin(value: str) -> str:
    if not _ORIGIN.match(value):
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
    return value


SafeStr = Annotated[str, AfterValidator(_nginx_safe)]
SafePath = Annotated[Path, AfterValidator(_nginx_safe_path)]
NginxSize = Annotated[str, AfterValidator(_nginx_size)]
NginxTime = Annotated[str, AfterValidator(_nginx_time)]
NginxRate = Annotated[str, AfterValidator(_nginx_rate)]
Origin = Annotated[str, AfterValidator(_origin)]


def size_bytes(value: str) -> int:
    """Bytes meant by an Nginx size such as ``10g``."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an Nginx size")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def time_seconds(value: str) -> float:
    """Seconds meant by an Nginx time such as ``60s``."""
    match = _TIME.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an Nginx time")
    return int(match.group(1)) * _TIME_UNITS[match.group(2) or "s"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Section):
    """One ``listen`` directive."""

    address: SafeStr = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    ssl: bool = False
    http2: bool = False


class Tls(_Section):
    """``ssl_*`` directives of the server."""

    certificate: SafePath
    key: SafePath
    protocols: list[Literal["TLSv1.2", "TLSv1.3"]] = ["TLSv1.2", "TLSv1.3"]
    ciphers: SafeStr = (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    )
    hsts_max_age: int = Field(default=0, ge=0)
    redirect_http_port: int | None = Field(default=None, ge=1, le=65535)


class Server(_Section):
    """The ``server`` block: names, listeners, TLS."""

    server_name: SafeStr = "localhost"
    listen: list[Listen]
    tls: Tls | None = None

    @model_validator(mode="after")
    def _tls_matches_listeners(self) -> Server:
        if any(listener.ssl for listener in self.listen) and self.tls is None:
            raise ValueError("a listener has ssl = true but [server.tls] is missing")
        return self


class Nginx(_Section):
    """Process-level Nginx settings and where it keeps its own files."""

    user: SafeStr | None = None
    worker_processes: SafeStr = "auto"
    worker_connections: int = Field(default=1024, ge=16)
    runtime_dir: SafePath = Path("var/nginx")
    log_dir: SafePath = Path("var/log")
    # Where the rendered config is installed (the Nginx unit points -c at it).
    conf_dir: SafePath = Path("var/nginx/conf")
    binary: SafePath = Path("/usr/sbin/nginx")


class Paths(_Section):
    """Where bodies land, where media is kept, where static assets and the catalog live."""

    temp_dir: SafePath = Path("var/spool/body")
    media_root: SafePath = Path("var/media")
    static_root: SafePath = Path("static")
    database: SafePath = Path("var/landing.sqlite3")
    # Where reconcile moves files it will not keep; on the media root's filesystem.
    quarantine_dir: SafePath = Path("var/quarantine")


class Uploads(_Section):
    """Limits and guarantees of the upload path."""

    max_body_size: NginxSize = "1g"
    body_buffer_size: NginxSize = "256k"
    body_timeout: NginxTime = "60s"
    callback_timeout: NginxTime = "60s"
    temp_levels: tuple[int, ...] = (1, 2)
    durable: bool = True
    hash_sha256: bool = False
    allow_empty: bool = False
    # How long a retry with the same Idempotency-Key gets the first answer back.
    idempotency_ttl: NginxTime = "24h"

    @field_validator("temp_levels")
    @classmethod
    def _levels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) > 3 or any(level not in (1, 2) for level in value):
            raise ValueError(f"{value!r}: Nginx allows up to three levels of 1 or 2 digits")
        return value


class App(_Section):
    """The callback app: where it listens and how Nginx proves itself to it."""

    socket: SafePath = Path("var/run/app.sock")
    workers: int = Field(default=1, ge=1, le=64)
    secret_file: SafePath = Path("var/secret")


class Limits(_Section):
    """Per-client limits on the upload routes (answered 429) and the client timeouts."""

    upload_rate: NginxRate = "10r/s"  # limit_req_zone rate, per client address
    upload_burst: int = Field(default=20, ge=0)  # limit_req burst (nodelay)
    upload_connections: int = Field(default=10, ge=1)  # limit_conn, per client address
    zone_size: NginxSize = "10m"  # shared memory of each zone
    header_timeout: NginxTime = "10s"  # client_header_timeout
    send_timeout: NginxTime = "60s"  # send_timeout
    keepalive_timeout: NginxTime = "65s"  # keepalive_timeout


class Cors(_Section):
    """Origins whose pages may call the API and upload routes; empty means same origin only."""

    allowed_origins: list[Origin] = []
    max_age: int = Field(default=600, ge=0, le=86400)  # Access-Control-Max-Age


class Service(_Section):
    """The systemd units: where the project (and its .venv) is installed."""

    install_dir: SafePath = Path()


class Multipart(_Section):
    """Bounds on an HTML form body, checked while splitting it."""

    max_parts: int = Field(default=100, ge=1)
    max_fields: int = Field(default=50, ge=0)
    max_field_bytes: int = Field(default=64 * 1024, ge=1)
    max_part_header_bytes: int = Field(default=8 * 1024, ge=256)


class Content(_Section):
    """What may be stored, decided from the sniffed bytes."""

    allowed_types: list[SafeStr] = ["*/*"]
    max_pixels: int = Field(default=100_000_000, ge=1)
    active_content: Literal["refuse", "attachment"] = "refuse"
    check_extension: bool = True


class Auth(_Section):
    """Bearer tokens, checked by Nginx (``auth_request``) before a body is stored, and by the app
    on every API call. ``tokens_file`` holds SHA-256 digests of accepted tokens (docs/security.md).
    """

    enabled: bool = False
    tokens_file: SafePath = Path("var/auth-tokens")
    realm: SafeStr = "landing"  # the realm of WWW-Authenticate: Bearer
    public_reads: bool = False  # GET of metadata and content without a token
    timeout: NginxTime = "5s"  # how long Nginx waits for the app's decision


class Quota(_Section):
    """Optional per-item limits, checked when an upload is recorded; over quota is 413."""

    max_files_per_item: int | None = Field(default=None, ge=1)
    max_bytes_per_item: NginxSize | None = None


_S = TypeVar("_S", bound=_Section)


def _resolved(section: _S, where: str, base: Path, tier: str) -> _S:
    """The section with its relative paths resolved against ``base``; only dev may have any,
    since a deployed config must not depend on where the project was checked out."""
    relative = {n: v for n, v in section if isinstance(v, Path) and not v.is_absolute()}
    if not relative:
        return section
    if tier != "dev":
        name = next(iter(relative))
        raise ValueError(
            f"{where}.{name} = {str(relative[name])!r} is relative; "
            f"a {tier} environment needs absolute paths"
        )
    return section.model_copy(update={n: base / v for n, v in relative.items()})


class Settings(_Section):
    """An environment: the only input of the templates and of ``create_app``."""

    name: SafeStr
    # dev resolves relative paths against the project root; staging and prod refuse them.
    tier: Literal["dev", "staging", "prod"] = "dev"
    base_dir: Path = Path()
    server: Server
    nginx: Nginx = Nginx()
    paths: Paths = Paths()
    uploads: Uploads = Uploads()
    app: App = App()
    multipart: Multipart = Multipart()
    content: Content = Content()
    auth: Auth = Auth()
    quota: Quota = Quota()
    limits: Limits = Limits()
    cors: Cors = Cors()
    service: Service = Service()

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Relative paths are relative to the project root; resolve them once, here, so that
        # the config and the app agree on every path.
        base = self.base_dir.resolve()
        object.__setattr__(self, "base_dir", base)
        for section_name in ("nginx", "paths", "app", "service", "auth"):
            section = getattr(self, section_name)
            resolved = _resolved(section, section_name, base, self.tier)
            object.__setattr__(self, section_name, resolved)
        tls = self.server.tls
        if tls is not None:
            tls = _resolved(tls, "server.tls", base, self.tier)
            object.__setattr__(self, "server", self.server.model_copy(update={"tls": tls}))
        return self

    @model_validator(mode="after")
    def _media_apart_from_static(self) -> Settings:
        # Nginx serves the static root to anyone, and build-asset cleaning deletes there:
        # no uploaded or quarantined file may ever live inside it, nor it inside them.
        static = self.paths.static_root
        for name in ("media_root", "temp_dir", "quarantine_dir"):
            other = getattr(self.paths, name)
            if other.is_relative_to(static) or static.is_relative_to(other):
                raise ValueError(
                    f"paths.{name} ({other}) and paths.static_root ({static}) overlap; "
                    "uploads must never be under the static root"
                )
        quarantine, media = self.paths.quarantine_dir, self.paths.media_root
        if quarantine.is_relative_to(media) or media.is_relative_to(quarantine):
            raise ValueError(
                f"paths.quarantine_dir ({quarantine}) and paths.media_root ({media}) overlap"
            )
        return self

    @property
    def longest_request_seconds(self) -> float:
        """No request lives longer without touching its body file or its rows: the body
        timeout (between two writes) plus the time the callback may take."""
        uploads = self.uploads
        return time_seconds(uploads.body_timeout) + time_seconds(uploads.callback_timeout)

    @property
    def max_body_bytes(self) -> int:
        return size_bytes(self.uploads.max_body_size)

    @property
    def secret_conf(self) -> Path:
        """The Nginx snippet that sets the secret header; written next to the secret file."""
        return self.app.secret_file.with_name(self.app.secret_file.name + ".nginx.conf")


def merge_overrides(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dicts merged key by key; any other value replaces the base one."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def project_root_of(path: Path) -> Path:
    """``nginx-conf/environments/x.toml`` lives two levels below the project root."""
    path = path.resolve()
    if path.parent.name == "environments" and path.parent.parent.name == "nginx-conf":
        return path.parent.parent.parent
    return path.parent


def load_settings(
    path: Path, overrides: Mapping[str, Any] | None = None, base_dir: Path | None = None
) -> Settings:
    """Read an environment file, apply overrides, validate; errors name the file and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such environment file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    data = merge_overrides(data, overrides or {})
    data.setdefault("base_dir", str(base_dir or project_root_of(path)))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"{path}: {problems}") from None
