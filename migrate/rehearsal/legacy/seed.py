"""What to install on each legacy machine of the sandbox: the department's application,
its databases and file trees, filled with deterministic data scaled down from the manifest.

``build_host_seeds(system, secrets_dir)`` gives one :class:`HostSeed` per source host;
``write_into_root(seed, root)`` writes it into a machine's root (an overlay's upper
directory) before boot. At boot, systemd does the rest on its own:

- ``legacy-users.service`` creates each application's system user (systemd-sysusers);
- on a database host, ``postgresql.service`` is enabled and ``legacy-seed.service`` runs
  ``/opt/legacy/seed/legacy-seed.sh``: role and database (idempotent), then the data in
  one transaction unless the same data set (a marker table holds its digest) is there;
- each ``<unit>`` of the manifest runs ``python3 /opt/legacy/app.py --config
  /etc/legacy/<service>.json`` as its own user, with the database password handed over by
  systemd (``LoadCredential``) from a root-only file.

Everything is a function of (manifest, scale, secrets): the same inputs give byte-identical
files and rows. :func:`expected_digests` is what verification compares a moved system with.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migrate.core import state
from migrate.core.errors import InvalidInput, Problem
from migrate.core.loader import Estate
from migrate.core.model import Database, Resource, Service, SystemManifest
from migrate.core.state import read_secret_in, secret_name
from migrate.rehearsal.legacy import fake, units
from migrate.rehearsal.legacy.files import GeneratedFile, plan_tree
from migrate.rehearsal.legacy.tables import (
    TableSeed,
    catalogue_tables,
    checksum_sql,
    fill_tables,
)

DEFAULT_SCALE = 256 * 1024  # bytes per declared GB: 12 GB of database -> 3 MiB of rows
SYSTEM_BUDGET = 48 * 1024 * 1024  # a system seeded at the default scale stays below this


def default_scale(system: SystemManifest) -> int:
    """DEFAULT_SCALE, lowered for a system whose declared data would exceed SYSTEM_BUDGET
    (zrj-bdcdj declares 915 GB: 256 KiB/GB would seed 229 MiB; this seeds 48 MiB)."""
    declared = sum(t.size_gb for t in system.workload.files)
    declared += sum(d.size_gb for d in system.workload.databases)
    if declared * DEFAULT_SCALE <= SYSTEM_BUDGET:
        return DEFAULT_SCALE
    return int(SYSTEM_BUDGET // declared)
APP_SOURCE = Path(__file__).with_name("app.py")


@dataclass(frozen=True)
class SeedFile:
    """One thing to create in the machine's root: bytes, a generated file, or a symlink."""

    path: str
    mode: int = 0o644
    data: bytes | None = None
    generated: GeneratedFile | None = None
    link: str | None = None

    def content(self) -> bytes:
        if self.generated is not None:
            return self.generated.content()
        return self.data or b""

    @property
    def size(self) -> int:
        if self.generated is not None:
            return self.generated.size
        return len(self.data or b"")


@dataclass
class DatabaseSeed:
    name: str
    user: str
    tables: list[TableSeed]
    digest: str  # of the data set: what the marker table holds once loaded


@dataclass
class ServiceSeed:
    name: str
    unit: str
    port: int
    user: str
    config: dict


@dataclass
class HostSeed:
    system_id: str
    system_name: str
    host: str
    address: str
    files: list[SeedFile] = field(default_factory=list)
    databases: list[DatabaseSeed] = field(default_factory=list)
    services: list[ServiceSeed] = field(default_factory=list)
    trees: dict[str, list[GeneratedFile]] = field(default_factory=dict)

    @property
    def units_enabled(self) -> list[str]:
        return sorted(Path(f.path).name for f in self.files if f.path.startswith(units.WANTS_DIR))

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> SeedFile:
        return next(f for f in self.files if f.path == path)


# ---------------------------------------------------------------- secrets


# ---------------------------------------------------------------- building seeds


