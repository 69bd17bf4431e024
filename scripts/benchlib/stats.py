"""From raw blocks to figures: medians of per-round values and of per-round ratios.

A ratio is always taken within one round (both contenders measured minutes apart at most,
under the same background load), then the median over rounds is reported. CPU figures are
medians of per-round values too: on a shared machine one round can be hit by a neighbour,
and a sum would let that round decide the figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchlib.units import MB, GiB, MiB, size_label

FLOOR, DISK, LANDING, DURABLE = "nginx", "disk", "landing", "landing-durable"
Block = Mapping[str, Any]
Value = Callable[[Block], float]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _per_round(rounds: Sequence[Block], key: str, value: Value) -> list[float]:
    return [value(blocks[key]) for blocks in rounds if key in blocks]


def _median_of(
    rounds: Sequence[Block], key: str, value: Value, wanted: bool = True
) -> float | None:
    return median(_per_round(rounds, key, value)) if wanted else None


def _ratios(rounds: Sequence[Block], key: str, other: str, value: Value) -> float | None:
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


def _peak(rounds: Sequence[Block], key: str) -> int | None:
    known = [b[key]["peak_rss"] for b in rounds if key in b and b[key]["peak_rss"] is not None]
    return max(known) if known else None


def _keys(rounds: Sequence[Block]) -> list[str]:
    seen: dict[str, None] = {}
    for blocks in rounds:
        seen.update(dict.fromkeys(blocks))
    return list(seen)


def _kind(kinds: Mapping[str, Block], key: str) -> tuple[bool, bool]:
    kind = kinds.get(key, {})
    return bool(kind.get("python")), bool(kind.get("nginx"))


def _net_python(idle_rate: float) -> Value:
    """Python CPU of a block minus what the process burns idle over the same time."""
    return lambda b: float(b["python_cpu"]) - idle_rate * float(b["elapsed"])


def _idle_rate(idle: Mapping[str, Block], key: str) -> float:
    return float(idle.get(key, {}).get("python", 0.0))


def _field(name: str) -> Value:
    return lambda b: float(b[name])


def _server_cpu(b: Block) -> float:
    return float(b["python_cpu"] + b["nginx_cpu"] + b["process_cpu"])


def _per_gib(size: int) -> Callable[[Value], Value]:
    def per_gib(value: Value) -> Value:
        return lambda b: value(b) / (size * len(b["seconds"]) / GiB)

    return per_gib


def _per_upload_ms(value: Value) -> Value:
    return lambda b: value(b) / len(b["seconds"]) * 1000


def summarize_size(
    result: Block, kinds: Mapping[str, Block], idle: Mapping[str, Block]
) -> dict[str, Any]:
    """One size: time, MB/s, ratios, CPU per GiB and per upload, peak RSS."""
    size, rounds = result["size"], result["rounds"]
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        has_python, has_nginx = _kind(kinds, key)
        net = _net_python(_idle_rate(idle, key))
        per_gib = _per_gib(size)
        seconds = median(_per_round(rounds, key, _mean_seconds))
        rows[key] = {
            "uploads": sum(len(b[key]["seconds"]) for b in rounds if key in b),
            "seconds": seconds,
            "mb_per_s": size / seconds / MB if seconds else None,
            "x_floor": _ratios(rounds, key, FLOOR, _mean_seconds),
            "x_disk": _ratios(rounds, key, DISK, _mean_seconds),
            "x_landing": _ratios(rounds, key, LANDING, _mean_seconds),
            "python_cpu_s_per_gib": _median_of(
                rounds, key, per_gib(_field("python_cpu")), has_python
            ),
            "python_cpu_ms_per_upload": _median_of(
                rounds, key, _per_upload_ms(_field("python_cpu")), has_python
            ),
            "python_net_ms_per_upload": _median_of(rounds, key, _per_upload_ms(net), has_python),
            "nginx_cpu_s_per_gib": _median_of(rounds, key, per_gib(_field("nginx_cpu")), has_nginx),
            "server_cpu_s_per_gib": _median_of(rounds, key, per_gib(_server_cpu)),
            "client_cpu_s_per_gib": _median_of(rounds, key, per_gib(_field("client_cpu"))),
            "peak_rss": _peak(rounds, key),
        }
    return {"size": size, "label": size_label(size), "contenders": rows}


def _rate(block: Block) -> float:
    return float(block["ok"]) / float(block["seconds"])


def _latency(quantile: str) -> Value:
    return lambda block: float(block["latencies"][quantile] or 0.0)


def _per_request_ms(value: Value) -> Value:
    return lambda b: value(b) / b["ok"] * 1000 if b["ok"] else 0.0


def summarize_load(
    result: Block, kinds: Mapping[str, Block], versus: str, idle: Mapping[str, Block]
) -> dict[str, Any]:
    """Many requests: rate, latency percentiles, CPU per request, errors."""
    rounds = result["rounds"]
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        has_python, has_nginx = _kind(kinds, key)
        failed = sum(
            count
            for blocks in rounds
            if key in blocks
            for status, count in blocks[key]["statuses"].items()
            if not status.startswith("2")
        )
        rows[key] = {
            "requests": sum(b[key]["ok"] for b in rounds if key in b),
            "failed": failed,
            "per_s": _median_of(rounds, key, _rate),
            "x_versus": _ratios(rounds, key, versus, _rate),
            **{q: _median_of(rounds, key, _latency(q)) for q in ("p50", "p95", "p99")},
            "python_cpu_ms": _median_of(
                rounds, key, _per_request_ms(lambda b: float(b["python_cpu"])), has_python
            ),
            "python_net_ms": _median_of(
                rounds, key, _per_request_ms(_net_python(_idle_rate(idle, key))), has_python
            ),
            "nginx_cpu_ms": _median_of(
                rounds, key, _per_request_ms(lambda b: float(b["nginx_cpu"])), has_nginx
            ),
            "client_cpu_ms": _median_of(
                rounds, key, _per_request_ms(lambda b: float(b["client_cpu"]))
            ),
            "peak_rss": _peak(rounds, key),
        }
        if all("bytes" in b[key] for b in rounds if key in b):
            rows[key]["mb_per_s"] = _median_of(
                rounds, key, lambda b: float(b["bytes"]) / float(b["seconds"]) / MB
            )
    return {"versus": versus, "contenders": rows}


def _wall(block: Block) -> float:
    return float(block["wall"])


def summarize_concurrent(result: Block, kinds: Mapping[str, Block]) -> dict[str, Any]:
    rounds = result["rounds"]
    gib = result["uploads"] * result["size"] / GiB
    rows: dict[str, Any] = {}
    for key in _keys(rounds):
        has_python, has_nginx = _kind(kinds, key)
        wall = median(_per_round(rounds, key, _wall))
        rows[key] = {
            "wall": wall,
            "mb_per_s": gib * GiB / wall / MB if wall else None,
            "x_floor": _ratios(rounds, key, FLOOR, _wall),
            "python_cpu_s_per_gib": _median_of(
                rounds, key, lambda b: float(b["python_cpu"]) / gib, has_python
            ),
            "nginx_cpu_s_per_gib": _median_of(
                rounds, key, lambda b: float(b["nginx_cpu"]) / gib, has_nginx
            ),
            "peak_rss": _peak(rounds, key),
        }
    return {"contenders": rows}


def summarize_series(result: Block, idle: Mapping[str, Block]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, data in result["contenders"].items():
        rss: list[int] = data["rss"]
        baseline: int = data["baseline"]
        count = len(rss)
        rows[key] = {
            "baseline_mib": baseline / MiB,
            "growth_mib": (rss[-1] - baseline) / MiB if rss else None,
            "max_growth_mib": (max(rss) - baseline) / MiB if rss else None,
            "python_cpu_ms_per_upload": data["python_cpu"] / count * 1000 if rss else None,
            "python_net_ms_per_upload": _net_python(_idle_rate(idle, key))(data) / count * 1000
            if rss
            else None,
        }
    return {"uploads": result["uploads"], "size": result["size"], "contenders": rows}


def summarize(raw: Mapping[str, Any]) -> dict[str, Any]:
    kinds = {c["key"]: c for c in raw["contenders"]}
    idle = raw["meta"].get("idle_cpu_per_s") or {}
    downloads = (raw.get("downloads") or {}).get("sizes", [])
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
            for d in downloads
        ],
    }
