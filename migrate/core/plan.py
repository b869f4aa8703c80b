"""The plan: waves from ``depends_on``, and the provider-neutral cloud resources per system.

Pure: an estate and its census in, a ``plan.json`` document out. The same inputs give the
same bytes. Address allocation is deterministic (a hash of the name picks a preferred slot,
collisions probe to the next free one) and sticky: allocations found in the previous plan are
kept, so adding systems never moves the addresses of systems already planned.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import orjson

from migrate.core.census import CensusResult
from migrate.core.errors import InvalidInput, Problem
from migrate.core.journal import digest_bytes
from migrate.core.loader import Estate
from migrate.core.model import (
    FLOW_PEERS,
    Database,
    Flavor,
    Instance,
    SystemManifest,
    render_placeholders,
)
from migrate.core.validate import dependency_cycles

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Assumptions:
    """The one place the plan's estimating numbers live; printed into every plan."""

    volume_margin: float = 1.5
    """Data volumes are this many times the declared data, for growth and the final sync."""
    db_restore_gb_per_hour: float = 20.0
    """pg_restore throughput on the target, index builds included."""
    dump_restore_max_gb: float = 2.0
    """Databases up to this size are moved at cutover by a final dump of the frozen source;
    larger ones are kept in step by logical replication so the cutover only catches up."""
    default_db_daily_change_ratio: float = 0.01
    """Daily change of a database whose manifest does not say (share of size_gb)."""
    service_switch_seconds: int = 60
    """Stopping the source service, starting the target's and switching the endpoint."""
    replication_switch_seconds: int = 30
    """Waiting for a logical replica to catch up and promoting it."""


def build_plan(
    estate: Estate,
    census: CensusResult,
    previous: dict | None = None,
    assumptions: Assumptions = Assumptions(),
) -> dict:
    migrating = sorted(census.with_disposition("migrate"))
    problems = _missing_sections(estate, migrating)
    edges, warnings = _dependency_edges(estate, census, migrating)
    problems += _cycles_after_merges(estate, edges)
    if problems:
        raise InvalidInput(problems)
    waves = assign_waves(migrating, edges)
    networks = plan_networks(estate, migrating, _previous_networks(previous))
    addresses = plan_addresses(estate, migrating, networks, _previous_addresses(previous))
    systems = []
    for sid in migrating:
        planned = plan_system(estate, estate.systems[sid], networks, addresses, assumptions)
        planned["wave"] = waves[sid]
        planned["depends_on"] = sorted(edges[sid])
        systems.append(planned)
        if planned["estimates"]["cutover_minutes"] > planned["max_downtime_minutes"]:
            warnings.append(
                f"{sid}: estimated cutover {planned['estimates']['cutover_minutes']} min exceeds "
                f"max_downtime_minutes {planned['max_downtime_minutes']}")
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "kind": "migrate.plan",
        "estate": estate.settings.estate,
        "inputs": {"migrate.yaml": estate.settings_doc.digest, "systems": estate.digests()},
        "as_of": census.as_of.isoformat(),
        "cloud": {
            "target": estate.settings.cloud.target,
            "protection_level": estate.settings.cloud.protection_level,
            "openstack": openstack_settings(estate),
        },
        "assumptions": asdict(assumptions),
        "waves": [{"number": n, "systems": [s for s in migrating if waves[s] == n]}
                  for n in sorted(set(waves.values()))],
        "networks": [networks[key] for key in sorted(networks)],
        "systems": systems,
        "not_planned": [
            {"id": v.system_id, "disposition": v.disposition,
             "reasons": [str(r) for r in v.reasons], "merge_into": v.merge_into}
            for v in census.verdicts.values() if v.disposition != "migrate"
        ],
        "warnings": sorted(warnings),
    }


# Settings the plan's cloud.openstack records only when migrate.yaml sets them: what they
# give is planned where it acts (each system's egress rules), and plans made before they
# existed keep their bytes.
RECORDED_WHEN_SET = ("metadata_service", "dns_servers", "ntp_servers")


