"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""
from __future__ import annotations

import os
import statistics
import time


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median and minimum wall seconds of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()  # warm-up (imports, BLAS threads, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def time_it(fn, repeats: int):
    """Best and median wall-clock seconds, best process CPU seconds, and the last result (no warm-up)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(times), statistics.median(times), min(cpu), out


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared), or ``n/a``."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "n/a"
