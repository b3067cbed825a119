"""What the benchmarks share: timing a call, wall and CPU, and printing its percentiles."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(label: str, runs: int, call: Callable[[], object], *, width: int = 54) -> None:
    """Run ``call`` once to warm up, then ``runs`` times; print wall p50/p95/p99/max and CPU p50.

    CPU time is what the work costs this process; wall time also holds waiting for a core.
    """
    call()
    samples, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"{label:<{width}} p50 {statistics.median(samples):6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms"
        f"  max {samples[-1]:6.1f} ms  (CPU p50 {statistics.median(cpu):6.1f} ms)"
    )
