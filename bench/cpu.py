"""CPU seconds the benchmarks charge to each part: this process, its children, any process.

Read from the kernel's accounting (``/proc/<pid>/stat``, ``getrusage``), so that a figure
covers exactly the work between two readings, whatever the process is written in.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["children_cpu", "machine_cpu", "process_cpu", "self_cpu", "tree_cpu"]


def self_cpu() -> float:
    """This process, all its threads."""
    return _rusage(resource.RUSAGE_SELF)


def children_cpu() -> float:
    """This process's children that have ended and been waited for."""
    return _rusage(resource.RUSAGE_CHILDREN)


def _rusage(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """One running process."""
    return _stat(Path(f"/proc/{pid}/stat"))[1]


def tree_cpu(pid: int) -> float:
    """``pid`` and every process below it (a launcher may fork the real one)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = _stat(entry / "stat")
            except OSError:
                continue
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def machine_cpu() -> tuple[float, float]:
    """The whole machine's busy and elapsed CPU seconds, summed over its cores (the first
    line of ``/proc/stat``; idle and iowait are the time no process wanted a core)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])  # guest time is already inside user and nice
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _stat(path: Path) -> tuple[int, float]:
    """A process's parent and its user + system CPU seconds (fields 4, 14 and 15 of stat;
    the command name before them may hold spaces, hence the split at its closing paren)."""
    fields = path.read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
