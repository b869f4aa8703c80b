"""Moving a system's workload with Ansible: the stage entry functions.

``check_prerequisites`` changes nothing; ``transfer`` prepares the targets and copies files
and databases while the source keeps serving; ``cutover`` freezes the source, catches up
and starts the services on the targets (rolling back by itself when it fails); ``rollback``
returns service to the source. Each appends one journal entry named after its stage, with
inputs by digest and outputs as counts and checksums, never secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets as secrets_module
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.adapters import ansible as runner
from migrate.adapters import inventory as inv
from migrate.core import safety, state
from migrate.core.credentials import ensure_client_keypair, scram_verifier
from migrate.core.errors import GuardRefused, MigrateError, StageFailed
from migrate.core.journal import digest_bytes, digest_file
from migrate.core.loader import Estate
from migrate.targets.context import Context

Progress = runner.ProgressCallback
# The cutover play's first and last steps: nothing serves between the two.
FREEZE_TASK = "Freeze the source services, recording once how they ran (rollback restores that)"
START_TASK = "Start the services on the target and wait for their health paths"
MIGRATION_KEYS = "migration-keys"


@dataclass
class StageResult:
    stage: str
    system: str
    run_id: str
    run_dir: Path
    plays: list[runner.PlayResult] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.plays)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "system": self.system, "run_id": self.run_id,
                "run_dir": str(self.run_dir), "changed": self.changed,
                "plays": {p.stage: p.summary() for p in self.plays},
                "outputs": self.outputs, "duration_s": round(self.duration_s, 3)}


@dataclass
class _Session:
    context: Context
    plan: Mapping[str, Any]
    system_id: str
    run_id: str
    run_dir: Path
    inventory: Path
    extravars: dict[str, Any]
    secrets: list[str]
    progress: Progress | None
    inputs: dict[str, Any]
    check: bool = False

    def play(self, stage: str, result: StageResult) -> runner.PlayResult:
        done = runner.run_play(stage, self.inventory, self.run_dir, self.secrets,
                               extravars=self.extravars, progress=self.progress,
                               check=self.check)
        result.plays.append(done)
        return done


# ---------------------------------------------------------------- entry functions


def check_prerequisites(context: Context, system_id: str, targets: Mapping[str, Any],
                        progress: Progress | None = None, check: bool = False) -> StageResult:
    """Every source and target answers with its known host key, source paths exist, the
    targets have room and a PostgreSQL at least as new; changes nothing."""
    session = _open(context, system_id, targets, "check_prerequisites", progress, check)
    return _journaled(session, "check_prerequisites",
                      lambda r: session.play("check_prerequisites", r))


def transfer(context: Context, system_id: str, targets: Mapping[str, Any],
             progress: Progress | None = None, check: bool = False) -> StageResult:
    """check_prerequisites, then prepare_target, transfer_files and migrate_database
    (initial copy) while the source keeps serving."""
    session = _open(context, system_id, targets, "transfer", progress, check)

    def work(result: StageResult) -> None:
        session.play("check_prerequisites", result)
        session.play("prepare_target", result)
        files = session.play("transfer_files", result)
        result.outputs["files"] = record_sent_files(session, files)
        result.outputs["throughput"] = copy_throughput(files, result.outputs["files"])
        database = session.play("migrate_database", result)
        result.outputs["databases"] = compare_databases(session, database)

    return _journaled(session, "transfer", work)


def cutover(context: Context, system_id: str, targets: Mapping[str, Any],
            progress: Progress | None = None, check: bool = False) -> StageResult:
    """Freeze the source, final sync, start the target's services; files and rows must then
    match exactly, else the source is given back its service (rollback) and this raises."""
    session = _open(context, system_id, targets, "cutover", progress, check)

    def work(result: StageResult) -> None:
        session.play("check_prerequisites", result)
        if session.check:
            session.play("cutover", result)
            return
        started = time.monotonic()
        try:
            done = session.play("cutover", result)
            downtime = done.span(FREEZE_TASK, START_TASK)
            if downtime is not None:
                result.outputs["downtime_s"] = round(downtime, 3)
            # Both comparisons recorded before either fails: the journal names every table.
            result.outputs["databases"] = compare_databases(session, done)
            result.outputs["files"] = compare_manifests(session, done, strict=True)
            raise_for_differing_databases(result.outputs["databases"])
        except MigrateError as error:
            result.outputs["rolled_back"] = _roll_back_after(session, error)
            raise
        result.outputs["cutover_play_s"] = round(time.monotonic() - started, 3)

    return _journaled(session, "cutover", work)


def rollback(context: Context, system_id: str, targets: Mapping[str, Any],
             progress: Progress | None = None, check: bool = False,
             reason: str | None = None) -> StageResult:
    """Stop the target's services and restore the source's exactly as the cutover found
    them. Idempotent; safe at any point of a cutover. ``reason`` goes into the journal."""
    session = _open(context, system_id, targets, "rollback", progress, check)

    def work(result: StageResult) -> None:
        if reason:
            result.outputs["reason"] = reason
        session.play("rollback", result)

    return _journaled(session, "rollback", work)


def decommission_source(context: Context, system_id: str, targets: Mapping[str, Any],
                        progress: Progress | None = None, *,
                        confirmed: bool = False) -> StageResult:
    """Only on explicit request after verification: remove the temporary migration access
    and the cutover record; the source stays stopped, its data untouched."""
    if not confirmed:
        raise GuardRefused(f"decommission_source of {system_id} needs an explicit request",
                           hint="run it only after verification passed, and confirm")
    session = _open(context, system_id, targets, "decommission_source", progress)
    return _journaled(session, "decommission_source",
                      lambda r: session.play("decommission_source", r))


# ---------------------------------------------------------------- session


def _open(context: Context, system_id: str, targets: Mapping[str, Any], stage: str,
          progress: Progress | None, check: bool = False) -> _Session:
    """What a stage's plays need, to the command's plan, under its state folder."""
    estate, plan = context.estate, context.plan
    run_id = inv.new_run_id(f"{system_id}-{stage}")
    run_dir = inv.make_run_dir(context.runs_dir, run_id)
    inventory = inv.write_inventory(context, plan, system_id, targets, run_dir)
    key_file, public_key = migration_key(context.state_dir, system_id)
    system = inv.system_plan(plan, system_id)
    replication = replication_files(context.state_dir, system)
    secrets = with_their_lines([
        *state.secret_values(estate), key_file.read_text().strip(),
        *(Path(f).read_text().strip() for r in replication.values() for f in r.values())])
    inputs = {
        "system_plan": digest_bytes(json.dumps(system, sort_keys=True).encode()),
        "inventory": digest_file(inventory),
        "known_hosts": digest_file(run_dir / inv.KNOWN_HOSTS_NAME),
        "playbooks": playbooks_digest(),
    }
    extravars = inv.unsafe_extravars({
        "migrate_key_file": str(key_file), "migrate_public_key": public_key,
        **exchange_vars(estate, system_id),
        "database_password_files": database_password_files(estate, system_id),
        "replication": replication,
        "package_mirror": package_mirror_url(context, system)})
    return _Session(context, plan, system_id, run_id, run_dir, inventory, extravars, secrets,
                    progress, inputs, check)


def package_mirror_url(context: Context, system: Mapping[str, Any]) -> str | None:
    """The Debian archive the targets install their packages from: cloud.packages.mirror,
    else the cloud target's own mirror (the sandbox's: sandbox up runs it); None when no
    instance needs one."""
    if not any(i.get("packages") for i in system["instances"]):
        return None
    estate = context.estate
    if estate.settings.cloud.packages is not None:
        return estate.settings.cloud.packages.mirror
    url = context.surroundings.package_mirror_url(estate)
    if url is None:
        raise StageFailed(f"{system['id']}: its instances declare packages but no package "
                          "mirror is running",
                          hint="'migrate sandbox up' starts the sandbox's mirror; on openstack "
                               "set cloud.packages.mirror")
    return url


def with_their_lines(secrets: list[str]) -> list[str]:
    """Secrets, plus each long line of a multi-line one (a key shown line by line in a diff or
    a log must be scrubbed too)."""
    lines = [line.strip() for s in secrets if "\n" in s for line in s.splitlines()
             if len(line.strip()) >= 16 and "PRIVATE KEY" not in line]
    return [*secrets, *lines]


def migration_key(state_dir: Path, system_id: str) -> tuple[Path, str]:
    """The temporary per-system key the source uses to push to its target (0600), in the
    estate's state folder."""
    folder = state_dir / MIGRATION_KEYS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path, public = ensure_client_keypair(folder / system_id)
    return Path(path).absolute(), public


