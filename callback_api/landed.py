"""The body file Nginx landed: found from its header, proven to be Nginx's, opened safely.

The path arrives in a request header, so it is not trusted: it must resolve under the temp dir,
have the shape of an Nginx temp name (``<temp>/<d>/<dd>/<10 digits>`` for levels ``1 2``), be a
regular file that is not a symlink and has one link, and have the size Nginx announced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from callback_api.errors import BadRequest, EmptyUpload, Forbidden

_TEMP_NAME = re.compile(r"^\d{10}$")


@dataclass
class LandedFile:
    """An open body file; the caller closes it (it is a context manager)."""

    fd: int
    size: int

    def head(self, length: int = 8192) -> bytes:
        return os.pread(self.fd, min(length, self.size), 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> LandedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_shape(relative: Path, header_path: str, levels: tuple[int, ...]) -> None:
    parts = relative.parts
    name = parts[-1] if parts else ""
    if len(parts) != len(levels) + 1 or not _TEMP_NAME.match(name):
        raise Forbidden(f"upload path {header_path!r} is not an Nginx temp file name")
    # Nginx names each level directory after the name's trailing digits.
    end = len(name)
    for level, directory in zip(levels, parts[:-1], strict=True):
        if directory != name[end - level : end]:
            raise Forbidden(f"upload path {header_path!r} is not an Nginx temp file name")
        end -= level


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


def _open_beneath(root: Path, relative: Path, header_path: str) -> int:
    """Open root/relative one component at a time, refusing a symlink at every step.

    The containment check is lexical (a normalised path under the temp dir); this walk makes
    it hold on disk: a level directory or body file that is a symlink is refused.
    """
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in relative.parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        return os.open(relative.name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise BadRequest(f"upload file {header_path!r} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Forbidden(
                f"upload path {header_path!r} leaves the temp dir through a symlink"
            ) from None
        raise Forbidden(f"upload file {header_path!r} cannot be opened: {exc.strerror}") from None
    finally:
        os.close(dir_fd)


def open_landed(
    header_path: str | None,
    header_length: str | None,
    temp_dir: Path,
    levels: tuple[int, ...],
    allow_empty: bool,
) -> LandedFile:
    """Validate and open the body file named by ``X-Upload-Path``."""
    if not header_path:
        raise BadRequest("the request has no body")
    if "\x00" in header_path or not header_path.startswith("/"):
        raise Forbidden("upload path is not an absolute path")
    path = Path(os.path.normpath(header_path))
    try:
        relative = path.relative_to(temp_dir)
    except ValueError:
        raise Forbidden(f"upload path {header_path!r} is not under the temp dir") from None
    _check_shape(relative, header_path, levels)
    # No realpath check: the walk opens one component at a time with O_NOFOLLOW, so no
    # symlink below the temp dir is ever followed, and there is no check-then-open race.
    fd = _open_beneath(temp_dir, relative, header_path)
    landed = LandedFile(fd, 0)
    with contextlib.ExitStack() as on_error:
        on_error.callback(landed.close)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Forbidden(f"upload file {header_path!r} is not a regular file")
        if info.st_nlink != 1:
            raise Forbidden(f"upload file {header_path!r} has {info.st_nlink} links, expected 1")
        if info.st_uid != os.geteuid():
            raise Forbidden(f"upload file {header_path!r} is not owned by the app's user")
        if header_length and (not header_length.isdigit() or int(header_length) != info.st_size):
            raise BadRequest(
                f"upload file has {info.st_size} bytes but Nginx announced {header_length}"
            )
        if info.st_size == 0 and not allow_empty:
            raise EmptyUpload("the upload is empty (0 bytes)")
        landed.size = info.st_size
        on_error.pop_all()
    return landed
