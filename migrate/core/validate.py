"""Checks that need more than one field or more than one file.

``check_estate`` returns every problem at once; ``validate_estate`` raises one InvalidInput
carrying them all. Warnings (a missing secret file, say) are kept on the estate: they do not
stop planning but stages that need the thing refuse later.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import stat
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from migrate.core import safety
from migrate.core.errors import InvalidInput, Problem
from migrate.core.loader import Estate, format_loc, load_estate_partially
from migrate.core.model import (
    FLOW_PEERS,
    ConfigurationPath,
    FileTree,
    SystemManifest,
    placeholder_names,
)
from migrate.core.state import secret_name, secrets_dir


def validate_estate(path: str | Path) -> Estate:
    """Load and check an estate folder; raise one InvalidInput with every problem found."""
    loaded = load_estate_partially(path)
    errors = list(loaded.problems)
    warnings: list[Problem] = []
    if loaded.estate is not None:
        more, warnings = check_estate(loaded.estate, loaded.unloaded_ids)
        errors += more
    if errors or loaded.estate is None:
        raise InvalidInput(errors)
    loaded.estate.warnings = warnings
    return loaded.estate


def check_estate(
    estate: Estate, unloaded_ids: set[str] = frozenset()
) -> tuple[list[Problem], list[Problem]]:
    """Cross-field and cross-file checks; ``unloaded_ids`` are systems whose files had problems
    of their own: references to them are not reported again."""
    errors: list[Problem] = []
    errors += check_settings(estate)
    for system in estate.systems.values():
        errors += check_system(estate, system)
    errors += check_references(estate, unloaded_ids)
    errors += check_dependency_cycles(estate)
    errors += check_unique_source_addresses(estate)
    errors += check_unique_resource_codes(estate)
    warnings = list(check_secret_files(estate)) + list(check_ca_bundle(estate))
    return sorted(errors), sorted(warnings)


# ---------------------------------------------------------------- migrate.yaml


def check_settings(estate: Estate) -> list[Problem]:
    doc, cloud = estate.settings_doc, estate.settings.cloud
    problems = []
    if cloud.target == "openstack":
        if cloud.openstack is None:
            problems.append(doc.problem(("cloud", "openstack"), "required when cloud.target is "
                                        "openstack", "name the clouds.yaml entry and external "
                                        "network"))
        for loc, value in ((("cloud", "ops_network"), cloud.ops_network),
                           (("exchange", "network"), estate.settings.exchange.network)):
            if value is None:
                problems.append(doc.problem(loc, "required when cloud.target is openstack",
                                            "security group rules to the management network "
                                            "and the exchange platform need its CIDR"))
    if cloud.target == "sandbox" and cloud.packages is not None:
        problems.append(doc.problem(("cloud", "packages"), "not used when cloud.target is "
                                    "sandbox: the sandbox runs the cloud's package mirror on "
                                    "this host", "leave cloud.packages out for the sandbox"))
    networks = [(("cloud", "zones", name, "cidr"), ipaddress.IPv4Network(z.cidr))
                for name, z in cloud.zones.items()]
    if cloud.ops_network:
        networks.append((("cloud", "ops_network"), ipaddress.IPv4Network(cloud.ops_network)))
    if estate.settings.exchange.network:
        networks.append((("exchange", "network"),
                         ipaddress.IPv4Network(estate.settings.exchange.network)))
    for (loc_a, net_a), (loc_b, net_b) in itertools.combinations(networks, 2):
        if net_a.overlaps(net_b):
            problems.append(doc.problem(loc_b, f"{net_b} overlaps {format_loc(loc_a)} ({net_a})",
                                        "cloud zones and networks need disjoint address space"))
    for name, zone in cloud.zones.items():
        net = ipaddress.IPv4Network(zone.cidr)
        if net.prefixlen > cloud.subnet_prefix:
            problems.append(doc.problem(
                ("cloud", "zones", name, "cidr"),
                f"{net} is smaller than one department subnet (/{cloud.subnet_prefix})",
                "use a larger zone or a larger cloud.subnet_prefix"))
    flavor_names = [f.name for f in cloud.flavors]
    for index, name in enumerate(flavor_names):
        if name in flavor_names[:index]:
            problems.append(doc.problem(("cloud", "flavors", index, "name"),
                                        f"flavor '{name}' is listed twice"))
    return problems


# ---------------------------------------------------------------- one system


def check_system(estate: Estate, system: SystemManifest) -> list[Problem]:
    doc = estate.documents[system.id]
    problems: list[Problem] = []
    problems += _duplicates(doc, ("source", "hosts"), [h.name for h in system.source.hosts],
                            "source host")
    problems += _duplicates(doc, ("workload", "services"),
                            [s.name for s in system.workload.services], "service")
    hosts = {h.name for h in system.source.hosts}
    for kind in ("services", "files", "databases", "configuration", "rewrites"):
        for index, item in enumerate(getattr(system.workload, kind)):
            if item.host not in hosts:
                problems.append(doc.problem(
                    ("workload", kind, index, "host"),
                    f"unknown source host '{item.host}'",
                    f"source.hosts names: {', '.join(sorted(hosts))}"))
    problems += check_rewrites(estate, system)
    problems += check_overlapping_trees(estate, system)
    problems += check_packages(estate, system)
    if system.target is not None:
        problems += check_target(estate, system)
    if system.exchange is not None:
        problems += check_exchange(estate, system)
    if system.census.replaceable_by == system.id:
        problems.append(doc.problem(("census", "replaceable_by"), "a system cannot replace itself"))
    if system.id in system.census.duplicates:
        problems.append(doc.problem(("census", "duplicates"), "a system cannot duplicate itself"))
    return problems


def under_path(file: str, path: str) -> bool:
    """Whether ``file`` is the configuration path ``path`` or lies in it."""
    folder = path.rstrip("/")
    return file == folder or file.startswith(f"{folder}/")


def check_overlapping_trees(estate: Estate, system: SystemManifest) -> list[Problem]:
    """No files path lies in (or around) another files or configuration path bound for the
    same place: rsync makes each tree the same as its source, so one copy would delete or
    overwrite what the other brought (two source hosts replaced by one instance included).
    Configuration paths may nest among themselves (a file and its folder are copied alike),
    and a configuration path may lie in a files tree of its own host (an application's
    settings in its web root: the same bytes either way, and a rewritten file is left out
    of the tree's copy)."""
    doc = estate.documents[system.id]
    place = _destination_of(system)
    trees = [(kind, index, item) for kind in ("files", "configuration")
             for index, item in enumerate(getattr(system.workload, kind))]
    problems: list[Problem] = []
    for position, (kind, index, item) in enumerate(trees):
        for other_kind, other_index, other in trees[:position]:
            if (other_kind == "files" and place(other.host) == place(item.host)
                    and safety.overlap(item.path, other.path)
                    and not _settings_in_own_tree(kind, item, other)):
                problems.append(doc.problem(
                    ("workload", kind, index, "path"),
                    f"{item.path} overlaps workload.{other_kind}[{other_index}].path "
                    f"({other.path}) on the same target",
                    "each tree is copied on its own: declare the outer folder once, or folders "
                    "that do not contain each other"))
                break
    return problems


def _settings_in_own_tree(kind: str, item: FileTree | ConfigurationPath,
                          tree: FileTree) -> bool:
    return (kind == "configuration" and item.host == tree.host
            and safety.within(item.path, tree.path) and not safety.within(tree.path, item.path))


def _destination_of(system: SystemManifest) -> Callable[[str], str]:
    """Where a source host's trees land: the instance replacing it, else the host itself."""
    instance_of = {host: f"instance {instance.name}" for instance in
                   (system.target.instances if system.target else [])
                   for host in instance.replaces}
    return lambda host: instance_of.get(host, f"host {host}")


def check_packages(estate: Estate, system: SystemManifest) -> list[Problem]:
    """Packages need a mirror the targets may reach: on openstack cloud.packages, with an
    address for the security group rule."""
    cloud = estate.settings.cloud
    if cloud.target != "openstack" or system.target is None:
        return []
    declared = [i for i, inst in enumerate(system.target.instances) if inst.packages]
    if not declared:
        return []
    loc = ("target", "instances", declared[0], "packages")
    doc = estate.documents[system.id]
    if cloud.packages is None:
        return [doc.problem(loc, "packages need the cloud's package mirror",
                            "set cloud.packages.mirror in migrate.yaml")]
    host = urlsplit(cloud.packages.mirror).hostname or ""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if cloud.packages.network is None:
            return [doc.problem(loc, f"the package mirror {host} has no address for the "
                                     "targets' egress rule",
                                "set cloud.packages.network in migrate.yaml")]
    return []


def check_rewrites(estate: Estate, system: SystemManifest) -> list[Problem]:
    """Each rewrite's file is copied (under a configuration path of its host) and its
    placeholders name target instances."""
    doc = estate.documents[system.id]
    instances = sorted(i.name for i in system.target.instances) if system.target else []
    problems: list[Problem] = []
    for index, rewrite in enumerate(system.workload.rewrites):
        loc = ("workload", "rewrites", index)
        paths = [c.path for c in system.workload.configuration if c.host == rewrite.host]
        if not any(under_path(rewrite.file, path) for path in paths):
            problems.append(doc.problem(
                (*loc, "file"), f"{rewrite.file} is not under a configuration path of host "
                f"'{rewrite.host}'", "declare the file or its folder in workload.configuration "
                f"with host {rewrite.host}" + (f" (it has: {', '.join(paths)})" if paths else "")))
        for name in placeholder_names(rewrite.new):
            if name not in instances:
                problems.append(doc.problem(
                    (*loc, "new"), f"placeholder ${{{name}}} names no target instance",
                    "${NAME} is the planned address of target instance NAME; instances: "
                    + (", ".join(instances) or "none declared")))
    return problems


def check_target(estate: Estate, system: SystemManifest) -> list[Problem]:
    doc, target, cloud = estate.documents[system.id], system.target, estate.settings.cloud
    assert target is not None
    problems: list[Problem] = []
    if target.zone not in cloud.zones:
        problems.append(doc.problem(("target", "zone"),
                                    f"zone '{target.zone}' has no address space in migrate.yaml",
                                    f"cloud.zones has: {', '.join(sorted(cloud.zones))}"))
    names = [i.name for i in target.instances]
    problems += _duplicates(doc, ("target", "instances"), names, "instance")
    hosts = {h.name for h in system.source.hosts}
    replaced: dict[str, int] = {}
    for index, instance in enumerate(target.instances):
        loc = ("target", "instances", index)
        for r_index, host in enumerate(instance.replaces):
            if host not in hosts:
                problems.append(doc.problem((*loc, "replaces", r_index),
                                            f"unknown source host '{host}'",
                                            f"source.hosts names: {', '.join(sorted(hosts))}"))
            elif host in replaced:
                problems.append(doc.problem(
                    (*loc, "replaces", r_index),
                    f"source host '{host}' is already replaced by instance "
                    f"{names[replaced[host]]!r}", "each source host moves to one instance"))
            else:
                replaced[host] = index
        if instance.image not in cloud.images:
            problems.append(doc.problem((*loc, "image"), f"unknown image '{instance.image}'",
                                        f"cloud.images has: {', '.join(sorted(cloud.images))}"))
        if not any(f.vcpu >= instance.vcpu and f.memory_gb >= instance.memory_gb
                   for f in cloud.flavors):
            problems.append(doc.problem(
                (*loc, "vcpu"),
                f"no flavor fits {instance.vcpu} vCPU / {instance.memory_gb:g} GB",
                "add a larger flavor to cloud.flavors or shrink the instance"))
    unreplaced = sorted(hosts - set(replaced))
    if unreplaced:
        problems.append(doc.problem(("target", "instances"),
                                    f"source host(s) {', '.join(unreplaced)} not replaced by any "
                                    "instance", "list each source host in one instance's replaces"))
    valid = sorted(set(names) | set(FLOW_PEERS))
    for index, flow in enumerate(target.flows):
        loc = ("target", "flows", index)
        for key, value in (("from", flow.from_), ("to", flow.to)):
            if value not in valid:
                problems.append(doc.problem((*loc, key), f"unknown flow endpoint '{value}'",
                                            f"an instance or one of: {', '.join(valid)}"))
        if flow.to in FLOW_PEERS and flow.from_ in FLOW_PEERS:
            problems.append(doc.problem(loc, "a flow must start or end at an instance"))
        if flow.from_ == "internet" and target.zone != "internet":
            problems.append(doc.problem(
                (*loc, "from"),
                f"port {flow.port} opened to 'internet' in zone '{target.zone}'",
                "only zone 'internet' may take traffic from the Internet; put the front end "
                "in zone internet or remove the flow"))
    return problems


def check_exchange(estate: Estate, system: SystemManifest) -> list[Problem]:
    doc, exchange = estate.documents[system.id], system.exchange
    assert exchange is not None
    services = {s.name for s in system.workload.services}
    problems: list[Problem] = []
    for index, resource in enumerate(exchange.resources):
        loc = ("exchange", "resources", index)
        if resource.share_type == "conditional" and not resource.share_condition:
            problems.append(doc.problem((*loc, "share_condition"),
                                        "required when share_type is conditional",
                                        "say who may use the resource and for what"))
        if resource.interface is None:
            if resource.format == "service_api":
                problems.append(doc.problem((*loc, "interface"),
                                            "required when format is service_api",
                                            "name the service and the path of the API"))
        elif resource.interface.service not in services:
            problems.append(doc.problem((*loc, "interface", "service"),
                                        f"unknown service '{resource.interface.service}'",
                                        f"workload.services names: {', '.join(sorted(services))}"
                                        if services else "declare it in workload.services"))
    return problems


def _duplicates(doc, loc: tuple, names: list[str], what: str) -> list[Problem]:
    problems = []
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append(doc.problem((*loc, index, "name"), f"{what} '{name}' is declared twice",
                                        f"{what} names must be unique within the system"))
    return problems


# ---------------------------------------------------------------- across files


def check_references(estate: Estate, unloaded_ids: set[str]) -> list[Problem]:
    ids = set(estate.systems) | set(unloaded_ids)
    problems: list[Problem] = []
    for system in estate.systems.values():
        doc = estate.documents[system.id]
        refs = [(("depends_on", i), ref) for i, ref in enumerate(system.depends_on)]
        refs += [(("census", "duplicates", i), ref)
                 for i, ref in enumerate(system.census.duplicates)]
        if system.census.replaceable_by:
            refs.append((("census", "replaceable_by"), system.census.replaceable_by))
        for loc, ref in refs:
            if ref not in ids:
                problems.append(doc.problem(loc, f"unknown system '{ref}'",
                                            _closest_ids(ref, ids)))
    return problems


def _closest_ids(ref: str, ids: set[str]) -> str:
    close = difflib.get_close_matches(ref, sorted(ids), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "no system in the estate has this id"


def dependency_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that form cycles (Tarjan), each sorted, in id order."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = itertools.count()

    def visit(node: str) -> None:
        index_of[node] = low[node] = next(counter)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, []):
            if succ not in graph:
                continue
            if succ not in index_of:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index_of[succ])
        if low[node] == index_of[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, []):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index_of:
            visit(node)
    return sorted(cycles)