def build_host_seeds(system: SystemManifest, secrets_dir: Path, scale: int | None = None,
                     addresses: Mapping[str, str] | None = None) -> list[HostSeed]:
    """One seed per source host of ``system``. ``addresses`` maps host names to the address
    the machine really has (default: the manifest's source address)."""
    if scale is None:
        scale = default_scale(system)
    if scale < 0:
        raise InvalidInput([Problem("<scale>", None, "scale", "scale must not be negative")])
    address_of = {h.name: (addresses or {}).get(h.name, h.address) for h in system.source.hosts}
    _check_hosts_known(system, address_of)
    return [_host_seed(system, host, secrets_dir, scale, address_of)
            for host in address_of]


def _check_hosts_known(system: SystemManifest, address_of: Mapping[str, str]) -> None:
    work = system.workload
    problems = [
        Problem(system.id, None, f"workload.{kind}[{i}].host",
                f"host {thing.host!r} is not a source host",
                f"one of {', '.join(address_of)}")
        for kind, things in (("services", work.services), ("files", work.files),
                             ("databases", work.databases))
        for i, thing in enumerate(things) if thing.host not in address_of
    ]
    if problems:
        raise InvalidInput(problems)


def _host_seed(system: SystemManifest, host: str, secrets_dir: Path, scale: int,
               address_of: Mapping[str, str]) -> HostSeed:
    seed = HostSeed(system.id, system.name, host, address_of[host])
    for tree in (t for t in system.workload.files if t.host == host):
        files = plan_tree(system.id, host, tree.path, int(tree.size_gb * scale))
        seed.trees[tree.path] = files
        seed.files.append(SeedFile(tree.path.rstrip("/") + "/", 0o755))
        seed.files += [SeedFile(f.path, 0o644, generated=f) for f in files]
    databases = [d for d in system.workload.databases if d.host == host]
    for database in databases:
        seed.databases.append(_database_seed(system, database, scale))
    if databases:
        _add_database_server(seed, system, address_of)
        _add_database_sql(seed, system, secrets_dir)
    services = [s for s in system.workload.services if s.host == host]
    for service in services:
        _add_service(seed, system, service, secrets_dir, address_of)
    if services:
        _add_users(seed, [s.name for s in services])
        seed.files.append(SeedFile(units.APP_PATH, 0o755, APP_SOURCE.read_bytes()))
    seed.files.sort(key=lambda f: f.path)
    return seed


def _database_seed(system: SystemManifest, database: Database, scale: int) -> DatabaseSeed:
    resources = _resources_in(system, database)
    tables = catalogue_tables(resources)
    filler = fill_tables(system.id, database.host, database, tables,
                         int(database.size_gb * scale))
    tables.append(filler)
    digests = {t.name: {"rows": len(t.rows), "checksum": t.checksum()}
               for t in tables}
    digest = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]
    return DatabaseSeed(database.name, database.user or database.name, tables, digest)


def _resources_in(system: SystemManifest, database: Database) -> list[Resource]:
    """Catalogue resources whose table lives in ``database``: those served by a service
    using it, and those without an interface in the system's first database."""
    if system.exchange is None:
        return []
    first = system.workload.databases[0]
    served_from = {s.name: database_for(system, s) for s in system.workload.services}
    chosen = []
    for resource in system.exchange.resources:
        if resource.interface is not None and resource.interface.service in served_from:
            home = served_from[resource.interface.service]
        else:
            home = first
        if home is database:
            chosen.append(resource)
    return chosen


def database_for(system: SystemManifest, service: Service) -> Database | None:
    """The database a service uses: the one on its own host, else the system's first."""
    databases = system.workload.databases
    same_host = [d for d in databases if d.host == service.host]
    return (same_host or databases or [None])[0]


def _add_database_server(seed: HostSeed, system: SystemManifest,
                         address_of: Mapping[str, str]) -> None:
    app_hosts = sorted({address_of[s.host] for s in system.workload.services})
    seed.files += [
        SeedFile(units.PG_CONF_FILE, 0o644, units.postgresql_conf().encode()),
        SeedFile(units.HBA_FILE, 0o644, units.hba_conf(app_hosts).encode()),
        SeedFile(units.SEED_SCRIPT, 0o755, units.seed_script(
            [(d.name, d.digest) for d in seed.databases]).encode()),
        SeedFile(f"{units.UNIT_DIR}/{units.SEED_UNIT}", 0o644, units.seed_unit().encode()),
        _wanted(units.SEED_UNIT, f"{units.UNIT_DIR}/{units.SEED_UNIT}"),
        _wanted(units.POSTGRESQL_UNIT, units.POSTGRESQL_UNIT_FILE),
    ]


