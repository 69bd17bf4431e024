"""The experiments, each interleaved: every round visits every contender, in a rotated order.

Blocks return plain dicts (they go to the JSON as they are); ``stats`` summarises them.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchlib import load
from benchlib.contenders import (
    CONCURRENT,
    SERIES,
    SIZES,
    SMALL,
    Contender,
    Outcome,
    empty_dir,
)
from benchlib.http import Connection
from benchlib.plan import Plan, SizeStep
from benchlib.procs import Watched, peak_rss_bytes, reset_peak_rss, rss_bytes
from benchlib.progress import Progress
from benchlib.reserve import Reserve, read_through, settle
from benchlib.units import size_label

T = TypeVar("T")
SERIES_STEP = 25  # uploads per progress step in the memory series


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """Round r starts with the r-th item, so no contender always runs first or last."""
    shift = round_index % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def _forget(outcome: Outcome) -> None:
    if outcome.stored is not None:
        outcome.stored.unlink(missing_ok=True)


@dataclass
class Bench:
    plan: Plan
    root: Path
    payloads: dict[int, Path]
    reserve: Reserve
    progress: Progress
    contenders: list[Contender] = field(default_factory=list)

    def taking(self, experiment: str) -> list[Contender]:
        return [c for c in self.contenders if experiment in c.experiments]


class _Meter:
    """CPU of the contender's processes, and the Python process's peak RSS, around a block."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched
        self.peak_reset = watched.python is not None and reset_peak_rss(watched.python)
        self.py0, self.ng0 = watched.cpu()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        py1, ng1 = self.watched.cpu()
        pid = self.watched.python
        return {
            "python_cpu": py1 - self.py0,
            "nginx_cpu": ng1 - self.ng0,
            "elapsed": time.perf_counter() - self.started,
            "peak_rss": peak_rss_bytes(pid) if pid and self.peak_reset else None,
        }


def idle_cpu(contenders: Sequence[Contender], seconds: float) -> dict[str, dict[str, float]]:
    """CPU per second of each contender's processes with nothing to do (uvicorn wakes every
    0.1 s), so that per-upload figures can be given net of it."""
    before = {c.key: c.watched.cpu() for c in contenders}
    time.sleep(seconds)
    after = {c.key: c.watched.cpu() for c in contenders}
    return {
        key: {
            "python": (after[key][0] - before[key][0]) / seconds,
            "nginx": (after[key][1] - before[key][1]) / seconds,
        }
        for key in before
    }


def upload_block(bench: Bench, contender: Contender, step: SizeStep) -> dict[str, Any]:
    """One warm-up, then ``reps`` timed uploads with a fresh payload and the reserve paced."""
    payload = bench.payloads[step.size]
    _forget(contender.upload(payload, min(step.size, bench.plan.warmup_cap)))
    settled = settle()
    read_through(payload)
    outcomes: list[Outcome] = []
    with bench.reserve.paced(2 * step.size * step.reps):
        meter = _Meter(contender.watched)
        for _ in range(step.reps):
            outcomes.append(contender.upload(payload, step.size))
        block = meter.stop()
    for outcome in outcomes:
        _forget(outcome)
    return {
        **block,
        "seconds": [o.seconds for o in outcomes],
        "client_cpu": sum(o.client_cpu for o in outcomes),
        "process_cpu": sum(o.server_cpu for o in outcomes),
        "settle_s": settled,
    }


def run_sizes(bench: Bench) -> list[dict[str, Any]]:
    rounds: list[list[dict[str, Any]]] = [[] for _ in bench.plan.sizes]
    for round_index in range(bench.plan.rounds):
        for step, size_rounds in zip(bench.plan.sizes, rounds, strict=True):
            blocks: dict[str, Any] = {}
            for contender in rotated(bench.taking(SIZES), round_index):
                block = upload_block(bench, contender, step)
                blocks[contender.key] = block
                mean = sum(block["seconds"]) / len(block["seconds"])
                bench.progress.step(
                    f"{size_label(step.size)} round {round_index + 1}/{bench.plan.rounds} "
                    f"{contender.key}: {mean:.3f} s"
                )
            size_rounds.append(blocks)
    return [
        {"size": step.size, "reps": step.reps, "rounds": size_rounds}
        for step, size_rounds in zip(bench.plan.sizes, rounds, strict=True)
    ]


