"""The ``landing`` command line."""

from __future__ import annotations

import argparse
import difflib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callback_api.settings import Settings, SettingsError, load_settings

DEFAULT_ROOT = Path.cwd()


def environment_file(root: Path, env: str) -> Path:
    return root / "nginx-conf" / "environments" / f"{env}.toml"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(environment_file(args.root, args.env))


def _add_env(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help="environment name (default: dev)")
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="project root holding nginx-conf/ and templates/ (default: the current directory)",
    )


def cmd_up(args: argparse.Namespace) -> int:
    from callback_api.devstack import StackError, running_stack

    config = environment_file(args.root, args.env)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        base = load_settings(config)
        overrides["server"] = {
            "listen": [
                {**listener.model_dump(), "port": args.port + index}
                for index, listener in enumerate(base.server.listen)
            ]
        }

    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        with running_stack(config, overrides) as stack:
            print(f"landing ({args.env}) is up at {stack.url}  (Ctrl-C stops it)", flush=True)
            for listener in stack.settings.server.listen[1:]:
                kind = "HTTP/2 (h2c)" if listener.http2 and not listener.ssl else "also"
                print(f"  {kind}: {listener.address}:{listener.port}", flush=True)
            while not stopping:
                for name, process in (("app", stack.app), ("nginx", stack.nginx)):
                    if process is not None and process.poll() is not None:
                        print(
                            f"landing: {name} exited ({process.returncode}); stopping",
                            file=sys.stderr,
                        )
                        return 1
                time.sleep(0.2)
    except StackError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 1
    print("landing: stopped", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from callback_api.app import CONFIG_ENV

    config = args.config or environment_file(args.root, args.env)
    settings = load_settings(config)
    os.environ[CONFIG_ENV] = str(config)
    settings.app.socket.unlink(missing_ok=True)
    uvicorn.run(
        "callback_api.app:create_app_from_env",
        factory=True,
        uds=str(settings.app.socket),
        workers=settings.app.workers,
        access_log=False,
        log_level="warning",
    )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from callback_api.render import RENDER_BASE, render, write_rendered

    config = environment_file(args.root, args.env)
    # A fixed base, not the checkout: committed renders are the same on every machine.
    settings = load_settings(config, base_dir=args.base_dir or RENDER_BASE)
    files = render(settings)
    out = args.out or args.root / "nginx-conf" / "rendered" / args.env
    if args.check:
        stale = 0
        for name, text in files.items():
            committed = out / name
            current = committed.read_text(encoding="utf-8") if committed.exists() else ""
            if current != text:
                stale += 1
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        str(committed),
                        f"fresh render of {args.env}",
                    )
                )
        if stale:
            print(
                f"landing: {stale} rendered file(s) of {args.env} are stale; "
                f"run `landing render --env {args.env}`",
                file=sys.stderr,
            )
            return 1
        print(f"landing: rendered files of {args.env} are fresh")
        return 0
    for path in write_rendered(files, out):
        print(path)
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    from callback_api.shared_secret import ensure_secret

    settings = _settings(args)
    ensure_secret(settings, rotate=args.rotate)
    print(f"secret: {settings.app.secret_file}\nnginx snippet: {settings.secret_conf}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from callback_api.auth import TokenFileError, add_token

    settings = _settings(args)
    path = settings.auth.tokens_file
    try:
        token = add_token(path, args.scopes, args.label)
    except TokenFileError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 1
    # The token goes to stdout alone (for scripts); the explanation to stderr.
    print(f"landing: added a {args.scopes} token to {path}; it is shown once:", file=sys.stderr)
    if not settings.auth.enabled:
        print(f"landing: note: [auth] is not enabled in {args.env}", file=sys.stderr)
    print(token)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from callback_api.check import check
    from callback_api.devstack import StackError, find_nginx

    settings = _settings(args)
    try:
        nginx = args.nginx or find_nginx()
    except StackError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 1
    report = check(settings, nginx, on_host=args.on_host, work_dir=args.keep)
    print(f"landing check: {args.env}{' (on this host)' if args.on_host else ''}")
    for finding in report.findings:
        print(finding.line())
    print(report.summary())
    return 0 if report.ok else 1


def _print_paths(paths: Sequence[Path], limit: int = 20) -> None:
    for path in paths[:limit]:
        print(f"  {path}")
    if len(paths) > limit:
        print(f"  ... and {len(paths) - limit} more")


def cmd_sweep(args: argparse.Namespace) -> int:
    from callback_api.progress import Progress
    from callback_api.sweep import sweep

    settings = _settings(args)
    report = sweep(settings, apply=args.apply, progress=Progress("sweep: scanning"))
    _print_paths(report.stale)
    print(report.summary())
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from callback_api.progress import Progress
    from callback_api.reconcile import reconcile
    from callback_api.store import StorageError

    settings = _settings(args)
    try:
        report = reconcile(settings, apply=args.apply, progress=Progress("reconcile: scanning"))
    except StorageError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 1
    for title, ids in (
        ("files without a row", report.orphan_files),
        ("stale pending rows", report.stale_pending),
        ("ready rows whose file is lost", report.lost),
    ):
        if ids:
            print(f"{title}:")
            _print_paths([Path(i) for i in ids])
    print(report.summary())
    return 0


def cmd_clean_static(args: argparse.Namespace) -> int:
    from callback_api.clean_static import ManifestError, clean_static
    from callback_api.progress import Progress

    settings = _settings(args)
    try:
        report = clean_static(
            settings.paths.static_root,
            args.manifest,
            keep=args.keep,
            apply=args.apply,
            progress=Progress("clean-static: scanning"),
        )
    except ManifestError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 1
    _print_paths(report.stale)
    print(report.summary())
    return 0


def _add_maintenance_commands(sub: Any) -> None:
    check_cmd = sub.add_parser(
        "check", help="validate an environment and run the real `nginx -t` on its render"
    )
    _add_env(check_cmd)
    check_cmd.add_argument(
        "--on-host",
        action="store_true",
        help="this machine will run it: missing certificates, users and secrets are errors",
    )
    check_cmd.add_argument("--nginx", help="the nginx binary (default: found on PATH)")
    check_cmd.add_argument("--keep", type=Path, help="render into this dir and keep it")
    check_cmd.set_defaults(func=cmd_check)

    commands = {}
    for name, func, text in (
        ("sweep", cmd_sweep, "remove body files older than the longest request"),
        ("reconcile", cmd_reconcile, "repair media files and rows that do not agree"),
        ("clean-static", cmd_clean_static, "remove hashed assets no recent build names"),
    ):
        commands[name] = command = sub.add_parser(name, help=f"{text} (dry run unless --apply)")
        _add_env(command)
        command.add_argument("--apply", action="store_true", help="act, not only report")
        command.set_defaults(func=func)
    commands["clean-static"].add_argument(
        "--manifest", type=Path, required=True, help="the current build's manifest"
    )
    commands["clean-static"].add_argument(
        "--keep", type=int, default=3, help="builds to keep, the current one included"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landing",
        description="An upload stack in which Nginx moves the bytes and Python keeps the books.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="render the config, start the app and Nginx, serve until Ctrl-C")
    _add_env(up)
    up.add_argument("--port", type=int, help="first listening port (default: from the environment)")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run the app alone (uvicorn on the environment's socket)")
    _add_env(serve)
    serve.add_argument("--config", type=Path, help="an environment file (overrides --env)")
    serve.set_defaults(func=cmd_serve)

    render_cmd = sub.add_parser("render", help="render the Nginx config of an environment")
    _add_env(render_cmd)
    render_cmd.add_argument(
        "--out", type=Path, help="output dir (default: nginx-conf/rendered/ENV)"
    )
    render_cmd.add_argument(
        "--check", action="store_true", help="exit 1 with a diff if committed files are stale"
    )
    render_cmd.add_argument(
        "--base-dir",
        type=Path,
        help="resolve relative paths against this dir (default: /srv/landing)",
    )
    render_cmd.set_defaults(func=cmd_render)

    secret = sub.add_parser("secret", help="create the callback secret and its Nginx snippet")
    _add_env(secret)
    secret.add_argument("--rotate", action="store_true", help="replace an existing secret")
    secret.set_defaults(func=cmd_secret)

    token = sub.add_parser(
        "token", help="issue a bearer token: its digest goes to auth.tokens_file, it to stdout"
    )
    _add_env(token)
    token.add_argument(
        "--scopes", default="read,write", help="read, write or read,write (default: read,write)"
    )
    token.add_argument("--label", default="", help="a name for logs, e.g. ci-uploader")
    token.set_defaults(func=cmd_token)
    _add_maintenance_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"landing: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
