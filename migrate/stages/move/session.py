"""What the moving stages share: a session opened per stage (its run folder, inventory,
variables, secrets to scrub and inputs by digest) and the journal entry a stage appends."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.adapters import access
from migrate.adapters import ansible as runner
from migrate.adapters import inventory as inv
from migrate.core import state
from migrate.core.errors import MigrateError, StageFailed, TargetHostKeyChanged
from migrate.core.journal import digest_bytes, digest_file
from migrate.stages.move.secret_files import (
    REPLICATION_FILES,
    database_password_files,
    exchange_vars,
    migration_key,
    replication_files,
    with_their_lines,
)
from migrate.targets.context import Context

Progress = runner.ProgressCallback


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
class Session:
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
    targets: Mapping[str, inv.Target] = field(default_factory=dict)
    target_keys_checked: bool = False

    def play(self, stage: str, result: StageResult) -> runner.PlayResult:
        if not self.target_keys_checked:
            check_target_host_keys(self)
            self.target_keys_checked = True
        done = runner.run_play(stage, self.inventory, self.run_dir, self.secrets,
                               extravars=self.extravars, progress=self.progress,
                               check=self.check)
        result.plays.append(done)
        return done


def open_session(context: Context, system_id: str, targets: Mapping[str, Any], stage: str,
                 progress: Progress | None, check: bool = False) -> Session:
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
        *(Path(r[f]).read_text().strip() for r in replication.values()
          for f in REPLICATION_FILES)])
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
    return Session(context, plan, system_id, run_id, run_dir, inventory, extravars, secrets,
                   progress, inputs, check, inv.as_targets(targets))


def check_target_host_keys(session: Session) -> None:
    """Each target offers the host key its provisioning state pinned (a bare key exchange),
    before the stage's first play: TargetHostKeyChanged (the stage failed: exit 4, as when
    the play meets the key), naming both fingerprints, otherwise. ssh inside a play refuses
    such a key too, but with pipelining it may end before Ansible has sent anything, in
    words that do not say host key. A target that does not answer is left to the play,
    which reports it unreachable."""
    changed = []
    for name, target in sorted(session.targets.items()):
        mismatch = access.pinned_key_mismatch(target.address, target.host_key)
        if mismatch is not None:
            changed.append(f"{inv.target_host_name(session.system_id, name)} "
                           f"({mismatch.address}) offered {mismatch.offered}, its provisioning "
                           f"state pinned {mismatch.pinned}")
    if changed:
        raise TargetHostKeyChanged(
            f"host key of {len(changed)} target(s) CHANGED: {'; '.join(changed)}",
            hint="nothing was run on the system's hosts; a machine rebuilt or tampered with "
                 "offers a new key, and so does a man in the middle. Compare the key on the "
                 "machine's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); "
                 "migrate trusts no target key but the one provisioning recorded")


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


def playbooks_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(runner.PLAYBOOKS.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(runner.PLAYBOOKS)).encode() + b"\0")
            digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()


def journaled(session: Session, stage: str,
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


def host_pairs(session: Session) -> list[tuple[str, str]]:
    """(source host, target inventory host) of every source host."""
    system = inv.system_plan(session.plan, session.system_id)
    return [(h["name"], inv.target_host_name(session.system_id, h["moves_to"]))
            for h in system["source_hosts"]]


def evidence_folder(session: Session, play: runner.PlayResult, name: str) -> Path:
    folder = session.run_dir / "artifacts" / play.stage / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder
