"""What the bench reads from the machine: peak memory of a process, and a description of the host.

Peak memory is the kernel's high-water mark of resident memory (``VmHWM`` in
``/proc/<pid>/status``): exact for one process, whatever its children do, and readable from
outside while the process lives. The bench process measures each of its phases separately by
resetting its own mark first (writing ``5`` to ``/proc/self/clear_refs``, Linux >= 4.0).
Where ``/proc`` is missing, a process can still read its own peak (``getrusage``); the peak of
another process is then unknown (``None``).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: packages whose versions shape the numbers (reported with the machine)
PACKAGES = ("aiokafka", "aiohttp", "orjson", "lz4", "clickhouse-connect", "chdb-core")


def _status_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory (MiB) of process ``pid`` so far (this process when ``None``)."""
    kb = _status_kb("self" if pid is None else pid, "VmHWM")
    if kb is None and pid is None:
        # getrusage reports KiB on Linux, bytes on macOS
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = raw // 1024 if sys.platform == "darwin" else raw
    return None if kb is None else kb / 1024


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (None where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_mb() -> float | None:
    """Current resident memory (MiB) of this process."""
    kb = _status_kb("self", "VmRSS")
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Restart this process's peak-memory mark at its current size; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def describe_machine(**extra: Any) -> dict[str, Any]:
    """CPU, memory, OS, Python and package versions, load average, plus ``extra`` facts."""
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable_cpus = os.cpu_count()
    return {
        "cpu_model": _cpu_model() or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        **extra,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        return None
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
