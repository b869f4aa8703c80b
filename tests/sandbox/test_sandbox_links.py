"""Allowed networks linked to the project bridges (``network.plan_links``, ``link_networks``,
``unlink_networks``) on this host's kernel: a lab bridge of the test's own is linked and
unlinked by exactly its rules, and a network the host routes through anything but a local
bridge or veth is refused before any change."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady, GuardRefused
from migrate.rehearsal.sandbox import network

LAB_BRIDGE, LAB_NET = "mgt-lab0", "10.249.7.0/24"
TUNNEL, TUNNEL_NET = "mgt-tun0", "10.249.8.0/24"  # a tunnel: what a VPN would be
SANDBOX_PRIORITIES = (network.LINK_PRIORITY, network.RULE_PRIORITY, network.LINKED_DEVICE_STOP)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def rules() -> list[dict]:
    """The host's rules but those of other sandboxes: another estate's sandbox may be up
    meanwhile (scripts/test.sh runs tests/testcloud's beside these tests), its rules naming
    its own devices (iif) and allowed networks (to), never this test's."""
    return [rule for rule in json.loads(ip("-j", "rule", "show").stdout)
            if rule.get("priority") not in SANDBOX_PRIORITIES
            or rule.get("iif") in (LAB_BRIDGE, TUNNEL)
            or rule.get("dst") in (LAB_NET.split("/")[0], TUNNEL_NET.split("/")[0])
            or not (rule.get("iif") or rule.get("dst"))]


def forwarding(device: str) -> str:
    return Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").read_text().strip()


@pytest.fixture
def lab_bridge() -> Iterator[str]:
    from migrate.rehearsal.sandbox import require_host

    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    ip("link", "add", LAB_BRIDGE, "type", "bridge")
    try:
        ip("addr", "add", "10.249.7.1/24", "dev", LAB_BRIDGE)
        ip("link", "set", LAB_BRIDGE, "up")
        yield LAB_BRIDGE
    finally:
        network.unlink_networks(network.Links((LAB_NET,), (LAB_BRIDGE,)))
        ip("link", "del", LAB_BRIDGE, check=False)


def test_a_lab_bridge_is_linked_and_unlinked_by_exactly_its_rules(lab_bridge: str) -> None:
    before = rules()
    links = network.plan_links([LAB_NET, "2001:db8::/64"])
    assert links == network.Links((LAB_NET,), (lab_bridge,))  # IPv6 is not routed
    assert rules() == before and forwarding(lab_bridge) == "0"  # planning changes nothing

    network.link_networks(links)
    network.link_networks(links)  # idempotent: no second copy of any rule
    added = [r for r in rules() if r not in before]
    assert sorted((r["priority"], r.get("dst"), r.get("iif"), r.get("table"),
                   r.get("action")) for r in added) == [
        (network.LINK_PRIORITY, "10.249.7.0", None, "main", None),
        (network.RULE_PRIORITY, None, lab_bridge, str(network.ROUTE_TABLE), None),
        (network.LINKED_DEVICE_STOP, None, lab_bridge, None, "unreachable")]
    link_rule = next(r for r in added if r["priority"] == network.LINK_PRIORITY)
    assert link_rule["suppress_prefixlen"] == 0  # the host's default route is never used
    assert forwarding(lab_bridge) == "1"
    # what arrives on the lab bridge for an address off this host goes nowhere
    route = json.loads(ip("-j", "route", "get", "192.0.2.10", "from", "10.249.7.20",
                          "iif", lab_bridge, check=False).stdout or "[]")
    assert not route or route[0].get("type") == "unreachable", route

    network.unlink_networks(links)
    assert rules() == before and forwarding(lab_bridge) == "0"


def test_a_network_routed_through_something_else_is_refused_before_any_change(
        lab_bridge: str) -> None:
    ip("tuntap", "add", "dev", TUNNEL, "mode", "tun")
    try:
        ip("link", "set", TUNNEL, "up")
        ip("route", "add", TUNNEL_NET, "dev", TUNNEL)
        before = rules()
        with pytest.raises(GuardRefused, match=rf"{TUNNEL} \(tun\), not a local bridge"):
            network.plan_links([LAB_NET, TUNNEL_NET])
        assert rules() == before
    finally:
        ip("link", "del", TUNNEL, check=False)
