"""Both sides compared after a copy: the files' sha256 manifests and each database's per-table
rows and checksums, written to the run's artifacts and summarized for the journal; the
differing tables named (bounded) in the cutover's error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrate.adapters import ansible as runner
from migrate.adapters import inventory as inv
from migrate.core import safety
from migrate.core.errors import StageFailed
from migrate.core.journal import digest_bytes
from migrate.stages.move.session import Session, evidence_folder, host_pairs


def compare_manifests(session: Session, play: runner.PlayResult, strict: bool) -> dict:
    """sha256 manifests of both sides: written to the artifacts, compared, summarized."""
    manifests = play.records.get("files manifest", {})
    folder = evidence_folder(session, play, "manifests")
    summary = {}
    for source, target in host_pairs(session):
        if source not in manifests:
            continue
        here, there = manifests[source], manifests.get(target, "")
        for host, text in ((source, here), (target, there)):
            (folder / f"{host}.sha256").write_text(text + "\n" if text else "")
        equal = here == there
        summary[source] = {"target": target, "files": len(here.splitlines()),
                           "manifest": digest_bytes(here.encode()), "equal": equal}
        if strict and not equal:
            raise StageFailed(f"files of {source} and {target} differ after the final sync",
                              hint=f"compare the manifests in {folder}")
    return summary


def compare_databases(session: Session, play: runner.PlayResult) -> dict:
    """Per-table rows and checksums of both sides: compared table by table, summarized with
    the planned method (``raise_for_differing_databases`` turns a difference into the
    cutover's failure)."""
    sums = play.records.get("database checksums", {})
    planned = {d["name"]: d
               for d in inv.system_plan(session.plan, session.system_id)["data"]["databases"]}
    volatile = {name: set(d.get("volatile_tables", [])) for name, d in planned.items()}
    summary = {}
    for source, target in host_pairs(session):
        for database, text in (sums.get(source) or {}).items():
            there = (sums.get(target) or {}).get(database, "")
            summary[database] = {"source": source, "target": target,
                                 "method": planned.get(database, {}).get("method"),
                                 **compare_tables(parse_table_sums(text),
                                                  parse_table_sums(there),
                                                  volatile.get(database, set()))}
    return summary
def compare_tables(here: dict[str, dict[str, Any]], there: dict[str, dict[str, Any]],
                   volatile: set[str]) -> dict[str, Any]:
    """One database's comparison: the source's sums (``tables``, what verification later
    compares the target with), the target's, the tables that differ (missing on one side
    included) and the volatile tables left out, by name."""
    compared = sorted((set(here) | set(there)) - volatile)
    differing = [name for name in compared if here.get(name) != there.get(name)]
    return {"tables": here, "target_tables": there, "differing": differing,
            "not_compared": sorted(volatile & (set(here) | set(there))),
            "volatile_unmatched": sorted(volatile - set(here) - set(there)),
            "equal": not differing}


def parse_table_sums(text: str) -> dict[str, dict[str, Any]]:
    """``schema.table rows checksum`` lines (move.sh sums) by table. The name is everything
    before the last two fields: a name read from the host may hold spaces."""
    found = {}
    for line in text.splitlines():
        parts = line.rsplit(" ", 2)
        if len(parts) == 3 and parts[0] and all(_integer(p) for p in parts[1:]):
            found[parts[0]] = {"rows": int(parts[1]), "checksum": parts[2]}
    return found


def _integer(text: str) -> bool:
    return text.removeprefix("-").isdigit()


DIFFERING_SHOWN = 10  # tables named in the error; the journal and the runbook list every one


def raise_for_differing_databases(summary: Mapping[str, Any]) -> None:
    """StageFailed naming the differing tables of every database that differs (the first
    ``DIFFERING_SHOWN`` by name, with rows and checksums of both sides, then a count)."""
    differing = {name: c for name, c in sorted(summary.items()) if not c["equal"]}
    if differing:
        raise StageFailed(differing_message(differing), hint=differing_hint(differing))


def differing_message(differing: Mapping[str, Any], shown: int = DIFFERING_SHOWN) -> str:
    """One sentence per differing database; at most ``shown`` tables named in all."""
    sentences, left = [], shown
    for database, c in differing.items():
        tables = c["differing"]
        named = [_table_difference(t, c["tables"].get(t), c["target_tables"].get(t))
                 for t in tables[:left]]
        left -= len(named)
        more = len(tables) - len(named)
        listed = [*named, *([f"and {more} more" if named else f"{more} not named here"]
                            if more else [])]
        sentences.append(f"database {database} differs between {c['source']} and "
                         f"{c['target']} after the catch-up: {_tables_differ(len(tables))}: "
                         + "; ".join(listed))
    return ". ".join(sentences)


def _tables_differ(count: int) -> str:
    return "1 table differs" if count == 1 else f"{count} tables differ"


def _table_difference(table: str, here: Mapping[str, Any] | None,
                      there: Mapping[str, Any] | None) -> str:
    def side(sums: Mapping[str, Any] | None) -> str:
        return "missing" if sums is None else f"{sums['rows']} rows, checksum {sums['checksum']}"

    return f"{safety.shown(table)} source {side(here)}, target {side(there)}"


def differing_hint(differing: Mapping[str, Any]) -> str:
    """Where every table is listed, and the volatile_tables entries that name no table while a
    table of that name in another schema differs (an unqualified name means public.NAME)."""
    hints = ["every differing table, with rows and checksums of both sides, is in the journal "
             "(the cutover entry's outputs.databases) and in the evidence runbook's cutover "
             "section. Tables the application writes while it serves, even to answer a read "
             "(caches, sessions, queues), belong in the database's volatile_tables, "
             "schema-qualified ('migrate discover' proposes them)"]
    for database, c in differing.items():
        for name in c.get("volatile_unmatched", []):
            bare = name.split(".", 1)[-1]
            meant = [t for t in c["differing"] if t.split(".", 1)[-1] == bare]
            if meant:
                hints.append(f"volatile_tables of {database} names {name}, which it does not "
                             f"have: write {', '.join(safety.shown(t) for t in meant)}")
    return "; ".join(hints)
