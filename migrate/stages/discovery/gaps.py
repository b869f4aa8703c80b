"""What a manifest misses or says differently from what discovery observed (pure).

``manifest_gaps`` lists undeclared listening services, data directories not in ``files``,
undeclared databases, declared things that were not found, and sizes far from the observed
ones; ``census_differences`` compares the declared use with the access logs. Also the
proposals: configuration lines naming the source's own address (rewrites) and secrets found
in configuration (their secret:// names). Every finding at once, each with a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from migrate.core import safety
from migrate.core.model import SystemManifest
from migrate.core.plan import default_schema
from migrate.stages.discovery.draft import MIN_DATA_KB, database_directories, secret_ref, within
from migrate.stages.discovery.host import is_application_unit
from migrate.stages.discovery.use import observed_use

KB_PER_GB = 1024 * 1024
SIZE_RATIO = 2.0  # declared and observed sizes further apart than this are reported
SIZE_FLOOR_GB = 0.1  # ... when they also differ by at least this much
USERS_TOLERANCE = 0.2
Observed = dict[str, dict[str, Any]]  # host name -> observed


def finding(kind: str, host: str | None, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": kind, "host": host, "message": message, **details}


def manifest_gaps(system: SystemManifest, observed: Observed) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for host, seen in sorted(observed.items()):
        found += service_gaps(system, host, seen)
        found += file_gaps(system, host, seen)
        found += database_gaps(system, host, seen)
    return found


def service_gaps(system: SystemManifest, host: str, seen: dict) -> list[dict]:
    declared = [s for s in system.workload.services if s.host == host]
    listening = [e for e in seen.get("listening") or [] if not e["loopback"]]
    found = []
    for entry in listening:
        unit = entry.get("unit")
        if unit is not None and not is_application_unit(unit):
            continue
        if any(s.port == entry["port"] or s.unit == unit for s in declared):
            continue
        what = unit or f"process {entry.get('process') or '?'} (no systemd unit)"
        found.append(finding("undeclared_service", host,
                             f"{what} listens on port {entry['port']} but workload.services "
                             "does not declare it", unit=unit, port=entry["port"]))
    ports = {e["port"] for e in seen.get("listening") or []}
    if seen.get("listening") is not None:
        for service in declared:
            if service.port not in ports:
                found.append(finding("declared_service_not_listening", host,
                                     f"service {service.name} ({service.unit}) is declared on "
                                     f"port {service.port}, but nothing listens there",
                                     unit=service.unit, port=service.port))
    return found


def file_gaps(system: SystemManifest, host: str, seen: dict) -> list[dict]:
    directories = seen.get("data_directories")
    if directories is None:
        return []
    declared = [f for f in system.workload.files if f.host == host]
    sizes = {d["path"]: d["size_kb"] for d in directories}
    excluded = database_directories(seen)
    found = []
    for directory in directories:
        path = directory["path"]
        if directory["size_kb"] < MIN_DATA_KB or any(within(path, e) for e in excluded):
            continue
        if not any(within(path, f.path) or within(f.path, path) for f in declared):
            found.append(finding("undeclared_data_directory", host,
                                 f"{path} holds {directory['size_kb']} KiB of data but no "
                                 "workload.files entry covers it", path=path,
                                 size_kb=directory["size_kb"]))
    for tree in declared:
        if tree.path not in sizes:
            found.append(finding("declared_path_missing", host,
                                 f"declared file tree {tree.path} does not exist", path=tree.path))
        elif size_differs(tree.size_gb, sizes[tree.path] / KB_PER_GB):
            found.append(finding("size_differs", host,
                                 f"{tree.path}: declared {tree.size_gb:g} GB, observed "
                                 f"{sizes[tree.path] / KB_PER_GB:.3f} GB", path=tree.path,
                                 declared_gb=tree.size_gb,
                                 observed_gb=round(sizes[tree.path] / KB_PER_GB, 3)))
    return found


SERVER_NAMES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}


def database_gaps(system: SystemManifest, host: str, seen: dict) -> list[dict]:
    """Each engine's databases on the host against those declared with that engine."""
    found = []
    for engine, server_name in SERVER_NAMES.items():
        declared = {d.name: d for d in system.workload.databases
                    if d.host == host and d.engine == engine}
        server = seen.get(engine)
        if server is None:
            found += [finding("declared_database_missing", host,
                              f"database {name} is declared, but no {server_name} server was "
                              "found", database=name) for name in sorted(declared)]
        else:
            found += _server_gaps(host, engine, server, declared)
    return found


def _owner_of(database: dict) -> str:
    """Who owns a database: PostgreSQL's owner, MariaDB's first grantee."""
    if "owner" in database:
        return database["owner"]
    grants = database.get("grants") or [{"user": "?"}]
    return grants[0]["user"]


def _server_gaps(host: str, engine: str, server: dict, declared: dict[str, Any]) -> list[dict]:
    present = {d["name"]: d for d in server.get("databases", []) if not d["system"]}
    found = []
    for name, database in sorted(present.items()):
        if name not in declared:
            owner = _owner_of(database)
            found.append(finding("undeclared_database", host,
                                 f"{SERVER_NAMES[engine]} database {safety.shown(name)} (owner "
                                 f"{safety.shown(owner)}, {database['size_bytes']} bytes) is "
                                 "not in workload.databases",
                                 database=name, owner=owner, engine=engine))
            continue
        found += written_table_gaps(host, name, declared[name].volatile_tables, database,
                                    default_schema(declared[name]))
        observed_gb = database["size_bytes"] / (1024 ** 3)
        if size_differs(declared[name].size_gb, observed_gb):
            found.append(finding("size_differs", host,
                                 f"database {name}: declared {declared[name].size_gb:g} GB, "
                                 f"observed {observed_gb:.3f} GB", database=name,
                                 declared_gb=declared[name].size_gb,
                                 observed_gb=round(observed_gb, 3)))
    for name in sorted(set(declared) - set(present)):
        found.append(finding("declared_database_missing", host,
                             f"database {name} is declared but not on the server",
                             database=name))
    return found