def _add_database_sql(seed: HostSeed, system: SystemManifest, secrets_dir: Path) -> None:
    for database, model in zip(seed.databases, _host_databases(system, seed.host), strict=True):
        password = read_secret_in(secrets_dir, model.password)
        salt = fake.rng_for(system.id, seed.host, f"salt:{database.name}").randbytes(16)
        verifier = units.scram_verifier(password, salt)
        folder = f"{units.SEED_DIR}/{database.name}"
        seed.files += [
            SeedFile(f"{folder}/roles.sql", 0o640,
                     units.roles_sql(database.name, database.user, verifier).encode()),
            SeedFile(f"{folder}/data.sql", 0o640, "".join(
                units.data_sql(database.tables, database.user, database.digest)).encode()),
        ]


def _host_databases(system: SystemManifest, host: str) -> list[Database]:
    return [d for d in system.workload.databases if d.host == host]


def _add_service(seed: HostSeed, system: SystemManifest, service: Service, secrets_dir: Path,
                 address_of: Mapping[str, str]) -> None:
    database = database_for(system, service)
    password_file = None
    if database is not None:
        password_file = f"{units.SECRETS_DIR}/{secret_name(database.password)}"
        if all(f.path != password_file for f in seed.files):
            seed.files.append(SeedFile(password_file, 0o600,
                                       read_secret_in(secrets_dir, database.password).encode()))
    config = app_config(system, service, database, address_of, password_file)
    config_path = f"{units.CONFIG_DIR}/{service.name}.json"
    seed.files += [
        SeedFile(config_path, 0o644, _json_bytes(config)),
        SeedFile(f"{units.UNIT_DIR}/{service.unit}", 0o644, units.app_unit(
            service.unit, f"{system.name} ({service.name}, legacy department application)",
            service.name, config_path, password_file,
            after_seed=database is not None and database.host == service.host).encode()),
        _wanted(service.unit, f"{units.UNIT_DIR}/{service.unit}"),
    ]
    seed.services.append(ServiceSeed(service.name, service.unit, service.port,
                                     units.service_user(service.name), config))


def _add_users(seed: HostSeed, services: list[str]) -> None:
    seed.files += [
        SeedFile(units.SYSUSERS_FILE, 0o644, units.sysusers_conf(services).encode()),
        SeedFile(f"{units.UNIT_DIR}/{units.USERS_UNIT}", 0o644, units.users_unit().encode()),
    ]


def _wanted(unit: str, target: str) -> SeedFile:
    return SeedFile(f"{units.WANTS_DIR}/{unit}", 0o777, link=target)


def app_config(system: SystemManifest, service: Service, database: Database | None,
               address_of: Mapping[str, str], password_file: str | None) -> dict:
    """The application's JSON config: no secret in it, only where to read the password."""
    db = None
    if database is not None:
        db = {
            "host": "127.0.0.1" if database.host == service.host else address_of[database.host],
            "port": 5432,
            "dbname": database.name,
            "user": database.user or database.name,
            "password_file": password_file,
            "password_credential": units.PASSWORD_CREDENTIAL,
        }
    return {
        "service": service.name,
        "system": {"id": system.id, "name": system.name},
        "listen": {"address": "0.0.0.0", "port": service.port},
        "health": service.health or "/health",
        "database": db,
        "resources": _served_resources(system, service, database),
        "files": _file_roots(system, service.host),
    }


def _served_resources(system: SystemManifest, service: Service,
                      database: Database | None) -> list[dict]:
    if database is None:
        return []
    tables = catalogue_tables(_resources_in(system, database))
    return [
        {"path": t.interface_path, "code": t.resource_code, "name": t.resource_name,
         "table": t.name,
         "columns": [{"name": c.name, "column": c.column, "type": c.type} for c in t.columns]}
        for t in tables if t.interface_service == service.name and t.interface_path
    ]


