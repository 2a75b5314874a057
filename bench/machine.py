"""What machine a benchmark ran on, read from /proc (the numbers mean little without it)."""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name, or "" where /proc/cpuinfo does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def memory_gib() -> float | None:
    """Total memory in GiB, or None where /proc/meminfo is unreadable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
