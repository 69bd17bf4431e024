"""A full disk is a clear 507 (or Nginx's 5xx), never a partial file, a stray row or a bare 500.

Each test mounts a small tmpfs holding both the temp dir and the media root (one filesystem,
invariant 5), fills it (bytes or inodes) to the point where one step of the landing fails,
uploads, checks status, disk and catalog, then frees space and shows the next upload works.
Mounting needs root: where it is not allowed the tests fail and say so, they do not skip.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, sha256_bytes, sha256_of
from multipart_bodies import file_part, multipart_body

MB = 1024 * 1024
FS_SIZE = 16 * MB
FS_INODES = 256


def _unmount(mount: Path) -> None:
    done = subprocess.run(["umount", str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        # Still busy (a process of a failed test holds a file): detach it anyway so that no
        # mount outlives the test; the kernel frees it when the last file closes.
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs with 256 inodes. Request it before `make_stack`, so that the stacks
    on it stop before it is unmounted."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={FS_SIZE},nr_inodes={FS_INODES},mode=0700",
            "tmpfs",
            str(mount),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            "the disk-full tests need to mount a small tmpfs (run them as root where mount "
            f"is allowed); mount said: {done.stderr.strip() or done.returncode}"
        )
    try:
        yield mount
    finally:
        _unmount(mount)


def _stack_on(
    make_stack: Callable[..., LiveStack], fs: Path, catalog_on_fs: bool = False
) -> LiveStack:
    paths = {"temp_dir": str(fs / "body"), "media_root": str(fs / "media")}
    if catalog_on_fs:
        paths["database"] = str(fs / "db" / "landing.sqlite3")
    stack = make_stack(paths=paths)
    assert os.stat(stack.temp_dir).st_dev == os.stat(stack.media_root).st_dev == os.stat(fs).st_dev
    return stack


def _free_bytes(fs: Path) -> int:
    info = os.statvfs(fs)
    return info.f_bavail * info.f_frsize


def _fill_bytes(fs: Path, leave: int) -> Path:
    """Write a filler file until only `leave` bytes (a page multiple) are free."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while (free := _free_bytes(fs)) > leave:
            os.write(fd, bytes(min(MB, free - leave)))
    finally:
        os.close(fd)
    assert _free_bytes(fs) == leave
    return filler


def _fill_inodes(fs: Path, leave: int) -> Path:
    """Create empty files until no inode is left, then give `leave` of them back."""
    holder = fs / "inodes"
    holder.mkdir()
    count = 0
    while True:
        try:
            (holder / str(count)).touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            break
        count += 1
    for number in range(count - leave, count):
        (holder / str(number)).unlink()
    return holder


def _nginx_temp_dirs(temp_dir: Path, number: int) -> Path:
    """The level directories ("1 2") Nginx puts its temp file number `number` in; Nginx counts
    from 1 in a fresh master. Made ahead, so that the file itself is the only inode it needs."""
    directory = temp_dir / str(number % 10) / f"{number // 10 % 100:02d}"
    directory.mkdir(parents=True, mode=0o700)
    return directory


def _put(stack: LiveStack, data: bytes, name: str = "f.bin") -> httpx.Response:
    return httpx.put(
        f"{stack.url}/api/items/42/media",
        params={"filename": name},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )


def _assert_nothing_stored(stack: LiveStack) -> None:
    assert eventually(lambda: stack.temp_files() == [])
    assert stack.media_files() == []
    assert stack.rows() == []


def _assert_stored_once(stack: LiveStack, answer: httpx.Response, data: bytes) -> None:
    assert answer.status_code == 201, answer.text
    [stored] = stack.media_files()
    assert stored.name == answer.json()["id"]
    assert sha256_of(stored) == sha256_bytes(data)
    assert [(r["id"], r["state"]) for r in stack.rows()] == [(stored.name, "ready")]
    assert eventually(lambda: stack.temp_files() == [])