def run_small(bench: Bench) -> dict[str, Any]:
    """4 KiB uploads from 32 keep-alive clients for a fixed time: rate and latency."""
    plan = bench.plan
    body = os.urandom(plan.small_size)
    rounds: list[dict[str, Any]] = []
    for round_index in range(plan.small_rounds):
        blocks: dict[str, Any] = {}
        for contender in rotated(bench.taking(SMALL), round_index):
            load.small_uploads(contender.port, contender.request, body, plan.small_clients, 0.5)
            meter = _Meter(contender.watched)
            result = load.small_uploads(
                contender.port, contender.request, body, plan.small_clients, plan.small_seconds
            )
            blocks[contender.key] = {
                **meter.stop(),
                "seconds": result.seconds,
                "ok": result.ok,
                "statuses": {str(k): v for k, v in result.statuses.items()},
                "latencies": _percentiles(result.latencies),
                "client_cpu": result.client_cpu,
            }
            for directory in contender.media_dirs():
                empty_dir(directory)
            bench.progress.step(
                f"small uploads round {round_index + 1}/{plan.small_rounds} {contender.key}: "
                f"{result.ok / result.seconds:.0f}/s"
            )
        rounds.append(blocks)
    return {
        "size": plan.small_size,
        "clients": plan.small_clients,
        "seconds": plan.small_seconds,
        "rounds": rounds,
    }


def run_series(bench: Bench) -> dict[str, Any]:
    """Python RSS after each of many sequential uploads (not timed: memory is the point)."""
    plan = bench.plan
    payload = bench.payloads[plan.series_size]
    series: dict[str, Any] = {}
    for contender in bench.taking(SERIES):
        pid = contender.watched.python
        assert pid is not None
        _forget(contender.upload(payload, plan.series_size))
        baseline = rss_bytes(pid)
        meter = _Meter(contender.watched)
        rss: list[int] = []
        for index in range(plan.series_uploads):
            _forget(contender.upload(payload, plan.series_size))
            rss.append(rss_bytes(pid))
            if (index + 1) % SERIES_STEP == 0 or index + 1 == plan.series_uploads:
                bench.progress.step(
                    f"memory series {contender.key}: {index + 1}/{plan.series_uploads}, "
                    f"RSS {(rss[-1] - baseline) / 2**20:+.2f} MiB"
                )
        series[contender.key] = {**meter.stop(), "baseline": baseline, "rss": rss}
    return {"uploads": plan.series_uploads, "size": plan.series_size, "contenders": series}


def concurrent_block(bench: Bench, contender: Contender) -> dict[str, Any]:
    """``concurrent_uploads`` uploads released at once; wall time until the last answer."""
    plan = bench.plan
    payload = bench.payloads[plan.concurrent_size]
    _forget(contender.upload(payload, plan.concurrent_size))
    settle()
    read_through(payload)
    outcomes: list[Outcome] = []
    failures: list[BaseException] = []
    gate = threading.Barrier(plan.concurrent_uploads + 1)

    def one() -> None:
        gate.wait()
        try:
            outcomes.append(contender.upload(payload, plan.concurrent_size))
        except BaseException as exc:  # re-raised in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(plan.concurrent_uploads)]
    with bench.reserve.paced(2 * plan.concurrent_size * plan.concurrent_uploads):
        meter = _Meter(contender.watched)
        for thread in threads:
            thread.start()
        gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        block = meter.stop()
    for outcome in outcomes:
        _forget(outcome)
    if failures:
        raise failures[0]
    return {
        **block,
        "wall": wall,
        "seconds": sorted(o.seconds for o in outcomes),
        "client_cpu": sum(o.client_cpu for o in outcomes),
    }


