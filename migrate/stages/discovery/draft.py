"""A draft manifest for a system no manifest describes yet, from what discovery observed.

The draft validates (``validate_draft`` runs the project's own validator on it, within the
estate); what discovery cannot know is a placeholder, marked on its line with
``# TODO(discover): ...``, and what it observed is marked ``# observed: ...``. Secrets are
``secret://`` references only.

What a source host shows is not trusted: an observed directory, unit, package, database or
setting that the manifest rules refuse (template markup, a control character, a system tree
or ssh folder, a tree inside another) is left out of the draft and named, escaped, in its
header; the rest of the draft is still proposed, as an operator reviewing it expects.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from migrate.core import safety
from migrate.core.errors import Problem
from migrate.core.loader import Estate, parse_yaml, validate_document
from migrate.core.model import (
    DEBIAN_PACKAGE_PATTERN,
    NAME_PATTERN,
    UNIT_PATTERN,
    SystemManifest,
)
from migrate.core.plan import POSTGRESQL_PORT
from migrate.core.safety import within
from migrate.core.validate import check_estate
from migrate.stages.discovery.host import is_application_unit
from migrate.stages.discovery.use import observed_use

MIN_DATA_KB = 1024  # smaller directories are listed as observed, not proposed
GB = 1024 * 1024 * 1024
KB_PER_GB = 1024 * 1024
DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MARIADB_PORT = 3306
ENGINE_PORTS = {"postgresql": POSTGRESQL_PORT, "mariadb": MARIADB_PORT}
# MariaDB's own accounts (Debian's root, the sys schema's definer, ...): never the application's
MARIADB_SYSTEM_USERS = ("root", "mysql", "mariadb.sys", "debian-sys-maint", "mysql.sys",
                        "mysql.session", "mysql.infoschema", "")
TODO = "TODO(discover): "
Path_ = tuple[str | int, ...]


@dataclass
class DraftHost:
    name: str
    address: str
    observed: dict[str, Any]


@dataclass
class Draft:
    data: dict[str, Any]
    comments: dict[Path_, str] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    def todo(self, path: Path_, reason: str) -> None:
        self.comments[path] = TODO + reason

    def observed(self, path: Path_, what: str) -> None:
        self.comments[path] = f"observed: {what}"

    def propose(self, path: Path_, what: str) -> None:
        self.comments[path] = f"proposal: {what}"

    def leave_out(self, host: str, what: str, value: str, reason: str) -> None:
        """Note an observed value the draft does not propose (shown escaped)."""
        self.left_out.append(f"{host}: {what} {safety.shown(value)}: {reason}")

    @property
    def placeholders(self) -> list[dict[str, str]]:
        return [{"path": _format(path), "reason": text.removeprefix(TODO)}
                for path, text in sorted(self.comments.items(), key=lambda i: _format(i[0]))
                if text.startswith(TODO)]


# ---- names ----------------------------------------------------------------------------------


def local_name(text: str, fallback: str) -> str:
    """A manifest-local name (``^[a-z][a-z0-9-]{0,30}$``) made from ``text``."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:31].rstrip("-")
    return name if re.match(NAME_PATTERN, name) else fallback


def secret_ref(*parts: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts)).strip("-.")[:120]
    return f"secret://{name}"


def gigabytes(kb: int) -> float:
    """Kilobytes as GB, rounded up to 0.01 (never 0 for something that is there)."""
    return max(0.01, math.ceil(kb / KB_PER_GB * 100) / 100)


# ---- the draft ------------------------------------------------------------------------------


