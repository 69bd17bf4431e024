"""Rendering the three environments: committed, fresh, parsed, linted, and refused when wrong."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import crossplane
import pytest

from callback_api.cli import main
from callback_api.render import RENDER_BASE, TEMPLATES, render, settings_digest
from callback_api.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ["dev", "staging", "prod"]
GIXY = Path(sys.executable).parent / "gixy"


def _settings(env: str, **overrides: Any) -> Settings:
    path = ROOT / "nginx-conf" / "environments" / f"{env}.toml"
    return load_settings(path, overrides, base_dir=RENDER_BASE)


def _parsed(path: Path) -> list[dict[str, Any]]:
    payload = crossplane.parse(str(path), single=True, comments=False, catch_errors=False)
    assert payload["status"] == "ok", payload["errors"]
    block: list[dict[str, Any]] = payload["config"][0]["parsed"]
    return block


def _find(block: list[dict[str, Any]], directive: str, *args: str) -> dict[str, Any]:
    found = [d for d in block if d["directive"] == directive and d["args"][: len(args)] == [*args]]
    assert len(found) == 1, f"{directive} {args}: found {len(found)}"
    return found[0]


def _values(block: list[dict[str, Any]], directive: str) -> list[list[str]]:
    return [d["args"] for d in block if d["directive"] == directive]


def _server(env: str) -> list[dict[str, Any]]:
    http = _find(_parsed(ROOT / "nginx-conf" / "rendered" / env / "nginx.conf"), "http")
    servers = [d for d in http["block"] if d["directive"] == "server"]
    return list(servers[0]["block"])


UPLOAD = "^/_landing/upload/(?<landing_item>[A-Za-z0-9][A-Za-z0-9._-]{0,63})$"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_committed_render_of_each_environment_is_fresh(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--env", env, "--check", "--root", str(ROOT)]) == 0
    assert capsys.readouterr().out == f"landing: rendered files of {env} are fresh\n"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_rendered_file_names_its_environment_and_settings_hash(env: str) -> None:
    digest = settings_digest(_settings(env))
    for name in TEMPLATES:
        text = (ROOT / "nginx-conf" / "rendered" / env / name).read_text()
        assert text.startswith(f"# landing: environment {env}, settings {digest}.\n")


def test_render_check_fails_with_a_diff_when_a_rendered_file_was_edited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prod"
    shutil.copytree(ROOT / "nginx-conf" / "rendered" / "prod", out)
    conf = out / "nginx.conf"
    conf.write_text(conf.read_text().replace("limit_conn landing_upload_conns 10;", ""))
    status = main(["render", "--env", "prod", "--check", "--out", str(out), "--root", str(ROOT)])
    captured = capsys.readouterr()
    assert status == 1
    assert f"--- {conf}\n+++ fresh render of prod\n" in captured.out
    assert "+            limit_conn landing_upload_conns 10;\n" in captured.out
    assert "1 rendered file(s) of prod are stale" in captured.err


def test_committed_renders_do_not_depend_on_where_the_project_is_checked_out() -> None:
    for env in ENVIRONMENTS:
        path = ROOT / "nginx-conf" / "environments" / f"{env}.toml"
        elsewhere = load_settings(path, base_dir=Path("/opt/elsewhere"))
        fixed = load_settings(path, base_dir=RENDER_BASE)
        if env == "dev":
            assert render(elsewhere) != render(fixed)
        else:
            assert render(elsewhere) == render(fixed)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_upload_location_lands_bodies_on_disk_and_sends_only_the_path(env: str) -> None:
    settings = _settings(env)
    upload = _find(_server(env), "location", "~", UPLOAD)["block"]
    assert _values(upload, "internal") == [[]]
    assert _values(upload, "client_body_in_file_only") == [["clean"]]
    assert _values(upload, "client_body_temp_path") == [[str(settings.paths.temp_dir), "1", "2"]]
    assert _values(upload, "proxy_pass_request_body") == [["off"]]
    assert ["X-Upload-Path", "$request_body_file"] in _values(upload, "proxy_set_header")
    assert ["Content-Length", ""] in _values(upload, "proxy_set_header")
    assert _values(upload, "include") == [[str(settings.secret_conf)]]
    assert _values(upload, "proxy_ignore_client_abort") == [["on"]]
    assert _values(upload, "proxy_method") == [["POST"]]
    assert _values(upload, "rewrite") == [["^", "/internal/landed/items/$landing_item", "break"]]
    limits = settings.limits
    assert _values(upload, "limit_req") == [
        ["zone=landing_uploads", f"burst={limits.upload_burst}", "nodelay"]
    ]
    assert _values(upload, "limit_conn") == [
        ["landing_upload_conns", str(limits.upload_connections)]
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_internal_paths_and_stored_media_are_not_reachable_from_outside(env: str) -> None:
    server = _server(env)
    refused = _find(server, "location", "/internal/")["block"]
    assert _values(refused, "return") == [["404", '{"detail": "Not Found"}']]
    media = _find(server, "location", "/_landing/media/")["block"]
    assert _values(media, "internal") == [[]]
    assert _values(media, "disable_symlinks") == [["on"]]
    assert ["X-Content-Type-Options", "nosniff", "always"] in _values(media, "add_header")


def test_the_secret_is_in_no_committed_file() -> None:
    # The header is only ever cleared ("") in the render; its value comes from an include.
    for path in (ROOT / "nginx-conf").rglob("*"):
        if path.is_file():
            assert not re.search(r'X-Landing-Secret "[^"]', path.read_text()), path


def test_prod_speaks_modern_tls_with_hsts_and_redirects_plain_http() -> None:
    settings = _settings("prod")
    assert settings.server.tls is not None
    conf = _parsed(ROOT / "nginx-conf" / "rendered" / "prod" / "nginx.conf")
    http = _find(conf, "http")["block"]
    assert _values(http, "ssl_protocols") == [["TLSv1.2", "TLSv1.3"]]
    assert _values(http, "ssl_session_tickets") == [["off"]]
    tls_server, redirect = (d["block"] for d in http if d["directive"] == "server")
    assert _values(tls_server, "listen") == [
        ["0.0.0.0:443", "ssl", "http2"],
        ["[::]:443", "ssl", "http2"],
    ]
    assert _values(tls_server, "ssl_certificate") == [[str(settings.server.tls.certificate)]]
    hsts = ["Strict-Transport-Security", "max-age=63072000; includeSubDomains", "always"]
    assert hsts in _values(tls_server, "add_header")
    # Every location that adds headers restates HSTS (Nginx drops inherited add_header).
    for location in (d for d in tls_server if d["directive"] == "location"):
        headers = _values(location["block"], "add_header")
        assert not headers or hsts in headers, location["args"]
    assert _values(redirect, "listen") == [["0.0.0.0:80"], ["[::]:80"]]
    back = _find(redirect, "location", "/")["block"]
    assert _values(back, "return") == [["301", "https://media.example.com$request_uri"]]
    assert _values(conf, "user") == [["landing"]]


def test_hashed_static_assets_are_immutable_and_the_rest_revalidates() -> None:
    http = _find(_parsed(ROOT / "nginx-conf" / "rendered" / "prod" / "nginx.conf"), "http")
    cache_map = _find(http["block"], "map", "$uri", "$landing_static_cache")["block"]
    assert [[d["directive"], *d["args"]] for d in cache_map] == [
        ["default", "no-cache"],
        [
            "~^/static/(.+/)?[^/]+\\.[0-9a-f]{8,64}\\.[A-Za-z0-9]+$",
            "public, max-age=31536000, immutable",
        ],
    ]
    static = _find(_server("prod"), "location", "/static/")["block"]
    assert _values(static, "alias") == [["/srv/landing/static/"]]
    assert _values(static, "gzip_static") == [["on"]]
    assert ["Cache-Control", "$landing_static_cache", "always"] in _values(static, "add_header")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_gixy_reports_nothing_on_the_rendered_config(env: str) -> None:
    result = subprocess.run(
        [str(GIXY), "-f", "json", str(ROOT / "nginx-conf" / "rendered" / env / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_gixy_reports_nothing_on_prod_with_auth_enabled(tmp_path: Path) -> None:
    # The committed renders have [auth] off; its block must lint clean as well.
    settings = _settings("prod", auth={"enabled": True})
    (tmp_path / "nginx.conf").write_text(render(settings)["nginx.conf"])
    (tmp_path / "mime.types").write_text(render(settings)["mime.types"])
    result = subprocess.run(
        [str(GIXY), "-f", "json", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        (
            "prod",
            {"paths": {"media_root": "var/media"}},
            "paths.media_root = 'var/media' is relative; a prod environment needs absolute paths",
        ),
        (
            "staging",
            {"server": {"tls": {"certificate": "cert.pem", "key": "/k.pem"}}},
            "server.tls.certificate = 'cert.pem' is relative; a staging environment needs",
        ),
        (
            "prod",
            {"uploads": {"max_body_size": "2 GB"}},
            "uploads.max_body_size: Value error, '2 GB' is not an Nginx size",
        ),
        (
            "prod",
            {"paths": {"media_root": "/srv/landing/static/uploads"}},
            "paths.media_root (/srv/landing/static/uploads) and paths.static_root "
            "(/srv/landing/static) overlap; uploads must never be under the static root",
        ),
        (
            "prod",
            {"paths": {"quarantine_dir": "/var/lib/landing/media/q"}},
            "paths.quarantine_dir (/var/lib/landing/media/q) and paths.media_root",
        ),
        (
            "prod",
            {"limits": {"upload_rate": "fast"}},
            "limits.upload_rate: Value error, 'fast' is not an Nginx rate",
        ),
        (
            "prod",
            {"cors": {"allowed_origins": ["https://app.example.com/page"]}},
            "cors.allowed_origins.0: Value error, 'https://app.example.com/page' is not an origin",
        ),
        (
            "prod",
            {"server": {"server_name": "a.example.com; return 200"}},
            "server.server_name: Value error, 'a.example.com; return 200' contains ';'",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(
    env: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _settings(env, **overrides)
    assert message in str(caught.value)


def test_app_unit_runs_uvicorn_as_the_nginx_worker_user_with_one_writable_parent() -> None:
    unit = (ROOT / "nginx-conf" / "rendered" / "prod" / "landing-app.service").read_text()
    lines = unit.splitlines()
    assert "User=landing" in lines
    assert (
        "ExecStart=/srv/landing/.venv/bin/landing serve "
        "--config /srv/landing/nginx-conf/environments/prod.toml"
    ) in lines
    # Temp dir, media root and quarantine share one ReadWritePaths mount (link() needs it).
    assert [x for x in lines if x.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=/var/lib/landing",
        "ReadWritePaths=/run/landing",
    ]
    assert "RuntimeDirectory=landing" in lines


def test_nginx_unit_tests_the_config_before_start_and_stops_gracefully() -> None:
    unit = (ROOT / "nginx-conf" / "rendered" / "prod" / "landing-nginx.service").read_text()
    lines = unit.splitlines()
    command = (
        "-p /run/landing-nginx -c /etc/landing/nginx/nginx.conf -e /var/log/landing/nginx-error.log"
    )
    assert f"ExecStartPre=/usr/sbin/nginx -t -q {command}" in lines
    assert f"ExecStart=/usr/sbin/nginx {command}" in lines
    assert "KillSignal=SIGQUIT" in lines
    assert "TimeoutStopSec=150s" in lines


def test_systemd_accepts_both_units(tmp_path: Path) -> None:
    # Installed in a scratch dir, so that systemd can also check that the commands exist.
    command = tmp_path / "install" / ".venv" / "bin" / "landing"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    settings = _settings("prod", service={"install_dir": str(tmp_path / "install")})
    for name, text in render(settings).items():
        if name.endswith(".service"):
            (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "landing-app.service", "landing-nginx.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
