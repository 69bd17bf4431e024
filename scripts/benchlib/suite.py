"""One benchmark run: start every contender side by side, run the experiments, write outputs.

Everything lives under one fresh directory (payloads, reserve, every server's temp and media
dirs) so that all contenders write to the same filesystem; it is removed at the end. Every
process is started through one ``ExitStack`` and stopped by pid when the run ends or fails.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import machine, plots, report, runner, stats, targets
from benchlib.contenders import (
    CONCURRENT,
    SERIES,
    SIZES,
    SMALL,
    Contender,
    DiskWrite,
    FileResponseApp,
    NginxAlone,
    RawStream,
    UploadFileChunks,
    UploadFileCopy,
)
from benchlib.floor import FloorSettings
from benchlib.http import fill_payload
from benchlib.landing import Landing, floor_settings
from benchlib.plan import Plan
from benchlib.progress import Progress
from benchlib.reserve import Reserve
from benchlib.units import MiB, size_label

ORDER = (
    "disk",
    "nginx",
    "landing",
    "landing-durable",
    "landing-2w",
    "uploadfile",
    "chunks",
    "stream",
)


IDLE_SECONDS = 3.0


@dataclass(frozen=True)
class Options:
    plan: Plan
    out: Path
    command: str
    nginx: str
    tmp_parent: Path | None = None
    reserve: bool = True
    only: Sequence[str] = ()
    keep_tmp: bool = False


def _steps(bench: runner.Bench, downloads: int) -> int:
    plan = bench.plan
    return (
        plan.rounds * len(plan.sizes) * len(bench.taking(SIZES))
        + plan.small_rounds * len(bench.taking(SMALL))
        + len(bench.taking(SERIES)) * -(-plan.series_uploads // runner.SERIES_STEP)
        + plan.concurrent_rounds * len(bench.taking(CONCURRENT))
        + len(plan.download_sizes) * plan.download_rounds * downloads
    )


def _method(options: Options, floor_buffer: str) -> list[str]:
    plan = options.plan
    return [
        f"{plan.rounds} interleaved rounds; each round visits every contender, in an order "
        "rotated by one each round. Reported: medians over rounds, and medians of per-round "
        "ratios against Nginx alone and `dd` measured in the same round.",
        "Each block (one contender, one size, one round) starts with one untimed warm-up "
        f"upload of min(size, {size_label(plan.warmup_cap)}), waits for any disk writeback "
        "still in flight to finish (at most 5 s), re-reads the payload into the page cache, "
        "then times its uploads back to back; the stored files are deleted after the block, "
        "untimed. CPU figures are medians of per-round values, like the times.",
        "Page-cache reserve correction: "
        + (
            "**on**. A clean, fsynced reserve file is read into the page cache before each "
            "timed block and dropped (`POSIX_FADV_DONTNEED`) at the pace the block consumes "
            "free memory, so every contender writes into recently freed pages rather than "
            "pages the VM has handed back to the host (BENCHMARKING.md)."
            if options.reserve
            else "**off** (`--no-reserve`)."
        ),
        "Client: a small in-process HTTP/1.1 client. Upload bodies go from the page cache to "
        "the socket with `sendfile(2)` (no user-space copy: curl would spend 0.5-0.75 s of "
        "CPU per GiB on the same two cores), no `Expect: 100-continue`, a fresh connection "
        "per upload. Its CPU is the sending thread's CPU, reported apart. Small uploads use "
        "32 uvloop tasks on keep-alive connections; downloads 8 threads on keep-alive "
        "connections reading into a reused buffer.",
        "Idle CPU: each contender's processes are first left idle for "
        f"{IDLE_SECONDS:.0f} s; uvicorn wakes every 0.1 s even with nothing to do, so Python "
        "CPU per upload is also given net of that idle rate times the block's duration.",
        "CPU: the kernel's per-process CPU clock (all threads, exited ones included, in ns) "
        "of the uvicorn process and of the Nginx master and workers, read before and after "
        "each block. Peak RSS: `VmHWM`, reset through `/proc/<pid>/clear_refs` before each "
        "block. Payloads are random bytes.",
        "Python servers: one uvicorn process each (uvloop + httptools, no access log). "
        f"Nginx alone uses landing's body settings (`client_body_buffer_size {floor_buffer}`, "
        "same temp levels and workers) and no access log; landing runs as `landing up` "
        "renders it (JSON access log on), started by `callback_api.devstack`.",
    ]


def run(options: Options) -> dict[str, Any]:
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="landing-bench-", dir=options.tmp_parent))
    floor, floor_problem = floor_settings()
    try:
        with ExitStack() as stack:
            return _run(options, root, stack, started, floor, floor_problem)
    finally:
        if not options.keep_tmp:
            shutil.rmtree(root, ignore_errors=True)


def _wanted(options: Options, key: str) -> bool:
    return not options.only or key in options.only


def _run(
    options: Options,
    root: Path,
    stack: ExitStack,
    started: float,
    floor: FloorSettings,
    floor_problem: str | None,
) -> dict[str, Any]:
    plan = options.plan
    probe = Progress(1)
    load_before, jiffies_before = machine.load_average(), machine.cpu_jiffies()
    if floor_problem:
        probe.say(f"landing settings unreadable, floor uses defaults: {floor_problem}")
    payload_dir = root / "payloads"
    payload_dir.mkdir()
    payloads: dict[int, Path] = {}
    every_size = {
        *(s.size for s in plan.sizes),
        plan.series_size,
        plan.concurrent_size,
        *plan.download_sizes,
    }
    for size in sorted(every_size):
        probe.say(f"writing a {size_label(size)} payload under {root}")
        payloads[size] = payload_dir / f"payload-{size}"
        fill_payload(payloads[size], size)
    capacity = 2 * plan.largest_batch + 128 * MiB
    if options.reserve:
        probe.say(f"writing the {size_label(capacity)} page-cache reserve")
    reserve = Reserve(root / "reserve", capacity, options.reserve)

    candidates: list[Contender] = [
        DiskWrite(root),
        NginxAlone(root, options.nginx, floor),
        Landing(root, durable=False),
        Landing(root, durable=True),
        Landing(root, durable=False, workers=2),
        UploadFileCopy(root),
        UploadFileChunks(root),
        RawStream(root),
    ]
    contenders: list[Contender] = []
    landing_missing: str | None = None
    for contender in candidates:
        if not _wanted(options, contender.key):
            continue
        try:
            contender.start(stack)
        except Exception as exc:
            if not isinstance(contender, Landing):
                raise
            # The core is someone else's and may be mid-change: report why, measure the rest.
            landing_missing = f"{contender.key} could not start: {type(exc).__name__}: {exc}"
            probe.say(f"MISSING {landing_missing}")
            continue
        contenders.append(contender)
    fileresponse = FileResponseApp(root) if _wanted(options, "fileresponse") else None
    if fileresponse is not None:
        fileresponse.start(stack)

    bench = runner.Bench(plan, root, payloads, reserve, Progress(0), contenders)
    by_key = {c.key: c for c in contenders}
    download_count = sum(
        1 for c in (by_key.get("nginx"), by_key.get("landing"), fileresponse) if c is not None
    )
    probe.say(f"measuring idle CPU for {IDLE_SECONDS:.0f} s")
    idle = runner.idle_cpu([*contenders, *([fileresponse] if fileresponse else [])], IDLE_SECONDS)
    bench.progress = Progress(_steps(bench, download_count))
    sizes = runner.run_sizes(bench)
    small = runner.run_small(bench)
    series = runner.run_series(bench)
    concurrent = runner.run_concurrent(bench)
    placed = {
        size: runner.place_downloads(
            bench, size, by_key.get("nginx"), by_key.get("landing"), fileresponse
        )
        for size in plan.download_sizes
    }
    downloads = runner.run_downloads(bench, placed)
    bench.progress.close()

    listed = [*contenders, *([fileresponse] if fileresponse else [])]
    raw: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": options.command,
            "plan": plan.name,
            "plan_settings": {k: v for k, v in vars(plan).items() if k != "sizes"}
            | {"sizes": [vars(s) for s in plan.sizes]},
            "reserve_correction": options.reserve,
            "machine": machine.describe(root, options.nginx),
            "method": _method(options, floor.body_buffer_size),
            "landing_missing": landing_missing,
            "landing_settings": next(
                (c.settings_summary() for c in contenders if isinstance(c, Landing)), None
            ),
            "floor_settings": vars(floor),
            "idle_cpu_per_s": idle,
            "background": _background(load_before, jiffies_before),
            "elapsed_s": time.monotonic() - started,
        },
        "contenders": [
            {
                "key": c.key,
                "label": c.label,
                "how": c.how,
                "python": c.has_python,
                "nginx": c.has_nginx,
            }
            for c in sorted(listed, key=lambda c: ORDER.index(c.key) if c.key in ORDER else 99)
        ],
        "sizes": sizes,
        "small": small,
        "series": series,
        "concurrent": concurrent,
        "downloads": downloads,
    }
    _write(options.out, raw, bench.progress)
    return raw


def _background(load_before: list[float], jiffies_before: tuple[int, int]) -> dict[str, Any]:
    """How busy the (shared) machine was: load averages, and the share of both cores in use
    over the whole run, ours included."""
    busy, total = machine.cpu_jiffies()
    return {
        "loadavg_start": load_before,
        "loadavg_end": machine.load_average(),
        "cpu_busy_share": (busy - jiffies_before[0]) / max(1, total - jiffies_before[1]),
    }


def _write(out: Path, raw: dict[str, Any], progress: Progress) -> None:
    summary = stats.summarize(raw)
    aims = targets.evaluate(summary)
    raw["summary"] = summary
    raw["targets"] = aims
    figures_dir = out / "bench"
    figures_dir.mkdir(parents=True, exist_ok=True)
    labels = {c["key"]: c["label"] for c in raw["contenders"]}
    figures = {"json": "bench/results.json"}
    plots.time_vs_size(summary, labels, figures_dir / "time-vs-size.png")
    figures["time_vs_size"] = "bench/time-vs-size.png"
    if raw["series"]["contenders"]:
        plots.memory_series(raw["series"], labels, figures_dir / "python-rss.png")
        figures["memory"] = "bench/python-rss.png"
    (figures_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    page = out / "benchmarks.md"
    page.write_text(report.render(raw, summary, aims, figures, report.kept_notes(page)))
    progress.say(f"wrote {page}, {figures_dir}/results.json and the figures")
    for aim in aims:
        mark = {True: "met", False: "MISSED", None: "-"}[aim["met"]]
        progress.say(f"  {mark:>6}  {aim['aim']}: {aim['reached']}")