def _file_roots(system: SystemManifest, host: str) -> list[dict]:
    roots, taken = [], set()
    for tree in (t for t in system.workload.files if t.host == host):
        base = tree.path.rstrip("/").rsplit("/", 1)[-1] or "files"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        roots.append({"name": name, "root": tree.path.rstrip("/")})
    return roots


def _json_bytes(document: object) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


# ---------------------------------------------------------------- results


def expected_digests(seed: HostSeed) -> dict:
    """What verification compares: sha256 per tree file (by absolute path) and, per table,
    its row count and order-independent checksum (see :func:`checksum_query`)."""
    return {
        "system": seed.system_id,
        "host": seed.host,
        "files": {f.path: f.sha256() for files in seed.trees.values() for f in files},
        "tables": {
            f"{d.name}.{t.name}": {"rows": len(t.rows), "checksum": t.checksum()}
            for d in seed.databases for t in d.tables
        },
    }


def install_plan(seed: HostSeed) -> list[str]:
    """What installing ``seed`` does, one line per step, for journals and runbooks."""
    steps = []
    for root, files in sorted(seed.trees.items()):
        size = sum(f.size for f in files)
        steps.append(f"write file tree {root}: {len(files)} files, {size / 2**20:.1f} MiB")
    for database in seed.databases:
        tables = ", ".join(f"{t.name} ({len(t.rows)} rows)" for t in database.tables)
        steps.append(f"at boot, {units.SEED_UNIT} creates role {database.user} and database "
                     f"{database.name} and loads {tables}; data set {database.digest}")
    for service in seed.services:
        paths = ", ".join(r["path"] for r in service.config["resources"]) or "no catalogue API"
        steps.append(f"at boot, {service.unit} serves {paths} on port {service.port} "
                     f"as user {service.user}")
    if seed.units_enabled:
        steps.append("enable " + ", ".join(seed.units_enabled))
    return steps


def seed_estate(estate: Estate, scale: int | None = None,
                addresses: Mapping[str, Mapping[str, str]] | None = None
                ) -> dict[str, list[HostSeed]]:
    """Seeds of every source host of every system of ``estate`` (system id -> seeds);
    ``addresses`` maps system id -> host name -> the machine's address."""
    secrets_dir = state.secrets_dir(estate)
    return {sid: build_host_seeds(system, secrets_dir, scale, (addresses or {}).get(sid))
            for sid, system in sorted(estate.systems.items())}


def checksum_query(table: str) -> str:
    """SQL giving (rows, checksum) of a table, to compare with ``expected_digests``."""
    return checksum_sql(table)


def write_into_root(seed: HostSeed, root: Path) -> list[Path]:
    """Write the seed under ``root`` (a machine's overlay upper directory, or any folder):
    files with their modes, directories, and the units' ``multi-user.target.wants`` links.
    Idempotent: files already there are rewritten. Returns the paths written."""
    written = []
    for item in _in_write_order(seed.files):
        target = root / item.path.lstrip("/")
        if item.path.endswith("/"):
            _make_directories(target)
            target.chmod(item.mode)
            continue
        _make_directories(target.parent)
        if item.link is not None:
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(item.link)
        else:
            _write_file(target, item)
        written.append(target)
    return written


def _in_write_order(files: list[SeedFile]) -> Iterator[SeedFile]:
    # Directories first, then everything else, in path order.
    yield from sorted((f for f in files if f.path.endswith("/")), key=lambda f: f.path)
    yield from (f for f in files if not f.path.endswith("/"))


def _make_directories(directory: Path) -> None:
    """Missing parents become 0755 whatever the umask: services read their config there."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)


def _write_file(target: Path, item: SeedFile) -> None:
    # Created with its final mode (0600 secrets are never readable by others, not even
    # briefly), written to a temporary name, then renamed over any older version.
    temporary = target.with_name(f".{target.name}.seed-tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, item.mode)
    try:
        with os.fdopen(descriptor, "wb") as out:
            os.fchmod(out.fileno(), item.mode)
            out.write(item.content())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
