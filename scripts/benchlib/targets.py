"""The aims of issue 6, checked against a summary: each met, missed, or not measured."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from benchlib.stats import DURABLE, LANDING


@dataclass(frozen=True)
class Target:
    aim: str
    reached: str
    met: bool | None  # None: not measured in this run (or only reported, no threshold)


def _get(summary: Mapping[str, Any], *path: str | int) -> Any:
    node: Any = summary
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _check(aim: str, value: float | None, ok: Callable[[float], bool], shown: str) -> Target:
    if value is None:
        return Target(aim, "not measured", None)
    return Target(aim, shown.format(value), ok(value))


def _at_least(factor: float) -> Callable[[float], bool]:
    return lambda value: value >= factor


def evaluate(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    sizes = summary.get("sizes") or []
    largest = sizes[-1] if sizes else {}
    at = f"at {largest.get('label', '?')}"
    rows = largest.get("contenders", {})
    landing = rows.get(LANDING, {})
    targets = [
        _check(
            f"landing within 1.10x of Nginx alone {at}",
            landing.get("x_floor"),
            lambda v: v <= 1.10,
            "{:.2f}x",
        ),
    ]
    for key, label, factor in (
        ("uploadfile", "`UploadFile`", 3.5),
        ("chunks", "2 MiB chunks", 3.0),
        ("stream", "raw stream", 1.7),
    ):
        targets.append(
            _check(
                f"landing >= {factor}x faster than {label} {at}",
                rows.get(key, {}).get("x_landing"),
                _at_least(factor),
                "{:.2f}x",
            )
        )
    # Net of the CPU uvicorn spends idle (a wake-up every 0.1 s), which is not per upload.
    per_upload = [
        (s["label"], s["contenders"][LANDING]["python_net_ms_per_upload"])
        for s in sizes
        if LANDING in s["contenders"]
    ]
    for label, section, field in (
        (f"{_get(summary, 'series', 'uploads')} x series", "series", "python_net_ms_per_upload"),
        ("small uploads", "small", "python_net_ms"),
    ):
        value = _get(summary, section, "contenders", LANDING, field)
        if value is not None:
            per_upload.append((label, value))
    worst = max(per_upload, key=lambda pair: pair[1], default=None)
    targets.append(
        _check(
            "landing Python CPU <= 2 ms per upload, every size (net of idle ticks)",
            None if worst is None else worst[1],
            lambda v: v <= 2.0,
            "{:.2f} ms, worst case (" + (worst[0] if worst else "") + ")",
        )
    )
    series = summary.get("series") or {}
    targets.append(
        _check(
            f"landing Python RSS growth < 1 MiB over {series.get('uploads', '?')} uploads",
            _get(series, "contenders", LANDING, "growth_mib"),
            lambda v: v < 1.0,
            "{:+.2f} MiB",
        )
    )
    targets.append(
        _check(
            ">= 1000 small uploads/s, durability off",
            _get(summary, "small", "contenders", LANDING, "per_s"),
            lambda v: v >= 1000,
            "{:.0f}/s",
        )
    )
    durable = _get(summary, "small", "contenders", DURABLE, "per_s")
    targets.append(
        Target(
            "small uploads/s with durability on (reported)",
            "not measured" if durable is None else f"{durable:.0f}/s",
            None,
        )
    )
    for download in summary.get("downloads") or []:
        targets.append(
            _check(
                f"downloads via Nginx >= 5x `FileResponse` requests/s, {download['label']}",
                _get(download, "contenders", LANDING, "x_versus"),
                lambda v: v >= 5.0,
                "{:.2f}x",
            )
        )
    return [asdict(t) for t in targets]
