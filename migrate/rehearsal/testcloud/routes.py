"""Host routes to the test cloud's tenant networks, through the routers' gateways.

In a real cloud the ops network (the bastion) has routes to the department networks. On
this host the host itself is the ops network: it stands on the provider network
(``mgos-prov``), where each department router has its gateway address. A tenant subnet is
routed via its router's gateway on that bridge, and only subnets inside the networks the
caller names (an estate's zones) are routed, so no route ever points anywhere else.

``RouteKeeper`` keeps them while a run makes routers (the city's network team's part, done
by the host here): every couple of seconds it routes new tenant subnets, and at the end it
removes exactly the routes it made.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from migrate.rehearsal.testcloud import api
from migrate.rehearsal.testcloud import machine as tc_machine


@dataclass(frozen=True)
class Route:
    cidr: str
    via: str

    def argv(self, verb: str) -> list[str]:
        return ["ip", "route", verb, self.cidr, "via", self.via,
                "dev", tc_machine.PROVIDER_BRIDGE]


def tenant_routes(session: api.Session, within: Iterable[str]) -> list[Route]:
    """A route per subnet behind a router whose gateway is on the provider network, for the
    subnets that lie inside ``within``."""
    zones = [ipaddress.ip_network(cidr) for cidr in within]
    provider = _network_id(session, "provider")
    routes = []
    for router in session.get("network", "/v2.0/routers")["routers"]:
        gateway = router.get("external_gateway_info") or {}
        if gateway.get("network_id") != provider:
            continue
        via = _provider_address(gateway)
        if via is None:
            continue
        for cidr in _interface_cidrs(session, router["id"]):
            if any(ipaddress.ip_network(cidr).subnet_of(zone) for zone in zones):
                routes.append(Route(cidr, via))
    return sorted(routes, key=lambda r: r.cidr)


def ensure_routes(session: api.Session, within: Iterable[str]) -> list[Route]:
    routes = tenant_routes(session, within)
    for route in routes:
        subprocess.run(route.argv("replace"), check=True, capture_output=True)
    return routes


def remove_routes(routes: Iterable[Route]) -> None:
    for route in routes:
        subprocess.run(route.argv("del"), check=False, capture_output=True)


class RouteKeeper:
    """Routes the tenant subnets inside ``within`` as routers appear, in a thread, until
    ``stop``; then removes every route it made. ``session`` makes a fresh API session."""

    def __init__(self, session: Callable[[], api.Session], within: Iterable[str],
                 interval_s: float = 2.0) -> None:
        self.session, self.within, self.interval_s = session, list(within), interval_s
        self.made: set[Route] = set()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="testcloud-routes", daemon=True)

    def __enter__(self) -> RouteKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        remove_routes(sorted(self.made, key=lambda r: r.cidr))

    def _keep(self) -> None:
        session = None
        while not self._stop.is_set():
            try:
                session = session or self.session()
                self.made.update(ensure_routes(session, self.within))
            except Exception as error:
                self.failures += 1
                session = None
                logging.getLogger(__name__).warning("test cloud routes: %s", error)
            self._stop.wait(self.interval_s)


def _network_id(session: api.Session, name: str) -> str:
    found = session.get("network", f"/v2.0/networks?name={name}")["networks"]
    return str(found[0]["id"]) if found else ""


def _provider_address(gateway: dict) -> str | None:
    for fixed in gateway.get("external_fixed_ips") or []:
        address = ipaddress.ip_address(fixed["ip_address"])
        if address in tc_machine.PROVIDER_NET:
            return str(address)
    return None


def _interface_cidrs(session: api.Session, router_id: str) -> list[str]:
    ports = session.get("network", f"/v2.0/ports?device_id={router_id}"
                        "&device_owner=network:router_interface")["ports"]
    cidrs = []
    for port in ports:
        for fixed in port["fixed_ips"]:
            subnet = session.get("network", f"/v2.0/subnets/{fixed['subnet_id']}")["subnet"]
            cidrs.append(str(subnet["cidr"]))
    return cidrs
