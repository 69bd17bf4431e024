"""``landing check``: the real ``nginx -t`` on every environment, and the mistakes it catches."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import self_signed

from callback_api.check import CheckReport, Finding, check
from callback_api.cli import main
from callback_api.devstack import find_nginx
from callback_api.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def _settings(env: str, **overrides: Any) -> Settings:
    return load_settings(ROOT / "nginx-conf" / "environments" / f"{env}.toml", overrides)


def _by_subject(report: CheckReport, subject: str) -> list[Finding]:
    return [f for f in report.findings if f.subject == subject]


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return self_signed(directory / f"{name}.pem", directory / f"{name}.key", "media.example.com")


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A directory on /dev/shm, a tmpfs: another filesystem than the test's tmp dir."""
    directory = Path(tempfile.mkdtemp(prefix="landing-check-", dir="/dev/shm"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_environment_passes_landing_check_with_the_real_nginx(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--env", env, "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "  ok       nginx -t: the rendered config is valid for this Nginx\n" in out
    assert f"landing check: {env} passes" in out


def test_check_runs_nginx_t_on_a_render_under_the_temp_root(tmp_path: Path) -> None:
    report = check(_settings("prod"), find_nginx(), work_dir=tmp_path)
    assert report.ok
    conf = (tmp_path / "conf" / "nginx.conf").read_text()
    assert f"pid {tmp_path}/run/nginx.pid;" in conf
    assert f"client_body_temp_path {tmp_path}/spool/body 1 2;" in conf
    assert f"ssl_certificate {tmp_path}/tls/test-cert.pem;" in conf
    assert f"include {tmp_path}/secret.nginx.conf;" in conf
    assert "test is successful" in report.nginx_output
    assert (tmp_path / "secret").exists()
    assert not Path("/var/lib/landing").exists()


def test_a_missing_certificate_is_a_warning_elsewhere_and_an_error_on_the_host(
    tmp_path: Path,
) -> None:
    settings = _settings("prod")
    here = check(settings, find_nginx(), work_dir=tmp_path / "here")
    on_host = check(settings, find_nginx(), on_host=True, work_dir=tmp_path / "host")
    cert = "/etc/letsencrypt/live/media.example.com/fullchain.pem"
    [warning] = _by_subject(here, "server.tls.certificate")
    assert warning.level == "warning"
    assert warning.message.startswith(f"{cert} does not exist on this machine")
    assert here.ok
    [error] = _by_subject(on_host, "server.tls.certificate")
    assert error == Finding("error", "server.tls.certificate", f"{cert} does not exist")
    assert not on_host.ok


def test_a_real_certificate_is_used_and_a_key_that_does_not_match_it_is_an_error(
    tmp_path: Path,
) -> None:
    cert, key = _certificate(tmp_path / "tls", "one")
    _, other_key = _certificate(tmp_path / "tls", "two")
    good = check(
        _settings("prod", server={"tls": {"certificate": str(cert), "key": str(key)}}),
        find_nginx(),
        work_dir=tmp_path / "good",
    )
    assert _by_subject(good, "server.tls") == [
        Finding("ok", "server.tls", "certificate and key are readable and belong together")
    ]
    assert f"ssl_certificate {cert};" in (tmp_path / "good" / "conf" / "nginx.conf").read_text()
    assert good.ok
    bad = check(
        _settings("prod", server={"tls": {"certificate": str(cert), "key": str(other_key)}}),
        find_nginx(),
        work_dir=tmp_path / "bad",
    )
    assert _by_subject(bad, "server.tls.key") == [
        Finding("error", "server.tls.key", f"{other_key} is not the key of {cert}")
    ]


def test_temp_dir_and_media_root_on_different_filesystems_is_an_error(
    tmp_path: Path, shm_dir: Path
) -> None:
    settings = _settings(
        "prod",
        paths={"temp_dir": str(shm_dir / "body"), "media_root": str(tmp_path / "media")},
    )
    report = check(settings, find_nginx(), work_dir=tmp_path / "work")
    [error] = report.errors
    assert error.subject == "paths.media_root"
    assert error.message.startswith(f"{tmp_path}/media (on the filesystem of ")
    assert f"paths.temp_dir {shm_dir}/body (on the filesystem of {shm_dir})" in error.message
    assert error.message.endswith("are on different filesystems; a landed file must be linked, "
                                  "not copied: put them on one")  # fmt: skip


def test_a_missing_parent_of_the_temp_dir_is_an_error_on_the_host(tmp_path: Path) -> None:
    settings = _settings("prod", paths={"temp_dir": str(tmp_path / "spool" / "body")})
    report = check(settings, find_nginx(), on_host=True, work_dir=tmp_path / "work")
    assert (
        Finding(
            "error",
            "paths.temp_dir",
            f"{tmp_path}/spool does not exist; Nginx creates only the last level of its temp "
            "path: create the parent, owned by the worker user",
        )
        in report.errors
    )


def test_check_exits_2_naming_the_field_of_a_relative_path_in_prod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environments = tmp_path / "nginx-conf" / "environments"
    environments.mkdir(parents=True)
    text = (ROOT / "nginx-conf" / "environments" / "prod.toml").read_text()
    edited = text.replace('media_root = "/var/lib/landing/media"', 'media_root = "media"')
    assert edited != text
    (environments / "prod.toml").write_text(edited)
    assert main(["check", "--env", "prod", "--root", str(tmp_path)]) == 2
    assert (
        "paths.media_root = 'media' is relative; a prod environment needs absolute paths"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("2GB", "uploads.max_body_size: Value error, '2GB' is not an Nginx size"),
        ("1.5g", "uploads.max_body_size: Value error, '1.5g' is not an Nginx size"),
        (
            "99999999999g",
            "uploads.max_body_size: Value error, '99999999999g' is more than Nginx can hold",
        ),
    ],
)
def test_check_exits_2_on_a_body_limit_nginx_cannot_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str, message: str
) -> None:
    environments = tmp_path / "nginx-conf" / "environments"
    environments.mkdir(parents=True)
    text = (ROOT / "nginx-conf" / "environments" / "prod.toml").read_text()
    (environments / "prod.toml").write_text(
        text.replace('max_body_size = "2g"', f'max_body_size = "{size}"')
    )
    assert main(["check", "--env", "prod", "--root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_what_only_nginx_can_refuse_is_reported_from_nginx_t(tmp_path: Path) -> None:
    report = check(
        _settings("prod", nginx={"worker_processes": "lots"}), find_nginx(), work_dir=tmp_path
    )
    [error] = report.errors
    assert error.subject == "nginx -t"
    assert '"worker_processes" directive invalid value in <temp root>/conf/nginx.conf:' in (
        error.message
    )