def check_dependency_cycles(estate: Estate) -> list[Problem]:
    graph = {sid: list(s.depends_on) for sid, s in estate.systems.items()}
    problems = []
    for cycle in dependency_cycles(graph):
        first = cycle[0]
        doc = estate.documents[first]
        index = next(i for i, d in enumerate(estate.systems[first].depends_on) if d in cycle)
        problems.append(doc.problem(("depends_on", index),
                                    f"dependency cycle between systems: {', '.join(cycle)}",
                                    "a system must move after the systems it depends on; break "
                                    "the cycle by removing one depends_on entry"))
    return problems


def check_unique_source_addresses(estate: Estate) -> list[Problem]:
    owners: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for sid, system in estate.systems.items():
        for index, host in enumerate(system.source.hosts):
            owners[host.address].append((sid, index))
    problems = []
    for address, users in owners.items():
        if len(users) < 2:
            continue
        for sid, index in users:
            others = ", ".join(f"{o}.{estate.systems[o].source.hosts[i].name}"
                               for o, i in users if (o, i) != (sid, index))
            problems.append(estate.documents[sid].problem(
                ("source", "hosts", index, "address"),
                f"address {address} is also used by {others}",
                "each source host has its own address"))
    return problems


def check_unique_resource_codes(estate: Estate) -> list[Problem]:
    owners: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for sid, system in estate.systems.items():
        for index, resource in enumerate(system.exchange.resources if system.exchange else []):
            owners[resource.code].append((sid, index))
    problems = []
    for code, users in owners.items():
        if len(users) < 2:
            continue
        for sid, index in users:
            others = ", ".join(f"{estate.documents[o].display}:"
                               f"{estate.documents[o].line_of(('exchange', 'resources', i))}"
                               for o, i in users if (o, i) != (sid, index))
            problems.append(estate.documents[sid].problem(
                ("exchange", "resources", index, "code"),
                f"catalogue resource code {code} is also registered in {others}",
                "信息资源代码 must be unique in the catalogue"))
    return problems


