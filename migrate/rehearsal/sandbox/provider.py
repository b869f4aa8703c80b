"""The sandbox cloud as a Pulumi target: dynamic providers over the machine layer.

Four resources, each a thin provider over ``network.py`` and ``machines.py``:

- ``SandboxNetwork``: a department network is an ``mg-`` bridge carrying the gateway.
- ``SandboxVolume``: a data volume is a folder ``<root>/volumes/<system>-<instance>-<volume>``
  (mode 0700) bind-mounted into its machine; wiped and removed on delete.
- ``SandboxFirewall``: an instance's security group, rendered as an nftables ruleset and
  kept at ``<root>/firewalls/<security group>.nft`` for auditors.
- ``SandboxMachine``: a systemd-nspawn machine, booted to ssh-ready, enforcing its firewall.

Pickling: Pulumi stores each provider object (with dill) in the stack state and the
``pulumi-resource-pulumi-python`` plugin loads it again, so the provider classes live at
module level here (pickled by reference: this module must be importable under
``PULUMI_PYTHON_CMD``) and hold no attributes. Importing this module has no side effects.
Delete receives only the stored outputs, so every resource's outputs repeat all its inputs,
the sandbox root among them: ``pulumi destroy`` works without any environment.

Security groups are enforced inside each machine with nftables (the host cannot filter
bridged traffic per machine without br_netfilter): default deny both ways except
established/related traffic and loopback, then exactly the plan's rules of that instance.
The ruleset is written to ``/etc/nftables.conf`` in the machine's upper dir with
``nftables.service`` enabled before the first boot, so the rules hold from boot; after boot
and on every change it is loaded again through the machine's own namespaces (``nsenter``),
which also proves it is in force. Peers are the plan's CIDRs (an instance: its /32); a rule
whose ``exchange`` or ``ops`` peer has no CIDR in the plan is refused.

The management station of the sandbox is the host: it reaches machines from the bridge's
gateway address, which is not in ``cloud.ops_network``. The firewall therefore counts the
gateway (/32) as a member of ``ops``: rules from or to ``ops`` also match the gateway, and
nothing else is added (ssh from the host works because the plan allows ssh from ``ops``).

Volumes cannot be encrypted: a bind-mounted folder has no block device to encrypt. A
volume that the plan wants encrypted records ``encryption: "not available in the sandbox"``,
so verification and runbooks can report that honestly.

Stopped machines (after a host reboot): ``diff`` looks at the live machine; a stopped one
is reported as an update (preview shows it), and ``update`` boots it again and reloads its
firewall. A machine or volume whose files are gone is reported for replacement; a missing
bridge as an update that re-creates it. ``read`` (``pulumi refresh``) reports the status.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from migrate.core.errors import InvalidInput, Problem, StageFailed
from migrate.rehearsal.sandbox import hostkeys, layout, machines, network
from migrate.rehearsal.sandbox.host import tool
from migrate.rehearsal.sandbox.network import EXCHANGE_GATEWAY_NUMBER

SANDBOX_IMAGE = "cloud"  # every plan image boots the sandbox's cloud image
SSH_READY_TIMEOUT = 60.0
NFTABLES_CONF = Path("etc/nftables.conf")
NFTABLES_UNIT = "nftables.service"
NO_ENCRYPTION = "not available in the sandbox"
WIPE_CHUNK = 1 << 20

# Where the estate sets a peer's CIDR, for the refusal when a plan has none.
PEER_SETTINGS = {"ops": "cloud.ops_network", "exchange": "exchange.network"}


# ---- firewall rules (pure) ---------------------------------------------------------------


def firewall_rules(system: Mapping[str, Any], instance: str, gateway: str) -> list[dict]:
    """The plan's security rules of one instance, each with the networks it matches.

    ``ops`` also matches the bridge gateway (the host, the sandbox's management station).
    Raises InvalidInput naming the estate setting when an ``ops``/``exchange`` peer has no
    CIDR in the plan.
    """
    rules = []
    for rule in system["security_rules"]:
        if rule["instance"] != instance:
            continue
        peer = rule["peer"]
        if peer["kind"] == "package_mirror" and not peer.get("cidr"):
            peer = {**peer, "cidr": sandbox_mirror_address(system)}
        rules.append({
            "direction": _direction(rule["direction"]),
            "protocol": _protocol(rule["protocol"]),
            "port": _port(rule["port"]),
            "networks": peer_networks(system["id"], peer, gateway),
            "peer": _peer_label(peer),
            "origin": rule["origin"],
            "temporary": bool(rule["temporary"]),
        })
    return rules


def sandbox_mirror_address(system: Mapping[str, Any]) -> str:
    """The sandbox's package mirror runs on the host, on its address on the exchange
    platform's bridge (``sandbox up`` starts it there)."""
    exchange = next((r["peer"]["cidr"] for r in system["security_rules"]
                     if r["peer"]["kind"] == "exchange" and r["peer"].get("cidr")), None)
    if exchange is None:
        raise InvalidInput([Problem("migrate.yaml", None, "exchange.network",
                                    f"{system['id']}: the sandbox's package mirror is on the "
                                    "exchange platform's network, which has no CIDR",
                                    "set exchange.network in migrate.yaml")])
    network = ipaddress.IPv4Network(exchange, strict=False)
    return f"{network.network_address + EXCHANGE_GATEWAY_NUMBER}/32"


def peer_networks(system_id: str, peer: Mapping[str, Any], gateway: str) -> list[str]:
    cidr = peer.get("cidr")
    if not cidr:
        setting = PEER_SETTINGS.get(peer["kind"], "the plan")
        raise InvalidInput([Problem(
            "migrate.yaml", None, setting,
            f"{system_id}: a security rule's peer {peer['kind']!r} has no address, so the "
            "sandbox cannot enforce it",
            f"set {setting} in migrate.yaml and run 'migrate plan' again")])
    networks = [str(ipaddress.IPv4Network(cidr, strict=False))]
    if peer["kind"] == "ops":
        host = f"{ipaddress.IPv4Address(gateway)}/32"
        if host not in networks:
            networks.append(host)
    return networks


def render_ruleset(security_group: str, rules: Sequence[Mapping[str, Any]]) -> str:
    """An nftables ruleset: drop by default, accept exactly ``rules`` (from firewall_rules)."""
    chains = {"ingress": [], "egress": []}
    for rule in rules:
        chains[rule["direction"]].append(_rule_line(rule))
    return "\n".join([
        "#!/usr/sbin/nft -f",
        f"# Security group {security_group}: the plan's rules only (written by migrate).",
        "flush ruleset",
        "",
        "table inet migrate {",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        '\t\tiifname "lo" accept',
        *chains["ingress"],
        "\t}",
        "",
        "\tchain output {",
        "\t\ttype filter hook output priority filter; policy drop;",
        "\t\tct state established,related accept",
        '\t\toifname "lo" accept',
        *chains["egress"],
        "\t}",
        "",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy drop;",
        "\t}",
        "}",
        "",
    ])


def _rule_line(rule: Mapping[str, Any]) -> str:
    address = "saddr" if rule["direction"] == "ingress" else "daddr"
    networks = rule["networks"]
    match = networks[0] if len(networks) == 1 else "{ " + ", ".join(networks) + " }"
    note = f"{rule['origin']}{' (temporary)' if rule['temporary'] else ''}: {rule['peer']}"
    note = note.replace('"', "'")
    return (f"\t\tip {address} {match} {rule['protocol']} dport {rule['port']} accept "
            f'comment "{note}"')


def _direction(value: str) -> str:
    if value not in ("ingress", "egress"):
        raise ValueError(f"unknown rule direction {value!r}")
    return value


def _protocol(value: str) -> str:
    if value not in ("tcp", "udp"):
        raise ValueError(f"unknown rule protocol {value!r}")
    return value


def _port(value: Any) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(f"port {value!r} out of range")
    return port


def _peer_label(peer: Mapping[str, Any]) -> str:
    name = peer.get("instance") or peer.get("host")
    return f"{peer['kind']} {name}" if name else peer["kind"]


# ---- names (pure) --------------------------------------------------------------------


def volume_path(root: str, system_id: str, instance: str, volume: str) -> str:
    return str(Path(root) / "volumes" / f"{system_id}-{instance}-{volume}")


def firewall_path(root: str, security_group: str) -> str:
    return str(Path(root) / "firewalls" / f"{security_group}.nft")


def hosts_file(ip: str, hostname: str, entries: Mapping[str, str]) -> str:
    lines = ["127.0.0.1 localhost", f"{ip} {hostname}"]
    lines += [f"{address} {name}" for name, address in sorted(entries.items())]
    return "\n".join(lines) + "\n"


# ---- small file helpers ------------------------------------------------------------------


def _write_file(path: Path, text: str, mode: int) -> None:
    """Write in place (same inode), so a running machine's overlay sees the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.touch(mode=mode, exist_ok=True)
    os.chmod(path, mode)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _replace_file(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _changed(olds: Mapping[str, Any], news: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    return [key for key in keys if olds.get(key) != news.get(key)]


# ---- network -----------------------------------------------------------------------------


class SandboxNetworkProvider(ResourceProvider):
    """A bridge per department network; delete refuses while machines are attached."""

    REPLACE = ("network", "bridge", "cidr", "gateway")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        try:
            cidr = ipaddress.IPv4Network(news["cidr"])
            if ipaddress.IPv4Address(news["gateway"]) not in cidr:
                failures.append(CheckFailure("gateway", f"not in {cidr}"))
        except ValueError as error:
            failures.append(CheckFailure("cidr", str(error)))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        bridge = self._ensure(props)
        return CreateResult(id_=bridge, outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, self.REPLACE)
        missing = not replaces and not self._present(olds)
        return DiffResult(changes=bool(replaces) or missing, replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._ensure(news)
        return UpdateResult(outs=dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not self._present(props):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=dict(props))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        network.remove_bridge(props["network"])

    @staticmethod
    def _ensure(props: Mapping[str, Any]) -> str:
        prefix = ipaddress.IPv4Network(props["cidr"]).prefixlen
        bridge = network.ensure_bridge(props["network"], f"{props['gateway']}/{prefix}")
        if bridge != props["bridge"]:
            raise StageFailed(f"network {props['network']} got bridge {bridge}, "
                              f"expected {props['bridge']}")
        return bridge

    @staticmethod
    def _present(props: Mapping[str, Any]) -> bool:
        found = network.find_bridge(props["bridge"])
        gateway = ipaddress.IPv4Address(props["gateway"])
        return found is not None and any(i.ip == gateway for i in found.interfaces)


class SandboxNetwork(Resource, module="sandbox", name="Network"):
    """One department network: a bridge ``bridge`` carrying ``gateway`` in ``cidr``."""

    bridge: pulumi.Output[str]
    cidr: pulumi.Output[str]
    gateway: pulumi.Output[str]

    def __init__(self, resource_name: str, planned: Mapping[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "network": planned["key"],
            "bridge": network.bridge_name(planned["key"]),
            "cidr": planned["cidr"],
            "gateway": planned["gateway"],
            "department": planned["department"]["code"],
            "zone": planned["zone"],
        }
        super().__init__(SandboxNetworkProvider(), resource_name, props, opts)


# ---- volume ------------------------------------------------------------------------------


class SandboxVolumeProvider(ResourceProvider):
    """A folder bind-mounted into a machine; size and encryption are recorded, not enforced."""

    REPLACE = ("root", "path")
    UPDATE = ("size_gb", "encrypted", "mount", "holds", "encryption")

    def create(self, props: dict[str, Any]) -> CreateResult:
        path = Path(props["path"])
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
        return CreateResult(id_=str(path), outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, self.REPLACE)
        if not replaces and not Path(olds["path"]).is_dir():
            replaces = ["path"]  # its data is gone: a new, empty volume
        updates = _changed(olds, news, self.UPDATE)
        return DiffResult(changes=bool(replaces or updates), replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not Path(props["path"]).is_dir():
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=dict(props))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        wipe_folder(Path(props["path"]))


def wipe_folder(path: Path) -> None:
    """Overwrite every regular file below ``path`` with zeros, then remove the folder.

    Links are never followed: a machine may leave a symlink in its volume that points at a
    host file, and wiping must not reach it.
    """
    if path.is_symlink():
        path.unlink()
        return
    if not path.is_dir():
        return
    for folder, _, files in os.walk(path, topdown=False, followlinks=False):
        for name in files:
            _zero_file(Path(folder) / name)
    shutil.rmtree(path)


def _zero_file(path: Path) -> None:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        zeros = bytes(WIPE_CHUNK)
        left = info.st_size
        while left > 0:
            left -= os.write(descriptor, zeros[: min(left, WIPE_CHUNK)])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class SandboxVolume(Resource, module="sandbox", name="Volume"):
    """A planned data volume of one instance (a folder under ``<root>/volumes``)."""

    path: pulumi.Output[str]
    encryption: pulumi.Output[str]

    def __init__(self, resource_name: str, root: str, system_id: str, instance: str,
                 planned: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "root": root,
            "path": volume_path(root, system_id, instance, planned["name"]),
            "system": system_id,
            "instance": instance,
            "volume": planned["name"],
            "mount": planned["mount"],
            "holds": planned.get("holds"),
            "size_gb": planned["size_gb"],
            "encrypted": bool(planned["encrypted"]),
            "encryption": NO_ENCRYPTION if planned["encrypted"] else "not requested",
        }
        super().__init__(SandboxVolumeProvider(), resource_name, props, opts)


# ---- firewall ----------------------------------------------------------------------------


class SandboxFirewallProvider(ResourceProvider):
    """An instance's security group as a rendered ruleset, kept as a file for auditors.

    The machine that carries the group enforces it (see SandboxMachineProvider).
    """

    REPLACE = ("root", "path")
    UPDATE = ("ruleset", "rules", "machine", "system", "instance", "security_group")

    def create(self, props: dict[str, Any]) -> CreateResult:
        _replace_file(Path(props["path"]), props["ruleset"], 0o644)
        return CreateResult(id_=props["security_group"], outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, self.REPLACE)
        updates = _changed(olds, news, self.UPDATE)
        drifted = _read_text(Path(olds["path"])) != olds["ruleset"]
        return DiffResult(changes=bool(replaces or updates) or drifted, replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _replace_file(Path(news["path"]), news["ruleset"], 0o644)
        return UpdateResult(outs=dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        text = _read_text(Path(props["path"]))
        if text is None:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**props, "ruleset": text})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class SandboxFirewall(Resource, module="sandbox", name="Firewall"):
    """The security group of one instance: default deny, the plan's rules only."""

    ruleset: pulumi.Output[str]
    path: pulumi.Output[str]

    def __init__(self, resource_name: str, root: str, system_id: str,
                 instance: Mapping[str, Any], rules: Sequence[Mapping[str, Any]], ruleset: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """``rules`` and ``ruleset`` come from firewall_rules and render_ruleset."""
        props = {
            "root": root,
            "path": firewall_path(root, instance["security_group"]),
            "security_group": instance["security_group"],
            "system": system_id,
            "instance": instance["name"],
            "machine": instance["resource_name"],
            "rules": [dict(rule) for rule in rules],
            "ruleset": ruleset,
        }
        super().__init__(SandboxFirewallProvider(), resource_name, props, opts)


# ---- machine -----------------------------------------------------------------------------


class SandboxMachineProvider(ResourceProvider):
    """create: lay out, boot, wait for ssh, load the firewall; delete: stop and destroy."""

    REPLACE = ("root", "name", "image", "plan_image", "bridge", "address", "gateway",
               "volumes", "hostname")
    UPDATE = ("authorized_keys", "hosts", "ruleset", "security_group", "system", "instance",
              "roles")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        try:
            ipaddress.IPv4Interface(news["address"])
        except ValueError as error:
            failures.append(CheckFailure("address", str(error)))
        for name, address in (news.get("hosts") or {}).items():
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                failures.append(CheckFailure("hosts", f"{name}: {address!r} is no IPv4 address"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        name, root = props["name"], props["root"]
        refuse_foreign_machine(props)
        try:
            machines.create_machine(machine_spec(props), root)
            write_guest_files(props)
            machines.start_machine(name, root)
            machines.wait_ssh_ready(name, SSH_READY_TIMEOUT, root)
            load_firewall(name, root)
        except BaseException:
            machines.destroy_machine(name, root)  # create is all or nothing
            raise
        return CreateResult(id_=_machine_id(name, root), outs=machine_outputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, self.REPLACE)
        status = machines.machine_status(olds["name"], olds["root"])
        if not replaces and status == machines.ABSENT:
            replaces = ["name"]  # its files are gone: boot a new one
        updates = _changed(olds, news, self.UPDATE)
        stopped = status == machines.STOPPED
        return DiffResult(changes=bool(replaces or updates) or stopped, replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        name, root = news["name"], news["root"]
        write_guest_files(news)
        if machines.machine_status(name, root) != machines.RUNNING:
            machines.start_machine(name, root)
            machines.wait_ssh_ready(name, SSH_READY_TIMEOUT, root)
        load_firewall(name, root)
        return UpdateResult(outs=machine_outputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        status = machines.machine_status(props["name"], props["root"])
        if status == machines.ABSENT:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**machine_outputs(props), "status": status})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        machines.destroy_machine(props["name"], props["root"])  # stops it, removes its dir


def refuse_foreign_machine(props: Mapping[str, Any]) -> None:
    """A machine of this name left by an interrupted create (same bridge and address) is
    taken over; any other one belongs to someone else and is refused, not overwritten."""
    try:
        record = json.loads(layout.spec_file(props["name"], props["root"]).read_text())
    except FileNotFoundError:
        return
    if (record.get("name"), record.get("bridge"), record.get("address")) != (
            props["name"], props["bridge"], props["address"]):
        raise StageFailed(
            f"sandbox machine {layout.machine_name(props['name'])} already exists under "
            f"{props['root']} as {record.get('name')} at {record.get('address')} on "
            f"{record.get('bridge')}",
            hint="it is not this stack's: destroy it or use another sandbox root")


def machine_spec(props: Mapping[str, Any]) -> machines.MachineSpec:
    return machines.MachineSpec(
        name=props["name"],
        image=props["image"],
        bridge=props["bridge"],
        address=props["address"],
        gateway=props["gateway"],
        volumes={volume["path"]: volume["mount"] for volume in props["volumes"]},
        authorized_keys=props["authorized_keys"],
        hostname=props["hostname"],
    )


def write_guest_files(props: Mapping[str, Any]) -> None:
    """The files a machine's update may change, written in its upper dir in place:
    authorized_keys, /etc/hosts, and the firewall (with nftables.service enabled)."""
    upper = layout.upper_dir(props["name"], props["root"])
    ip = str(ipaddress.IPv4Interface(props["address"]).ip)
    _write_file(upper / "root/.ssh/authorized_keys", _line(props["authorized_keys"]), 0o600)
    _write_file(upper / "etc/hosts", hosts_file(ip, props["hostname"], props["hosts"]), 0o644)
    _write_file(upper / NFTABLES_CONF, props["ruleset"], 0o644)
    wants = upper / "etc/systemd/system/sysinit.target.wants" / NFTABLES_UNIT
    if not wants.is_symlink():
        wants.parent.mkdir(parents=True, exist_ok=True)
        wants.symlink_to(f"/lib/systemd/system/{NFTABLES_UNIT}")


def load_firewall(name: str, root: str) -> None:
    """Load /etc/nftables.conf inside the running machine (atomically: it flushes first)."""
    pid = machines.machine_init_pid(name, root)
    if pid is None:
        raise StageFailed(f"machine {layout.machine_name(name)} is not running; "
                          "its firewall cannot be loaded")
    result = subprocess.run(
        [tool("nsenter"), "--target", str(pid), "--mount", "--net", "--",
         "/usr/sbin/nft", "-f", f"/{NFTABLES_CONF}"],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise StageFailed(
            f"machine {layout.machine_name(name)}: nft refused its firewall: "
            f"{result.stderr.strip()}",
            hint="the machine's image needs nftables (the sandbox's cloud image has it)")


def machine_outputs(props: Mapping[str, Any]) -> dict[str, Any]:
    name, root = props["name"], props["root"]
    ip = str(ipaddress.IPv4Interface(props["address"]).ip)
    host_key = hostkeys.host_public_key(layout.upper_dir(name, root))
    return {
        **props,
        "machine": layout.machine_name(name),
        "ip": ip,
        "host_key": host_key,
        "known_hosts": hostkeys.known_hosts_entry(ip, host_key),
        "status": machines.machine_status(name, root),
    }


def _machine_id(name: str, root: str) -> str:
    record = json.loads(layout.spec_file(name, root).read_text())
    return record["machine_id"]


def _line(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


class SandboxMachine(Resource, module="sandbox", name="Machine"):
    """One planned instance as a sandbox machine on its department's bridge."""

    machine: pulumi.Output[str]
    ip: pulumi.Output[str]
    host_key: pulumi.Output[str]
    known_hosts: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, resource_name: str, root: str, system_id: str,
                 planned: Mapping[str, Any], *, bridge: pulumi.Input[str], prefix: int,
                 gateway: str, volumes: Sequence[Mapping[str, str]], ruleset: str,
                 authorized_keys: str, hosts: Mapping[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "root": root,
            "name": planned["resource_name"],
            "hostname": planned["resource_name"],
            "system": system_id,
            "instance": planned["name"],
            "roles": list(planned["roles"]),
            "image": SANDBOX_IMAGE,
            "plan_image": planned["cloud_image"],
            "bridge": bridge,
            "address": f"{planned['address']}/{prefix}",
            "gateway": gateway,
            "volumes": [dict(volume) for volume in volumes],
            "security_group": planned["security_group"],
            "ruleset": ruleset,
            "authorized_keys": authorized_keys,
            "hosts": dict(hosts),
            "machine": None,
            "ip": None,
            "host_key": None,
            "known_hosts": None,
            "status": None,
        }
        super().__init__(SandboxMachineProvider(), resource_name, props, opts)