def run_concurrent(bench: Bench) -> dict[str, Any]:
    """8 uploads of 50 MiB at once: wall time until the last answer, CPU, peak Python RSS."""
    plan = bench.plan
    rounds: list[dict[str, Any]] = []
    for round_index in range(plan.concurrent_rounds):
        blocks: dict[str, Any] = {}
        for contender in rotated(bench.taking(CONCURRENT), round_index):
            blocks[contender.key] = block = concurrent_block(bench, contender)
            bench.progress.step(
                f"{plan.concurrent_uploads} x {size_label(plan.concurrent_size)} at once "
                f"round {round_index + 1}/{plan.concurrent_rounds} {contender.key}: "
                f"{block['wall']:.2f} s"
            )
        rounds.append(blocks)
    return {
        "uploads": plan.concurrent_uploads,
        "size": plan.concurrent_size,
        "rounds": rounds,
    }


@dataclass(frozen=True)
class DownloadTarget:
    key: str
    label: str
    how: str
    port: int
    target: str
    watched: Watched


def place_downloads(
    bench: Bench,
    size: int,
    floor: Contender | None,
    landing: Contender | None,
    fileresponse: Contender | None,
) -> list[DownloadTarget]:
    """Put the same bytes where each server sends them from."""
    payload = bench.payloads[size]
    targets = []
    name = uuid.uuid4().hex
    if floor is not None:
        os.link(payload, floor.media / name)
        targets.append(
            DownloadTarget(
                "nginx",
                "Nginx alone (static file)",
                "`alias` location, `sendfile on`",
                floor.port,
                f"/files/{name}",
                floor.watched,
            )
        )
    if landing is not None:
        connection = Connection(landing.port)
        try:
            response = connection.upload(landing.request, payload, size)
        finally:
            connection.close()
        if response.status != 201:
            raise RuntimeError(f"landing refused the download file: {response.status}")
        targets.append(
            DownloadTarget(
                "landing",
                "landing (`X-Accel-Redirect`)",
                "app checks the catalog, Nginx sends the file",
                landing.port,
                str(response.json()["url"]),
                landing.watched,
            )
        )
    if fileresponse is not None:
        os.link(payload, fileresponse.media / name)
        targets.append(
            DownloadTarget(
                "fileresponse",
                fileresponse.label,
                fileresponse.how,
                fileresponse.port,
                f"/files/{name}",
                fileresponse.watched,
            )
        )
    return targets


def run_downloads(bench: Bench, targets_by_size: dict[int, list[DownloadTarget]]) -> dict[str, Any]:
    plan = bench.plan
    results: list[dict[str, Any]] = []
    for size, targets in targets_by_size.items():
        rounds: list[dict[str, Any]] = []
        for round_index in range(plan.download_rounds):
            blocks: dict[str, Any] = {}
            for target in rotated(targets, round_index):
                load.downloads(target.port, target.target, plan.download_clients, 0.3)
                meter = _Meter(target.watched)
                result = load.downloads(
                    target.port, target.target, plan.download_clients, plan.download_seconds
                )
                blocks[target.key] = {
                    **meter.stop(),
                    "seconds": result.seconds,
                    "ok": result.ok,
                    "statuses": {str(k): v for k, v in result.statuses.items()},
                    "bytes": result.body_bytes,
                    "latencies": _percentiles(result.latencies),
                    "client_cpu": result.client_cpu,
                }
                bench.progress.step(
                    f"downloads {size_label(size)} round {round_index + 1}/{plan.download_rounds} "
                    f"{target.key}: {result.ok / result.seconds:.0f}/s"
                )
            rounds.append(blocks)
        results.append(
            {
                "size": size,
                "clients": plan.download_clients,
                "rounds": rounds,
                "contenders": {t.key: {"label": t.label, "how": t.how} for t in targets},
            }
        )
    return {"sizes": results}


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}
