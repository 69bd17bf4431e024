"""sweep, reconcile and clean-static on trees of real files and real SQLite rows, dry run first."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually

from callback_api.catalog import MediaRecord, SqliteCatalog, now
from callback_api.clean_static import ManifestError, clean_static
from callback_api.cli import main
from callback_api.reconcile import reconcile
from callback_api.settings import Settings, SettingsError, load_settings
from callback_api.store import MediaStore, StorageError, new_media_id
from callback_api.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "nginx-conf" / "environments" / "dev.toml"
HOUR = 3600.0


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    paths = {
        "temp_dir": str(tmp_path / "spool" / "body"),
        "media_root": str(tmp_path / "media"),
        "quarantine_dir": str(tmp_path / "quarantine"),
        "database": str(tmp_path / "landing.sqlite3"),
        "static_root": str(tmp_path / "static"),
        **extra.pop("paths", {}),
    }
    return load_settings(DEV, {"paths": paths, **extra})


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _environment_file(root: Path, settings: Settings, extra: str = "") -> None:
    """A real environment file for the command line, pointing at the test's tree."""
    paths = settings.paths
    text = (
        f'name = "t"\n[server]\nlisten = [{{ port = 8080 }}]\n[paths]\n'
        f'temp_dir = "{paths.temp_dir}"\nmedia_root = "{paths.media_root}"\n'
        f'quarantine_dir = "{paths.quarantine_dir}"\ndatabase = "{paths.database}"\n'
        f'static_root = "{paths.static_root}"\n{extra}'
    )
    _write(root / "nginx-conf" / "environments" / "t.toml", text.encode())


# --- sweep ---------------------------------------------------------------------------------


