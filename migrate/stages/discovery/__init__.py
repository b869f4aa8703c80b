"""``migrate discover``: log in to source hosts (paramiko, host key checked) and record what
is there, as *observed* data kept apart from the manifests' intent.

For each system it writes ``<state>/discovery/<id>.json`` (schema version 1): per host what
the probes found (OS, packages, listening services and units, the units behind the web
servers' unix sockets, data directories, PostgreSQL databases and roles, MariaDB databases,
users and grants, timers, the modules runtimes load, Tomcat's hand-deployed applications,
cron jobs, use from the access logs, configuration naming the host's address or a database
server, where secrets sit), and, for a system with a manifest, what the manifest misses or
says differently; for a new system a draft manifest ``<id>.draft.yaml`` that validates.
Secrets are never read: their place is recorded with a proposed secret:// name.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrate.adapters.access import Login, open_session
from migrate.core import state
from migrate.core.errors import EnvironmentNotReady, InvalidInput, Problem, StageFailed
from migrate.core.journal import digest_file
from migrate.core.loader import Estate
from migrate.core.model import SYSTEM_ID_PATTERN
from migrate.stages.discovery import gaps, probes
from migrate.stages.discovery.draft import (
    DraftHost,
    build_draft,
    local_name,
    render,
    validate_draft,
)
from migrate.stages.discovery.host import Progress, discover_host
from migrate.stages.discovery.use import SCHEMA_VERSION
from migrate.targets.context import Context

DISCOVERY_DIR = "discovery"
# Hosts discovered at once: each is one SSH connection that mostly waits (for the host's
# commands, for its databases' watch window), so more of them than this machine has cores.
PARALLEL_HOSTS = 8


@dataclass
class DiscoveryOutcome:
    system: str
    document: dict[str, Any]
    path: Path
    draft_path: Path | None = None
    draft_problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "path": str(self.path),
                "draft": str(self.draft_path) if self.draft_path else None,
                "draft_valid": None if self.draft_path is None else not self.draft_problems,
                "draft_problems": [p.as_dict() for p in self.draft_problems],
                **{k: self.document[k] for k in ("duration_s", "gaps", "census_differences",
                                                 "rewrites", "secrets", "probe_errors")}}


def discovery_dir(context: Context) -> Path:
    folder = context.state_dir / DISCOVERY_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def discover_systems(context: Context, systems: list[str],
                     new_hosts: list[Login] | None = None,
                     progress: Progress = lambda _line: None,
                     watch_s: int = probes.WATCH_S) -> list[DiscoveryOutcome]:
    """Discover the chosen systems (default: every system with a manifest); with
    ``new_hosts``, the one new system named in ``systems``, on those hosts. Each database is
    watched ``watch_s`` seconds for the tables written while the source serves. The hosts
    of all of them are discovered side by side (``discover_hosts``), the outcomes in the
    systems' order."""
    estate = context.estate
    if new_hosts:
        if len(systems) != 1:
            raise InvalidInput([], "--host discovers one new system: name it with --system ID")
        if not re.match(SYSTEM_ID_PATTERN, systems[0]):
            raise InvalidInput([Problem(estate.display, None, "--system",
                                        f"'{systems[0]}' is not a system id",
                                        f"an id matches {SYSTEM_ID_PATTERN}, e.g. rsj-sbcx")])
        return [discover_new_system(context, systems[0], new_hosts, progress, watch_s)]
    if not estate.systems:
        raise InvalidInput([], "the estate has no system manifest yet: discover a new system "
                               "with --system ID --host ADDRESS --user USER --key FILE")
    unknown = [s for s in systems if s not in estate.systems]
    if unknown:
        raise InvalidInput([Problem(estate.display, None, "--system", f"no manifest for "
                                    f"system '{s}'", "for a new system give --host ADDRESS "
                                    "--user USER --key FILE") for s in unknown])
    started = time.monotonic()
    wanted = {sid: host_jobs(context, sid) for sid in (systems or list(estate.systems))}
    found = iter(discover_hosts(context, [job for jobs in wanted.values()
                                          for job in jobs.values()], progress, watch_s))
    return [existing_outcome(context, sid, {name: job.login for name, job in jobs.items()},
                             {name: next(found) for name in jobs}, started)
            for sid, jobs in wanted.items()]


@dataclass(frozen=True)
class HostJob:
    """One host to discover: its login, the paths its manifest declares there, and the
    addresses of its system's hosts (searched for in its configuration)."""

    login: Login
    declared_paths: list[str]
    system_addresses: list[str]