def written_table_gaps(host: str, name: str, volatile: Iterable[str],
                       database: dict, schema: str = "public") -> list[dict]:
    """Tables written while discovery watched that volatile_tables leaves compared (an
    unqualified entry is of ``schema``, as in the plan: PostgreSQL's public, MariaDB's
    database)."""
    named = {t if "." in t else f"{schema}.{t}" for t in volatile}
    written = [t["table"] for t in database.get("written_while_watched") or []
               if t["table"] not in named]
    if not written:
        return []
    return [finding("written_while_serving", host,
                    f"database {name}: {', '.join(map(safety.shown, written))} written during a "
                    f"{database.get('watched_s', '?')} s watch while the application served, "
                    "not in volatile_tables: those it writes to answer reads make the "
                    "cutover's comparison fail (name them schema-qualified)",
                    database=name, tables=written)]


def size_differs(declared_gb: float, observed_gb: float) -> bool:
    if abs(declared_gb - observed_gb) < SIZE_FLOOR_GB:
        return False
    low, high = sorted((declared_gb, observed_gb))
    return low == 0 or high / low > SIZE_RATIO


def census_differences(system: SystemManifest, observed: Observed) -> list[dict[str, Any]]:
    """Declared use (monthly users, last use) against the web servers' access logs."""
    use = observed_use(observed)
    if use is None:
        return []
    declared = system.census.usage_frequency
    found = []
    seen_users = use["monthly_active_users"]
    if seen_users is not None:
        tolerance = max(1, declared.monthly_active_users * USERS_TOLERANCE)
        if abs(seen_users - declared.monthly_active_users) > tolerance:
            found.append(finding(
                "census_differs", None,
                f"census.usage_frequency.monthly_active_users is "
                f"{declared.monthly_active_users}; the access logs show {seen_users} distinct "
                f"clients in {use['month']}", field="monthly_active_users",
                declared=declared.monthly_active_users, observed=seen_users,
                month=use["month"]))
    if use["last_used"] is not None:
        seen_day = date.fromisoformat(use["last_used"])
        if declared.last_used != seen_day:
            shown = declared.last_used.isoformat() if declared.last_used else "null"
            found.append(finding(
                "census_differs", None,
                f"census.usage_frequency.last_used is {shown}; the last request in the access "
                f"logs was on {seen_day.isoformat()}", field="last_used", declared=shown,
                observed=seen_day.isoformat()))
    return found


# ---- proposals ----------------------------------------------------------------------------------


# The unit that sets the address of the machines migrate's rehearsal makes (the sandbox's
# legacy hosts, migrate.rehearsal.sandbox.machines.ADDRESS_UNIT: a unit test keeps the two equal).
REHEARSAL_ADDRESS_UNIT = "migrate-address.service"
# The host's own network configuration: the target gets its own, so these are shown apart.
NETWORK_CONFIGURATION = ("/etc/hosts", "/etc/hostname", "/etc/network/", "/etc/netplan/",
                         "/etc/systemd/network/", "/etc/NetworkManager/",
                         "/etc/sysconfig/network-scripts/",
                         f"/etc/systemd/system/{REHEARSAL_ADDRESS_UNIT}")


def rewrite_proposals(instance_of_address: dict[str, str],
                      observed: Observed) -> list[dict[str, Any]]:
    """Each configuration line naming a source address (of this host or another of the
    system): (file, old value) and the new value as a template of the plan's address of the
    instance that replaces the host with that address. ``kind`` is ``application``, or
    ``network`` for the host's own network configuration."""
    proposals = []
    for host, seen in sorted(observed.items()):
        for mention in seen.get("address_mentions") or []:
            for address in addresses_in(str(mention["text"]), instance_of_address):
                network = mention["file"].startswith(NETWORK_CONFIGURATION)
                proposals.append({
                    "host": host, "file": mention["file"], "line": mention["line"],
                    "old": address,
                    "new": "${" + instance_of_address[address] + "}",  # the manifest's form
                    "kind": "network" if network else "application",
                    "context": mention["text"]})
    return proposals


def addresses_in(text: str, addresses: Iterable[str]) -> list[str]:
    """Which of ``addresses`` occur in ``text`` as whole addresses."""
    return [a for a in sorted(addresses)
            if re.search(rf"(?<![\w.]){re.escape(a)}(?![\w]|\.\d)", text)]


def secret_proposals(system_id: str, observed: Observed) -> list[dict[str, Any]]:
    """Secrets found in configuration: where, under which key, and a secret:// name for them
    (the value is never read)."""
    proposals: list[dict[str, Any]] = []
    taken: set[str] = set()
    for host, seen in sorted(observed.items()):
        for hit in seen.get("secrets") or []:
            base = hit["file"].rsplit("/", 1)[-1].strip(".").replace(".", "-")
            proposed = secret_ref(system_id, base, (hit["key"] or "secret").lower())
            if proposed in taken:  # two secrets never share a name
                proposed = secret_ref(system_id, base, (hit["key"] or "secret").lower(),
                                      f"line{hit['line']}")
            taken.add(proposed)
            proposals.append({**hit, "host": host, "proposed": proposed,
                              "message": f"{hit['file']}:{hit['line']} holds a secret"
                                         f"{' (' + hit['key'] + ')' if hit['key'] else ''}; "
                                         "its value was not read"})
    return proposals