def openstack_settings(estate: Estate) -> dict | None:
    """cloud.openstack as the plan records it; unset optional settings stay out: a plan
    changes only when a setting does."""
    settings = estate.settings.cloud.openstack
    if settings is None:
        return None
    unset = {name for name in RECORDED_WHEN_SET if name not in settings.model_fields_set}
    return settings.model_dump(exclude_none=True, exclude=unset)


def render_plan(plan: dict) -> str:
    return orjson.dumps(plan, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def plan_digest(plan: dict) -> str:
    """The digest of the plan's text as plan.json holds it (the journal's ``plan`` entries)."""
    return digest_bytes(render_plan(plan).encode("utf-8"))


def endpoint_of(system: SystemManifest, planned: dict, side: str = "target") -> tuple[str, str]:
    """Base URL and health path of the system's service on its target instance (or, with
    ``side="source"``, on the source host it runs on before the cutover): the service the
    first catalogue interface names, else the first declared service."""
    services = {s["name"]: s for s in planned["services"]}
    if not services:
        raise ValueError(f"{system.id} declares no service to register as its endpoint")
    interfaces = [r.interface.service for r in (system.exchange.resources if system.exchange
                                                else []) if r.interface]
    service = services.get(interfaces[0]) if interfaces else None
    service = service or services[system.workload.services[0].name]
    if side == "source":
        address = next(h["address"] for h in planned["source_hosts"]
                       if h["name"] == service["source_host"])
    else:
        address = next(i["address"] for i in planned["instances"]
                       if i["name"] == service["instance"])
    return f"http://{address}:{service['port']}", service["health"] or "/health"


# ---------------------------------------------------------------- waves


def _missing_sections(estate: Estate, migrating: list[str]) -> list[Problem]:
    problems = []
    for sid in migrating:
        system, doc = estate.systems[sid], estate.documents[sid]
        if system.target is None:
            problems.append(doc.problem(("target",), "required: the census migrates this system",
                                        "declare the zone, instances and flows on the cloud"))
        if system.exchange is None:
            problems.append(doc.problem(("exchange",), "required: every system that moves "
                                        "connects to the data sharing and exchange platform",
                                        "declare app_key, app_secret and the catalogue resources"))
    return problems


def _dependency_edges(
    estate: Estate, census: CensusResult, migrating: list[str]
) -> tuple[dict[str, set[str]], list[str]]:
    """Dependencies among migrating systems; one on a merged system follows it to its survivor."""
    edges: dict[str, set[str]] = {sid: set() for sid in migrating}
    warnings = []
    for sid in migrating:
        for dep in estate.systems[sid].depends_on:
            verdict = census.verdicts[dep]
            if verdict.disposition == "migrate":
                edges[sid].add(dep)
            elif verdict.disposition == "merge" and verdict.merge_into:
                warnings.append(f"{sid}: depends on {dep}, which is merged into "
                                f"{verdict.merge_into}; planned after {verdict.merge_into}")
                if verdict.merge_into != sid:
                    edges[sid].add(verdict.merge_into)
            else:
                warnings.append(f"{sid}: depends on {dep}, which does not move "
                                f"({verdict.disposition}); re-point that dependency")
    return edges, warnings


def _cycles_after_merges(estate: Estate, edges: dict[str, set[str]]) -> list[Problem]:
    problems = []
    for cycle in dependency_cycles({s: sorted(d) for s, d in edges.items()}):
        doc = estate.documents[cycle[0]]
        problems.append(doc.problem(("depends_on",), "dependency cycle once merged systems are "
                                    f"replaced by their survivors: {', '.join(cycle)}",
                                    "re-point depends_on to systems that move"))
    return problems


def assign_waves(systems: Iterable[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Wave 1 has no dependencies; every other system moves one wave after its latest one."""
    waves: dict[str, int] = {}

    def wave_of(sid: str) -> int:
        if sid not in waves:
            waves[sid] = 1 + max((wave_of(d) for d in sorted(edges[sid])), default=0)
        return waves[sid]

    for sid in sorted(systems):
        wave_of(sid)
    return waves


# ---------------------------------------------------------------- addresses


def allocate(keys: Iterable[str], first: int, count: int, previous: dict[str, int]) -> dict:
    """Give each key a slot in [first, first+count): kept from ``previous`` when valid there,
    otherwise hashed, probing to the next free slot."""
    keys = sorted(set(keys))
    result: dict[str, int] = {}
    taken: set[int] = set()
    for key in keys:
        slot = previous.get(key)
        if slot is not None and first <= slot < first + count and slot not in taken:
            result[key] = slot
            taken.add(slot)
    for key in keys:
        if key in result:
            continue
        start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % count
        for probe in range(count):
            slot = first + (start + probe) % count
            if slot not in taken:
                result[key] = slot
                taken.add(slot)
                break
        else:
            raise InvalidInput([], f"no free address slot left for {key}")
    return result


def _previous_networks(previous: dict | None) -> dict[str, int]:
    if not previous:
        return {}
    return {n["key"]: n["slot"] for n in previous.get("networks", [])}


def _previous_addresses(previous: dict | None) -> dict[str, int]:
    if not previous:
        return {}
    return {f"{s['id']}/{i['name']}": i["host_number"]
            for s in previous.get("systems", []) for i in s["instances"]}


def network_key(department: str, zone: str) -> str:
    return f"{department}-{zone}"


def plan_networks(estate: Estate, migrating: list[str], previous: dict[str, int]) -> dict:
    """One network and subnet per department and zone; subnet 0 of each zone stays reserved."""
    cloud = estate.settings.cloud
    by_zone: dict[str, set[str]] = {}
    departments: dict[str, str] = {}
    for sid in migrating:
        system = estate.systems[sid]
        assert system.target is not None
        by_zone.setdefault(system.target.zone, set()).add(system.department.code)
        departments[system.department.code] = system.department.name
    networks = {}
    for zone, codes in sorted(by_zone.items()):
        zone_net = ipaddress.IPv4Network(cloud.zones[zone].cidr)
        count = 2 ** (cloud.subnet_prefix - zone_net.prefixlen) - 1
        keys = {network_key(code, zone): code for code in codes}
        if len(keys) > count:
            raise InvalidInput([estate.settings_doc.problem(
                ("cloud", "zones", zone, "cidr"),
                f"{zone_net} holds {count} department subnets, {len(keys)} are needed",
                "use a larger zone or a longer cloud.subnet_prefix")])
        slots = allocate(keys, 1, count, {k: v for k, v in previous.items() if k in keys})
        subnets = list(zone_net.subnets(new_prefix=cloud.subnet_prefix))
        for key, code in keys.items():
            subnet = subnets[slots[key]]
            networks[key] = {
                "key": key,
                "name": f"net-{key}",
                "department": {"code": code, "name": departments[code]},
                "zone": zone,
                "slot": slots[key],
                "cidr": str(subnet),
                "gateway": str(subnet.network_address + 1),
            }
    return networks


def host_range(cidr: str) -> tuple[int, int]:
    """First host number and count of host numbers given to instances in a subnet."""
    size = ipaddress.IPv4Network(cidr).num_addresses
    if size >= 64:
        return 10, size - 16
    return 2, size - 4


def plan_addresses(
    estate: Estate, migrating: list[str], networks: dict, previous: dict[str, int]
) -> dict[str, tuple[str, int]]:
    members: dict[str, list[str]] = {}
    for sid in migrating:
        system = estate.systems[sid]
        assert system.target is not None
        key = network_key(system.department.code, system.target.zone)
        members.setdefault(key, []).extend(f"{sid}/{i.name}" for i in system.target.instances)
    addresses = {}
    for key, names in sorted(members.items()):
        subnet = ipaddress.IPv4Network(networks[key]["cidr"])
        first, count = host_range(networks[key]["cidr"])
        if len(names) > count:
            raise InvalidInput([], f"network {key} holds {count} instances, {len(names)} planned")
        slots = allocate(names, first, count, {n: previous[n] for n in names if n in previous})
        for name, number in slots.items():
            addresses[name] = (str(subnet.network_address + number), number)
    return addresses


# ---------------------------------------------------------------- one system


def smallest_flavor(flavors: Iterable[Flavor], instance: Instance) -> Flavor:
    fitting = [f for f in flavors if f.vcpu >= instance.vcpu and f.memory_gb >= instance.memory_gb]
    return min(fitting, key=lambda f: (f.vcpu, f.memory_gb, f.name))


def plan_system(
    estate: Estate,
    system: SystemManifest,
    networks: dict,
    addresses: dict[str, tuple[str, int]],
    assumptions: Assumptions,
) -> dict:
    assert system.target is not None and system.exchange is not None
    cloud = estate.settings.cloud
    network = networks[network_key(system.department.code, system.target.zone)]
    encrypted = system.protection_level >= 3
    planned_addresses = {i.name: addresses[f"{system.id}/{i.name}"][0]
                         for i in system.target.instances}
    instances = []
    for instance in system.target.instances:
        address, number = addresses[f"{system.id}/{instance.name}"]
        flavor = smallest_flavor(cloud.flavors, instance)
        instances.append({
            "name": instance.name,
            "resource_name": f"{system.id}-{instance.name}",
            "replaces": list(instance.replaces),
            "roles": sorted({r for h in instance.replaces for r in system.host(h).roles}),
            "vcpu": instance.vcpu,
            "memory_gb": instance.memory_gb,
            "flavor": flavor.name,
            "image": instance.image,
            "cloud_image": cloud.images[instance.image],
            "address": address,
            "host_number": number,
            "boot_volume": {"size_gb": instance.disk_gb, "encrypted": encrypted},
            "volumes": plan_volumes(system, instance, encrypted, assumptions),
            "security_group": f"sg-{system.id}-{instance.name}",
            "services": [s.name for s in system.workload.services if s.host in instance.replaces],
            **plan_software(system, instance, planned_addresses),
            **plan_floating_ip(estate, system, instance),
        })
    by_host = {h: i["name"] for i in instances for h in i["replaces"]}
    data = plan_data(system, by_host, assumptions)
    return {
        "id": system.id,
        "name": system.name,
        "department": {"code": system.department.code, "name": system.department.name},
        "protection_level": system.protection_level,
        "zone": system.target.zone,
        "network": network["key"],
        "encrypted_at_rest": encrypted,
        "management": {"separate_network": system.protection_level >= 3, "via": "ops"},
        "instances": instances,
        "security_rules": plan_rules(estate, system, instances),
        "source_hosts": [{"name": h.name, "address": h.address, "roles": list(h.roles),
                          "moves_to": by_host[h.name]} for h in system.source.hosts],
        "services": [{"name": s.name, "unit": s.unit, "port": s.port, "health": s.health,
                      "source_host": s.host, "instance": by_host[s.host]}
                     for s in system.workload.services],
        "data": data,
        "estimates": estimate(estate, data, assumptions),
        "max_downtime_minutes": system.cutover.max_downtime_minutes,
        "exchange": {
            "app_key": system.exchange.app_key,
            "resources": [r.code for r in system.exchange.resources],
        },
    }


def plan_software(system: SystemManifest, instance: Instance,
                  addresses: dict[str, str]) -> dict:
    """What prepare_target puts on an instance besides data: the packages, the configuration
    paths of the hosts it replaces and their rewrites, ``new`` rendered to planned addresses."""
    mine = set(instance.replaces)
    return {
        "packages": sorted(set(instance.packages)),
        "configuration": [{"host": c.host, "path": c.path}
                          for c in system.workload.configuration if c.host in mine],
        "rewrites": [{"host": r.host, "file": r.file, "old": r.old,
                      "new": render_placeholders(r.new, addresses)}
                     for r in system.workload.rewrites if r.host in mine],
    }


def plan_floating_ip(estate: Estate, system: SystemManifest, instance: Instance) -> dict:
    """On OpenStack, ``floating_ip``: the network a floating IP comes from for an instance of
    the Internet zone that a flow from ``internet`` reaches, else None; other targets plan
    none (their plans carry no such key)."""
    settings = estate.settings.cloud.openstack
    if estate.settings.cloud.target != "openstack" or settings is None:
        return {}
    assert system.target is not None
    exposed = system.target.zone == "internet" and any(
        flow.from_ == "internet" and flow.to == instance.name for flow in system.target.flows)
    network = settings.floating_network or settings.external_network
    return {"floating_ip": {"network": network} if exposed else None}


def _slug(path: str) -> str:
    return "-".join(part for part in path.strip("/").replace("_", "-").split("/") if part)


def plan_volumes(
    system: SystemManifest, instance: Instance, encrypted: bool, a: Assumptions
) -> list[dict]:
    volumes = []
    for tree in system.workload.files:
        if tree.host in instance.replaces:
            volumes.append({"name": f"data-{_slug(tree.path)}", "mount": tree.path,
                            "size_gb": max(1, math.ceil(tree.size_gb * a.volume_margin)),
                            "encrypted": encrypted, "holds": "files"})
    for engine, (name, mount) in DATA_VOLUMES.items():
        here = [d for d in system.workload.databases
                if d.host in instance.replaces and d.engine == engine]
        if here:
            volumes.append({"name": name, "mount": mount,
                            "size_gb": max(1, math.ceil(sum(d.size_gb for d in here)
                                                        * a.volume_margin)),
                            "encrypted": encrypted, "holds": "databases"})
    return sorted(volumes, key=lambda v: v["name"])


# Each engine's data volume: its name and where the engine keeps its data on Debian.
DATA_VOLUMES = {"postgresql": ("pgdata", "/var/lib/postgresql"),
                "mariadb": ("mysqldata", "/var/lib/mysql")}


def _peer(estate: Estate, system: SystemManifest, instances: list[dict], name: str) -> dict:
    if name == "internet":
        return {"kind": "internet", "cidr": "0.0.0.0/0"}
    if name == "exchange":
        return {"kind": "exchange", "cidr": estate.settings.exchange.network}
    if name == "ops":
        return {"kind": "ops", "cidr": estate.settings.cloud.ops_network}
    found = next(i for i in instances if i["name"] == name)
    return {"kind": "instance", "instance": name, "cidr": f"{found['address']}/32",
            "security_group": found["security_group"]}


POSTGRESQL_PORT = 5432
MARIADB_PORT = 3306
# The source port a target replicating a database reaches, by method: through the
# replication tunnel (the source's ssh to its target), so no rule opens it.
REPLICATION_PORTS = {"logical_replication": POSTGRESQL_PORT, "binlog_replication": MARIADB_PORT}
# the sandbox cloud's package mirror (migrate.rehearsal.sandbox.mirror.PORT)
SANDBOX_MIRROR_PORT = 3142


def package_mirror_peer(estate: Estate) -> tuple[dict, int]:
    """The peer and port of the egress rule to the cloud's package mirror: the address of
    cloud.packages.mirror (or cloud.packages.network); on the sandbox the host's own mirror,
    whose address the sandbox resolves (cidr None)."""
    packages = estate.settings.cloud.packages
    if packages is None:
        return {"kind": "package_mirror", "cidr": None}, SANDBOX_MIRROR_PORT
    url = urlsplit(packages.mirror)
    port = url.port or (443 if url.scheme == "https" else 80)
    cidr = packages.network
    if cidr is None:
        with suppress(ValueError):
            cidr = f"{ipaddress.IPv4Address(url.hostname or '')}/32"
    return {"kind": "package_mirror", "cidr": cidr}, port


METADATA_SERVICE = "169.254.169.254"  # nova's metadata service, link-local on every instance


def cloud_service_rules(estate: Estate, instance: str) -> list[dict]:
    """The egress an OpenStack instance needs from its own cloud, as cloud.openstack says
    the cloud gives it: the metadata service (origin ``metadata``; none on a cloud of config
    drives), the resolvers on udp and tcp 53 (``dns``), the time servers on udp 123
    (``ntp``). None on other targets."""
    settings = estate.settings.cloud.openstack
    if estate.settings.cloud.target != "openstack" or settings is None:
        return []
    needs = [("tcp", 80, "metadata_service", METADATA_SERVICE, "metadata")] \
        if settings.metadata_service else []
    needs += [(protocol, 53, "dns_server", server, "dns")
              for server in settings.dns_servers for protocol in ("udp", "tcp")]
    needs += [("udp", 123, "ntp_server", server, "ntp") for server in settings.ntp_servers]
    return [{"instance": instance, "direction": "egress", "protocol": protocol, "port": port,
             "peer": {"kind": kind, "cidr": f"{address}/32"}, "origin": origin,
             "temporary": False}
            for protocol, port, kind, address, origin in needs]


def plan_rules(estate: Estate, system: SystemManifest, instances: list[dict]) -> list[dict]:
    """Security group rules, default deny: the declared flows, plus management ssh from ops,
    platform access for interconnection, temporary ssh from the source hosts to move data
    (a replicated database's connection too: the replication tunnel, so no database port is
    opened between a source and its target), and on OpenStack what an instance needs from
    its cloud (``cloud_service_rules``)."""
    assert system.target is not None
    rules = []
    for index, flow in enumerate(system.target.flows):
        if flow.to not in FLOW_PEERS:
            rules.append({"instance": flow.to, "direction": "ingress", "protocol": flow.protocol,
                          "port": flow.port, "peer": _peer(estate, system, instances, flow.from_),
                          "origin": f"target.flows[{index}]", "temporary": False})
        if flow.from_ not in FLOW_PEERS:
            rules.append({"instance": flow.from_, "direction": "egress",
                          "protocol": flow.protocol, "port": flow.port,
                          "peer": _peer(estate, system, instances, flow.to),
                          "origin": f"target.flows[{index}]", "temporary": False})
    hosts = {h.name: h.address for h in system.source.hosts}
    for instance in instances:
        name = instance["name"]
        rules.append({"instance": name, "direction": "ingress", "protocol": "tcp", "port": 22,
                      "peer": _peer(estate, system, instances, "ops"),
                      "origin": "management", "temporary": False})
        rules.append({"instance": name, "direction": "egress", "protocol": "tcp", "port": 443,
                      "peer": _peer(estate, system, instances, "exchange"),
                      "origin": "interconnection", "temporary": False})
        for host in instance["replaces"]:
            rules.append({"instance": name, "direction": "ingress", "protocol": "tcp",
                          "port": 22, "peer": {"kind": "source_host", "host": host,
                                               "cidr": f"{hosts[host]}/32"},
                          "origin": "migration", "temporary": True})
    mirror, mirror_port = package_mirror_peer(estate)
    for instance in instances:
        if instance["packages"]:
            rules.append({"instance": instance["name"], "direction": "egress", "protocol": "tcp",
                          "port": mirror_port, "peer": mirror, "origin": "packages",
                          "temporary": False})
    for instance in instances:
        rules += cloud_service_rules(estate, instance["name"])
    unique = {_rule_key(r): r for r in rules}
    return [unique[k] for k in sorted(unique)]


def _rule_key(rule: dict) -> tuple:
    peer = tuple(sorted((k, str(v)) for k, v in rule["peer"].items()))
    return (rule["instance"], rule["direction"], rule["protocol"], rule["port"], peer,
            rule["origin"], rule["temporary"])


def plan_data(system: SystemManifest, by_host: dict[str, str], a: Assumptions) -> dict:
    files = [{"host": t.host, "path": t.path, "size_gb": t.size_gb,
              "daily_change_gb": t.daily_change_gb, "instance": by_host[t.host]}
             for t in system.workload.files]
    databases = []
    for d in system.workload.databases:
        change = d.daily_change_gb
        if change is None:
            change = round(d.size_gb * a.default_db_daily_change_ratio, 3)
        databases.append({"host": d.host, "engine": d.engine, "name": d.name,
                          "user": d.user or d.name, "size_gb": d.size_gb,
                          "daily_change_gb": change, "instance": by_host[d.host],
                          "method": database_method(d, a),
                          "volatile_tables": sorted({t if "." in t
                                                     else f"{default_schema(d)}.{t}"
                                                     for t in d.volatile_tables})})
    total = sum(f["size_gb"] for f in files) + sum(d["size_gb"] for d in databases)
    return {"files": files, "databases": databases, "total_gb": round(total, 3)}


def database_method(database: Database, a: Assumptions) -> str:
    """``final_dump`` up to dump_restore_max_gb, else kept in step by replication until the
    cutover: PostgreSQL's ``logical_replication``, MariaDB's ``binlog_replication`` (its
    binlog read by the target as a replica, from the GTID position of a consistent dump)."""
    if database.size_gb <= a.dump_restore_max_gb:
        return "final_dump"
    return REPLICATION_METHODS[database.engine]


# How each engine keeps a database larger than dump_restore_max_gb in step until the cutover.
REPLICATION_METHODS = {"postgresql": "logical_replication", "mariadb": "binlog_replication"}


def default_schema(database: Database) -> str:
    """The schema of an unqualified table name: PostgreSQL's ``public``, MariaDB's database."""
    return database.name if database.engine == "mariadb" else "public"


def _transfer_seconds(gigabytes: float, bandwidth_mbps: float) -> float:
    return gigabytes * 8000 / bandwidth_mbps


def estimate(estate: Estate, data: dict, a: Assumptions) -> dict:
    bandwidth = estate.settings.transfer.bandwidth_mbps
    share = estate.settings.transfer.incremental_interval_hours / 24
    initial = sum(_transfer_seconds(f["size_gb"], bandwidth) for f in data["files"])
    cutover = float(a.service_switch_seconds)
    cutover += sum(_transfer_seconds(f["daily_change_gb"] * share, bandwidth)
                   for f in data["files"])
    for db in data["databases"]:
        restore = db["size_gb"] / a.db_restore_gb_per_hour * 3600
        initial += _transfer_seconds(db["size_gb"], bandwidth) + restore
        if db["method"] == "final_dump":
            cutover += _transfer_seconds(db["size_gb"], bandwidth) + restore
        else:
            cutover += a.replication_switch_seconds
            cutover += _transfer_seconds(db["daily_change_gb"] * share, bandwidth)
    return {
        "initial_copy_minutes": math.ceil(initial / 60),
        "cutover_minutes": math.ceil(cutover / 60),
        "bandwidth_mbps": bandwidth,
    }


# ---------------------------------------------------------------- what changed


def plan_substance(plan: dict) -> dict:
    """What provisioning and the moving stages act on: the plan without its census date,
    the digests of the files it was made from, the estate's title, its warnings and the
    wording of the census reasons (which name ages that grow every day). Two plans with
    the same substance build and move the same things."""
    return {**{k: v for k, v in plan.items()
               if k not in ("as_of", "inputs", "estate", "warnings", "not_planned")},
            "not_planned": sorted((n["id"], n["disposition"], n["merge_into"] or "")
                                  for n in plan.get("not_planned", []))}


def plan_changes(old: dict, new: dict, limit: int = 20) -> list[str]:
    """What differs between two plans' substance, one short line each (at most ``limit``)."""
    lines: list[str] = []
    for key, label in (("schema_version", "schema version"), ("cloud", "cloud settings"),
                       ("assumptions", "estimating assumptions")):
        if old.get(key) != new.get(key):
            lines.append(f"{label}: {_fields_changed(old.get(key), new.get(key))}")
    before = {s["id"]: s for s in old.get("systems", [])}
    after = {s["id"]: s for s in new.get("systems", [])}
    why = {n["id"]: n["disposition"] for n in new.get("not_planned", [])}
    if added := sorted(after.keys() - before.keys()):
        lines.append(f"systems added: {', '.join(added)}")
    if removed := sorted(before.keys() - after.keys()):
        lines.append("systems removed: " + ", ".join(
            f"{sid} (now {why[sid]})" if sid in why else sid for sid in removed))
    for sid in sorted(before.keys() & after.keys()):
        lines += [f"{sid}: {text}" for text in _system_changes(before[sid], after[sid])]
    lines += _network_changes(old.get("networks", []), new.get("networks", []))
    was = {n["id"]: n["disposition"] for n in old.get("not_planned", [])}
    lines += [f"{sid}: {was[sid]} -> {why[sid]}" for sid in sorted(was.keys() & why.keys())
              if was[sid] != why[sid]]
    if not lines and plan_substance(old) != plan_substance(new):
        lines.append("not planned: merge targets changed")
    if len(lines) > limit:
        lines = [*lines[:limit - 1], f"... and {len(lines) - limit + 1} more"]
    return lines


def _fields_changed(old: object, new: object) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return ", ".join(f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys)
    return f"{_short(old)} -> {_short(new)}"


def _short(value: object) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _system_changes(old: dict, new: dict) -> list[str]:
    lines = []
    if old.get("wave") != new.get("wave"):
        lines.append(f"wave {old.get('wave')} -> {new.get('wave')}")
    before = {i["name"]: i for i in old.get("instances", [])}
    after = {i["name"]: i for i in new.get("instances", [])}
    if added := sorted(after.keys() - before.keys()):
        lines.append("instances added: " + ", ".join(
            f"{n} ({after[n]['flavor']} at {after[n]['address']})" for n in added))
    if removed := sorted(before.keys() - after.keys()):
        lines.append(f"instances removed: {', '.join(removed)}")
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        for key in ("address", "flavor", "image", "cloud_image", "vcpu", "memory_gb"):
            if a.get(key) != b.get(key):
                lines.append(f"instance {name} {key} {a.get(key)} -> {b.get(key)}")
        other = sorted(k for k in a.keys() | b.keys()
                       if k not in ("address", "flavor", "image", "cloud_image", "vcpu",
                                    "memory_gb", "host_number") and a.get(k) != b.get(k))
        if other:
            lines.append(f"instance {name} {', '.join(other).replace('_', ' ')} changed")
    rules_before = {_rule_text(r) for r in old.get("security_rules", [])}
    rules_after = {_rule_text(r) for r in new.get("security_rules", [])}
    lines += [f"rule added: {r}" for r in sorted(rules_after - rules_before)]
    lines += [f"rule removed: {r}" for r in sorted(rules_before - rules_after)]
    rest = sorted(k for k in old.keys() | new.keys()
                  if k not in ("wave", "instances", "security_rules") and
                  old.get(k) != new.get(k))
    if rest:
        lines.append(f"{', '.join(rest).replace('_', ' ')} changed")
    return lines


def _rule_text(rule: dict) -> str:
    peer = rule["peer"]
    who = peer.get("instance") or peer.get("host") or peer["kind"]
    where = f" {peer['cidr']}" if peer.get("cidr") else ""
    side = "from" if rule["direction"] == "ingress" else "to"
    return (f"{rule['instance']} {rule['direction']} {rule['protocol']}/{rule['port']} "
            f"{side} {who}{where}")


def _network_changes(old: list[dict], new: list[dict]) -> list[str]:
    before, after = {n["key"]: n for n in old}, {n["key"]: n for n in new}
    lines = []
    if added := sorted(after.keys() - before.keys()):
        lines.append("networks added: " + ", ".join(f"{k} ({after[k]['cidr']})" for k in added))
    if removed := sorted(before.keys() - after.keys()):
        lines.append(f"networks removed: {', '.join(removed)}")
    lines += [f"network {k} cidr {before[k]['cidr']} -> {after[k]['cidr']}"
              for k in sorted(before.keys() & after.keys())
              if before[k]["cidr"] != after[k]["cidr"]]
    lines += [f"network {k} changed" for k in sorted(before.keys() & after.keys())
              if before[k]["cidr"] == after[k]["cidr"] and before[k] != after[k]]
    return lines
