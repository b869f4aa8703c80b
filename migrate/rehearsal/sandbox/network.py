"""Project bridges for sandbox networks, and the guard that keeps traffic on this host.

Each sandbox network is a Linux bridge named ``mg-...`` that carries the network's
gateway address. Machines on different project bridges may reach each other: forwarding
is switched on for our bridges only (per interface, never the global switch), and a
policy rule sends whatever arrives on one of our bridges to a routing table that knows
only our bridges' networks and answers "unreachable" for everything else. So a machine's
packets never leave the host by the default route, whatever the machine does.

Networks named in ``sandbox.allowed_networks`` (on another bridge on this host: a lab bridge,
the test cloud's provider network and the tenant networks behind it) are linked in both
directions, still never off the host: a rule at ``LINK_PRIORITY`` lets traffic to an
allowed network use the host's own routes to it but never its default route
(``suppress_prefixlength 0``), and each local bridge that carries an allowed network gets
forwarding and the project bridges' rule, plus a final ``unreachable`` rule of its own, so
what arrives there reaches only project bridges and allowed networks.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from migrate.core.errors import GuardRefused, StageFailed
from migrate.rehearsal.sandbox.host import tool

BRIDGE_PREFIX = "mg-"
IFNAMSIZ = 15  # usable characters of a Linux interface name
EXCHANGE_GATEWAY_NUMBER = 1  # the sandbox's gateway on the exchange network: its .1
# Routing table and rule priority reserved for traffic arriving on project bridges.
ROUTE_TABLE = 4201
RULE_PRIORITY = 4201
LOCAL_DEVICE_KINDS = frozenset({"bridge", "veth"})
LINK_PRIORITY = 4200  # to an allowed network: the host's routes to it, never the default
LINKED_DEVICE_STOP = 4202  # from a linked device: nothing else

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Two sandboxes may be up at once (estates with networks of their own, e.g. scripts/test.sh's
# two pytest processes), sharing ROUTE_TABLE and the rules: whatever changes them holds this
# lock, so that removing the host's last project bridge (which flushes the table) never runs
# between another sandbox's bridge being made and its routes being added.
NETWORK_LOCK = Path("/run/lock/migrate-sandbox-network.lock")

_P = ParamSpec("_P")
_T = TypeVar("_T")


@contextmanager
def _network_lock() -> Iterator[None]:
    try:
        NETWORK_LOCK.parent.mkdir(parents=True, exist_ok=True)
        handle = open(NETWORK_LOCK, "a")  # noqa: SIM115 (held across the yield)
    except OSError as error:
        raise StageFailed(f"cannot open {NETWORK_LOCK}: {error.strerror}",
                          hint="the sandbox manages bridges and rules as root") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _serialised(function: Callable[_P, _T]) -> Callable[_P, _T]:
    """``function`` run under the host-wide network lock (not re-entrant: the functions so
    wrapped never call each other)."""
    @functools.wraps(function)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with _network_lock():
            return function(*args, **kwargs)
    return locked


def short_name(name: str, limit: int) -> str:
    """``name`` if it is a safe name of at most ``limit`` chars, else a stable short form.

    The short form keeps a readable prefix of the name and adds 4 hex digits of its
    SHA-256, so different long names give different short names.
    """
    if len(name) <= limit and _SAFE_NAME.match(name):
        return name
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "x"
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    prefix = cleaned[: limit - 5].rstrip("-") or "x"
    return f"{prefix}-{digest}"


def bridge_name(network: str) -> str:
    """The bridge device of a sandbox network: ``mg-`` + a name of at most 12 chars.

    A name that is already a valid project bridge name is returned unchanged.
    """
    if network.startswith(BRIDGE_PREFIX) and is_project_bridge_name(network):
        return network
    return BRIDGE_PREFIX + short_name(network, IFNAMSIZ - len(BRIDGE_PREFIX))


def is_project_bridge_name(device: str) -> bool:
    rest = device[len(BRIDGE_PREFIX) :]
    return (
        device.startswith(BRIDGE_PREFIX)
        and len(device) <= IFNAMSIZ
        and bool(rest)
        and bool(_SAFE_NAME.match(rest))
    )


@dataclass(frozen=True)
class Bridge:
    name: str
    interfaces: tuple[ipaddress.IPv4Interface, ...] = field(default=())

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network, ...]:
        return tuple(interface.network for interface in self.interfaces)


# ---- running ip ------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tool("ip"), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StageFailed(
            f"ip {' '.join(args)} failed: {result.stderr.strip()}",
            hint="the sandbox manages bridges with iproute2 and needs root",
        )
    return result


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = _ip("-j", *args).stdout.strip()
    return json.loads(out) if out else []


def _ipv4_interfaces(link: dict[str, Any]) -> tuple[ipaddress.IPv4Interface, ...]:
    return tuple(
        ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet"
    )


# ---- bridges ---------------------------------------------------------------------


def list_bridges() -> list[Bridge]:
    """The project's bridges on this host (``mg-*``), with their IPv4 addresses."""
    return [
        Bridge(link["ifname"], _ipv4_interfaces(link))
        for link in _ip_json("addr", "show", "type", "bridge")
        if is_project_bridge_name(link["ifname"])
    ]


