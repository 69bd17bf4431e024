"""How much to measure: the quick plan (the harness's own test) and the full one (people)."""

from __future__ import annotations

from dataclasses import dataclass

from benchlib.units import GiB, KiB, MiB


@dataclass(frozen=True)
class SizeStep:
    size: int
    reps: int  # timed uploads per block; their mean is the block's time


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    sizes: tuple[SizeStep, ...]
    warmup_cap: int  # the untimed warm-up of a block sends min(size, this)
    small_size: int
    small_clients: int
    small_seconds: float
    small_rounds: int
    series_uploads: int
    series_size: int
    concurrent_uploads: int
    concurrent_size: int
    concurrent_rounds: int
    download_sizes: tuple[int, ...]
    download_clients: int
    download_seconds: float
    download_rounds: int

    @property
    def largest_batch(self) -> int:
        return max(
            *(step.size * step.reps for step in self.sizes),
            self.concurrent_size * self.concurrent_uploads,
        )


QUICK = Plan(
    name="quick",
    rounds=2,
    sizes=(SizeStep(1 * MiB, 5), SizeStep(50 * MiB, 1)),
    warmup_cap=64 * MiB,
    small_size=4 * KiB,
    small_clients=32,
    small_seconds=1.5,
    small_rounds=1,
    series_uploads=20,
    series_size=50 * MiB,
    concurrent_uploads=8,
    concurrent_size=50 * MiB,
    concurrent_rounds=1,
    download_sizes=(1 * MiB,),
    download_clients=8,
    download_seconds=1.5,
    download_rounds=1,
)

FULL = Plan(
    name="full",
    rounds=7,
    sizes=(SizeStep(1 * MiB, 20), SizeStep(50 * MiB, 4), SizeStep(1 * GiB, 1)),
    warmup_cap=64 * MiB,
    small_size=4 * KiB,
    small_clients=32,
    small_seconds=6.0,
    small_rounds=3,
    series_uploads=500,
    series_size=50 * MiB,
    concurrent_uploads=8,
    concurrent_size=50 * MiB,
    concurrent_rounds=3,
    download_sizes=(1 * MiB, 50 * MiB),
    download_clients=8,
    download_seconds=5.0,
    download_rounds=3,
)

PLANS = {plan.name: plan for plan in (QUICK, FULL)}
