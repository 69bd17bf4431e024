"""The app SIGKILLed at each step of a landing loses no acknowledged upload and, after a
restart and `reconcile`, leaves nothing else behind.

callback_api/failpoints.py kills the app when $LANDING_FAILPOINT names the step it reaches:
validated -> pending (row written) -> linked (file in the store) -> ready (row committed). The
client of that upload gets a 502 from Nginx. After the app is restarted without the failpoint
and reconcile has run: every 2xx upload has its ready row and its file with the right sha256,
no pending row is left, no file in the media root lacks a row, and the temp dir is empty.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LiveStack
from helpers import eventually, sha256_bytes, sha256_of
from multipart_bodies import file_part, multipart_body

from callback_api.failpoints import ENV, STEPS
from callback_api.reconcile import reconcile


def _put(stack: LiveStack, name: str, data: bytes) -> httpx.Response:
    return httpx.put(
        f"{stack.url}/api/items/42/media",
        params={"filename": name},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )


def _restart_app(stack: LiveStack, failpoint: str | None) -> None:
    stack.stack.stop_app()
    if failpoint is None:
        stack.stack.app_env.pop(ENV, None)
    else:
        stack.stack.app_env[ENV] = failpoint
    stack.stack.start_app()


def _by_name(stack: LiveStack) -> dict[str, dict[str, Any]]:
    return {r["filename"]: r for r in stack.rows()}


def _assert_consistent(stack: LiveStack, acknowledged: dict[str, str]) -> None:
    """Every row is ready with its file; every file has a row; every 2xx upload is there."""
    rows = stack.rows()
    assert [r for r in rows if r["state"] != "ready"] == []
    files = {p.name: p for p in stack.media_files()}
    assert sorted(files) == sorted(r["id"] for r in rows)
    for row in rows:
        assert sha256_of(files[row["id"]]) == row["sha256"]
    stored = {r["filename"]: r["sha256"] for r in rows}
    for name, digest in acknowledged.items():
        assert stored.get(name) == digest, name
    # Nginx removes the temp name just after it has sent the answer: allow it that moment.
    assert eventually(lambda: stack.temp_files() == [])


# What the catalog and the store hold for the killed upload, before reconcile.
LEFT_AT_STEP = {
    "validated": (None, False),
    "pending": ("pending", False),
    "linked": ("pending", True),
    "ready": ("ready", True),
}


@pytest.mark.parametrize("step", STEPS)
def test_app_killed_at_each_step_loses_no_acknowledged_upload_and_leaves_nothing_else(
    make_stack: Callable[..., LiveStack], tmp_path: Path, step: str
) -> None:
    stack = make_stack(
        uploads={"durable": True, "hash_sha256": True},
        paths={"quarantine_dir": str(tmp_path / "quarantine")},
    )
    acknowledged: dict[str, str] = {}
    for n in range(2):
        data = os.urandom(200_000 + n)
        assert _put(stack, f"before{n}.bin", data).status_code == 201
        acknowledged[f"before{n}.bin"] = sha256_bytes(data)

    _restart_app(stack, step)
    crashed = os.urandom(300_000)
    answer = _put(stack, "crash.bin", crashed)
    assert answer.status_code == 502, answer.text
    assert answer.json()["detail"] == "the app is not answering"
    app = stack.stack.app
    assert app is not None
    assert app.wait(10) == -9  # SIGKILL, at the failpoint
    assert eventually(lambda: stack.temp_files() == [])  # Nginx's `clean`, even on a 502

    state, linked = LEFT_AT_STEP[step]
    row = _by_name(stack).get("crash.bin")
    assert (row["state"] if row else None) == state
    crash_file = stack.media_path(row["id"]) if row else None
    assert (crash_file is not None and crash_file.exists()) == linked

    _restart_app(stack, None)
    after = os.urandom(100_000)
    assert _put(stack, "after.bin", after).status_code == 201
    acknowledged["after.bin"] = sha256_bytes(after)

    # The app is idle, so nothing in flight can be mistaken for debris: judge every age.
    report = reconcile(stack.settings, apply=True, min_age=0)
    assert report.stale_pending == ([row["id"]] if state == "pending" else [])
    assert report.orphan_files == [] and report.lost == []
    _assert_consistent(stack, acknowledged)
    if step == "ready":
        # Committed before the kill: stored, though its client heard a 502 (a retry with an
        # Idempotency-Key gets this upload back).
        assert _by_name(stack)["crash.bin"]["sha256"] == sha256_bytes(crashed)
    else:
        assert "crash.bin" not in _by_name(stack)
    # A file reconcile would not keep is moved aside, never deleted.
    quarantined = sorted(p.name for p in (tmp_path / "quarantine").glob("*") if p.is_file())
    assert quarantined == ([row["id"], row["id"] + ".json"] if step == "linked" else [])

    again = reconcile(stack.settings, apply=True, min_age=0)
    assert again.problems == 0


def test_app_killed_after_linking_a_three_file_form_leaves_nothing_after_reconcile(
    make_stack: Callable[..., LiveStack], tmp_path: Path
) -> None:
    stack = make_stack(
        uploads={"durable": True, "hash_sha256": True},
        paths={"quarantine_dir": str(tmp_path / "quarantine")},
    )
    _restart_app(stack, "linked")
    parts = [file_part("file", f"p{n}.bin", os.urandom(100_000 + n)) for n in range(3)]
    answer = httpx.post(
        f"{stack.url}/api/items/42/media",
        content=multipart_body(b"crashb0undary", parts),
        headers={"Content-Type": "multipart/form-data; boundary=crashb0undary"},
        timeout=30,
    )
    assert answer.status_code == 502, answer.text
    rows = stack.rows()
    assert sorted(r["state"] for r in rows) == ["pending"] * 3
    assert sorted(p.name for p in stack.media_files()) == sorted(r["id"] for r in rows)

    _restart_app(stack, None)
    report = reconcile(stack.settings, apply=True, min_age=0)
    assert sorted(report.stale_pending) == sorted(r["id"] for r in rows)
    assert stack.rows() == [] and stack.media_files() == [] and stack.temp_files() == []
    assert len(report.quarantined) == 3