def host_jobs(context: Context, system_id: str) -> dict[str, HostJob]:
    """A system's hosts as its manifest names them, each with what discovering it needs."""
    system = context.estate.systems[system_id]
    key = ssh_key_file(context.estate, system.source.ssh.key)
    addresses = [h.address for h in system.source.hosts]
    return {h.name: HostJob(Login(h.address, system.source.ssh.user, key,
                                  system.source.ssh.port),
                            [f.path for f in system.workload.files if f.host == h.name],
                            addresses)
            for h in system.source.hosts}


def discover_hosts(context: Context, jobs: list[HostJob], progress: Progress,
                   watch_s: int = probes.WATCH_S) -> list[dict[str, Any]]:
    """``discover_one`` for each job, up to PARALLEL_HOSTS at once (the hosts are
    independent: one connection each, only read), the results in the jobs' order whichever
    ends first. An error that stops everything (a host key unknown or changed) starts no
    further host and is raised once those running have ended."""
    def one(job: HostJob) -> dict[str, Any]:
        return discover_one(context, job.login, job.declared_paths, progress,
                            job.system_addresses, watch_s)

    if len(jobs) < 2:  # in this thread: Ctrl-C stops a lone host at once
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(min(len(jobs), PARALLEL_HOSTS),
                            thread_name_prefix="migrate-discover") as pool:
        futures = [pool.submit(one, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def existing_outcome(context: Context, system_id: str, logins: dict[str, Login],
                     hosts: dict[str, dict], started: float) -> DiscoveryOutcome:
    """A system with a manifest: what its discovered hosts hold that the manifest misses or
    says differently, written and journaled."""
    estate = context.estate
    system = estate.systems[system_id]
    observed = {name: result["observed"] for name, result in hosts.items()}
    instance_of = {host: instance.name for instance in (system.target.instances
                                                         if system.target else [])
                   for host in instance.replaces}
    document = base_document(estate, system_id, hosts, logins, started)
    document["gaps"] = gaps.manifest_gaps(system, observed)
    document["census_differences"] = gaps.census_differences(system, observed)
    document["rewrites"] = gaps.rewrite_proposals(
        {login.address: instance_of.get(name, name) for name, login in logins.items()},
        observed)
    document["secrets"] = gaps.secret_proposals(system_id, observed)
    path = write_document(context, system_id, document)
    journal(context, system_id, document, path, None)
    return DiscoveryOutcome(system_id, document, path)


def discover_new_system(context: Context, system_id: str, new_hosts: list[Login],
                        progress: Progress, watch_s: int = probes.WATCH_S) -> DiscoveryOutcome:
    estate = context.estate
    if system_id in estate.systems:
        raise InvalidInput([estate.documents[system_id].problem(
            ("id",), f"system {system_id} has a manifest already",
            f"run 'migrate discover ESTATE --system {system_id}' without --host to compare "
            "the manifest with the host")])
    for new in new_hosts:
        if not new.key_file.is_file():
            raise EnvironmentNotReady(f"no SSH key file {new.key_file}",
                                      hint="give the private key that logs in (--key)")
    started = time.monotonic()
    addresses = [new.address for new in new_hosts]
    jobs = [HostJob(replace(new, key_file=new.key_file.absolute()), [], addresses)
            for new in new_hosts]
    hosts: dict[str, dict] = {}
    logins: dict[str, Login] = {}
    for number, (job, result) in enumerate(
            zip(jobs, discover_hosts(context, jobs, progress, watch_s), strict=True), 1):
        name = host_name(result, hosts, f"host{number}")
        hosts[name], logins[name] = result, job.login
    observed = {name: result["observed"] for name, result in hosts.items()}
    document = base_document(estate, system_id, hosts, logins, started)
    document["gaps"], document["census_differences"] = [], []
    document["rewrites"] = gaps.rewrite_proposals(
        {login.address: name for name, login in logins.items()}, observed)
    document["secrets"] = gaps.secret_proposals(system_id, observed)
    first = new_hosts[0]
    draft = build_draft(estate, system_id, [DraftHost(name, logins[name].address, seen)
                                            for name, seen in observed.items()],
                        first.user, first.port, rewrites=document["rewrites"])
    draft_path = discovery_dir(context) / f"{system_id}.draft.yaml"
    header = draft_header(system_id, ", ".join(addresses), document["secrets"])
    draft_path.write_text(render(draft, header), encoding="utf-8")
    problems = validate_draft(estate, draft_path, str(draft_path))
    document["draft"] = {"path": str(draft_path), "valid": not problems,
                         "placeholders": draft.placeholders, "left_out": draft.left_out,
                         "problems": [p.as_dict() for p in problems]}
    path = write_document(context, system_id, document)
    journal(context, system_id, document, path, draft_path)
    return DiscoveryOutcome(system_id, document, path, draft_path, problems)


def host_name(result: dict, taken: dict[str, Any], fallback: str) -> str:
    """The manifest name of a discovered host: its hostname, made a local name, unique."""
    hostname = (result["observed"].get("hardware") or {}).get("hostname", "")
    name = local_name(hostname.split(".")[0], fallback)
    return name if name not in taken else local_name(f"{name}-{fallback}", fallback)


def discover_one(context: Context, login: Login, declared_paths: list[str],
                 progress: Progress, system_addresses: list[str],
                 watch_s: int = probes.WATCH_S) -> dict[str, Any]:
    """One host: connect (host key checked: an unknown or changed key stops everything),
    run the probes; a host that cannot be reached is recorded, not fatal to the others."""
    started = time.monotonic()
    try:
        session = open_session(context, login)
    except StageFailed as error:
        if type(error) is not StageFailed:
            raise
        return {"observed": {}, "probe_errors": [{"probe": "login", "message": error.message}],
                "timings_s": {}, "duration_s": round(time.monotonic() - started, 3)}
    with session:
        result = discover_host(session, login.address, declared_paths, progress,
                               system_addresses, watch_s)
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def ssh_key_file(estate: Estate, reference: str) -> Path:
    path = (state.secrets_dir(estate) / state.secret_name(reference)).absolute()
    if not path.is_file():
        raise EnvironmentNotReady(f"secret {reference} is missing: no file {path}",
                                  hint="write the source's SSH private key there (mode 0600)")
    return path


def base_document(estate: Estate, system_id: str, hosts: dict[str, dict],
                  logins: dict[str, Login], started: float) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "discovery",
        "data": "observed",
        "note": "What migrate discover observed on the source hosts; the manifest holds the "
                "intent. Secret values are never read: 'secrets' says where they are.",
        "estate": estate.settings.estate,
        "system": system_id,
        "discovered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 3),
        "hosts": [{"name": name, "address": logins[name].address, "user": logins[name].user,
                   "port": logins[name].port, "duration_s": result["duration_s"],
                   "timings_s": result["timings_s"], "observed": result["observed"]}
                  for name, result in hosts.items()],
        "probe_errors": [{"host": name, **e} for name, result in hosts.items()
                         for e in result["probe_errors"]],
    }


def draft_header(system_id: str, address: str, found_secrets: list[dict]) -> list[str]:
    lines = [f"Draft manifest of {system_id}, written by 'migrate discover' from what it "
             f"observed on {address} ({datetime.now(UTC).date().isoformat()}).",
             "Lines marked 'TODO(discover)' are placeholders: discovery cannot know them.",
             "Lines marked 'observed' come from the host. Secrets are secret:// references:",
             "put each in the estate's secrets folder before provisioning.",
             "Review, then move it to systems/ and run 'migrate validate'."]
    if found_secrets:
        lines += ["", "Secrets found in the host's configuration (values not read), with a "
                  "proposed name:"]
        lines += [f"  {s['file']}:{s['line']} {s['key'] or '(secret)'} -> {s['proposed']}"
                  for s in found_secrets]
    return [*lines, ""]


def write_document(context: Context, system_id: str, document: dict[str, Any]) -> Path:
    path = discovery_dir(context) / f"{system_id}.json"
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True)
                         + "\n", encoding="utf-8")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def journal(context: Context, system_id: str, document: dict, path: Path,
            draft: Path | None) -> None:
    outputs = {"document": str(path), "document_sha256": digest_file(path),
               "hosts": [h["address"] for h in document["hosts"]],
               "gaps": len(document["gaps"]), "probe_errors": len(document["probe_errors"])}
    if draft is not None:
        outputs.update(draft=str(draft), draft_sha256=digest_file(draft))
    context.journal.append("discover", system=system_id, outputs=outputs,
                           duration_s=document["duration_s"])


def raise_for_failures(outcomes: list[DiscoveryOutcome]) -> None:
    """After everything was written: StageFailed when a host could not be logged in to or a
    draft manifest does not validate (every such problem named at once)."""
    failed = [f"{o.system}/{e['host']}: {e['message']}" for o in outcomes
              for e in o.document["probe_errors"] if e["probe"] == "login"]
    failed += [f"draft {o.draft_path} does not validate: {problem}" for o in outcomes
               for problem in o.draft_problems]
    if failed:
        raise StageFailed(f"{len(failed)} discovery problem(s): " + "; ".join(failed),
                          hint="what could be discovered was recorded; fix and run again")
