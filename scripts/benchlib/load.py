"""Many requests at once: small uploads on keep-alive connections, and download loops.

Small uploads use one asyncio (uvloop) task per client: 32 threads would spend more time on
the GIL than on the requests. Downloads use blocking threads, which release the GIL while the
kernel copies each body into a reused buffer. Either way the client's CPU is measured as its
own threads' CPU and reported apart from the servers'.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import uvloop

from benchlib.http import Connection, Request, _parse_head


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    body_bytes: int = 0
    client_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)


async def _small_client(port: int, message: bytes, deadline: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(message)
            status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _small_load(port: int, message: bytes, clients: int, seconds: float) -> LoadResult:
    result = LoadResult(seconds)
    cpu = time.thread_time()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_small_client(port, message, deadline, result) for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.thread_time() - cpu
    return result


def small_uploads(
    port: int, request: Request, body: bytes, clients: int, seconds: float
) -> LoadResult:
    """``clients`` connections, each uploading ``body`` back to back for ``seconds``."""
    message = request.head(f"127.0.0.1:{port}", len(body)) + request.prefix + body + request.suffix
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_small_load(port, message, clients, seconds))


def downloads(port: int, target: str, clients: int, seconds: float) -> LoadResult:
    """``clients`` threads, each fetching ``target`` on one keep-alive connection."""
    result = LoadResult(seconds)
    lock = threading.Lock()
    failures: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        connection = Connection(port)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        received = 0
        start.wait()
        cpu = time.thread_time()
        try:
            while time.perf_counter() < deadline[0]:
                response = connection.get(target)
                latencies.append(response.seconds)
                statuses[response.status] += 1
                received += response.length
        except BaseException as exc:  # handed to the caller below, not swallowed
            failures.append(exc)
        finally:
            connection.close()
        with lock:
            result.latencies += latencies
            result.statuses.update(statuses)
            result.body_bytes += received
            result.client_cpu += time.thread_time() - cpu

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    start.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return result
