"""Many uploads at once: no 5xx, one ready row and one file per 201, and a flat app.

The load client is scripts/load.py (plain asyncio on keep-alive connections); its own `main`
runs the same mix for longer and prints the figures recorded in docs/hardening.md. Every
client comes from 127.0.0.1, so the per-client limits are lifted here: they are pinned where
the limits are tested, not where the books are.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

from conftest import ROOT, LiveStack
from helpers import eventually, sha256_of

sys.path.insert(0, str(ROOT / "scripts"))
from load import KB, LoadResult, Sampler, mix, open_fds, rss_kib, run_load

UNLIMITED: dict[str, Any] = {
    "upload_rate": "100000r/s",
    "upload_burst": 100000,
    "upload_connections": 10000,
}


def _assert_books(stack: LiveStack, created: int, *results: LoadResult) -> None:
    """Exactly one ready row and one file per 201, each holding bytes that were sent at its
    size; nothing pending, the temp dir empty."""
    rows = stack.rows()
    assert [r["id"] for r in rows if r["state"] != "ready"] == []
    files = {p.name: p for p in stack.media_files()}
    assert len(rows) == len(files) == created
    assert sorted(files) == sorted(r["id"] for r in rows)
    sent: dict[int, set[str]] = {}
    for result in results:
        for size, digest in result.digests.items():
            sent.setdefault(size, set()).add(digest)
    for row in rows:
        assert files[row["id"]].stat().st_size == row["size"]
        assert sha256_of(files[row["id"]]) in sent[row["size"]], row
    assert eventually(lambda: stack.temp_files() == [])


def test_200_concurrent_uploads_into_two_app_processes_keep_sqlite_writers_in_line(
    make_stack: Callable[..., LiveStack],
) -> None:
    # Two processes, each with its thread pool, all writing one SQLite file with FULL sync:
    # writers queue on busy_timeout instead of failing with "database is locked".
    stack = make_stack(limits=UNLIMITED, app={"workers": 2}, uploads={"durable": True})
    result = run_load(stack.settings.server.listen[0].port, [KB] * 600, clients=200)
    assert result.errors == []
    assert dict(result.statuses) == {201: 600}
    _assert_books(stack, 600, result)


def test_load_of_200_clients_with_1kb_1mb_and_50mb_bodies_keeps_the_books_and_the_app_flat(
    make_stack: Callable[..., LiveStack],
) -> None:
    stack = make_stack(limits=UNLIMITED, uploads={"durable": True})
    port = stack.settings.server.listen[0].port
    pid = stack.app_pid
    warm_up = run_load(port, mix(200, 20, 1), clients=200)
    assert warm_up.errors == [] and set(warm_up.statuses) == {201}
    time.sleep(0.5)
    rss_before, fds_before = rss_kib(pid), open_fds(pid)

    sampler = Sampler(pid)
    sampler.start()
    rounds = [run_load(port, mix(1000, 100, 4, seed=n), clients=200) for n in (1, 2)]
    sampler.stop()
    time.sleep(0.5)
    rss_after, fds_after = rss_kib(pid), open_fds(pid)

    for result in rounds:
        assert result.errors == []
        assert dict(result.statuses) == {201: 1104}
    created = sum(r.created for r in (warm_up, *rounds))
    _assert_books(stack, created, warm_up, *rounds)
    # Flat: what two rounds of 1104 uploads (400 MB of them in 50 MB bodies) leave behind.
    # A single 50 MB body held in memory would be 51200 KiB.
    growth = rss_after - rss_before
    assert growth < 16 * 1024, f"app RSS grew by {growth} KiB (peak {sampler.peak_rss_kib})"
    assert sampler.peak_rss_kib - rss_before < 48 * 1024
    # At rest only the catalog's connections and Nginx's idle keep-alive sockets stay open.
    assert fds_after <= fds_before + 40, f"app fds {fds_before} -> {fds_after}"
    shutil.rmtree(stack.media_root)  # 600 MB that no later test needs
