"""A body file tampered with between Nginx writing it and the callback is refused.

To get between the two, the app is paused (SIGSTOP, by its pid) while Nginx finishes the
body and sends the callback; the test then swaps the temp name and lets the app go on. The
callback must refuse (403, from callback_api/landed.py: realpath containment, O_NOFOLLOW, one
link) and the file the attacker pointed at must be left exactly as it was.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import LiveStack
from helpers import app_client, eventually, sha256_bytes, sha256_of

BODY = os.urandom(300_000)  # larger than the 256k body buffer: Nginx writes it in pieces


@contextmanager
def _callback_held(stack: LiveStack) -> Iterator[tuple[Future[httpx.Response], Path]]:
    """Upload BODY with the app paused; yield the pending answer and the complete temp file."""
    pid = stack.app_pid
    os.kill(pid, signal.SIGSTOP)
    pool = ThreadPoolExecutor(1)
    try:
        answer = pool.submit(
            httpx.put,
            f"{stack.url}/api/items/42/media?filename=held.bin",
            content=BODY,
            timeout=30,
        )
        assert eventually(lambda: [p.stat().st_size for p in stack.temp_files()] == [len(BODY)]), (
            "Nginx did not finish writing the body file"
        )
        [temp] = stack.temp_files()
        yield answer, temp
    finally:
        os.kill(pid, signal.SIGCONT)
        pool.shutdown(wait=True)


def _victim(tmp_path: Path) -> tuple[Path, str]:
    # Same filesystem as the temp dir (both under tmp_path), so a hard link is possible.
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious bytes the attacker wants stored or changed\n")
    return victim, sha256_of(victim)


def _assert_refused(stack: LiveStack, answer: httpx.Response, reason: str) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "ERR_FORBIDDEN"
    assert reason in answer.json()["detail"]
    assert stack.rows() == []
    assert stack.media_files() == []
    assert eventually(lambda: stack.temp_files() == [])


def test_held_callback_without_tampering_stores_the_body(stack: LiveStack) -> None:
    # The control case: pausing the app alone changes nothing.
    with _callback_held(stack) as (pending, _temp):
        pass
    answer = pending.result()
    assert answer.status_code == 201, answer.text
    [stored] = stack.media_files()
    assert sha256_of(stored) == sha256_bytes(BODY)
    assert [r["state"] for r in stack.rows()] == ["ready"]
    assert eventually(lambda: stack.temp_files() == [])


def test_temp_file_replaced_by_a_symlink_is_refused_and_the_target_untouched(
    stack: LiveStack, tmp_path: Path
) -> None:
    victim, before = _victim(tmp_path)
    with _callback_held(stack) as (pending, temp):
        temp.unlink()
        temp.symlink_to(victim)
    _assert_refused(stack, pending.result(), "leaves the temp dir through a symlink")
    assert sha256_of(victim) == before
    assert victim.stat().st_nlink == 1


def test_temp_file_replaced_by_a_symlink_inside_the_temp_dir_is_refused(
    stack: LiveStack,
) -> None:
    # A link to another Nginx-shaped name under the temp dir still resolves elsewhere.
    with _callback_held(stack) as (pending, temp):
        other = stack.temp_dir / "9" / "99" / "0000000999"
        other.parent.mkdir(parents=True)
        other.write_bytes(b"another upload")
        temp.unlink()
        temp.symlink_to(other)
    answer = pending.result()
    assert answer.status_code == 403, answer.text
    assert "leaves the temp dir through a symlink" in answer.json()["detail"]
    assert other.read_bytes() == b"another upload"
    assert stack.rows() == [] and stack.media_files() == []
    other.unlink()
    assert eventually(lambda: stack.temp_files() == [])


def test_temp_level_directory_replaced_by_a_symlink_is_refused(
    stack: LiveStack, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    with _callback_held(stack) as (pending, temp):
        level1 = temp.parent.parent
        # Move the real level directory out and point its name at it: the file is the same
        # bytes, but the path now leaves the temp dir.
        level1.rename(outside)
        level1.symlink_to(outside, target_is_directory=True)
        victim = outside / "victim.txt"
        victim.write_bytes(b"untouched")
    _assert_refused(stack, pending.result(), "leaves the temp dir through a symlink")
    # Nginx's `clean` unlinks its own temp name through the symlink: only its own body file
    # goes, whatever else sits in the directory the symlink points at stays.
    assert sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*")) == [
        temp.parent.name,
        "victim.txt",
    ]
    assert victim.read_bytes() == b"untouched"


def test_temp_file_replaced_by_a_hard_link_is_refused_and_the_target_untouched(
    stack: LiveStack, tmp_path: Path
) -> None:
    victim, before = _victim(tmp_path)
    with _callback_held(stack) as (pending, temp):
        temp.unlink()
        os.link(victim, temp)
    _assert_refused(stack, pending.result(), "has 2 links, expected 1")
    assert sha256_of(victim) == before
    # Nginx removed its temp name, which was the second link: the target is as it was.
    assert victim.stat().st_nlink == 1


def test_body_file_with_an_extra_hard_link_is_refused(stack: LiveStack, tmp_path: Path) -> None:
    # Someone keeping a second name could change the stored bytes after the 201.
    kept = tmp_path / "kept"
    with _callback_held(stack) as (pending, temp):
        os.link(temp, kept)
    _assert_refused(stack, pending.result(), "has 2 links, expected 1")
    assert kept.read_bytes() == BODY
    assert kept.stat().st_nlink == 1


def _call_app_directly(stack: LiveStack, path: Path, length: int) -> httpx.Response:
    with app_client(stack.settings.app.socket) as app:
        return app.post(
            "/internal/landed/items/42",
            params={"filename": "direct.bin"},
            headers={
                "X-Upload-Path": str(path),
                "X-Upload-Length": str(length),
                "X-Landing-Secret": stack.secret,
            },
        )


def test_direct_callback_on_a_symlink_with_nginx_naming_is_refused(
    stack: LiveStack, tmp_path: Path
) -> None:
    victim, before = _victim(tmp_path)
    fake = stack.temp_dir / "1" / "32" / "0000000321"
    fake.parent.mkdir(parents=True)
    fake.symlink_to(victim)
    answer = _call_app_directly(stack, fake, victim.stat().st_size)
    assert answer.status_code == 403
    assert "leaves the temp dir through a symlink" in answer.json()["detail"]
    assert sha256_of(victim) == before and victim.stat().st_nlink == 1
    assert stack.rows() == [] and stack.media_files() == []
    assert fake.is_symlink()  # the app never removes temp names: that is Nginx's job


def test_direct_callback_on_a_hard_link_with_nginx_naming_is_refused(
    stack: LiveStack, tmp_path: Path
) -> None:
    victim, before = _victim(tmp_path)
    fake = stack.temp_dir / "1" / "32" / "0000000321"
    fake.parent.mkdir(parents=True)
    os.link(victim, fake)
    answer = _call_app_directly(stack, fake, victim.stat().st_size)
    assert answer.status_code == 403
    assert "has 2 links, expected 1" in answer.json()["detail"]
    assert sha256_of(victim) == before and victim.stat().st_nlink == 2
    assert stack.rows() == [] and stack.media_files() == []


def test_direct_callback_with_a_dotdot_path_is_refused(
    stack: LiveStack, tmp_path: Path, payload: Callable[[int], Path]
) -> None:
    # `..` is normalised before the containment check, so it cannot climb out either.
    sent = payload(1000)
    sneaky = f"{stack.temp_dir}/1/32/../../../../../{sent.name}"
    assert Path(os.path.normpath(sneaky)) == sent
    with app_client(stack.settings.app.socket) as app:
        answer = app.post(
            "/internal/landed/items/42",
            headers={"X-Upload-Path": sneaky, "X-Landing-Secret": stack.secret},
        )
    assert answer.status_code == 403
    assert "not under the temp dir" in answer.json()["detail"]
    assert sent.stat().st_nlink == 1
    assert stack.rows() == [] and stack.media_files() == []
