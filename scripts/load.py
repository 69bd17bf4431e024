#!/usr/bin/env python3
"""A bounded load run on loopback: many clients upload a mix of sizes through a real stack.

    .venv/bin/python scripts/load.py --clients 200 --rounds 5

starts its own stack (Nginx + uvicorn) in a temp dir with the per-client limits lifted (every
client comes from 127.0.0.1), runs a warm-up round and then the measured rounds, and prints
per round: statuses, uploads per second, MB/s, the app's RSS and open descriptors. It ends
with the books: 201s == ready rows == files, the temp dir empty. tests/test_concurrency_and_load.py
imports `run_load` and `Sampler` from here for its shorter, asserted run.

The client is plain asyncio on keep-alive connections (an HTTP/1.1 client of ~40 lines): httpx
would spend more of the two cores than Nginx and the app together.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KB, MB = 1024, 1024 * 1024
_SLICE = MB  # large bodies are written a slice at a time, so the client never copies 50 MB


@dataclass
class LoadResult:
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    by_size: Counter[tuple[int, int]] = field(default_factory=Counter)  # (size, status)
    bytes_sent: int = 0
    errors: list[str] = field(default_factory=list)  # connection-level failures
    digests: dict[int, str] = field(default_factory=dict)  # sha256 of the body of each size

    @property
    def created(self) -> int:
        return self.statuses[201]


def mix(small: int, medium: int, large: int, seed: int = 5) -> list[int]:
    """Body sizes: `small` x 1 KB, `medium` x 1 MB and `large` x 50 MB, shuffled."""
    sizes = [KB] * small + [MB] * medium + [50 * MB] * large
    random.Random(seed).shuffle(sizes)
    return sizes


class Sampler(threading.Thread):
    """Samples a process's RSS (KiB) and open descriptors every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kib = self.peak_fds = 0
        self._done = threading.Event()

    def sample(self) -> tuple[int, int]:
        return rss_kib(self.pid), open_fds(self.pid)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            rss, fds = self.sample()
            self.peak_rss_kib, self.peak_fds = max(self.peak_rss_kib, rss), max(self.peak_fds, fds)

    def stop(self) -> None:
        self._done.set()
        self.join()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close"


async def _client(
    port: int, item: str, sizes: list[int], bodies: dict[int, bytes], result: LoadResult
) -> None:
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while sizes:
        size = sizes.pop()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            writer.write(
                f"PUT /api/items/{item}/media?filename=load-{size}.bin HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            body = memoryview(bodies[size])
            for start in range(0, size, _SLICE):
                writer.write(body[start : start + _SLICE])
                await writer.drain()
            status, close = await _read_answer(reader)
        except (OSError, asyncio.IncompleteReadError) as exc:
            result.errors.append(f"{size} bytes: {exc!r}")
            if conn is not None:
                conn[1].close()
            conn = None
            continue
        result.statuses[status] += 1
        result.by_size[(size, status)] += 1
        result.bytes_sent += size
        if close:
            writer.close()
            conn = None
    if conn is not None:
        conn[1].close()


async def _run(port: int, sizes: list[int], clients: int, item: str) -> LoadResult:
    result = LoadResult()
    bodies = {size: os.urandom(size) for size in set(sizes)}
    result.digests = {size: hashlib.sha256(body).hexdigest() for size, body in bodies.items()}
    # Deal the jobs round-robin, so that the few large bodies go to different clients.
    shares = [sizes[n::clients] for n in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, item, share, bodies, result) for share in shares))
    result.seconds = time.perf_counter() - started
    return result


def run_load(port: int, sizes: list[int], clients: int, item: str = "load") -> LoadResult:
    """Upload every size in `sizes` with `clients` concurrent keep-alive connections."""
    return asyncio.run(_run(port, sizes, clients, item))


def _books(database: Path, media_root: Path, temp_dir: Path) -> dict[str, int]:
    conn = sqlite3.connect(database)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM media GROUP BY state").fetchall())
    finally:
        conn.close()
    return {
        "ready_rows": states.get("ready", 0),
        "pending_rows": states.get("pending", 0),
        "files": sum(1 for p in media_root.rglob("*") if p.is_file()),
        "temp_files": sum(1 for p in temp_dir.rglob("*") if p.is_file()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds after a warm-up")
    parser.add_argument("--small", type=int, default=2000, help="1 KB uploads per round")
    parser.add_argument("--medium", type=int, default=200, help="1 MB uploads per round")
    parser.add_argument("--large", type=int, default=8, help="50 MB uploads per round")
    parser.add_argument("--durable", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    sys.path.insert(0, str(root / "tests"))
    from conftest import DEV_CONFIG, stack_overrides

    from callback_api.devstack import running_stack

    work = Path(tempfile.mkdtemp(prefix="landing-load-"))
    socket_dir = Path(tempfile.mkdtemp(prefix="ld-"))
    overrides = stack_overrides(
        work,
        socket_dir,
        uploads={"durable": args.durable},
        limits={"upload_rate": "100000r/s", "upload_burst": 100000, "upload_connections": 10000},
        nginx={"worker_connections": 4096},
    )
    figures: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        with running_stack(DEV_CONFIG, overrides) as stack:
            assert stack.app is not None
            port = stack.settings.server.listen[0].port
            paths = stack.settings.paths
            sampler = Sampler(stack.app.pid)
            run_load(port, mix(args.small // 4, args.medium // 4, 1), args.clients)
            rss0, fds0 = sampler.sample()
            print(f"after warm-up: app RSS {rss0 / 1024:.1f} MiB, {fds0} open fds", flush=True)
            sampler.start()
            rounds = []
            total = Counter[int]()
            for number in range(1, args.rounds + 1):
                sizes = mix(args.small, args.medium, args.large, seed=number)
                result = run_load(port, sizes, args.clients)
                total.update(result.statuses)
                rss, fds = sampler.sample()
                row = {
                    "round": number,
                    "uploads": len(sizes),
                    "seconds": round(result.seconds, 2),
                    "uploads_per_s": round(len(sizes) / result.seconds, 1),
                    "mb_per_s": round(result.bytes_sent / MB / result.seconds, 1),
                    "statuses": dict(result.statuses),
                    "errors": len(result.errors),
                    "rss_mib": round(rss / 1024, 1),
                    "fds": fds,
                }
                rounds.append(row)
                print(json.dumps(row), flush=True)
            sampler.stop()
            time.sleep(1)  # let Nginx finish removing the last temp names
            books = _books(paths.database, paths.media_root, paths.temp_dir)
            figures.update(
                rounds=rounds,
                warm_up={"rss_mib": round(rss0 / 1024, 1), "fds": fds0},
                peak={"rss_mib": round(sampler.peak_rss_kib / 1024, 1), "fds": sampler.peak_fds},
                books=books,
            )
            warm_up_created = books["ready_rows"] - total[201]
            print(
                f"books: {total[201]} measured 201s (+{warm_up_created} warm-up) -> "
                f"{books['ready_rows']} ready rows, {books['files']} files, "
                f"{books['pending_rows']} pending, {books['temp_files']} temp files; "
                f"app peak RSS {sampler.peak_rss_kib / 1024:.1f} MiB, peak fds {sampler.peak_fds}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = books["ready_rows"] == books["files"] and not books["temp_files"]
    ok = ok and not books["pending_rows"] and set(total) == {201}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
