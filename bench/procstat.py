"""What processes cost, read from ``/proc``: CPU time, resident memory, process groups, load."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces or parentheses: fields start after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, waited_children: bool = False) -> float:
    """User + system CPU of ``pid`` (and of its children it waited for, if asked); 0 once gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, IndexError):
        return 0.0
    columns = (11, 12, 13, 14) if waited_children else (11, 12)
    return sum(int(fields[i]) for i in columns) / TICK


def user_system_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid``, all its threads."""
    fields = _stat_fields(pid)
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_mb(pid: int) -> float:
    """Resident set size (``VmRSS``) in MiB; 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def group_pids(pgid: int) -> list[int]:
    """Every live process of process group ``pgid`` (a child of the stack runs in its own), sorted."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return sorted(found)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
