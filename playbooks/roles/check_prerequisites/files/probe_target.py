"""probe_target.py SPEC: what check_prerequisites needs of one target instance, in one round trip.

SPEC is JSON: {"factor": F, "margin": BYTES, "needs": ["PATH=BYTES"...],
"mariadb_need": [MAJOR, MINOR] or []}. The data moving to each PATH lands on the filesystem
that holds PATH (or its nearest existing parent: a data volume may be mounted there); per
filesystem the free bytes must be at least F x the bytes landing on it + BYTES. The installed
MariaDB server's version is read when a MariaDB source moves here (``mariadb_need``); the
play compares it with the sources' (the mariadb_version filter, prepare_target's too). Prints
one JSON object: the host's clock, the installed PostgreSQL major versions and MariaDB
[major, minor] ([] without, or not asked), each filesystem's free and needed bytes, and every
problem found. Changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time


def mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def free_space(needs: list[str], factor: float, margin: int) -> tuple[list[dict], list[str]]:
    landing: dict[str, dict] = {}
    for need in needs:
        path, _, size = need.rpartition("=")
        mount = mount_point(nearest_existing(path))
        fs = landing.setdefault(mount, {"mount": mount, "bytes": 0, "paths": []})
        fs["bytes"] += int(size)
        fs["paths"].append(path)
    filesystems, problems = [], []
    for fs in landing.values():
        info = os.statvfs(fs["mount"])
        free = info.f_bavail * info.f_frsize
        needed = int(fs["bytes"] * factor) + margin
        filesystems.append({"mount": fs["mount"], "free": free, "needed": needed})
        if free < needed:
            problems.append(f"{fs['mount']} has {free} bytes free, needs {needed} for "
                            f"{', '.join(fs['paths'])} (data x {factor} + {margin} bytes margin)")
    return filesystems, problems


def postgres_majors() -> list[int]:
    try:
        names = os.listdir("/usr/lib/postgresql")
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names
                  if n.isdigit() and os.path.isdir(f"/usr/lib/postgresql/{n}"))


def mariadb_version() -> list[int]:
    """[major, minor] of the installed MariaDB server binary (mysqld before 10.5), or []: it
    need not run yet, its --version answers without a data folder."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    for name in ("mariadbd", "mysqld"):
        binary = shutil.which(name, path=search)
        if binary is None:
            continue
        done = subprocess.run([binary, "--version"], capture_output=True, text=True,
                              check=False)
        found = re.search(r"\bVer (\d+)\.(\d+)\.\d+", done.stdout)
        if done.returncode == 0 and found:
            return [int(found[1]), int(found[2])]
    return []


def main() -> None:
    spec = json.loads(sys.argv[1])
    clock = int(time.time())
    filesystems, problems = free_space(spec["needs"], float(spec["factor"]),
                                       int(spec["margin"]))
    have = mariadb_version() if spec.get("mariadb_need") else []
    print(json.dumps({"clock": clock, "pg_majors": postgres_majors(),
                      "mariadb_version": have, "filesystems": filesystems,
                      "problems": problems}))


if __name__ == "__main__":
    main()