def find_bridge(network: str) -> Bridge | None:
    device = bridge_name(network)
    return next((b for b in list_bridges() if b.name == device), None)


@_serialised
def ensure_bridge(network: str, gateway_cidr: str) -> str:
    """Create (or keep) the bridge of ``network`` carrying ``gateway_cidr``; its name."""
    gateway = _parse_gateway(gateway_cidr)
    device = bridge_name(network)
    _refuse_overlap(device, gateway.network)
    existing = find_bridge(device)
    if existing is None:
        _ip("link", "add", device, "type", "bridge")
        existing = Bridge(device)
    # A bridge without its own MAC takes its lowest port's, so it changes as machines come
    # and go, and machines that cached the gateway's old MAC stop answering for a while.
    _ip("link", "set", device, "address", bridge_mac(device))
    others = [i for i in existing.interfaces if i != gateway]
    if others:
        raise StageFailed(
            f"bridge {device} already carries {', '.join(map(str, others))}, not {gateway}",
            hint="a sandbox network keeps its address range; remove the bridge to change it",
        )
    if gateway not in existing.interfaces:
        _ip("addr", "add", str(gateway), "dev", device)
    _ip("link", "set", device, "up")
    _enable_forwarding(device, gateway)
    return device


@_serialised
def remove_bridge(network: str, force: bool = False) -> None:
    """Delete the bridge of ``network`` and its forwarding rule; fine if already gone.

    Refuses while machines are still attached (they would lose their network silently)
    unless ``force``.
    """
    device = bridge_name(network)
    ports = bridge_ports(device)
    if ports and not force:
        raise StageFailed(
            f"bridge {device} still has machines attached: {', '.join(ports)}",
            hint="stop or destroy those machines first",
        )
    _remove_forwarding_rule(device)
    if _link_exists(device):
        _ip("link", "del", device)
    if not list_bridges():
        _ip("route", "flush", "table", str(ROUTE_TABLE), check=False)


def bridge_mac(device: str) -> str:
    """A stable, locally administered unicast MAC for a project bridge."""
    digest = hashlib.sha256(device.encode()).digest()
    return ":".join(f"{byte:02x}" for byte in (0x02, *digest[:5]))


def bridge_ports(device: str) -> list[str]:
    """Interfaces attached to a bridge (for ours: vb-MACHINE veths)."""
    ports = Path("/sys/class/net", device, "brif")
    return sorted(p.name for p in ports.iterdir()) if ports.is_dir() else []


def _parse_gateway(gateway_cidr: str) -> ipaddress.IPv4Interface:
    try:
        gateway = ipaddress.ip_interface(gateway_cidr)
    except ValueError:
        raise StageFailed(
            f"invalid gateway address {gateway_cidr!r}",
            hint="give the bridge's address with its prefix, e.g. 10.250.1.1/24",
        ) from None
    if not isinstance(gateway, ipaddress.IPv4Interface) or gateway.network.prefixlen > 30:
        raise StageFailed(
            f"gateway {gateway_cidr} must be an IPv4 address in a network of /30 or larger",
            hint="e.g. 10.250.1.1/24",
        )
    if gateway.ip in (gateway.network.network_address, gateway.network.broadcast_address):
        raise StageFailed(
            f"gateway {gateway_cidr} is the network or broadcast address",
            hint="use a host address such as the network's first one",
        )
    return gateway