def test_temp_dir_full_while_nginx_writes_the_body_is_a_json_507(
    small_fs: Path, make_stack: Callable[..., LiveStack]
) -> None:
    stack = _stack_on(make_stack, small_fs)
    filler = _fill_bytes(small_fs, leave=1 * MB)
    data = os.urandom(4 * MB)
    answer = _put(stack, data)
    # Nginx cannot write the body (pwrite: ENOSPC): it answers itself, the app is never called.
    assert answer.status_code == 507, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "ERR_INSUFFICIENT_STORAGE"
    assert "could not be written to disk" in answer.json()["detail"]
    _assert_nothing_stored(stack)
    assert _free_bytes(small_fs) == 1 * MB  # the partial body file is gone too

    filler.unlink()
    _assert_stored_once(stack, _put(stack, data), data)


def test_no_inode_left_for_the_store_directory_is_a_507_and_stores_nothing(
    small_fs: Path, make_stack: Callable[..., LiveStack]
) -> None:
    # Linking needs no data blocks, but a new shard directory needs an inode: with only the
    # one Nginx takes for the body file left, the app's mkdir fails with ENOSPC.
    stack = _stack_on(make_stack, small_fs)
    _nginx_temp_dirs(stack.temp_dir, 1)
    holder = _fill_inodes(small_fs, leave=1)
    data = os.urandom(100_000)
    answer = _put(stack, data)
    assert answer.status_code == 507, answer.text
    assert answer.json() == {
        "detail": "no space left while storing the file",
        "code": "ERR_INSUFFICIENT_STORAGE",
    }
    _assert_nothing_stored(stack)

    shutil.rmtree(holder)
    _assert_stored_once(stack, _put(stack, data), data)


def test_media_root_full_while_copying_a_form_part_is_a_507_without_a_partial_file(
    small_fs: Path, make_stack: Callable[..., LiveStack]
) -> None:
    # A form part is copied (kernel-side) into a new file: room for the body, not the copy.
    stack = _stack_on(make_stack, small_fs)
    part = os.urandom(3 * MB)
    body = multipart_body(b"b0undary", [file_part("file", "part.bin", part)])
    filler = _fill_bytes(small_fs, leave=len(body) // 4096 * 4096 + 2 * MB)

    def post() -> httpx.Response:
        return httpx.post(
            f"{stack.url}/api/items/42/media",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
            timeout=30,
        )

    answer = post()
    assert answer.status_code == 507, answer.text
    assert answer.json() == {
        "detail": "no space left while writing the file",
        "code": "ERR_INSUFFICIENT_STORAGE",
    }
    _assert_nothing_stored(stack)
    # Nothing half-copied is left under the media root, not even an empty shard file.
    assert [p for p in stack.media_root.rglob("*") if not p.is_dir()] == []

    filler.unlink()
    again = post()
    assert again.status_code == 201, again.text
    [stored] = stack.media_files()
    assert sha256_of(stored) == sha256_bytes(part)
    assert [r["state"] for r in stack.rows()] == ["ready"]


def test_catalog_on_a_full_disk_is_a_507_and_stores_nothing(
    small_fs: Path, make_stack: Callable[..., LiveStack]
) -> None:
    # The catalog shares the disk: room for a one-page body, none for SQLite's WAL to grow.
    stack = _stack_on(make_stack, small_fs, catalog_on_fs=True)
    filler = _fill_bytes(small_fs, leave=2 * 4096)
    answer = _put(stack, b"tiny", "tiny.txt")
    assert answer.status_code == 507, answer.text
    assert answer.json() == {
        "detail": "no space left while writing the catalog",
        "code": "ERR_INSUFFICIENT_STORAGE",
    }
    _assert_nothing_stored(stack)

    filler.unlink()
    # Every connection of the app's thread pool must still work: none was left inside a
    # failed transaction holding the write lock.
    answers = [_put(stack, f"file {n}".encode(), f"{n}.txt") for n in range(50)]
    assert [a.status_code for a in answers] == [201] * 50
    assert len(stack.rows("state = 'ready'")) == len(stack.media_files()) == 50
