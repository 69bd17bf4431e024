"""Settings -> Jinja2 templates -> config files. Logic lives here, not in the templates.

Every rendered file starts with a comment naming its environment and a hash of the settings
that made it. Committed renders must not depend on where the project is checked out: the
command line renders with ``RENDER_BASE`` as the project root (see docs/operations.md), and
the hash leaves ``base_dir`` out, since every path it resolved is already in the settings.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from callback_api.replace_file import replace_file
from callback_api.settings import Settings

# Where the committed renders of dev pretend the project lives (relative dev paths resolve
# against it). Staging and prod only have absolute paths, so for them it changes nothing.
RENDER_BASE = Path("/srv/landing")

# Output file -> template, for every environment.
TEMPLATES: dict[str, str] = {
    "nginx.conf": "nginx.conf.j2",
    "mime.types": "mime.types.j2",
    "landing-app.service": "landing-app.service.j2",
    "landing-nginx.service": "landing-nginx.service.j2",
}

# A hashed build asset is ``name.<8 to 64 lowercase hex>.ext`` (webpack's contenthash style),
# optionally precompressed (``.gz``). One pattern feeds both the Nginx cache rule and
# ``landing clean-static``. A bare media id (32 hex, no name, no extension) never matches.
HASHED_ASSET = re.compile(r"^(?P<stem>[^/]+)\.(?P<hash>[0-9a-f]{8,64})\.(?P<ext>[A-Za-z0-9]+)$")
_HASHED_URI = r"^/static/(.+/)?[^/]+\.[0-9a-f]{8,64}\.[A-Za-z0-9]+$"

CORS_METHODS = "GET, PUT, POST, DELETE, OPTIONS"
CORS_REQUEST_HEADERS = "Content-Type, Idempotency-Key, Authorization"
CORS_EXPOSE_HEADERS = "Location, Idempotent-Replayed"


@dataclass(frozen=True)
class Derived:
    """Values computed from the settings for the templates, so the templates hold no logic."""

    worker_rlimit_nofile: int
    redirect_listens: list[str]
    https_origin: str
    hashed_uri_regex: str
    cors_methods: str
    cors_request_headers: str
    cors_expose_headers: str
    environment_file: Path
    venv_bin: Path
    app_writable_dirs: list[Path]
    app_runtime_directory: str | None
    nginx_runtime_directory: str | None
    stop_timeout_seconds: int


def templates_dir_of(settings: Settings) -> Path:
    return Path(__file__).resolve().parent.parent / "templates"


def settings_digest(settings: Settings) -> str:
    """A short hash of everything the render depends on, stamped on each rendered file."""
    payload = settings.model_dump_json(exclude={"base_dir"})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _https_origin(settings: Settings) -> str:
    ssl_ports = [listener.port for listener in settings.server.listen if listener.ssl]
    port = ssl_ports[0] if ssl_ports else 443
    suffix = "" if port == 443 else f":{port}"
    return f"https://{settings.server.server_name}{suffix}"


def _redirect_listens(settings: Settings) -> list[str]:
    tls = settings.server.tls
    if tls is None or tls.redirect_http_port is None:
        return []
    addresses = dict.fromkeys(listener.address for listener in settings.server.listen)
    return [f"{address}:{tls.redirect_http_port}" for address in addresses]


def _app_writable_dirs(settings: Settings) -> list[Path]:
    # The app links body files from the temp dir into the media root. Under systemd's
    # ProtectSystem=strict each ReadWritePaths entry is its own mount, and link() across two
    # mounts fails with EXDEV even on one filesystem: give one common parent instead.
    paths = settings.paths
    shared = Path(os.path.commonpath([paths.temp_dir, paths.media_root, paths.quarantine_dir]))
    dirs = [shared]
    for extra in (paths.database.parent, settings.app.socket.parent):
        if not any(extra.is_relative_to(d) for d in dirs):
            dirs.append(extra)
    return dirs


def _runtime_directory(path: Path) -> str | None:
    """systemd creates /run/<name> for the unit when the path sits directly below /run."""
    return path.name if path.parent == Path("/run") else None


def derive(settings: Settings) -> Derived:
    install = settings.service.install_dir
    return Derived(
        worker_rlimit_nofile=2 * settings.nginx.worker_connections,
        redirect_listens=_redirect_listens(settings),
        https_origin=_https_origin(settings),
        hashed_uri_regex=_HASHED_URI,
        cors_methods=CORS_METHODS,
        cors_request_headers=CORS_REQUEST_HEADERS,
        cors_expose_headers=CORS_EXPOSE_HEADERS,
        environment_file=install / "nginx-conf" / "environments" / f"{settings.name}.toml",
        venv_bin=install / ".venv" / "bin",
        app_writable_dirs=_app_writable_dirs(settings),
        app_runtime_directory=_runtime_directory(settings.app.socket.parent),
        nginx_runtime_directory=_runtime_directory(settings.nginx.runtime_dir),
        # Nginx finishes running requests on SIGQUIT; give the longest one time to end.
        stop_timeout_seconds=int(settings.longest_request_seconds) + 30,
    )


def _header(settings: Settings) -> str:
    lines = [
        f"# landing: environment {settings.name}, settings {settings_digest(settings)}.",
        "# Rendered by `landing render`; edit the environment file, not this one.",
    ]
    if settings.tier == "dev":
        lines.append(
            f"# Relative paths of the environment were resolved against {settings.base_dir}."
        )
    return "\n".join(lines)


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - the output is an Nginx config, not HTML
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render(settings: Settings, templates_dir: Path | None = None) -> dict[str, str]:
    """Render every file of the environment; returns file name -> text."""
    env = _environment(templates_dir or templates_dir_of(settings))
    header = _header(settings)
    derived = derive(settings)
    return {
        name: env.get_template(template).render(s=settings, r=derived, header=header)
        for name, template in TEMPLATES.items()
    }


def write_rendered(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write rendered files atomically (temp name, then rename) so Nginx never reads half."""
    written = []
    for name, text in files.items():
        replace_file(out_dir / name, text)
        written.append(out_dir / name)
    return written