def _refuse_overlap(device: str, network: ipaddress.IPv4Network) -> None:
    """A sandbox network must not shadow a network this host is really attached to."""
    for link in _ip_json("addr", "show"):
        if link["ifname"] == device:
            continue
        for interface in _ipv4_interfaces(link):
            if interface.network.overlaps(network) and not interface.ip.is_loopback:
                raise GuardRefused(
                    f"sandbox network {network} overlaps {interface} on {link['ifname']}",
                    hint="choose a sandbox network that no interface of this host uses",
                )


def _link_exists(device: str) -> bool:
    return Path("/sys/class/net", device).exists()


def _enable_forwarding(device: str, gateway: ipaddress.IPv4Interface) -> None:
    Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").write_text("1\n")
    table = str(ROUTE_TABLE)
    _ip("route", "replace", "unreachable", "default", "table", table)
    _ip(
        "route",
        "replace",
        str(gateway.network),
        "dev",
        device,
        "src",
        str(gateway.ip),
        "table",
        table,
    )
    if not _has_forwarding_rule(device):
        _ip("rule", "add", "iif", device, "lookup", table, "priority", str(RULE_PRIORITY))


def _forwarding_rules() -> list[dict[str, Any]]:
    return [
        rule
        for rule in _ip_json("rule", "show")
        if rule.get("priority") == RULE_PRIORITY and str(rule.get("table")) == str(ROUTE_TABLE)
    ]


def _has_forwarding_rule(device: str) -> bool:
    return any(rule.get("iif") == device for rule in _forwarding_rules())


def _remove_forwarding_rule(device: str) -> None:
    for _ in range(len(_forwarding_rules())):
        if not _has_forwarding_rule(device):
            return
        _ip(
            "rule",
            "del",
            "iif",
            device,
            "lookup",
            str(ROUTE_TABLE),
            "priority",
            str(RULE_PRIORITY),
        )


# ---- allowed networks ------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Allowed networks linked to the project bridges: a rule per network, forwarding and
    rules per local device that carries one."""

    networks: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


def plan_links(allowed: Iterable[str]) -> Links:
    """What linking ``allowed`` networks takes, changing nothing: GuardRefused when the host
    routes one through anything but a local bridge or veth."""
    networks = [n for n in _parse_networks(allowed) if n.version == 4]
    devices: dict[str, None] = {}
    for net in networks:
        for route in _ip_json("route", "show", "table", "main", "root", str(net)):
            device = route.get("dev")
            if not device or is_project_bridge_name(device):
                continue
            kind = _device_kind(device)
            if kind not in LOCAL_DEVICE_KINDS or device in _default_devices():
                _refuse(net, f"the host routes it via {device} ({kind or 'physical'}), not a "
                        "local bridge or namespace")
            devices[device] = None
    return Links(tuple(str(n) for n in networks), tuple(devices))


@_serialised
def link_networks(links: Links) -> None:
    """Route between the project bridges and the planned links' networks (idempotent)."""
    if not links.networks:
        return
    table = str(ROUTE_TABLE)
    _ip("route", "replace", "unreachable", "default", "table", table)
    for text in links.networks:
        if not _has_link_rule(ipaddress.ip_network(text)):
            _ip("rule", "add", "to", text, "lookup", "main", "suppress_prefixlength", "0",
                "priority", str(LINK_PRIORITY))
    for device in links.devices:
        if not any(r.get("iif") == device for r in _stop_rules()):
            _ip("rule", "add", "iif", device, "unreachable", "priority", str(LINKED_DEVICE_STOP))
        if not _has_forwarding_rule(device):
            _ip("rule", "add", "iif", device, "lookup", table, "priority", str(RULE_PRIORITY))
        Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").write_text("1\n")


