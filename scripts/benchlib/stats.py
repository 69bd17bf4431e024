"""From raw blocks to figures: medians of per-round values and of per-round ratios.

A ratio is always taken within one round (both contenders measured minutes apart at most,
under the same background load), then the median over rounds is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchlib.units import MB, GiB, MiB, size_label

FLOOR, DISK, LANDING, DURABLE = "nginx", "disk", "landing", "landing-durable"
Block = Mapping[str, Any]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _per_round(rounds: Sequence[Block], key: str, value: Callable[[Block], float]) -> list[float]:
    return [value(blocks[key]) for blocks in rounds if key in blocks]


def _ratios(
    rounds: Sequence[Block], key: str, other: str, value: Callable[[Block], float]
) -> float | None:
    """Median over rounds of value(key) / value(other), both from the same round."""
    found = []
    for blocks in rounds:
        if key in blocks and other in blocks:
            denominator = value(blocks[other])
            if denominator > 0:
                found.append(value(blocks[key]) / denominator)
    return median(found)


def _mean_seconds(block: Block) -> float:
    seconds: list[float] = block["seconds"]
    return sum(seconds) / len(seconds)


def _sum(rounds: Sequence[Block], key: str, field: str) -> float:
    return sum(blocks[key][field] or 0.0 for blocks in rounds if key in blocks)


def _peak(rounds: Sequence[Block], key: str) -> int | None:
    peaks = [blocks[key]["peak_rss"] for blocks in rounds if key in blocks]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def _keys(rounds: Sequence[Block]) -> list[str]:
    seen: dict[str, None] = {}
    for blocks in rounds:
        seen.update(dict.fromkeys(blocks))
    return list(seen)


def _idle_python(rounds: Sequence[Block], key: str, idle: Mapping[str, Block]) -> float:
    """Python CPU the blocks would have used doing nothing (uvicorn's periodic wake-ups)."""
    rate = float(idle.get(key, {}).get("python", 0.0))
    return rate * _sum(rounds, key, "elapsed")


def summarize_size(
    result: Block, kinds: Mapping[str, Block], idle: Mapping[str, Block]
) -> dict[str, Any]:
    """One size: time, MB/s, ratios, CPU per GiB and per upload, peak RSS."""
    size, rounds = result["size"], result["rounds"]
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        uploads = sum(len(blocks[key]["seconds"]) for blocks in rounds if key in blocks)
        gib = size * uploads / GiB
        python_cpu = _sum(rounds, key, "python_cpu")
        python_net = python_cpu - _idle_python(rounds, key, idle)
        nginx_cpu = _sum(rounds, key, "nginx_cpu")
        process_cpu = _sum(rounds, key, "process_cpu")
        seconds = median(_per_round(rounds, key, _mean_seconds))
        has_python = bool(kinds.get(key, {}).get("python"))
        has_nginx = bool(kinds.get(key, {}).get("nginx"))
        rows[key] = {
            "uploads": uploads,
            "seconds": seconds,
            "mb_per_s": size / seconds / MB if seconds else None,
            "x_floor": _ratios(rounds, key, FLOOR, _mean_seconds),
            "x_disk": _ratios(rounds, key, DISK, _mean_seconds),
            "x_landing": _ratios(rounds, key, LANDING, _mean_seconds),
            "python_cpu_s_per_gib": python_cpu / gib if has_python else None,
            "python_cpu_ms_per_upload": python_cpu / uploads * 1000 if has_python else None,
            "python_net_ms_per_upload": python_net / uploads * 1000 if has_python else None,
            "nginx_cpu_s_per_gib": nginx_cpu / gib if has_nginx else None,
            "server_cpu_s_per_gib": (python_cpu + nginx_cpu + process_cpu) / gib,
            "client_cpu_s_per_gib": _sum(rounds, key, "client_cpu") / gib,
            "peak_rss": _peak(rounds, key),
        }
    return {"size": size, "label": size_label(size), "contenders": rows}


def _rate(block: Block) -> float:
    return float(block["ok"]) / float(block["seconds"])


def _latency(quantile: str) -> Callable[[Block], float]:
    return lambda block: float(block["latencies"][quantile] or 0.0)


def summarize_load(
    result: Block, kinds: Mapping[str, Block], versus: str, idle: Mapping[str, Block]
) -> dict[str, Any]:
    """Many requests: rate, latency percentiles, CPU per request, errors."""
    rounds = result["rounds"]
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        done = _sum(rounds, key, "ok")
        has_python = bool(kinds.get(key, {}).get("python"))
        has_nginx = bool(kinds.get(key, {}).get("nginx"))
        failed = sum(
            count
            for blocks in rounds
            if key in blocks
            for status, count in blocks[key]["statuses"].items()
            if not status.startswith("2")
        )
        rows[key] = {
            "requests": done,
            "failed": failed,
            "per_s": median(_per_round(rounds, key, _rate)),
            "x_versus": _ratios(rounds, key, versus, _rate),
            **{q: median(_per_round(rounds, key, _latency(q))) for q in ("p50", "p95", "p99")},
            "python_cpu_ms": _sum(rounds, key, "python_cpu") / done * 1000
            if has_python and done
            else None,
            "python_net_ms": (_sum(rounds, key, "python_cpu") - _idle_python(rounds, key, idle))
            / done
            * 1000
            if has_python and done
            else None,
            "nginx_cpu_ms": _sum(rounds, key, "nginx_cpu") / done * 1000
            if has_nginx and done
            else None,
            "client_cpu_ms": _sum(rounds, key, "client_cpu") / done * 1000 if done else None,
            "peak_rss": _peak(rounds, key),
        }
        if "bytes" in next(blocks[key] for blocks in rounds if key in blocks):
            total = _sum(rounds, key, "bytes")
            elapsed = _sum(rounds, key, "seconds")
            rows[key]["mb_per_s"] = total / elapsed / MB if elapsed else None
    return {"versus": versus, "contenders": rows}


def _wall(block: Block) -> float:
    return float(block["wall"])


def summarize_concurrent(result: Block, kinds: Mapping[str, Block]) -> dict[str, Any]:
    rounds = result["rounds"]
    total_bytes = result["uploads"] * result["size"]
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        count = sum(1 for blocks in rounds if key in blocks)
        gib = total_bytes * count / GiB
        wall = median(_per_round(rounds, key, _wall))
        has_python = bool(kinds.get(key, {}).get("python"))
        has_nginx = bool(kinds.get(key, {}).get("nginx"))
        rows[key] = {
            "wall": wall,
            "mb_per_s": total_bytes / wall / MB if wall else None,
            "x_floor": _ratios(rounds, key, FLOOR, _wall),
            "python_cpu_s_per_gib": _sum(rounds, key, "python_cpu") / gib if has_python else None,
            "nginx_cpu_s_per_gib": _sum(rounds, key, "nginx_cpu") / gib if has_nginx else None,
            "peak_rss": _peak(rounds, key),
        }
    return {"contenders": rows}


def summarize_series(result: Block, idle: Mapping[str, Block]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, data in result["contenders"].items():
        rss: list[int] = data["rss"]
        baseline: int = data["baseline"]
        idle_cpu = float(idle.get(key, {}).get("python", 0.0)) * data["elapsed"]
        rows[key] = {
            "baseline_mib": baseline / MiB,
            "growth_mib": (rss[-1] - baseline) / MiB if rss else None,
            "max_growth_mib": (max(rss) - baseline) / MiB if rss else None,
            "python_cpu_ms_per_upload": data["python_cpu"] / len(rss) * 1000 if rss else None,
            "python_net_ms_per_upload": (data["python_cpu"] - idle_cpu) / len(rss) * 1000
            if rss
            else None,
        }
    return {"uploads": result["uploads"], "size": result["size"], "contenders": rows}


def summarize(raw: Mapping[str, Any]) -> dict[str, Any]:
    kinds = {c["key"]: c for c in raw["contenders"]}
    idle = raw["meta"].get("idle_cpu_per_s") or {}
    return {
        "sizes": [summarize_size(r, kinds, idle) for r in raw["sizes"]],
        "small": summarize_load(raw["small"], kinds, FLOOR, idle) if raw.get("small") else None,
        "series": summarize_series(raw["series"], idle) if raw.get("series") else None,
        "concurrent": summarize_concurrent(raw["concurrent"], kinds)
        if raw.get("concurrent")
        else None,
        "downloads": [
            {
                "size": d["size"],
                "label": size_label(d["size"]),
                **summarize_load(d, kinds, "fileresponse", idle),
            }
            for d in (raw.get("downloads") or {}).get("sizes", [])
        ],
    }
