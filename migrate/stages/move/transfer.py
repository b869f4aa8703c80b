"""The transfer stage: the targets prepared and the files and databases copied while the
source keeps serving; what rsync sent recorded by checksum, with its throughput."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from migrate.adapters import ansible as runner
from migrate.core.journal import digest_bytes
from migrate.stages.move.comparison import compare_databases
from migrate.stages.move.session import (
    Progress,
    Session,
    StageResult,
    evidence_folder,
    host_pairs,
    journaled,
    open_session,
)
from migrate.targets.context import Context

SENT_LINE = re.compile(
    r"^(?P<item>[<>ch.*]\S{10}) (?P<size>\d+) (?P<sum>[0-9a-f]{32}) (?P<path>.+)$")
RSYNC_TASK = "Record files transferred"
ACCOUNTS_MAPPED = "mariadb accounts mapped to their target's address"


def transfer(context: Context, system_id: str, targets: Mapping[str, Any],
             progress: Progress | None = None, check: bool = False) -> StageResult:
    """check_prerequisites, then prepare_target, transfer_files and migrate_database
    (initial copy) while the source keeps serving."""
    session = open_session(context, system_id, targets, "transfer", progress, check)

    def work(result: StageResult) -> None:
        session.play("check_prerequisites", result)
        prepared = session.play("prepare_target", result)
        if mapped := accounts_mapped(prepared):  # systems with MariaDB databases
            result.outputs["mariadb_accounts_mapped"] = mapped
        files = session.play("transfer_files", result)
        result.outputs["files"] = record_sent_files(session, files)
        result.outputs["throughput"] = copy_throughput(files, result.outputs["files"])
        database = session.play("migrate_database", result)
        result.outputs["databases"] = compare_databases(session, database)

    return journaled(session, "transfer", work)


def record_sent_files(session: Session, play: runner.PlayResult) -> dict:
    """rsync's xxh128 of every file it sent (the receiver checks it after writing), per source
    host: written to the artifacts, summarized. Files not sent were unchanged since a pass
    that recorded them."""
    sent = play.records.get("files transferred", {})
    folder = evidence_folder(session, play, "checksums")
    summary = {}
    for source, target in host_pairs(session):
        if source not in sent:
            continue
        lines, sent_bytes = [], 0
        for tree, text in sorted((sent[source] or {}).items()):
            for line in (text or "").splitlines():
                match = SENT_LINE.match(line)
                if match and match["item"].startswith((">f", "<f")):
                    lines.append(f"{match['sum']}  {tree.rstrip('/')}/{match['path']}")
                    sent_bytes += int(match["size"])
        text = "".join(f"{line}\n" for line in sorted(lines, key=lambda entry: entry[34:]))
        (folder / f"{source}.xxh128").write_text(text)
        summary[source] = {"target": target, "sent": len(lines), "bytes": sent_bytes,
                           "algorithm": "xxh128", "checksums": digest_bytes(text.encode())}
    return summary


def copy_throughput(play: runner.PlayResult, sent: Mapping[str, Any]) -> dict[str, Any]:
    """Bytes rsync sent and the time of its task (every source host copying at once)."""
    sent_bytes = sum(s.get("bytes", 0) for s in sent.values())
    times = play.task_times.get(RSYNC_TASK) or []
    seconds = times[1] - times[0] if len(times) >= 2 else None
    rate = sent_bytes / seconds / 2**20 if seconds else None
    return {"bytes": sent_bytes, "seconds": round(seconds, 3) if seconds else None,
            "mib_per_s": round(rate, 2) if rate is not None else None}


def accounts_mapped(play: runner.PlayResult) -> dict[str, dict[str, dict[str, str]]]:
    """Per source host and MariaDB user, each account host (a source host's address) made
    the target's planned address on the target: ``{host: {user: {old: new}}}``."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for host, by_user in sorted(play.records.get(ACCOUNTS_MAPPED, {}).items()):
        for user, text in sorted((by_user or {}).items()):
            pairs = (line.split() for line in (text or "").splitlines())
            found.setdefault(host, {})[user] = {p[0]: p[1] for p in pairs if len(p) == 2}
    return found