def exchange_vars(estate: Estate, system_id: str) -> dict[str, Any]:
    """What the target needs to reach the exchange platform as this system: the platform URL,
    the app key and the CA bundle, plus the controller path of the secret's 0600 file (the
    play copies the file; the value never becomes a variable)."""
    system = estate.systems[system_id]
    if system.exchange is None:
        return {"exchange": None}
    settings = estate.settings.exchange
    secret_file = state.secrets_dir(estate) / state.secret_name(system.exchange.app_secret)
    state.read_secret(estate, system.exchange.app_secret)  # present, 0600, not empty
    return {"exchange": {"system": system_id, "url": settings.url,
                         "app_key": system.exchange.app_key,
                         "ca_file": str((estate.root / settings.ca_bundle).absolute()),
                         "secret_file": str(secret_file.absolute())}}


def replication_files(state_dir: Path, system: Mapping[str, Any]
                      ) -> dict[str, dict[str, str]]:
    """For each database kept in step by logical replication: the 0600 files of the password
    the target subscribes with and its SCRAM verifier (the source stores only that), made
    once per system and database and kept in the state folder."""
    found = {}
    folder = state_dir / MIGRATION_KEYS
    for database in system["data"]["databases"]:
        if database["method"] != "logical_replication":
            continue
        password_file = folder / f"{system['id']}-{database['name']}.replication"
        verifier_file = password_file.with_suffix(".verifier")
        if not password_file.is_file():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_private(password_file, secrets_module.token_urlsafe(24))
        password = password_file.read_text().strip()
        salt = hashlib.sha256(f"{system['id']}/{database['name']}/{password}".encode()).digest()
        _write_private(verifier_file, scram_verifier(password, salt[:16]))
        found[database["name"]] = {"password_file": str(password_file.absolute()),
                                   "verifier_file": str(verifier_file.absolute())}
    return found


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