# ---------------------------------------------------------------- environment (warnings)


def secret_references(system: SystemManifest) -> Iterator[tuple[tuple, str]]:
    yield ("source", "ssh", "key"), system.source.ssh.key
    for index, database in enumerate(system.workload.databases):
        yield ("workload", "databases", index, "password"), database.password
    if system.exchange is not None:
        yield ("exchange", "app_secret"), system.exchange.app_secret


def check_secret_files(estate: Estate) -> Iterator[Problem]:
    """One warning per missing or loose secret file (or one for a missing folder)."""
    folder = secrets_dir(estate)
    if not folder.is_dir():
        yield estate.settings_doc.problem(
            ("secrets", "dir"), f"secrets folder {folder} does not exist yet",
            "create it (mode 0700) with one file per secret:// name before provisioning; "
            "'migrate sandbox up' creates the sandbox's own")
        return
    reported: set[str] = set()
    for sid, system in estate.systems.items():
        for loc, ref in secret_references(system):
            name = secret_name(ref)
            path = folder / name
            if name in reported:
                continue
            reported.add(name)
            doc = estate.documents[sid]
            if not path.is_file():
                yield doc.problem(loc, f"secret file {path} does not exist yet",
                                  "create it (mode 0600) before provisioning")
            elif stat.S_IMODE(path.stat().st_mode) & 0o077:
                yield doc.problem(loc, f"secret file {path} is readable by others",
                                  f"chmod 600 {path}")


def check_ca_bundle(estate: Estate) -> Iterator[Problem]:
    path = estate.root / estate.settings.exchange.ca_bundle
    if not path.is_file():
        yield estate.settings_doc.problem(
            ("exchange", "ca_bundle"), f"CA bundle {path} does not exist yet",
            "needed to verify the exchange platform; 'migrate sandbox up' writes the sandbox CA")