def build_draft(estate: Estate, system_id: str, hosts: list[DraftHost], user: str,
                port: int = 22, today: date | None = None,
                rewrites: list[dict[str, Any]] | None = None) -> Draft:
    """``rewrites``: discovery's proposals; those of the application (not the host's own
    network configuration) go into the draft, with their files as configuration."""
    today = today or date.today()
    draft = Draft({"schema_version": 1, "id": system_id})
    data = draft.data
    department = local_name(system_id.split("-")[0], "todo").replace("-", "")[:16]
    data["name"] = f"TODO {system_id}"
    draft.todo(("name",), "the system's official name (系统名称)")
    data["department"] = {"code": department if len(department) >= 2 else "todo",
                          "name": "TODO 部门名称"}
    draft.todo(("department", "code"), "the department's code (guessed from the id)")
    draft.todo(("department", "name"), "the department's name")
    data["function"] = "TODO 系统功能"
    draft.todo(("function",), "what the system does, in one sentence")
    data["classification"] = "non_classified"
    draft.todo(("classification",), "confirm: a classified (涉密) system is refused")
    data["protection_level"] = 2
    draft.todo(("protection_level",), "the 等保 level of the system's filing")
    data["census"] = _census(draft, hosts, today)
    data["source"] = {"ssh": {"user": user, "key": secret_ref("ssh", system_id),
                              **({"port": port} if port != 22 else {})},
                      "hosts": [{"name": h.name, "address": h.address,
                                 "roles": _roles(h.observed)} for h in hosts]}
    draft.todo(("source", "ssh", "key"), f"put the private key in the secrets folder, file "
               f"{secret_ref('ssh', system_id).removeprefix('secret://')} (0600)")
    data["workload"] = _workload(draft, system_id, hosts, rewrites or [])
    data["target"] = _target(draft, estate, hosts, data["workload"])
    data["depends_on"] = []
    data["exchange"] = {"app_key": system_id, "app_secret": secret_ref("exchange", system_id),
                        "resources": []}
    draft.todo(("exchange", "resources"), "the catalogue resources (信息资源目录) it provides")
    data["cutover"] = {"max_downtime_minutes": 60}
    draft.todo(("cutover", "max_downtime_minutes"), "the downtime the department accepts")
    return draft


def _roles(observed: dict) -> list[str]:
    roles = []
    if any(is_application_unit(e.get("unit")) and not e["loopback"]
           for e in observed.get("listening") or []):
        roles.append("web")
    if any(not d["system"] for engine in ENGINE_PORTS
           for d in (observed.get(engine) or {}).get("databases", [])):
        roles.append("db")
    return roles


def _census(draft: Draft, hosts: list[DraftHost], today: date) -> dict:
    use = observed_use({h.name: h.observed for h in hosts}) or {}
    users, last = use.get("monthly_active_users"), use.get("last_used")
    frequency: dict[str, Any] = {
        "monthly_active_users": users or 0,
        "last_used": date.fromisoformat(last) if last else None}
    path = ("census", "usage_frequency")
    if users is not None:
        draft.observed((*path, "monthly_active_users"),
                       f"distinct clients in {use['month']} (access logs"
                       f"{', partial month' if use['partial_month'] else ''})")
        draft.observed((*path, "last_used"), "last request in the access logs")
    else:
        draft.todo((*path, "monthly_active_users"), "no web access log found: give the figure")
        draft.todo((*path, "last_used"), "no web access log found: give the date")
    census = {
        "usage_scope": "department",
        "usage_frequency": frequency,
        "approval": {"department": "TODO 审批部门", "date": today, "document": "TODO 批复文号"},
        "funding": "other",
        "network": "egov_extranet",
        "maintenance": {"vendor": None, "last_update": None, "active": True},
    }
    draft.todo(("census", "usage_scope"), "public | cross_department | department | internal")
    for key in ("department", "date", "document"):
        draft.todo(("census", "approval", key), "from the project's approval (立项批复)")
    draft.todo(("census", "funding"), "fiscal | self_raised | purchased_service | other")
    draft.todo(("census", "network"), "egov_extranet | internet | department_private")
    draft.todo(("census", "maintenance", "vendor"), "who maintains it, and whether they still do")
    return census