def test_sweep_lists_stale_body_files_then_removes_only_them_with_apply(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    temp = settings.paths.temp_dir
    stale = _write(temp / "1" / "32" / "0000000321", b"left by a crashed Nginx")
    outside = _write(tmp_path / "precious.txt", b"not a body file")
    os.symlink(outside, temp / "1" / "32" / "0000001321")
    misplaced = _write(temp / "9" / "99" / "0000000123")  # levels do not match the name
    notes = _write(temp / "notes.txt")
    time.sleep(1.2)
    running = _write(temp / "5" / "45" / "0000000455", b"a request still writing")

    dry = sweep(settings, min_age=1.0)
    assert dry.stale == [stale]
    assert dry.stale_bytes == len(b"left by a crashed Nginx")
    assert (dry.scanned, dry.recent, dry.removed) == (2, 1, [])
    assert sorted(dry.foreign) == sorted([temp / "1" / "32" / "0000001321", misplaced, notes])
    assert stale.exists()
    assert dry.summary().endswith("run with --apply to remove them")

    done = sweep(settings, apply=True, min_age=1.0)
    assert done.removed == [stale]
    assert not stale.exists()
    assert running.exists() and misplaced.exists() and notes.exists()
    assert outside.read_bytes() == b"not a body file"


def test_sweep_leaves_the_body_file_of_an_upload_in_progress(stack: LiveStack) -> None:
    port = stack.settings.server.listen[0].port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # More than the body buffer, so that Nginx has started the body file.
        half = os.urandom(1024 * 1024)
        sock.sendall(
            b"PUT /api/items/42/media?filename=slow.bin HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 2097152\r\nConnection: close\r\n\r\n" + half
        )
        assert eventually(lambda: len(stack.temp_files()) == 1)
        report = sweep(stack.settings, apply=True)
        assert (report.scanned, report.recent, report.removed) == (1, 1, [])
        sock.sendall(half)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert [p.read_bytes() for p in stack.media_files()] == [half + half]


def test_sweep_command_is_a_dry_run_unless_told_to_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    # The longest request here lasts 2 s (a ctime cannot be set back: wait instead).
    _environment_file(
        tmp_path, settings, '[uploads]\nbody_timeout = "1s"\ncallback_timeout = "1s"\n'
    )
    body = _write(settings.paths.temp_dir / "1" / "32" / "0000000321", b"12345")
    time.sleep(2.2)
    args = ["sweep", "--env", "t", "--root", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out == (
        f"  {body}\n"
        "sweep: 1 body file(s) scanned; would remove 1 stale (5 bytes, unchanged for over 2s); "
        "0 in use; run with --apply to remove them\n"
    )
    assert body.exists()
    assert main([*args, "--apply"]) == 0
    assert "removed 1 stale" in capsys.readouterr().out
    assert not body.exists()


# --- reconcile -----------------------------------------------------------------------------


def _pending(catalog: SqliteCatalog, store: MediaStore, created_at: str) -> str:
    media_id = new_media_id()
    record = MediaRecord(
        media_id, "42", "half.bin", "application/octet-stream", 4, None, created_at
    )
    catalog.insert_pending([record])
    store.root.mkdir(parents=True, exist_ok=True)
    with store.create(media_id) as fd:
        os.write(fd, b"half")
    return media_id


def test_reconcile_dry_run_reports_then_apply_repairs_and_keeps_every_file_with_a_row(
    stack: LiveStack,
) -> None:
    settings = stack.settings
    store = MediaStore(settings.paths.media_root, durable=False)
    uploaded = {
        name: httpx.put(
            f"{stack.url}/api/items/42/media?filename={name}", content=name.encode()
        ).json()["id"]
        for name in ("keep.txt", "also.txt", "lost.txt")
    }
    store.path_for(uploaded["lost.txt"]).unlink()
    orphan = new_media_id()
    _write(store.path_for(orphan), b"no row")
    catalog = SqliteCatalog(settings.paths.database, durable=False)
    stale = _pending(catalog, store, "2020-01-01T00:00:00.000000Z")
    young = _pending(catalog, store, "2999-01-01T00:00:00.000000Z")
    catalog.close()
    # A claim whose request crashed before it finished (media_ids stays NULL).
    with sqlite3.connect(settings.paths.database) as conn:
        conn.execute(
            "INSERT INTO idempotency (item_id, key, created_at) VALUES (?, ?, ?)",
            ("42", "never-finished", now()),
        )
    conn.close()
    later = time.time() + HOUR  # every file and claim made above is now old enough

    dry = reconcile(settings, now=later)
    assert dry.orphan_files == [orphan]
    assert dry.stale_pending == [stale]
    assert dry.lost == [uploaded["lost.txt"]]
    assert dry.stale_claims == [("42", "never-finished")]
    assert (dry.files_scanned, dry.rows_scanned, dry.recent) == (5, 5, 1)
    assert dry.quarantined == []
    assert store.path_for(orphan).exists() and store.path_for(stale).exists()
    assert len(stack.rows()) == 5

    done = reconcile(settings, apply=True, now=later)
    quarantine = settings.paths.quarantine_dir
    assert sorted(done.quarantined) == sorted([quarantine / orphan, quarantine / stale])
    assert (quarantine / orphan).read_bytes() == b"no row"
    note = json.loads((quarantine / f"{stale}.json").read_text())
    assert (note["reason"], note["row"]["filename"]) == ("pending", "half.bin")
    assert sorted(r["id"] for r in stack.rows()) == sorted(
        [uploaded["keep.txt"], uploaded["also.txt"], young]
    )
    assert store.path_for(young).read_bytes() == b"half"
    for name in ("keep.txt", "also.txt"):
        content = httpx.get(f"{stack.url}/api/media/{uploaded[name]}/content")
        assert content.content == name.encode()
    # The client may retry the key that never finished.
    retry = httpx.put(
        f"{stack.url}/api/items/42/media?filename=r.txt",
        content=b"retry",
        headers={"Idempotency-Key": "never-finished"},
    )
    assert retry.status_code == 201

    again = reconcile(settings, apply=True, now=later)
    assert again.problems == 0


def test_reconcile_judges_nothing_younger_than_the_longest_request(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = MediaStore(settings.paths.media_root, durable=False)
    fresh = new_media_id()
    _write(store.path_for(fresh))
    report = reconcile(settings, apply=True)
    assert (report.orphan_files, report.recent) == ([], 1)
    assert store.path_for(fresh).exists()


def test_reconcile_refuses_a_quarantine_on_another_filesystem(tmp_path: Path) -> None:
    shm = Path(tempfile.mkdtemp(prefix="landing-q-", dir="/dev/shm"))
    try:
        settings = _settings(tmp_path, paths={"quarantine_dir": str(shm / "q")})
        settings.paths.media_root.mkdir(parents=True)
        with pytest.raises(StorageError) as caught:
            reconcile(settings, apply=True)
        assert str(caught.value) == (
            f"paths.quarantine_dir {shm}/q is not on the filesystem of paths.media_root "
            f"{tmp_path}/media; files are moved there by rename, never copied"
        )
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_reconcile_command_prints_what_it_found_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    store = MediaStore(settings.paths.media_root, durable=False)
    catalog = SqliteCatalog(settings.paths.database, durable=False)
    stale = _pending(catalog, store, "2020-01-01T00:00:00.000000Z")
    catalog.close()
    _environment_file(tmp_path, settings)
    assert main(["reconcile", "--env", "t", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"stale pending rows:\n  {stale}\n" in out
    assert out.rstrip().endswith("; run with --apply to repair")
    assert main(["reconcile", "--env", "t", "--root", str(tmp_path), "--apply"]) == 0
    assert "1 file(s) moved to the quarantine" in capsys.readouterr().out
    assert (settings.paths.quarantine_dir / stale).read_bytes() == b"half"


# --- clean-static --------------------------------------------------------------------------

HASH_A, HASH_B, HASH_C = "3f9a0c1d2e4b5a69", "0badc0ffee123456", "77aa88bb99cc00dd"


@pytest.fixture
def build(tmp_path: Path) -> Callable[..., Path]:
    """Write build outputs into the static root and a Vite-style manifest naming them."""
    static = tmp_path / "static"

    def _build(number: int, *names: str) -> Path:
        for name in names:
            _write(static / name, name.encode())
        entries: dict[str, Any] = {
            f"src/{i}.ts": {"file": name, "src": f"src/{i}.ts"} for i, name in enumerate(names)
        }
        return _write(tmp_path / f"manifest-{number}.json", json.dumps(entries).encode())

    return _build


def test_clean_static_removes_hashed_assets_the_manifest_no_longer_names(
    tmp_path: Path, build: Callable[..., Path]
) -> None:
    static = tmp_path / "static"
    for name in ("index.html", "favicon.svg", "upload.js"):
        _write(static / name)
    old = _write(static / "assets" / f"app.{HASH_B}.js")
    old_gz = _write(static / "assets" / f"app.{HASH_B}.js.gz")
    manifest = build(1, f"assets/app.{HASH_A}.js", f"assets/app.{HASH_C}.css")
    current_gz = _write(static / "assets" / f"app.{HASH_A}.js.gz")

    dry = clean_static(static, manifest)
    assert sorted(dry.stale) == sorted([old, old_gz])
    assert (dry.scanned, dry.unhashed, dry.removed) == (8, 3, [])
    assert old.exists() and not (static / ".landing-builds.json").exists()

    done = clean_static(static, manifest, apply=True)
    assert sorted(done.removed) == sorted([old, old_gz])
    assert sorted(p.relative_to(static).as_posix() for p in static.rglob("*")) == [
        ".landing-builds.json",
        "assets",
        f"assets/app.{HASH_A}.js",
        f"assets/app.{HASH_A}.js.gz",
        f"assets/app.{HASH_C}.css",
        "favicon.svg",
        "index.html",
        "upload.js",
    ]
    assert current_gz.exists()


def test_clean_static_keeps_the_assets_of_the_last_n_builds(
    tmp_path: Path, build: Callable[..., Path]
) -> None:
    static = tmp_path / "static"
    hashes = ["a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3"]
    for number, digest in enumerate(hashes):
        manifest = build(number, f"app.{digest}.js")
        clean_static(static, manifest, keep=2, apply=True)
    assert sorted(p.name for p in static.glob("app.*")) == [
        f"app.{hashes[1]}.js",
        f"app.{hashes[2]}.js",
    ]


def test_clean_static_refuses_a_manifest_that_names_nothing_in_the_static_root(
    tmp_path: Path,
) -> None:
    static = tmp_path / "static"
    asset = _write(static / f"app.{HASH_A}.js")
    wrong = _write(
        tmp_path / "other.json", json.dumps({"x": {"file": "gone.1234abcd.js"}}).encode()
    )
    with pytest.raises(ManifestError) as caught:
        clean_static(static, wrong, apply=True)
    assert "names no file that exists under" in str(caught.value)
    assert asset.exists()


def _media_tree(root: Path, count: int = 5) -> list[Path]:
    store = MediaStore(root, durable=False)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for _ in range(count):
        media_id = new_media_id()
        with store.create(media_id) as fd:
            os.write(fd, b"a user's photo")
        files.append(store.path_for(media_id))
    return files


def test_the_seed_command_deletes_hex_named_uploads_and_clean_static_cannot(
    tmp_path: Path, build: Callable[..., Path]
) -> None:
    # The seed's cleanup: every file whose path holds 16 hex digits, over the uploads folder.
    victims = _media_tree(tmp_path / "seed-uploads")
    seed = f'find {tmp_path / "seed-uploads"} -type f | grep -E "[a-f0-9]{{16}}" | xargs rm -f'
    # The seed's own pipeline, run verbatim on a scratch tree.
    subprocess.run(seed, shell=True, check=True)  # noqa: S602
    assert [p.exists() for p in victims] == [False] * len(victims)

    # Ours: the settings will not put uploads under the static root at all...
    with pytest.raises(SettingsError) as caught:
        _settings(tmp_path, paths={"media_root": str(tmp_path / "static" / "media")})
    assert "uploads must never be under the static root" in str(caught.value)
    settings = _settings(tmp_path)
    uploads = _media_tree(settings.paths.media_root)
    static = settings.paths.static_root
    # ...a symlink into the media root is not followed, and even media copied into the static
    # root by mistake has no hashed-asset name (name.<hex>.ext), so it is never a candidate.
    manifest = build(1, f"app.{HASH_A}.js")
    os.symlink(settings.paths.media_root, static / "media-link")
    strays = _media_tree(static / "stray")
    report = clean_static(static, manifest, keep=1, apply=True)
    assert report.removed == []
    assert all(p.read_bytes() == b"a user's photo" for p in uploads + strays)


def test_clean_static_command_is_a_dry_run_unless_told_to_apply(
    tmp_path: Path, build: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    _environment_file(tmp_path, settings)
    old = _write(settings.paths.static_root / f"app.{HASH_B}.js")
    manifest = build(1, f"app.{HASH_A}.js")
    args = ["clean-static", "--env", "t", "--root", str(tmp_path), "--manifest", str(manifest)]
    assert main(args) == 0
    assert f"  {old}\n" in capsys.readouterr().out
    assert old.exists()
    assert main([*args, "--apply"]) == 0
    assert "removed 1 stale hashed asset(s)" in capsys.readouterr().out
    assert not old.exists()
