"""The figures of the report (PNG, matplotlib without a display)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

from benchlib.units import MiB


def time_vs_size(summary: Mapping[str, Any], labels: Mapping[str, str], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, 5))
    sizes = summary["sizes"]
    for key, label in labels.items():
        points = [
            (s["size"] / MiB, s["contenders"][key]["seconds"])
            for s in sizes
            if key in s["contenders"] and s["contenders"][key]["seconds"]
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("upload size (MiB)")
    axes.set_ylabel("median time per upload (s)")
    axes.set_title("Upload time against size (lower is better)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def memory_series(raw_series: Mapping[str, Any], labels: Mapping[str, str], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, 5))
    for key, data in raw_series["contenders"].items():
        rss = [value / MiB for value in data["rss"]]
        axes.plot(range(1, len(rss) + 1), rss, label=labels.get(key, key))
    axes.set_xlabel(f"upload number ({raw_series['size'] // MiB} MiB each, sequential)")
    axes.set_ylabel("Python process RSS (MiB)")
    axes.set_title("Python memory across uploads (flat is the aim)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
