"""CPU seconds read from /proc, shared by the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def process_memory(pid: int) -> tuple[int, int]:
    """Resident set size now and its peak since the process started (VmRSS, VmHWM), in bytes; (0, 0) when the
    process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    kib: dict[str, int] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            kib[name] = int(rest.split()[0])
    return kib.get("VmRSS", 0) * 1024, kib.get("VmHWM", 0) * 1024


def machine_cpu_fields() -> list[float]:
    """The machine's CPU seconds since boot: user, nice, system, idle, iowait, irq, softirq, steal, ..."""
    return [int(v) / TICK for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
