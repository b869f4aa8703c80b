"""Data checks: every file tree equal to the recorded evidence (sha256 of each file,
recomputed on the target), every database's per-table row counts and checksums equal to
the source's recorded at the cutover (or the transfer)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from migrate.core.resources import folder

# The same manifest as the transfer_files play records (playbooks/roles/transfer_files).
MANIFEST_SCRIPT = r"""
set -euo pipefail
for tree in "$@"; do
    cd -- "$tree"
    find . -type f -print0 | xargs -0r -P "$(nproc)" -n 64 sha256sum \
        | LC_ALL=C sort -k 2 | TREE="$tree" awk '{ print ENVIRON["TREE"] "\t" $0 }'
done
"""


def manifest_lines(text: str) -> dict[str, str]:
    """path -> sha256 of a manifest (lines ``<tree>\\t<sha256>  ./<path>``)."""
    found = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        tree, _, rest = line.partition("\t")
        digest, _, path = rest.partition("  ")
        found[f"{tree}/{path.removeprefix('./')}"] = digest
    return found


def first(items: list[str], count: int = 3) -> str:
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return ", ".join(items[:count]) + more


def test_file_tree_equals_evidence(tree: dict, hosts: Any, check: Any) -> None:
    if tree["manifest_text"] is None:
        pytest.fail(f"no recorded manifest of {tree['path']} from {tree['source_host']}: "
                    "run transfer and cutover first (their evidence is what is compared)",
                    pytrace=False)
    command = "bash -c " + shlex.quote(MANIFEST_SCRIPT) + " manifest " + shlex.quote(tree["path"])
    done = hosts[tree["host"]].run(command)
    here = manifest_lines(tree["manifest_text"])
    there = manifest_lines(done.stdout) if done.rc == 0 else {}
    missing = sorted(set(here) - set(there))
    extra = sorted(set(there) - set(here))
    changed = sorted(p for p in set(here) & set(there) if here[p] != there[p])
    check.evidence("files", {"expected": len(here), "found": len(there),
                             "evidence_digest": tree["manifest_digest"],
                             "evidence_stage": tree["evidence_stage"]})
    problems = []
    if done.rc != 0:
        problems.append(f"the manifest failed: {done.stderr.strip()[-200:]}")
    problems += [f"{len(missing)} missing ({first(missing)})"] if missing else []
    problems += [f"{len(changed)} changed ({first(changed)})"] if changed else []
    problems += [f"{len(extra)} extra ({first(extra)})"] if extra else []
    check.expect(not problems,
                 expected=f"{len(here)} files of {tree['path']} with the sha256 recorded at "
                          f"{tree['evidence_stage']} from {tree['source_host']}",
                 found="; ".join(problems) or f"{len(there)} equal files",
                 host=tree["host"],
                 look_at=f"the recorded manifest {tree['manifest_file']} against "
                         f"sha256sum on the target")


# The per-table query of the playbooks' ``sums`` (playbooks/files/move.sh, db_sums): the
# evidence was recorded with it, so the target is measured with the very same.
TABLE_SUM = ("SELECT %L, count(*), coalesce(sum((''x'' || substr(md5(t::text), 1, 16))"
             "::bit(64)::bigint), 0)::text FROM %I.%I AS t;")
SUMS_SCRIPT = (
    'set -euo pipefail\n'
    'runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d "$1" -c "'
    f"SELECT format('{TABLE_SUM}', schemaname || '.' || tablename, schemaname, tablename) "
    "FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
    'ORDER BY schemaname, tablename" '
    '| runuser -u postgres -- psql -XAt -F " " -v ON_ERROR_STOP=1 -d "$1"\n')


# MariaDB's evidence was recorded by the playbooks' move_mariadb.sh: the target is measured
# by that very script (its ``sums`` mode), sent as the command's text.
MARIADB_SCRIPT = folder("playbooks") / "files" / "move_mariadb.sh"


def sums_command(database: dict) -> str:
    """The command that prints the database's per-table sums on its target."""
    if database["engine"] == "mariadb":
        return ("bash -c " + shlex.quote(MARIADB_SCRIPT.read_text()) + " move_mariadb.sh sums "
                + shlex.quote(database["name"]))
    return "bash -c " + shlex.quote(SUMS_SCRIPT) + " sums " + shlex.quote(database["name"])


def table_sums(text: str) -> dict[str, dict[str, Any]]:
    """Parsed as the cutover parses its evidence (move.comparison.parse_table_sums): the name is
    everything before the last two fields, a table name may hold spaces."""
    found = {}
    for line in text.splitlines():
        parts = line.rsplit(" ", 2)
        if len(parts) == 3 and parts[0] and all(p.removeprefix("-").isdigit()
                                                for p in parts[1:]):
            found[parts[0]] = {"rows": int(parts[1]), "checksum": parts[2]}
    return found


CLIENTS = {"postgresql": "psql -d", "mariadb": "mariadb"}


def test_database_equals_evidence(database: dict, hosts: Any, check: Any) -> None:
    expected = database["tables"]
    if not expected:
        pytest.fail(f"no recorded checksums of database {database['name']}: run transfer and "
                    "cutover first (their evidence is what is compared)", pytrace=False)
    done = hosts[database["host"]].run(sums_command(database))
    found = table_sums(done.stdout) if done.rc == 0 else {}
    differences = []
    volatile = set(database.get("volatile_tables") or [])  # written by serving: not compared
    for table in sorted((set(expected) | set(found)) - volatile):
        want, have = expected.get(table), found.get(table)
        if want is None:
            differences.append(f"{table} not in the source")
        elif have is None:
            differences.append(f"{table} missing")
        elif want != have:
            differences.append(f"{table} {have['rows']} rows (source {want['rows']}), "
                               f"checksum {have['checksum']} (source {want['checksum']})")
    if done.rc != 0:
        differences.insert(0, f"the checksums failed: {done.stderr.strip()[-200:]}")
    check.evidence("tables", found)
    check.expect(not differences,
                 expected=f"{len(expected)} tables of {database['name']} with the rows and "
                          f"checksums of {database['source_host']} at "
                          f"{database['evidence_stage']}",
                 found="; ".join(differences) or f"{len(found)} equal tables",
                 host=database["host"],
                 look_at=f"{CLIENTS.get(database['engine'], 'psql -d')} {database['name']} on "
                         "the target; the cutover's journal entry (outputs.databases)")
