"""The benchmark harness itself works: the quick plan runs every contender and writes its outputs.

Only the harness is checked (outputs exist, every contender and experiment was measured,
no request failed), not its figures: those depend on the machine and are for people.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UPLOADERS = {"disk", "nginx", "landing", "landing-durable", "uploadfile", "chunks", "stream"}


@pytest.mark.timeout(300)
def test_quick_benchmark_measures_every_contender_and_writes_page_json_and_figures(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--quick",
            "--out",
            str(out),
            "--tmp",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    raw = json.loads((out / "bench" / "results.json").read_text())
    page = (out / "benchmarks.md").read_text()

    assert raw["meta"]["plan"] == "quick"
    assert raw["meta"]["landing_missing"] is None, done.stderr[-3000:]
    assert raw["meta"]["reserve_correction"] is True
    assert raw["meta"]["elapsed_s"] < 180
    assert [s["size"] for s in raw["sizes"]] == [1024**2, 50 * 1024**2]
    assert all(set(r) == UPLOADERS for s in raw["sizes"] for r in s["rounds"])
    assert set(raw["small"]["rounds"][0]) == UPLOADERS - {"disk"} | {"landing-2w"}
    assert all(
        s == "201" or s == "204"
        for r in raw["small"]["rounds"]
        for b in r.values()
        for s in b["statuses"]
    )
    assert set(raw["series"]["contenders"]) == {"landing", "uploadfile", "chunks", "stream"}
    assert all(len(c["rss"]) == 20 for c in raw["series"]["contenders"].values())
    assert set(raw["concurrent"]["rounds"][0]) == UPLOADERS - {"disk"} | {"landing-2w"}
    assert set(raw["downloads"]["sizes"][0]["rounds"][0]) == {"nginx", "landing", "fileresponse"}
    assert [t["met"] is None for t in raw["targets"]].count(True) == 1  # durable: reported only
    assert (out / "bench" / "time-vs-size.png").stat().st_size > 0
    assert (out / "bench" / "python-rss.png").stat().st_size > 0
    assert "](bench/time-vs-size.png)" in page
    assert "](bench/python-rss.png)" in page
    assert "--quick --out" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # scratch dir removed