def _workload(draft: Draft, system_id: str, hosts: list[DraftHost],
              rewrites: list[dict[str, Any]]) -> dict:
    services: list[dict] = []
    files: list[dict] = []
    databases: list[dict] = []
    for host in hosts:
        services += _services(draft, host, len(services))
        files += _files(draft, host, len(files))
        databases += _databases(draft, system_id, host, len(databases))
        databases += _mariadb_databases(draft, host, len(databases))
    workload = {"services": services, "files": files, "databases": databases}
    chosen = _safe_rewrites(draft, [r for r in rewrites if r["kind"] == "application"
                                    and not r["file"].startswith(DATABASE_SETTINGS)])
    configuration = _configuration(draft, chosen, [entry for host in hosts
                                                   for entry in hand_made(draft, host)])
    if configuration:
        workload["configuration"] = configuration
    if chosen:
        workload["rewrites"] = _rewrites(draft, chosen)
    return workload


# The database servers' own settings: the move sets them on the target (listening address,
# admitted instances), so they are proposed as rewrites but not copied.
DATABASE_SETTINGS = ("/etc/postgresql/", "/etc/mysql/")
SYSTEMD_LOCAL = "/etc/systemd/system/"


def hand_made(draft: Draft, host: DraftHost) -> list[tuple[str, str, str]]:
    """(host, path, what it is) of what someone put on the host by hand for the application,
    each to copy as it is: Tomcat's deployed applications, context files and libraries no
    package brought, the application units' drop-ins, the host's own timers (timer, the
    enabling link, the service and its program when no package owns them)."""
    seen = host.observed
    found: list[tuple[str, str]] = []
    tomcat = seen.get("tomcat") or {}
    wars = {w.removesuffix(".war") for w in tomcat.get("webapps", []) if w.endswith(".war")}
    found += [(w, _webapp_note(w)) for w in tomcat.get("webapps", [])
              if w.rstrip("/") not in wars]  # an expanded WAR is Tomcat's own copy
    found += [(c, "Tomcat context file (the application's resources and settings)")
              for c in tomcat.get("contexts", [])]
    found += [(lib, "put into Tomcat's lib by hand") for lib in tomcat.get("libraries", [])]
    for unit in seen.get("units") or []:
        found += [(d, f"drop-in of {unit['unit']}") for d in unit.get("drop_ins", [])
                  if d.startswith(SYSTEMD_LOCAL)]
    owners = seen.get("package_owners") or {}
    for timer in seen.get("timers") or []:
        if timer.get("local"):
            found += _timer_files(timer, owners)
    kept = []
    for path, what in found:
        reason = safety.path_problem(path) or safety.tree_problem(path)
        if reason is not None:
            draft.leave_out(host.name, what, path, reason)
        else:
            kept.append((host.name, path, what))
    return kept


def _webapp_note(path: str) -> str:
    if path.rstrip("/").endswith("/webapps/ROOT"):
        return ("Tomcat's ROOT application: Debian's tomcat makes its own on install; keep "
                "this entry only if the application replaced it")
    return "deployed into Tomcat by hand"


def _timer_files(timer: dict, owners: dict[str, list[str]]) -> list[tuple[str, str]]:
    name, schedule = timer["timer"], timer.get("schedule") or "?"
    what = f"timer {name} ({schedule})"
    found = [(timer["fragment"], what)] if timer.get("fragment") else []
    if timer.get("enabled") == "enabled":
        found += [(f"{SYSTEMD_LOCAL}{target}.wants/{name}", f"enables {name}")
                  for target in timer.get("wanted_by", [])]
    for service in timer.get("services", []):
        fragment = service.get("fragment")
        if fragment and fragment not in owners:
            found.append((fragment, f"the service {name} starts"))
        for command in service.get("exec_start", []):
            program = str(command).split()[0] if str(command).strip() else ""
            if program.startswith("/") and program not in owners:
                found.append((program, f"run by {service['unit']} ({name})"))
    return found


