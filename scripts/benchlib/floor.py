"""Nginx alone: the same body settings as landing, the callback replaced by a ``return 204``.

A plain ``return 204`` in the upload location would discard the body without writing it
(BENCHMARKING.md), so the upload location keeps ``client_body_in_file_only`` and proxies,
without the body, to a second location of the same server that answers 204. That is the
floor the design cannot beat: the body really reaches a file, and nothing else happens.

The body file is kept (``on``, not ``clean``) and its path sent back in a header, so the
harness deletes it after the block, untimed, as it deletes landing's stored files. With
``clean`` the worker would unlink it inside the request, and for a 1 GiB file that unlink
(dropping 1 GiB of page cache) happens before Nginx uncorks the socket (``tcp_nopush``), so
the floor would pay a cost landing does not: landing's temp unlink only removes a link.
The same server sends files from a directory for the download floor.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_CONF = """\
{user}worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    default_type application/octet-stream;
    access_log off;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_body_temp_path {root}/client_body;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    upstream floor_self {{
        server 127.0.0.1:{port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /upload {{
            client_max_body_size 0;
            client_body_in_file_only on;
            client_body_temp_path {temp_dir} {levels};
            client_body_buffer_size {buffer};
            proxy_pass_request_body off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Content-Length "";
            proxy_set_header X-Upload-Path $request_body_file;
            proxy_method POST;
            proxy_pass http://floor_self/done;
            add_header X-Upload-Path $request_body_file always;
        }}
        location = /done {{ return 204; }}
        location /files/ {{ alias {files}/; }}
    }}
}}
"""


@dataclass(frozen=True)
class FloorSettings:
    """What the floor copies from landing's settings, so that both write bodies alike."""

    body_buffer_size: str = "256k"
    temp_levels: tuple[int, ...] = (1, 2)
    worker_processes: str = "2"
    worker_connections: int = 1024


def write_floor_conf(root: Path, port: int, settings: FloorSettings) -> Path:
    for name in ("temp", "files", "client_body"):
        (root / name).mkdir(parents=True, exist_ok=True)
    # A root master would hand the temp dir to "nobody"; keep the workers as the same user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(
        _CONF.format(
            user=user,
            workers=settings.worker_processes,
            connections=settings.worker_connections,
            root=root,
            port=port,
            temp_dir=root / "temp",
            levels=" ".join(str(level) for level in settings.temp_levels),
            buffer=settings.body_buffer_size,
            files=root / "files",
        )
    )
    return conf


def start_floor(nginx: str, root: Path, conf: Path) -> subprocess.Popen[bytes]:
    """``daemon off``: the pid we hold is the master's, and we stop it by that pid."""
    return subprocess.Popen(
        [
            nginx,
            "-p",
            str(root),
            "-c",
            str(conf),
            "-e",
            str(root / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdin=subprocess.DEVNULL,
    )
