"""Shared helpers for the benchmarks: timing with medians, and the result row.

Every benchmark module ``benchmarks/bench_*.py`` exposes ``run(quick: bool) -> list[Row]``.
Each row names what we measured and, when there is one, the baseline measured in the
same run (same machine, same moment), so the table shows ratios, not absolutes.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Repetitions per measurement (the median is reported); quick mode uses fewer.
REPEAT = 9
QUICK_REPEAT = 3


@dataclass
class Row:
    """One line of the benchmark table.

    ``ours`` and ``baseline`` are in ``unit`` (seconds are shown in ms or µs). When
    ``higher_is_better`` (throughput), the ratio is ours/baseline; otherwise
    baseline/ours, so a ratio above 1 always means we are better.
    """

    group: str
    name: str
    ours: float
    unit: str = "s"
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.ours == 0 or self.baseline == 0:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours


def repeats(quick: bool) -> int:
    return QUICK_REPEAT if quick else REPEAT


def measure(fn: Callable[[], Any], *, repeat: int = REPEAT, number: int = 1) -> float:
    """Median wall time of one call of ``fn`` over ``repeat`` rounds of ``number`` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples)


def measure_process(cmd: Sequence[str], *, repeat: int = REPEAT, **kwargs: Any) -> float:
    """Median wall time of a whole process (start to exit), which must succeed."""

    def once() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)

    once()  # warm the OS caches so the first sample is not an outlier
    return measure(once, repeat=repeat)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
