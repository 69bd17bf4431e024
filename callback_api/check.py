"""``landing check``: what an operator would get wrong, found before Nginx is reloaded.

The settings are validated when they load (errors name the field). Then this module looks at
the machine (filesystems, certificates, the worker user), renders the environment into a temp
root with pid, logs and temp paths redirected under it (test certificates where the real ones
are not readable here) and runs the real ``nginx -t`` on it, as certbot's tests run an
unprivileged Nginx. ``on_host=True`` means "this is the machine that will run it": what is
only a warning elsewhere (a missing certificate, an unknown user) is then an error.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from callback_api.render import derive, render, write_rendered
from callback_api.settings import Settings
from callback_api.shared_secret import ensure_secret

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str  # the settings field it is about, or the tool that spoke
    message: str

    def line(self) -> str:
        return f"  {self.level:<8} {self.subject}: {self.message}"


@dataclass
class CheckReport:
    env: str
    findings: list[Finding] = field(default_factory=list)
    nginx_output: str = ""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, level: Level, subject: str, message: str) -> None:
        self.findings.append(Finding(level, subject, message))

    def summary(self) -> str:
        verdict = "passes" if self.ok else f"FAILS ({len(self.errors)} error(s))"
        return f"landing check: {self.env} {verdict}, {len(self.warnings)} warning(s)"


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_filesystems(settings: Settings, report: CheckReport, on_host: bool) -> None:
    # Invariant 5: the app links the body file into the media root, and reconcile renames
    # into the quarantine; both only work within one filesystem.
    paths = settings.paths
    devices = {}
    for name in ("temp_dir", "media_root", "quarantine_dir"):
        where = _existing_ancestor(getattr(paths, name))
        devices[name] = (where, os.stat(where).st_dev)
    temp_at, temp_dev = devices["temp_dir"]
    for name in ("media_root", "quarantine_dir"):
        other_at, other_dev = devices[name]
        if other_dev != temp_dev:
            report.add(
                "error",
                f"paths.{name}",
                f"{getattr(paths, name)} (on the filesystem of {other_at}) and paths.temp_dir "
                f"{paths.temp_dir} (on the filesystem of {temp_at}) are on different "
                "filesystems; a landed file must be linked, not copied: put them on one",
            )
            return
    report.add(
        "ok",
        "paths",
        "temp_dir, media_root and quarantine_dir are on one filesystem "
        f"(looked at {', '.join(sorted({str(at) for at, _ in devices.values()}))})",
    )
    if on_host and not paths.temp_dir.parent.is_dir():
        report.add(
            "error",
            "paths.temp_dir",
            f"{paths.temp_dir.parent} does not exist; Nginx creates only the last level of "
            "its temp path: create the parent, owned by the worker user",
        )
    writable = derive(settings).app_writable_dirs[0]
    if writable == Path("/"):
        report.add(
            "warning",
            "paths",
            "temp_dir, media_root and quarantine_dir share no parent but /, so the app unit "
            "must be allowed to write everywhere (ReadWritePaths=/); give them one parent",
        )


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def _check_tls(settings: Settings, report: CheckReport, on_host: bool) -> bool:
    """True when the real certificate and key can be used for ``nginx -t`` here."""
    tls = settings.server.tls
    if tls is None:
        return False
    missing = [
        (name, path)
        for name, path in (("certificate", tls.certificate), ("key", tls.key))
        if not os.access(path, os.R_OK)
    ]
    for name, path in missing:
        state = "does not exist" if not path.exists() else "is not readable by this user"
        if on_host:
            report.add("error", f"server.tls.{name}", f"{path} {state}")
        else:
            report.add(
                "warning",
                f"server.tls.{name}",
                f"{path} {state} on this machine; nginx -t used a test certificate "
                "(run `landing check --on-host` on the server)",
            )
    if missing:
        return False
    if _openssl("x509", "-noout", "-checkend", "0", "-in", str(tls.certificate)).returncode:
        report.add("error", "server.tls.certificate", f"{tls.certificate} has expired")
    cert_key = _openssl("x509", "-noout", "-pubkey", "-in", str(tls.certificate)).stdout
    key_key = _openssl("pkey", "-pubout", "-in", str(tls.key)).stdout
    if not cert_key or cert_key != key_key:
        report.add("error", "server.tls.key", f"{tls.key} is not the key of {tls.certificate}")
        return False
    report.add("ok", "server.tls", "certificate and key are readable and belong together")
    return True


def _check_user(settings: Settings, report: CheckReport, on_host: bool) -> bool:
    """True when the worker user exists here."""
    user = settings.nginx.user
    if user is None:
        if settings.tier != "dev":
            report.add(
                "warning",
                "nginx.user",
                "not set: Nginx workers keep the master's user; set it to the app's user",
            )
        return True
    try:
        pwd.getpwnam(user)
    except KeyError:
        report.add(
            "error" if on_host else "warning",
            "nginx.user",
            f"no user {user!r} on this machine"
            + ("" if on_host else "; nginx -t ran with the current user"),
        )
        return False
    return True


def _check_secret(settings: Settings, report: CheckReport, on_host: bool) -> None:
    if not on_host:
        return
    for path in (settings.app.secret_file, settings.secret_conf):
        if not path.exists():
            report.add(
                "error",
                "app.secret_file",
                f"{path} does not exist; create it with `landing secret --env {settings.name}`",
            )


def _test_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "test-cert.pem", directory / "test-key.pem"
    result = _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"openssl could not make a test certificate: {result.stderr}")
    return cert, key


def redirected(settings: Settings, root: Path, real_tls: bool, real_user: bool) -> Settings:
    """The same environment with every path Nginx writes (and the secret) under ``root``."""
    data: dict[str, Any] = settings.model_dump()
    data["nginx"].update(runtime_dir=root / "run", log_dir=root / "log", conf_dir=root / "conf")
    data["paths"].update(
        temp_dir=root / "spool" / "body",
        media_root=root / "media",
        quarantine_dir=root / "quarantine",
        database=root / "db" / "landing.sqlite3",
    )
    data["app"].update(socket=root / "app.sock", secret_file=root / "secret")
    if not real_user:
        data["nginx"]["user"] = pwd.getpwuid(os.geteuid()).pw_name
    if settings.server.tls is not None and not real_tls:
        cert, key = _test_certificate(root / "tls", settings.server.server_name)
        data["server"]["tls"].update(certificate=cert, key=key)
    # Validated again: a work dir named by the operator must be as safe as any other path.
    return Settings.model_validate(data)


def nginx_test(settings: Settings, nginx: str) -> subprocess.CompletedProcess[str]:
    conf = settings.nginx.conf_dir / "nginx.conf"
    for directory in (
        settings.nginx.runtime_dir,
        settings.nginx.log_dir,
        settings.paths.temp_dir.parent,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            nginx, "-t",
            "-p", str(settings.nginx.runtime_dir),
            "-c", str(conf),
            "-e", str(settings.nginx.log_dir / "nginx-error.log"),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


@contextmanager
def _scratch_root(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="landing-check-") as scratch:
        yield Path(scratch)


def check(
    settings: Settings, nginx: str, on_host: bool = False, work_dir: Path | None = None
) -> CheckReport:
    """Look at the machine, then render under a temp root and run ``nginx -t`` there."""
    report = CheckReport(settings.name)
    report.add("ok", "settings", f"valid ({settings.tier} environment)")
    _check_filesystems(settings, report, on_host)
    real_tls = _check_tls(settings, report, on_host)
    real_user = _check_user(settings, report, on_host)
    _check_secret(settings, report, on_host)
    with _scratch_root(work_dir) as root:
        scratch = redirected(settings, root, real_tls, real_user)
        ensure_secret(scratch)
        write_rendered(render(scratch), scratch.nginx.conf_dir)
        result = nginx_test(scratch, nginx)
    report.nginx_output = result.stderr.strip()
    if result.returncode == 0:
        report.add("ok", "nginx -t", "the rendered config is valid for this Nginx")
    else:
        report.add("error", "nginx -t", report.nginx_output.replace(str(root), "<temp root>"))
    return report
