"""What ``migrate sandbox up`` builds for an estate: bridges and machines, decided purely.

Nothing here touches the host; ``estate.py`` checks the plan against the host and applies it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import asdict, dataclass

from migrate.core.errors import InvalidInput, Problem
from migrate.core.loader import Estate
from migrate.core.model import DEFAULT_PLATFORM_MACHINE
from migrate.core.state import secret_name
from migrate.rehearsal.sandbox.layout import machine_name
from migrate.rehearsal.sandbox.network import EXCHANGE_GATEWAY_NUMBER, bridge_name

LEGACY, EXCHANGE, OPS = "legacy", "exchange", "ops"
# The platform machine's name unless sandbox.platform_machine names another: machine names are
# the host's, so estates rehearsed side by side each need their own (and networks of their own).
PLATFORM_MACHINE = DEFAULT_PLATFORM_MACHINE
PLATFORM_HOST_NUMBER = 10  # the platform sits at .10 of exchange.network
OPS_GATEWAY_NUMBER = 1


@dataclass(frozen=True)
class BridgePlan:
    network: str  # the name given to network.ensure_bridge
    cidr: str
    gateway: str  # address of the bridge, with prefix
    role: str  # legacy | exchange | ops

    @property
    def device(self) -> str:
        return bridge_name(self.network)

    @property
    def gateway_ip(self) -> str:
        return str(ipaddress.IPv4Interface(self.gateway).ip)


@dataclass(frozen=True)
class MachinePlan:
    name: str  # long name (system-host); the nspawn name is ``machine``
    role: str  # legacy | exchange
    system_id: str | None
    host: str
    address: str  # with prefix
    network: str  # BridgePlan.network
    gateway: str  # bare IP
    image: str
    ssh_user: str = "root"
    ssh_key: str | None = None  # secret name of the client key

    @property
    def machine(self) -> str:
        return machine_name(self.name)

    @property
    def ip(self) -> str:
        return str(ipaddress.IPv4Interface(self.address).ip)

    @property
    def bridge(self) -> str:
        return bridge_name(self.network)

    def as_dict(self) -> dict:
        return {**asdict(self), "machine": self.machine, "bridge": self.bridge}


@dataclass(frozen=True)
class SandboxPlan:
    bridges: tuple[BridgePlan, ...]
    machines: tuple[MachinePlan, ...]
    exchange_host: str  # the URL's host name
    platform_ip: str
    probe_networks: tuple[str, ...]  # networks the platform may probe

    def bridge(self, network: str) -> BridgePlan:
        return next(b for b in self.bridges if b.network == network)

    @property
    def legacy(self) -> tuple[MachinePlan, ...]:
        return tuple(m for m in self.machines if m.role == LEGACY)

    @property
    def platform(self) -> MachinePlan:
        return next(m for m in self.machines if m.role == EXCHANGE)


def exchange_host(estate: Estate) -> str:
    host = urllib.parse.urlsplit(estate.settings.exchange.url).hostname
    assert host, "the model only accepts https://HOST URLs"
    return host


def network_label(prefix: str, network: ipaddress.IPv4Network) -> str:
    """A readable bridge network name: ``l192-168-10`` for 192.168.10.0/24 (role letter)."""
    octets = str(network.network_address).split(".")
    if network.prefixlen == 24:
        return prefix + "-".join(octets[:3])
    return prefix + "-".join(octets) + f"-{network.prefixlen}"


def legacy_gateway(network: ipaddress.IPv4Network, used: set[ipaddress.IPv4Address]) -> str:
    """The highest usable address of the /24 that no source host uses (e.g. .254)."""
    for candidate in reversed(list(network.hosts())):
        if candidate not in used:
            return f"{candidate}/{network.prefixlen}"
    raise InvalidInput([Problem("<sandbox>", None, "", f"{network} has no free gateway address",
                                "leave one address of the /24 free")])


def require_exchange_network(estate: Estate) -> ipaddress.IPv4Network:
    if estate.settings.exchange.network is None:
        raise InvalidInput([estate.settings_doc.problem(
            ("exchange", "network"),
            "the sandbox needs exchange.network: the exchange platform machine lives there",
            "add e.g. 'network: 10.40.0.0/24' under exchange: in migrate.yaml")])
    return ipaddress.IPv4Network(estate.settings.exchange.network)


def plan_sandbox(estate: Estate) -> SandboxPlan:
    """Bridges and machines for ``estate``; raises InvalidInput for a missing setting."""
    exchange_net = require_exchange_network(estate)
    bridges: list[BridgePlan] = []
    machines: list[MachinePlan] = []
    if estate.settings.sandbox.seed_legacy:
        legacy_bridges, legacy_machines = _plan_legacy(estate)
        bridges += legacy_bridges
        machines += legacy_machines
    platform_bridge, platform = _plan_platform(exchange_net,
                                               estate.settings.sandbox.platform_machine)
    bridges.append(platform_bridge)
    machines.append(platform)
    # the ops network is the sandbox cloud's own; around another cloud it is that cloud's
    if estate.settings.cloud.ops_network and estate.settings.cloud.target == "sandbox":
        ops = ipaddress.IPv4Network(estate.settings.cloud.ops_network)
        bridges.append(BridgePlan(network_label("o", ops), str(ops),
                                  f"{ops.network_address + OPS_GATEWAY_NUMBER}/{ops.prefixlen}",
                                  OPS))
    probe = [b.cidr for b in bridges] + [z.cidr for z in estate.settings.cloud.zones.values()]
    return SandboxPlan(tuple(bridges), tuple(machines), exchange_host(estate), platform.ip,
                       tuple(dict.fromkeys(probe)))


def _plan_platform(exchange_net: ipaddress.IPv4Network,
                   name: str) -> tuple[BridgePlan, MachinePlan]:
    prefix = exchange_net.prefixlen
    gateway = exchange_net.network_address + EXCHANGE_GATEWAY_NUMBER
    address = exchange_net.network_address + PLATFORM_HOST_NUMBER
    bridge = BridgePlan(network_label("x", exchange_net), str(exchange_net),
                        f"{gateway}/{prefix}", EXCHANGE)
    platform = MachinePlan(name, EXCHANGE, None, name,
                           f"{address}/{prefix}", bridge.network, str(gateway), "cloud")
    return bridge, platform


def _plan_legacy(estate: Estate) -> tuple[list[BridgePlan], list[MachinePlan]]:
    by_net: dict[ipaddress.IPv4Network, list[tuple[str, str, str, str, str]]] = {}
    for sid in sorted(estate.systems):
        system = estate.systems[sid]
        for host in system.source.hosts:
            net = ipaddress.IPv4Network(f"{host.address}/24", strict=False)
            by_net.setdefault(net, []).append(
                (sid, host.name, host.address, system.source.ssh.user,
                 secret_name(system.source.ssh.key)))
    bridges, machines = [], []
    for net in sorted(by_net):
        used = {ipaddress.IPv4Address(entry[2]) for entry in by_net[net]}
        bridge = BridgePlan(network_label("l", net), str(net), legacy_gateway(net, used), LEGACY)
        bridges.append(bridge)
        for sid, host, address, user, key in by_net[net]:
            machines.append(MachinePlan(f"{sid}-{host}", LEGACY, sid, host, f"{address}/24",
                                        bridge.network, bridge.gateway_ip, "legacy", user, key))
    machines.sort(key=lambda m: m.name)
    return bridges, machines


def naming_problems(plan: SandboxPlan) -> list[str]:
    """Machines or bridges whose short names collide (the layer would refuse midway), and
    machines of the same name (the platform named like a legacy machine)."""
    problems = []
    for kind, names in (("machine", [(m.name, m.machine) for m in plan.machines]),
                        ("bridge", [(b.network, b.device) for b in plan.bridges])):
        seen: dict[str, str] = {}
        for long, short in names:
            if short in seen and seen[short] != long:
                problems.append(f"{kind} names {seen[short]!r} and {long!r} both become {short!r}")
            elif short in seen and kind == "machine":
                problems.append(f"two machines are named {long!r} (sandbox.platform_machine"
                                " names the exchange platform's)")
            seen.setdefault(short, long)
    return problems


def network_problems(estate: Estate, plan: SandboxPlan) -> list[str]:
    """Sandbox networks that overlap each other or the cloud zones."""
    named = [(f"bridge {b.device}", ipaddress.IPv4Network(b.cidr)) for b in plan.bridges]
    named += [(f"cloud zone {zone}", ipaddress.IPv4Network(z.cidr))
              for zone, z in estate.settings.cloud.zones.items()]
    problems = []
    for index, (name_a, net_a) in enumerate(named):
        for name_b, net_b in named[index + 1:]:
            if net_a.overlaps(net_b):
                problems.append(f"{name_a} ({net_a}) overlaps {name_b} ({net_b})")
    return problems
