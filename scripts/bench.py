"""Benchmark landing side by side with the usual FastAPI ways (issue 6).

    .venv/bin/python scripts/bench.py --quick     # under 3 minutes, checks the harness
    .venv/bin/python scripts/bench.py             # the full run published in docs/benchmarks.md

Writes ``<out>/benchmarks.md``, ``<out>/bench/results.json`` and the PNG figures; ``--out``
defaults to ``docs/``. See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for entry in (str(SCRIPTS), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from benchlib.plan import PLANS  # noqa: E402 - the path above makes the package importable
from benchlib.suite import Options, run  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short plan (under 3 min)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs",
        help="where benchmarks.md and bench/ go (default: docs/)",
    )
    parser.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="parent of the run's scratch dir (default: the system temp dir)",
    )
    parser.add_argument(
        "--no-reserve", action="store_true", help="turn the page-cache reserve correction off"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated contender keys to run (default: all)"
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch dir")
    parser.add_argument("--nginx", default=None, help="the nginx binary (default: found)")
    return parser


def _command(argv: list[str]) -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python, Path.cwd()) if REPO in python.parents else python.name
    script = os.path.relpath(Path(__file__).resolve(), Path.cwd())
    return shlex.join([shown, script, *argv])


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so every process is stopped by pid on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    from callback_api.devstack import find_nginx

    options = Options(
        plan=PLANS["quick" if args.quick else "full"],
        out=args.out,
        command=_command(sys.argv[1:] if argv is None else argv),
        nginx=args.nginx or find_nginx(),
        tmp_parent=args.tmp,
        reserve=not args.no_reserve,
        only=tuple(key for key in args.only.split(",") if key),
        keep_tmp=args.keep_tmp,
    )
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
