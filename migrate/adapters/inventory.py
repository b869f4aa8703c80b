"""Ansible inventories of one system's move, generated from the estate, the plan and the
target machines' addresses and host keys. Written per run under ``<state>/runs/<run id>/``
and never edited by hand; ``inventories/`` holds static group_vars only.

Every string in it is data, never a template: each carries Ansible's ``!unsafe`` tag, so a
manifest or a source host cannot have the controller run Jinja (``{{ lookup('pipe', ...) }}``)
when a play reads the value; the extra vars of a run are marked the same way
(``unsafe_extravars``).

Host keys are real: sources from the estate's known_hosts (``access.source_known_hosts``:
migrate.yaml's ``sources.known_hosts``, else the cloud target's; or the file the caller names),
targets from the keys the caller got from the provisioner. Host key checking is strict
and ssh never reads the user's own files.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from migrate.adapters.access import host_key_lines
from migrate.adapters.access import source_known_hosts as source_known_hosts_of
from migrate.core.errors import InvalidInput, StageFailed
from migrate.core.loader import Estate
from migrate.core.plan import POSTGRESQL_PORT, REPLICATION_PORTS
from migrate.targets.context import Context

UNSAFE_TAG = "!unsafe"  # ansible-core reads such a scalar as data it never templates
UNSAFE_JSON_KEY = "__ansible_unsafe"
STR_TAG = "tag:yaml.org,2002:str"  # the same marking in the JSON of extra vars
KNOWN_HOSTS_NAME = "known_hosts"
INVENTORY_NAME = "inventory.yml"
PYTHON = "/usr/bin/python3"
CONTROL_HASH_LENGTH = 40  # ssh's %C
SOCKET_PATH_MAX = 100  # of the 108 bytes, keep room for ssh's temporary suffix


@dataclass(frozen=True)
class Target:
    """One target instance as the provisioner made it."""

    address: str
    host_key: str  # "ssh-ed25519 AAAA..." (type and key; a comment is ignored)


def new_run_id(stage: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{stage}-{secrets.token_hex(3)}"


def make_run_dir(runs_dir: Path, run_id: str) -> Path:
    """``<runs dir>/<run id>/`` (the command's ``Context.runs_dir``), private to the
    operator."""
    folder = runs_dir / run_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder.absolute()


def control_dir(run_dir: Path) -> Path:
    """Where the run's ssh control sockets live: in the run dir when the socket path fits
    the 108 bytes of a unix socket address, else a short private dir named after it."""
    inside = Path(run_dir) / "cp"
    if len(str(inside)) + 1 + CONTROL_HASH_LENGTH < SOCKET_PATH_MAX:
        return inside
    tag = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"migrate-cp-{tag}"


def system_plan(plan: Mapping[str, Any], system_id: str) -> dict:
    for system in plan.get("systems", []):
        if system["id"] == system_id:
            return system
    raise InvalidInput([], f"system {system_id} is not in the plan: it does not migrate")


def as_targets(targets: Mapping[str, Any]) -> dict[str, Target]:
    """Accept ``Target`` objects or ``{"address": ..., "host_key": ...}`` mappings."""
    return {name: t if isinstance(t, Target) else Target(t["address"], t["host_key"])
            for name, t in targets.items()}


def write_inventory(context: Context, plan: Mapping[str, Any], system_id: str,
                    targets: Mapping[str, Any], run_dir: Path,
                    source_known_hosts: Path | None = None) -> Path:
    """Write the inventory and its known_hosts into ``run_dir``; the inventory's path. The
    source hosts' keys come from ``source_known_hosts``, else the command's (access), the
    operator key for the targets from its cloud target."""
    estate = context.estate
    system = system_plan(plan, system_id)
    manifest = estate.systems[system_id]
    found = as_targets(targets)
    _check_targets(system, found)
    run_dir = Path(run_dir).absolute()
    known = run_dir / KNOWN_HOSTS_NAME
    _write_known_hosts(known, system, found,
                       source_known_hosts or source_known_hosts_of(context))
    control = control_dir(run_dir)  # made by each play, removed after it (runner)
    ssh_args = (f"-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
                f"-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null "
                f"-o BatchMode=yes -o ConnectTimeout=10 -o ControlMaster=auto "
                f"-o ControlPersist=60s -o ControlPath={control}/%C")
    document = {
        "all": {
            "vars": {
                "ansible_python_interpreter": PYTHON,
                "ansible_ssh_common_args": ssh_args,
                "migrate_system": system_id,
                "migrate_run_dir": str(run_dir),
                "address_map": {h["address"]: found[h["moves_to"]].address
                                for h in system["source_hosts"]},
                "account_hosts": account_hosts(system),
            },
            "children": {
                "source": {"hosts": _source_hosts(estate, system, manifest.source, found)},
                "target": {"hosts": _target_hosts(system, found,
                                                  context.target.operator_key_path(estate))},
            },
        }
    }
    path = run_dir / INVENTORY_NAME
    path.write_text("# Generated by migrate; never edit by hand.\n" + unsafe_yaml(document))
    os.chmod(path, 0o600)
    return path


class _Unsafe(str):
    """A string written with the ``!unsafe`` tag."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


class _UnsafeLoader(yaml.SafeLoader):
    pass


def _represent_unsafe(dumper: _UnsafeDumper, value: _Unsafe) -> yaml.Node:
    text = str(value)
    if dumper.resolve(yaml.ScalarNode, text, (True, False)) != STR_TAG:
        # ansible-core reads an !unsafe scalar by its value, quoted or not ('22' would be
        # 22, '*' an error): such a text is a number, a boolean, null or a YAML indicator,
        # which holds no template; it is written as a plain quoted string.
        return dumper.represent_str(text)
    return dumper.represent_scalar(UNSAFE_TAG, text)


_UnsafeDumper.add_representer(_Unsafe, _represent_unsafe)
_UnsafeLoader.add_constructor(
    UNSAFE_TAG, lambda loader, node: loader.construct_scalar(node))


def _marked(value: Any, mark: Callable[[str], Any]) -> Any:
    """``value`` with each string (not the mapping keys) replaced by ``mark(string)``."""
    if isinstance(value, str):
        return mark(value)
    if isinstance(value, Mapping):
        return {key: _marked(item, mark) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_marked(item, mark) for item in value]
    return value


def unsafe_yaml(document: Mapping[str, Any]) -> str:
    """YAML of ``document`` with every string value tagged ``!unsafe``."""
    return yaml.dump(_marked(document, _Unsafe), Dumper=_UnsafeDumper, sort_keys=True,
                     allow_unicode=True)


def unsafe_extravars(extravars: Mapping[str, Any]) -> dict[str, Any]:
    """Extra vars for ansible-runner (it hands them to ansible-playbook as JSON) with every
    string value marked unsafe the way Ansible's JSON decoder reads it."""
    return _marked(extravars, lambda text: {UNSAFE_JSON_KEY: text})


def read_inventory(path: Path) -> dict[str, Any]:
    """A written inventory as plain data (``!unsafe`` strings read as strings)."""
    return yaml.load(Path(path).read_text(), Loader=_UnsafeLoader)


def _check_targets(system: dict, targets: Mapping[str, Target]) -> None:
    missing = [i["name"] for i in system["instances"] if i["name"] not in targets]
    if missing:
        raise InvalidInput([], f"{system['id']}: no target machine given for instance(s) "
                               f"{', '.join(missing)}")


def _source_hosts(estate: Estate, system: dict, source: Any,
                  targets: Mapping[str, Target]) -> dict:
    key = (estate.root / estate.settings.secrets.dir / source.ssh.key.split("://", 1)[1])
    hosts = {}
    for host in system["source_hosts"]:
        instance = host["moves_to"]
        hosts[host["name"]] = {
            "ansible_host": host["address"],
            "ansible_user": source.ssh.user,
            "ansible_port": source.ssh.port,
            "ansible_ssh_private_key_file": str(key.absolute()),
            "ansible_become": source.ssh.user != "root",
            "moves_to": instance,
            "target_address": targets[instance].address,
            "target_known_host": _known_line(targets[instance]),
            "replication_tunnel": replication_tunnel(system, host["name"]),
            **_workload_of(system, source_host=host["name"]),
            **_software_from(system, host["name"]),
        }
    return hosts


def _target_hosts(system: dict, targets: Mapping[str, Target], operator_key: Path) -> dict:
    hosts = {}
    for instance in system["instances"]:
        name = instance["name"]
        hosts[f"{system['id']}-{name}"] = {
            "ansible_host": targets[name].address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(operator_key),
            "instance": name,
            "replaces": list(instance["replaces"]),
            "postgresql_listen": postgresql_listen(system, name),
            "replication_tunnel_ports": tunnel_ports(system, name),
            "packages": list(instance.get("packages", [])),
            "timers": timers_of(c["path"] for c in instance.get("configuration", [])),
            **_workload_of(system, instance=name),
        }
    return hosts


def account_hosts(system: dict) -> list[list[str]]:
    """[source host's address, planned address of the instance that replaces it] of every
    source host: a database account whose host part is a source host's address (the
    application logs in over that address) is made for the new address on the target."""
    planned = {i["name"]: i["address"] for i in system["instances"]}
    return [[h["address"], planned[h["moves_to"]]] for h in system["source_hosts"]]


TIMER_FILE = re.compile(r"^/etc/systemd/system/(?P<unit>[A-Za-z0-9_][A-Za-z0-9@._-]*\.timer)$")


def timers_of(paths: Iterable[str]) -> list[str]:
    """The timer units among copied configuration paths (their unit files in
    /etc/systemd/system): they move with the services, stopped on the source at the freeze
    and started on the target with the services."""
    return sorted({m["unit"] for m in map(TIMER_FILE.match, paths) if m})


def postgresql_listen(system: dict, instance: str) -> str:
    """PostgreSQL answers other machines only where the plan opens its port to them; a
    database used on its own machine listens on loopback (nothing unplanned listens)."""
    opened = any(r["instance"] == instance and r["direction"] == "ingress"
                 and r["port"] == POSTGRESQL_PORT for r in system.get("security_rules", []))
    return "*" if opened else "localhost"


# The loopback port on a target where the replication tunnel of the i-th source host it
# replaces ends, by method: base + i (several sources may replicate into one instance).
TUNNEL_PORT_BASE = {"logical_replication": 15432, "binlog_replication": 13306}


def replication_tunnel(system: dict, source_host: str) -> list[dict]:
    """The forwards of a source host's replication tunnel (its ssh to its target, ``ssh -R``),
    one per replication method of its databases: ``port`` on the target's loopback, where the
    target's subscription or replica connects, to ``to`` on the source's loopback (its
    database). Empty when none of its databases is replicated."""
    instance = next(i for i in system["instances"] if source_host in i["replaces"])
    index = instance["replaces"].index(source_host)
    methods = {d["method"] for d in system["data"]["databases"] if d["host"] == source_host}
    return [{"method": method, "port": TUNNEL_PORT_BASE[method] + index,
             "to": REPLICATION_PORTS[method]}
            for method in sorted(methods & TUNNEL_PORT_BASE.keys())]


def tunnel_ports(system: dict, instance: str) -> list[int]:
    """The loopback ports where the replication tunnels into ``instance`` end: the only
    remote forwards its authorized migration key may open."""
    replaces = next(i["replaces"] for i in system["instances"] if i["name"] == instance)
    return sorted(forward["port"] for host in replaces
                  for forward in replication_tunnel(system, host))


def _workload_of(system: dict, *, source_host: str | None = None,
                 instance: str | None = None) -> dict:
    """The services, file trees and databases that live on a source host or instance."""

    def mine(item: dict, host_key: str) -> bool:
        return item.get(host_key) == source_host if source_host else item["instance"] == instance

    return {
        "services": [s for s in system["services"] if mine(s, "source_host")],
        "files": [f for f in system["data"]["files"] if mine(f, "host")],
        "databases": [d for d in system["data"]["databases"] if mine(d, "host")],
    }


def _software_from(system: dict, source_host: str) -> dict:
    """The configuration paths and rewrites of one source host (the plan keeps them per
    instance, ``new`` already rendered to the planned addresses)."""
    instance = next(i for i in system["instances"] if source_host in i["replaces"])
    configuration = [c["path"] for c in instance.get("configuration", [])
                     if c["host"] == source_host]
    return {
        "configuration": configuration,
        "timers": timers_of(configuration),
        "rewrites": [{"file": r["file"], "old": r["old"], "new": r["new"]}
                     for r in instance.get("rewrites", []) if r["host"] == source_host],
    }


def _write_known_hosts(path: Path, system: dict, targets: Mapping[str, Target],
                       source_known_hosts: Path) -> None:
    lines = []
    for host in system["source_hosts"]:
        entries = host_key_lines(source_known_hosts, host["address"])
        if not entries:
            raise StageFailed(f"no host key of source host {host['name']} ({host['address']}) "
                              f"in {source_known_hosts}",
                              hint="record the source host's key: 'migrate trust ESTATE' "
                                   "(sandbox up writes the sandbox's own)")
        lines += entries
    lines += [_known_line(target) for _name, target in sorted(targets.items())]
    path.write_text("".join(f"{line}\n" for line in lines))
    os.chmod(path, 0o600)


def _known_line(target: Target) -> str:
    key_type, key = target.host_key.split()[:2]
    return f"{target.address} {key_type} {key}"


def target_host_name(system_id: str, instance: str) -> str:
    return f"{system_id}-{instance}"
