"""The processes of this host, read from /proc: whether one still runs (stale locks and
leftovers of killed runs are only cleared when their owner is gone), which there are, and
their command lines (sandbox machines and the package mirror are found by theirs) and
environments (the plays of a killed run are found by theirs); and where the programs it may
start are."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def cmdline(pid: int) -> list[str]:
    """The process's arguments; none when it is gone (or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environ_value(pid: int, name: str) -> str | None:
    """The value of ``name`` in the process's environment as it started; None when it has
    none, is gone, or is not ours to read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None
