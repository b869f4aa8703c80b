"""The local-address guard's decision, on route facts written by hand (no root needed)."""

from __future__ import annotations

import ipaddress

import pytest

from migrate.core.errors import GuardRefused
from migrate.rehearsal.sandbox.network import Bridge, RouteFacts, assert_local_address, check_route

TEST_BRIDGE = Bridge("mg-t1", (ipaddress.IPv4Interface("10.250.1.1/24"),))
UPLINK = frozenset({"eth0"})


def facts(dev: str | None, kind: str | None = None, **extra: str) -> RouteFacts:
    route = {"dst": "x", **({"dev": dev} if dev else {}), **extra}
    return RouteFacts(route=route, device_kind=kind, default_devices=UPLINK)


def ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def nets(*texts: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(t) for t in texts]


def test_address_on_our_bridge_is_accepted() -> None:
    check_route(ip("10.250.1.10"), [], [TEST_BRIDGE], facts("mg-t1", "bridge"))


def test_gateway_address_itself_is_local() -> None:
    check_route(ip("10.250.1.1"), [], [TEST_BRIDGE], facts("lo", type="local"))


def test_address_outside_every_network_is_refused() -> None:
    with pytest.raises(GuardRefused, match=r"192\.0\.2\.10.*no sandbox network"):
        check_route(ip("192.0.2.10"), [], [TEST_BRIDGE], facts("eth0", gateway="192.0.2.1"))


def test_bridge_network_routed_elsewhere_is_refused() -> None:
    # Someone else's route shadows our network: do not trust the bridge's claim.
    with pytest.raises(GuardRefused, match="routed via eth0"):
        check_route(ip("10.250.1.10"), [], [TEST_BRIDGE], facts("eth0"))


def test_allowed_network_via_uplink_is_refused() -> None:
    with pytest.raises(GuardRefused, match="uplink"):
        check_route(ip("192.168.77.5"), nets("192.168.77.0/24"), [], facts("eth0"))


def test_allowed_network_via_physical_device_is_refused() -> None:
    with pytest.raises(GuardRefused, match="not a local bridge or namespace"):
        check_route(ip("192.168.77.5"), nets("192.168.77.0/24"), [], facts("eth1", None))


def test_allowed_network_via_veth_is_accepted() -> None:
    check_route(ip("192.168.77.5"), nets("192.168.77.0/24"), [], facts("veth-ns", "veth"))


def test_allowed_network_via_foreign_bridge_is_accepted() -> None:
    check_route(ip("192.168.77.5"), nets("192.168.77.0/24"), [], facts("br-lab", "bridge"))


def test_address_in_no_allowed_network_is_refused_even_via_veth() -> None:
    with pytest.raises(GuardRefused):
        check_route(ip("192.168.78.5"), nets("192.168.77.0/24"), [], facts("veth-ns", "veth"))


def test_loopback_and_garbage() -> None:
    assert_local_address("127.0.0.1")  # loopback needs no route lookup
    with pytest.raises(GuardRefused, match="not an IP address"):
        assert_local_address("db.example.gov.cn")
    with pytest.raises(GuardRefused, match="not a network"):
        assert_local_address("127.0.0.1", ["10.0.0.0/33"])
