"""Timing helpers shared by the benchmarks: medians over repeats, a printed table."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Row:
    benchmark: str
    measured: str
    baseline: str
    ratio: float
    target: str = ""

    @property
    def met(self) -> str:
        return ""


def machine() -> str:
    import os

    return f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"


def print_table(rows: list[Row]) -> None:
    headers = ("benchmark", "measured", "baseline", "ratio", "target")
    cells = [headers] + [(r.benchmark, r.measured, r.baseline, f"{r.ratio:.1f}x", r.target) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
    for n, c in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
