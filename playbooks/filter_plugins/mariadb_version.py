"""The plays' filters for MariaDB (beside the playbooks: every play has them): the server's
[major, minor] from what it says, and whether a target's is older than a source's moving to
it. check_prerequisites compares a server installed before (probe_target.py reads its
version); prepare_target compares one it installed from the instance's packages."""

from __future__ import annotations

import re

VERSION = re.compile(r"\b(\d+)\.(\d+)\.\d+")


def migrate_mariadb_version(text: str) -> list[int]:
    """[major, minor] of the first MAJOR.MINOR.PATCH in ``text`` (``mariadbd --version``:
    "mariadbd  Ver 10.11.11-MariaDB-0+deb12u1 for debian-linux-gnu", or SELECT VERSION()'s
    "10.11.11-MariaDB-0+deb12u1"), or [] without one."""
    found = VERSION.search(text or "")
    return [int(found[1]), int(found[2])] if found else []


def migrate_mariadb_too_old(where: str, have: list[int], sources: list[list[int]]) -> str:
    """What is wrong with ``where``'s MariaDB ``have`` for the sources' versions (the newest
    counts: a dump of a newer server may use what an older one lacks); "" when nothing."""
    need = max((list(s) for s in sources if s), default=[])
    if not need or (have and list(have) >= need):
        return ""
    shown = ".".join(map(str, have)) if have else "of no version it names"
    return (f"{where} has MariaDB {shown}, the source runs {'.'.join(map(str, need))} "
            "(a dump of a newer server may use what an older one lacks)")


class FilterModule:
    def filters(self) -> dict:
        return {"migrate_mariadb_version": migrate_mariadb_version,
                "migrate_mariadb_too_old": migrate_mariadb_too_old}
