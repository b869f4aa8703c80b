"""The processes of this host, read from /proc: whether one still runs (stale locks and
leftovers of killed runs are only cleared when their owner is gone), which there are, and
their command lines (sandbox machines and the package mirror are found by theirs) and
environments (the plays of a killed run are found by theirs); and where the programs it may
start are."""

from __future__ import annotations

import os
import sys
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


def proc_file(pid: int, name: str) -> bytes | None:
    """The bytes of /proc/PID/NAME; None when the process is gone or it is not ours to read.

    Plain file descriptors, not pathlib: scans of every process on the host (machines are
    found by them, many times a second while they boot) spent half their time in pathlib.
    """
    try:
        descriptor = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def cmdline(pid: int) -> list[str]:
    """The process's arguments; none when it is gone (or a kernel thread)."""
    raw = proc_file(pid, "cmdline")
    if raw is None:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environ_value(pid: int, name: str) -> str | None:
    """The value of ``name`` in the process's environment as it started; None when it has
    none, is gone, or is not ours to read."""
    raw = proc_file(pid, "environ")
    if raw is None:
        return None
    prefix = name.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def parent_death_launcher(program: Path | str, parent_pid_env: str | None = None) -> str:
    """The text of an executable that ends with the process starting it, then becomes
    ``program`` (same pid, same arguments).

    It asks the kernel for SIGTERM at its parent's death (kept across the exec) and exits at
    once when the parent is already gone: for the plays (ansible-runner starts them in a
    session of their own) and the engine's plugins (the engine starts them in process groups
    of their own), which a kill of migrate or of the engine would otherwise leave running.
    With ``parent_pid_env``, the parent must also be the process that variable names."""
    parent = (f"os.environ.get({parent_pid_env!r})" if parent_pid_env
              else "str(parent)")
    return (
        f"#!{sys.executable}\n"
        "import ctypes, os, signal, sys\n"
        "parent = os.getppid()\n"
        "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
        f"if str(os.getppid()) != {parent}:\n"
        f"    sys.exit({f'{Path(program).name}: the process that started it is gone'!r})\n"
        f"os.execv({str(program)!r}, [{str(program)!r}, *sys.argv[1:]])\n")