def database_password_files(estate: Estate, system_id: str) -> dict[str, str]:
    """Controller paths of each database password's 0600 file, by database name: plays read
    the file into a no_log task's stdin, never into a variable of their own."""
    found = {}
    for database in estate.systems[system_id].workload.databases:
        state.read_secret(estate, database.password)  # present, 0600, not empty
        path = state.secrets_dir(estate) / state.secret_name(database.password)
        found[database.name] = str(path.absolute())
    return found


def playbooks_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(runner.PLAYBOOKS.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(runner.PLAYBOOKS)).encode() + b"\0")
            digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def _journaled(session: _Session, stage: str,
               work: Callable[[StageResult], Any]) -> StageResult:
    result = StageResult(stage, session.system_id, session.run_id, session.run_dir)
    started = time.monotonic()
    journal = session.context.journal
    try:
        work(result)
    except MigrateError as error:
        result.duration_s = time.monotonic() - started
        journal.append(stage, system=session.system_id,
                       result="check_failed" if session.check else "failed",
                       inputs=session.inputs, duration_s=result.duration_s,
                       outputs={**_outputs(result), "error": error.message})
        raise
    result.duration_s = time.monotonic() - started
    # A check-mode run (Ansible --check --diff) changed nothing: its own result name keeps
    # it from counting as the stage done.
    journal.append(stage, system=session.system_id, inputs=session.inputs,
                   result="check" if session.check else "ok",
                   outputs=_outputs(result), duration_s=result.duration_s)
    _write_result(result)
    return result


def _outputs(result: StageResult) -> dict[str, Any]:
    return {"run_id": result.run_id, "changed": result.changed,
            "plays": {p.stage: p.summary() for p in result.plays}, **result.outputs}


def _write_result(result: StageResult) -> None:
    path = result.run_dir / "result.json"
    path.write_text(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")


def _roll_back_after(session: _Session, error: MigrateError) -> dict[str, Any]:
    """Give the source its service back after a failed cutover; what happened, for the
    journal (a failing rollback is reported, not hidden)."""
    rolled = StageResult("rollback", session.system_id, session.run_id, session.run_dir)
    try:
        session.play("rollback", rolled)
    except MigrateError as again:
        return {"result": "failed", "cause": error.message, "error": again.message}
    return {"result": "ok", "cause": error.message, "changed": rolled.changed}


# ---------------------------------------------------------------- evidence


def _pairs(session: _Session) -> list[tuple[str, str]]:
    """(source host, target inventory host) of every source host."""
    system = inv.system_plan(session.plan, session.system_id)
    return [(h["name"], inv.target_host_name(session.system_id, h["moves_to"]))
            for h in system["source_hosts"]]


SENT_LINE = re.compile(
    r"^(?P<item>[<>ch.*]\S{10}) (?P<size>\d+) (?P<sum>[0-9a-f]{32}) (?P<path>.+)$")
RSYNC_TASK = "Record files transferred"


def record_sent_files(session: _Session, play: runner.PlayResult) -> dict:
    """rsync's xxh128 of every file it sent (the receiver checks it after writing), per source
    host: written to the artifacts, summarized. Files not sent were unchanged since a pass
    that recorded them."""
    sent = play.records.get("files transferred", {})
    folder = _evidence_folder(session, play, "checksums")
    summary = {}
    for source, target in _pairs(session):
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


def _evidence_folder(session: _Session, play: runner.PlayResult, name: str) -> Path:
    folder = session.run_dir / "artifacts" / play.stage / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def compare_manifests(session: _Session, play: runner.PlayResult, strict: bool) -> dict:
    """sha256 manifests of both sides: written to the artifacts, compared, summarized."""
    manifests = play.records.get("files manifest", {})
    folder = _evidence_folder(session, play, "manifests")
    summary = {}
    for source, target in _pairs(session):
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


def compare_databases(session: _Session, play: runner.PlayResult) -> dict:
    """Per-table rows and checksums of both sides: compared table by table, summarized
    (``raise_for_differing_databases`` turns a difference into the cutover's failure)."""
    sums = play.records.get("database checksums", {})
    volatile = {d["name"]: set(d.get("volatile_tables", []))
                for d in inv.system_plan(session.plan, session.system_id)["data"]["databases"]}
    summary = {}
    for source, target in _pairs(session):
        for database, text in (sums.get(source) or {}).items():
            there = (sums.get(target) or {}).get(database, "")
            summary[database] = {"source": source, "target": target,
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
