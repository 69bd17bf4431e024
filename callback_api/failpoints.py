"""Failpoints: let the crash-consistency tests kill the app at an exact step of a landing.

Off unless $LANDING_FAILPOINT names a step (read by ``create_app``, never at import). The
process then SIGKILLs itself when it reaches that step, as a power cut or an OOM kill would:
no cleanup, no response. Steps, in order: validated, pending, linked, ready.
"""

from __future__ import annotations

import os
import signal
from typing import Literal

ENV = "LANDING_FAILPOINT"
Step = Literal["validated", "pending", "linked", "ready"]
STEPS: tuple[Step, ...] = ("validated", "pending", "linked", "ready")


class Failpoints:
    def __init__(self, crash_at: str | None) -> None:
        if crash_at is not None and crash_at not in STEPS:
            raise ValueError(f"{ENV}={crash_at!r} is not one of {', '.join(STEPS)}")
        self._crash_at = crash_at

    @classmethod
    def from_env(cls) -> Failpoints:
        return cls(os.environ.get(ENV) or None)

    def reach(self, step: Step) -> None:
        if step == self._crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