def _safe_rewrites(draft: Draft, rewrites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The proposed rewrites whose file may be copied and whose texts are plain."""
    safe = []
    for rewrite in rewrites:
        file = rewrite["file"]
        reason = (safety.path_problem(file) or safety.tree_problem(file)
                  or safety.text_problem(rewrite["old"]) or safety.text_problem(rewrite["new"]))
        if reason is not None:
            draft.leave_out(rewrite["host"], "setting naming an address in", file, reason)
        else:
            safe.append(rewrite)
    return safe


def _configuration(draft: Draft, rewrites: list[dict[str, Any]],
                   made: list[tuple[str, str, str]]) -> list[dict]:
    """The files naming a source address, then what was put there by hand (each once)."""
    entries = sorted({(r["host"], r["file"]) for r in rewrites})
    for index, (_host, path) in enumerate(entries):
        draft.todo(("workload", "configuration", index),
                   f"{path} names a source address; add the application's other code and "
                   "settings (folders end with /)")
    for host, path, what in made:
        if (host, path) not in entries:
            draft.observed(("workload", "configuration", len(entries)), what)
            entries.append((host, path))
    return [{"host": host, "path": path} for host, path in entries]


def _rewrites(draft: Draft, rewrites: list[dict[str, Any]]) -> list[dict]:
    entries = sorted({(r["host"], r["file"], r["old"], r["new"]) for r in rewrites})
    for index, (_host, path, _old, _new) in enumerate(entries):
        lines = sorted({r["line"] for r in rewrites if r["file"] == path})
        draft.observed(("workload", "rewrites", index, "old"),
                       f"on line {', '.join(map(str, lines))} of {path}")
    return [{"host": host, "file": path, "old": old, "new": new}
            for host, path, old, new in entries]


def _plain_packages(draft: Draft, host: str, packages: list[str]) -> list[str]:
    plain = [p for p in packages if re.match(DEBIAN_PACKAGE_PATTERN, p)]
    for package in sorted(set(packages) - set(plain)):
        draft.leave_out(host, "package", package, "not a Debian package name")
    return plain


def packages_of(observed: dict) -> list[str]:
    """The packages that own what the host's application runs and reads (its units and
    programs, web roots, configuration naming an address) and the modules its runtimes load
    (PHP's, apache's, the jars in Tomcat's lib); not those every Debian system has."""
    owners = observed.get("package_owners") or {}
    modules = observed.get("runtime_modules") or []
    found = {*(package for packages in owners.values() for package in packages),
             *(package for module in modules for package in module["packages"])}
    return sorted(found - base_system_packages(observed))


def base_system_packages(observed: dict) -> set[str]:
    """The host's packages that dpkg says every Debian system has (Essential: yes or
    Priority: required, such as dash behind a unit's /bin/sh): the target has them too."""
    return {p["name"] for p in observed.get("packages") or [] if p.get("base_system")}


def _packages_note(observed: dict) -> str:
    note = ("owners of its units, programs, web roots and settings, and of the modules its "
            "runtimes load")
    behind = sorted({f"{s['unit']} serves {s['socket']}" for s in observed.get("unix_sockets")
                     or [] if s.get("unit")})
    if behind:
        note += f"; {', '.join(behind)} for the web server (no TCP port: moves by its package)"
    return note


def _services(draft: Draft, host: DraftHost, start: int) -> list[dict]:
    by_unit: dict[str, int] = {}
    for entry in host.observed.get("listening") or []:
        unit = entry.get("unit")
        if is_application_unit(unit) and not entry["loopback"] and unit.endswith(".service"):
            by_unit.setdefault(unit, entry["port"])
    services, names = [], set()
    for unit, port in sorted(by_unit.items(), key=lambda item: item[1]):
        if not re.match(UNIT_PATTERN, unit):
            draft.leave_out(host.name, "service unit", unit, "not a plain unit name")
            continue
        name = local_name(unit.removesuffix(".service"), f"service{port}")
        if name in names:
            name = local_name(f"{name}-{port}", f"service{port}")
        names.add(name)
        path = ("workload", "services", start + len(services))
        services.append({"name": name, "host": host.name, "unit": unit, "port": port})
        draft.observed((*path, "port"), f"{unit} listens on {port}")
        draft.todo((*path, "unit"), "add health: the path that answers 200 when it works "
                   "(checked at the cutover)")
    return services


def _files(draft: Draft, host: DraftHost, start: int) -> list[dict]:
    excluded = database_directories(host.observed)
    candidates = [d for d in host.observed.get("data_directories") or []
                  if d["size_kb"] >= MIN_DATA_KB and not any(within(d["path"], e)
                                                             for e in excluded)]
    files = []
    for directory in _safe_trees(draft, host.name, candidates):
        path = directory["path"]
        loc = ("workload", "files", start + len(files))
        files.append({"host": host.name, "path": path, "size_gb": gigabytes(directory["size_kb"]),
                      "daily_change_gb": 0.0})
        draft.observed((*loc, "size_gb"), f"{directory['size_kb']} KiB")
        draft.todo((*loc, "daily_change_gb"), "data written per day (not observable at once)")
    return files


def _safe_trees(draft: Draft, host: str, directories: list[dict]) -> list[dict]:
    """The directories a manifest may copy as trees; one inside another is copied with it."""
    allowed = []
    for directory in directories:
        path = directory["path"]
        reason = safety.path_problem(path) or safety.tree_problem(path)
        if reason is not None:
            draft.leave_out(host, "data directory", path, reason)
        else:
            allowed.append(directory)
    paths = [d["path"] for d in allowed]
    kept = []
    for directory in allowed:
        outer = next((p for p in paths if p != directory["path"]
                      and within(directory["path"], p)), None)
        if outer is not None:
            draft.leave_out(host, "data directory", directory["path"],
                            f"inside {outer}, copied with it")
        else:
            kept.append(directory)
    return kept


def database_directories(observed: dict) -> list[str]:
    settings = (observed.get("postgresql") or {}).get("settings", {})
    mariadb = (observed.get("mariadb") or {}).get("settings", {})
    return [d for d in ("/var/lib/postgresql", settings.get("data_directory"), "/var/lib/mysql",
                        mariadb.get("datadir")) if d]


def _mariadb_databases(draft: Draft, host: DraftHost, start: int) -> list[dict]:
    """MariaDB's (or MySQL's) databases, with the user granted on each and where the
    application's configuration names the server."""
    server = host.observed.get("mariadb") or {}
    databases = []
    for database in server.get("databases", []):
        if database["system"]:
            continue
        if not DB_NAME.match(database["name"]):
            draft.leave_out(host.name, "MariaDB database", database["name"],
                            "not a plain name (lower-case letters, digits, _)")
            continue
        loc = ("workload", "databases", start + len(databases))
        entry = {"host": host.name, "engine": "mariadb", "name": database["name"],
                 "size_gb": gigabytes(math.ceil(database["size_bytes"] / 1024)),
                 "password": secret_ref("db", database["name"])}
        grants = [g for g in database.get("grants", [])
                  if g["user"] not in MARIADB_SYSTEM_USERS and DB_NAME.match(g["user"])]
        if grants:
            entry["user"] = grants[0]["user"]
            draft.observed((*loc, "user"), _grant_note(grants, host))
        if "written_while_watched" in database:
            entry["volatile_tables"] = []
            _propose_volatile_tables(draft, (*loc, "volatile_tables"), database)
        databases.append(entry)
        draft.observed((*loc, "size_gb"), _size_note(database, host))
        draft.todo((*loc, "password"), f"the application user's password, in the secrets "
                   f"folder, file db-{database['name']}")
    return databases


def _grant_note(grants: list[dict], host: DraftHost) -> str:
    shown = "; ".join(f"{safety.shown(g['user'])}@{safety.shown(g['host'])}: "
                      f"{', '.join(g['privileges'])}" for g in grants)
    note = f"granted {shown}"
    if any(g["host"] == host.address for g in grants):
        note += (f"; a grant names the source's address {host.address}: on the target it "
                 "must name the application instance's")
    return note


def _size_note(database: dict, host: DraftHost) -> str:
    note = f"{database['size_bytes']} bytes in {database.get('tables', '?')} tables"
    other = database.get("non_innodb_tables", 0)
    if other:
        note += f", {other} not InnoDB (a dump is consistent for InnoDB tables only)"
    named = sorted({f"{r['file']}:{r['line']} as {r['host']}"
                    f"{':' + str(r['port']) if r.get('port') else ''}"
                    for r in host.observed.get("database_references") or []
                    if r.get("database") == database["name"]})
    if named:
        note += f"; named in {', '.join(named)}"
    return note


def _databases(draft: Draft, system_id: str, host: DraftHost, start: int) -> list[dict]:
    server = host.observed.get("postgresql") or {}
    superusers = {r["name"] for r in server.get("roles", []) if r["superuser"]}
    databases = []
    for database in server.get("databases", []):
        if database["system"]:
            continue
        if not DB_NAME.match(database["name"]):
            draft.leave_out(host.name, "database", database["name"],
                            "not a plain name (lower-case letters, digits, _)")
            continue
        loc = ("workload", "databases", start + len(databases))
        entry = {"host": host.name, "engine": "postgresql", "name": database["name"],
                 "size_gb": gigabytes(math.ceil(database["size_bytes"] / 1024)),
                 "password": secret_ref("db", database["name"])}
        user = _application_role(database, superusers)
        if user:
            entry["user"] = user
            owns = "the database" if user == database["owner"] else "its tables"
            draft.observed((*loc, "user"), f"owner of {owns}")
        if "written_while_watched" in database:
            entry["volatile_tables"] = []
            _propose_volatile_tables(draft, (*loc, "volatile_tables"), database)
        databases.append(entry)
        draft.observed((*loc, "size_gb"), f"{database['size_bytes']} bytes")
        draft.todo((*loc, "password"), f"the application role's password, in the secrets "
                   f"folder, file db-{database['name']}")
    return databases


def _propose_volatile_tables(draft: Draft, path: Path_, database: dict) -> None:
    """The tables written while discovery watched, as a list to copy into volatile_tables
    (not put there: a table users write must stay compared). Always schema-qualified, so a
    table outside schema public is not taken for public.NAME."""
    written = database["written_while_watched"]
    seconds = database.get("watched_s", "?")
    if not written:
        draft.observed(path, f"no table written during a {seconds} s watch")
        return
    plain = [t["table"] for t in written if all(DB_NAME.match(part)
                                                 for part in t["table"].split(".", 1))]
    other = [safety.shown(t["table"]) for t in written if t["table"] not in plain]
    text = (f"written during a {seconds} s watch while the application served: "
            f"{json.dumps(plain)}; copy here those it writes to answer reads (caches, "
            "sessions), not those its users write")
    if other:
        text += f"; written too, but not plain names volatile_tables can hold: {', '.join(other)}"
    draft.propose(path, text)


def _application_role(database: dict, superusers: set[str]) -> str | None:
    candidates = [database["owner"], *database.get("table_owners", [])]
    return next((r for r in candidates if r not in superusers and DB_NAME.match(r)), None)


def _target(draft: Draft, estate: Estate, hosts: list[DraftHost], workload: dict) -> dict:
    cloud = estate.settings.cloud
    zone = "egov_extranet" if "egov_extranet" in cloud.zones else next(iter(cloud.zones))
    draft.todo(("target", "zone"), "internet | egov_extranet: where the system serves from")
    largest = max(cloud.flavors, key=lambda f: (f.vcpu, f.memory_gb))
    instances = []
    for index, host in enumerate(hosts):
        hardware = host.observed.get("hardware") or {}
        vcpu = min(max(1, int(hardware.get("cpus", 2))), largest.vcpu)
        memory = min(max(1, math.ceil(hardware.get("mem_kb", 4 * KB_PER_GB) / KB_PER_GB)),
                     largest.memory_gb)
        disk = max(20, math.ceil(hardware.get("root_used_kb", 0) * 2 / KB_PER_GB))
        instance = {"name": host.name, "replaces": [host.name], "vcpu": vcpu,
                    "memory_gb": memory, "disk_gb": disk, "image": next(iter(cloud.images))}
        loc = ("target", "instances", index)
        packages = _plain_packages(draft, host.name, packages_of(host.observed))
        if packages:
            instance["packages"] = packages
            draft.observed((*loc, "packages"), _packages_note(host.observed))
        instances.append(instance)
        draft.observed((*loc, "vcpu"), f"{hardware.get('cpus', '?')} CPUs on the source")
        draft.observed((*loc, "memory_gb"), f"{hardware.get('mem_kb', '?')} KiB on the source")
        draft.todo((*loc, "disk_gb"), "twice the space used on the source's root filesystem")
    flows = [{"from": "exchange", "to": s["host"], "port": s["port"]}
             for s in workload["services"]]
    for index in range(len(flows)):
        draft.todo(("target", "flows", index), "who reaches this port (exchange, ops, another "
                   "instance; internet only in zone internet)")
    for web, database, port in database_flows(workload):
        draft.observed(("target", "flows", len(flows)), f"{database} holds a database, {web} "
                       "the services")
        flows.append({"from": web, "to": database, "port": port})
    return {"zone": zone, "instances": instances, "flows": flows}


def database_flows(workload: dict) -> list[tuple[str, str, int]]:
    """(service host, database host, port) on different hosts: the application reaches its
    database across the network (the server then listens beyond loopback on the target)."""
    web = sorted({s["host"] for s in workload["services"]})
    databases = sorted({(d["host"], ENGINE_PORTS[d["engine"]]) for d in workload["databases"]})
    return [(w, d, port) for w in web for d, port in databases if w != d]


# ---- YAML with comments -----------------------------------------------------------------------


def render(draft: Draft, header: list[str]) -> str:
    if draft.left_out:
        header = [*header, "Observed but left out (the manifest rules refuse them as they are;",
                  "values escaped):", *(f"  {note}" for note in draft.left_out), ""]
    lines = [f"# {safety.one_line(line)}" if line else "#" for line in header]
    lines += _emit(draft.data, (), 0, draft.comments)
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


def _with_comment(line: str, comment: str | None) -> str:
    return f"{line}  # {safety.one_line(comment)}" if comment else line


def _emit(value: Any, path: Path_, indent: int, comments: dict[Path_, str]) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = (*path, key)
            if isinstance(item, dict | list) and item:
                lines.append(_with_comment(f"{pad}{key}:", comments.get(here)))
                lines += _emit(item, here, indent + 2, comments)
            else:
                shown = "[]" if item == [] else "{}" if item == {} else _scalar(item)
                lines.append(_with_comment(f"{pad}{key}: {shown}", comments.get(here)))
        return lines
    for index, item in enumerate(value):
        here = (*path, index)
        if isinstance(item, dict) and item:
            inner = _emit(item, here, indent + 2, comments)
            inner[0] = f"{pad}- {inner[0].lstrip()}"
            if here in comments:
                inner[0] = _with_comment(inner[0], comments[here])
            lines += inner
        else:
            lines.append(_with_comment(f"{pad}- {_scalar(item)}", comments.get(here)))
    return lines


def _format(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# ---- validation with the project's own validator ----------------------------------------------


def validate_draft(estate: Estate, path: Path, display: str) -> list[Problem]:
    """Every problem the validator finds with the draft added to the estate (none: valid).
    Warnings (secret files not written yet) are not problems of the draft."""
    document, problems = parse_yaml(path, display)
    if document is None or problems:
        return problems
    system, problems = validate_document(document, SystemManifest)
    if system is None:
        return problems
    widened = Estate(root=estate.root, display=estate.display, settings=estate.settings,
                     settings_doc=estate.settings_doc,
                     systems={**estate.systems, system.id: system},
                     documents={**estate.documents, system.id: document})
    errors, _warnings = check_estate(widened)
    return errors
