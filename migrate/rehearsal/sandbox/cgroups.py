"""A cgroup of its own for each machine's nspawn process.

Without systemd on the host, nspawn creates its ``supervisor`` and ``payload`` cgroups
under the cgroup it was started in. Machines started from the same cgroup would share
them, and their systemds then trip over each other's units ("Failed to attach to cgroup",
exit status 219/CGROUP). So each nspawn starts in ``<caller's cgroup>/migrate-sandbox/KEY``
in the hierarchies systemd uses: the cgroup2 one and, on hybrid hosts, ``name=systemd``.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path

from migrate.core.errors import EnvironmentNotReady

PARENT = "migrate-sandbox"


def _mount_points() -> dict[str, Path]:
    """Mount point of the cgroup2 hierarchy (key "") and of the name=systemd one."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields, post_fields = pre.split(), post.split()
        if len(post_fields) < 3:
            continue
        fs_type, options = post_fields[0], post_fields[2].split(",")
        if fs_type == "cgroup2":
            found.setdefault("", Path(fields[4]))
        elif fs_type == "cgroup" and "name=systemd" in options:
            found.setdefault("name=systemd", Path(fields[4]))
    return found


def _current_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in ("", "name=systemd"):
            paths[controllers] = path
    return paths


def machine_cgroups(key: str) -> list[Path]:
    """The per-machine cgroup directories for the calling process (not created yet)."""
    mounts, current = _mount_points(), _current_paths()
    return [
        mounts[hierarchy] / path.lstrip("/") / PARENT / key
        for hierarchy, path in sorted(current.items())
        if hierarchy in mounts
    ]


def create(directories: list[Path]) -> None:
    try:
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EnvironmentNotReady(
            f"cannot create the machine's cgroup: {error}",
            hint="the sandbox needs a writable cgroup file system (/sys/fs/cgroup)",
        ) from None


def enter(directories: list[Path]) -> None:
    """Move the calling process into these cgroups (run in the child before exec)."""
    pid = str(os.getpid())
    for directory in directories:
        (directory / "cgroup.procs").write_text(pid)


def remove(directories: list[Path], wait: float = 2.0) -> None:
    """Remove the machine's cgroup trees, deepest first; busy ones stay (still in use).

    A cgroup stays busy for a moment after its last process exited (the kernel is still
    reaping it), so removal is retried for up to ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    for directory in directories:
        while not _remove_tree(directory) and time.monotonic() < deadline:
            time.sleep(0.05)
        with suppress(OSError):  # the shared parent goes with the last machine
            directory.parent.rmdir()


def _remove_tree(directory: Path) -> bool:
    """True when ``directory`` is gone."""
    if not directory.is_dir():
        return True
    for current, _, _ in os.walk(directory, topdown=False):
        with suppress(OSError):
            os.rmdir(current)
    return not directory.is_dir()