@_serialised
def unlink_networks(links: Links) -> None:
    """Undo ``link_networks``: forwarding off first, then the rules; fine if gone."""
    for device in links.devices:
        if _link_exists(device):
            Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").write_text("0\n")
        _remove_forwarding_rule(device)
        if any(r.get("iif") == device for r in _stop_rules()):
            _ip("rule", "del", "iif", device, "unreachable", "priority",
                str(LINKED_DEVICE_STOP), check=False)
    for text in links.networks:
        if _has_link_rule(ipaddress.ip_network(text)):
            _ip("rule", "del", "to", text, "lookup", "main", "suppress_prefixlength", "0",
                "priority", str(LINK_PRIORITY), check=False)


def _has_link_rule(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return any(rule.get("priority") == LINK_PRIORITY
               and f"{rule.get('dst')}/{rule.get('dstlen')}" == str(net)
               for rule in _ip_json("rule", "show"))


def _stop_rules() -> list[dict[str, Any]]:
    return [rule for rule in _ip_json("rule", "show")
            if rule.get("priority") == LINKED_DEVICE_STOP]


def _device_kind(device: str) -> str | None:
    links = _ip_json("-d", "link", "show", "dev", device)
    return links[0].get("linkinfo", {}).get("info_kind") if links else None


def _default_devices() -> frozenset[str]:
    return frozenset(r["dev"] for r in _ip_json("route", "show", "default") if r.get("dev"))


# ---- the guard -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteFacts:
    """What the host says about reaching an address (gathered once, judged purely)."""

    route: dict[str, Any]  # first entry of ``ip -j route get ADDRESS``
    device_kind: str | None  # linkinfo.info_kind of the route's device
    default_devices: frozenset[str]  # devices that carry a default route


def assert_local_address(address: str, allowed_networks: Iterable[str] = ()) -> None:
    """Raise GuardRefused unless connecting to ``address`` stays on this host.

    Accepted: loopback; an address in the network of one of our bridges (and routed
    there); an address in one of ``allowed_networks`` that the host routes through a
    local bridge or veth (a namespace), not through a default-route device.
    """
    target = _parse_address(address)
    allowed = _parse_networks(allowed_networks)
    if target.is_loopback:
        return
    check_route(target, allowed, list_bridges(), gather_route_facts(target))


def gather_route_facts(target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> RouteFacts:
    routes = _ip_json("route", "get", str(target))
    route = routes[0] if routes else {}
    device = route.get("dev")
    return RouteFacts(route, _device_kind(device) if device else None, _default_devices())


def check_route(
    target: ipaddress.IPv4Address | ipaddress.IPv6Address,
    allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    bridges: Sequence[Bridge],
    facts: RouteFacts,
) -> None:
    """The guard's decision on gathered facts: return if local, else raise GuardRefused."""
    device = facts.route.get("dev")
    is_local_address = facts.route.get("type") == "local"
    for bridge in bridges:
        if any(target in network for network in bridge.networks):
            if device == bridge.name or is_local_address:
                return
            _refuse(target, f"it is on sandbox network {bridge.name} but routed via {device}")
    if not any(target in network for network in allowed):
        _refuse(target, "it lies on no sandbox network and in no sandbox.allowed_networks")
    if is_local_address:
        return
    if device is None or device in facts.default_devices:
        _refuse(target, f"it is routed via {device or 'no device'}, the host's uplink")
    if facts.device_kind not in LOCAL_DEVICE_KINDS:
        _refuse(
            target,
            f"it is routed via {device} ({facts.device_kind or 'physical'}),"
            " not a local bridge or namespace",
        )


def _refuse(target: object, why: str) -> None:
    raise GuardRefused(
        f"refusing to connect to {target}: {why}",
        hint="a sandbox rehearsal only reaches networks on this host; add a local network"
        " routed through a bridge or namespace to sandbox.allowed_networks",
    )


def _parse_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address.split("/")[0])
    except ValueError:
        raise GuardRefused(
            f"refusing to connect to {address!r}: not an IP address",
            hint="sandbox addresses are literal IPv4 addresses",
        ) from None


def _parse_networks(
    networks: Iterable[str],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    parsed = []
    for text in networks:
        try:
            parsed.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise GuardRefused(
                f"sandbox.allowed_networks entry {text!r} is not a network",
                hint="give CIDRs such as 192.168.77.0/24",
            ) from None
    return parsed
