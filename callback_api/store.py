"""The media store: server-generated ids, sharded paths, link-in, fsync, delete.

Every filesystem write of the app happens here. OS errors become domain errors: a full disk
is 507, never a bare 500.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from callback_api.errors import Conflict, InsufficientStorage, LandingError, NotFound

MEDIA_ID_PATTERN = r"^[0-9a-f]{32}$"
MEDIA_ID = re.compile(MEDIA_ID_PATTERN)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class StorageError(Exception):
    """The store cannot be used as configured; the message says why and what to change."""


def new_media_id() -> str:
    return secrets.token_hex(16)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def translate_os_error(exc: OSError, doing: str) -> LandingError:
    if exc.errno in _NO_SPACE:
        return InsufficientStorage(f"no space left while {doing}")
    if exc.errno == errno.EEXIST:
        return Conflict(f"already exists while {doing}")
    return LandingError(f"{doing} failed: {exc.strerror}")


class MediaStore:
    def __init__(self, media_root: Path, durable: bool) -> None:
        self.root = media_root
        self.durable = durable

    def relative_path(self, media_id: str) -> str:
        """``ab/cd/abcd...``: two levels of 256 directories keep each directory small."""
        if not MEDIA_ID.match(media_id):
            raise NotFound(f"no media with id {media_id!r}")
        return f"{media_id[:2]}/{media_id[2:4]}/{media_id}"

    def path_for(self, media_id: str) -> Path:
        return self.root / self.relative_path(media_id)

    def _open_shard(self, media_id: str) -> int:
        """An fd of the media's shard directory, created on first use (and synced, if durable:
        a crash must not lose the new directory entries)."""
        shard = self.path_for(media_id).parent
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            return os.open(shard, flags)
        except FileNotFoundError:
            pass
        for directory in (shard.parent, shard):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            if self.durable:
                _fsync_dir(directory.parent)
        return os.open(shard, flags)

    def link_in(self, fd: int, media_id: str) -> None:
        """Give the open (validated) body file a second name in the store.

        Linking the open descriptor through /proc links exactly the inode that was checked,
        whatever happened to the temp name since. Nginx removes the temp name afterwards.
        """
        try:
            if self.durable:
                os.fsync(fd)
            shard_fd = self._open_shard(media_id)
            try:
                # A dir fd makes CPython call linkat(AT_SYMLINK_FOLLOW), which resolves the
                # /proc magic link to the open inode; plain link() would refuse it (EXDEV).
                os.link(f"/proc/self/fd/{fd}", media_id, dst_dir_fd=shard_fd)
                if self.durable:
                    os.fsync(shard_fd)
            finally:
                os.close(shard_fd)
        except OSError as exc:
            raise translate_os_error(exc, "storing the file") from exc

    @contextlib.contextmanager
    def create(self, media_id: str) -> Iterator[int]:
        """A new, empty file in the store for content copied in by the kernel."""
        try:
            shard_fd = self._open_shard(media_id)
        except OSError as exc:
            raise translate_os_error(exc, "creating the file") from exc
        try:
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
                fd = os.open(media_id, flags, 0o600, dir_fd=shard_fd)
            except OSError as exc:
                raise translate_os_error(exc, "creating the file") from exc
            try:
                yield fd
                if self.durable:
                    os.fsync(fd)
            except OSError as exc:
                raise translate_os_error(exc, "writing the file") from exc
            finally:
                os.close(fd)
            if self.durable:
                os.fsync(shard_fd)
        finally:
            os.close(shard_fd)

    def remove(self, media_id: str) -> bool:
        try:
            os.unlink(self.path_for(media_id))
        except FileNotFoundError:
            return False
        return True

    def ids_on_disk(self) -> Iterator[str]:
        for first in sorted(os.listdir(self.root)) if self.root.is_dir() else []:
            level1 = self.root / first
            if not level1.is_dir() or level1.is_symlink():
                continue
            for second in sorted(os.listdir(level1)):
                level2 = level1 / second
                if not level2.is_dir() or level2.is_symlink():
                    continue
                yield from (name for name in sorted(os.listdir(level2)) if MEDIA_ID.match(name))


def check_same_filesystem(temp_dir: Path, media_root: Path) -> None:
    """Invariant 5: a link is only atomic (and free) within one filesystem."""
    for directory in (temp_dir, media_root):
        directory.mkdir(parents=True, exist_ok=True)
    if os.stat(temp_dir).st_dev != os.stat(media_root).st_dev:
        raise StorageError(
            f"temp dir {temp_dir} and media root {media_root} are on different filesystems; "
            "put both on one filesystem so that a landed file can be linked, not copied"
        )
