"""probe_target.py SPEC: what check_prerequisites needs of one target instance, in one round trip.

SPEC is JSON: {"factor": F, "margin": BYTES, "needs": ["PATH=BYTES"...]}. The data moving to
each PATH lands on the filesystem that holds PATH (or its nearest existing parent: a data
volume may be mounted there); per filesystem the free bytes must be at least F x the bytes
landing on it + BYTES. Prints one JSON object: the host's clock, the installed PostgreSQL
major versions, each filesystem's free and needed bytes, and every problem found. Changes
nothing.
"""

from __future__ import annotations

import json
import os
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


def main() -> None:
    spec = json.loads(sys.argv[1])
    clock = int(time.time())
    filesystems, problems = free_space(spec["needs"], float(spec["factor"]),
                                       int(spec["margin"]))
    print(json.dumps({"clock": clock, "pg_majors": postgres_majors(),
                      "filesystems": filesystems, "problems": problems}))


if __name__ == "__main__":
    main()
