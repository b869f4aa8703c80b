"""Boot one instance on the test cloud through the API and time it to ssh-ready.

The instance boots from the locally built guest image on the flat provider network
(``mgos-prov``), where the host reaches it directly; ssh-ready means its sshd sent its
banner to the host. The instance is deleted again by its id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import machines
from migrate.rehearsal.testcloud import api
from migrate.rehearsal.testcloud import machine as tc_machine


@dataclass
class BootResult:
    server_id: str
    address: str
    active_s: float
    ssh_ready_s: float
    banner: str


def find_id(session: api.Session, service: str, path: str, key: str, name: str) -> str:
    items = session.get(service, path)[key]
    for item in items:
        if item.get("name") == name:
            return str(item["id"])
    raise StageFailed(f"no {key[:-1]} named {name!r}")


def boot_instance(session: api.Session, name: str, network: str = "provider",
                  flavor: str = "m1.tiny", timeout: float = 600.0,
                  keep: bool = False) -> BootResult:
    image_id = find_id(session, "image", "/v2/images?name=testcloud-guest", "images",
                       "testcloud-guest")
    flavor_id = find_id(session, "compute", "/flavors", "flavors", flavor)
    network_id = find_id(session, "network", f"/v2.0/networks?name={network}", "networks",
                         network)
    body = {"server": {
        "name": name, "imageRef": image_id, "flavorRef": flavor_id,
        "networks": [{"uuid": network_id}], "key_name": "testcloud",
        "security_groups": [{"name": "ssh-icmp"}],
    }}
    started = time.monotonic()
    server_id = session.request("POST", "compute", "/servers", body)["server"]["id"]
    try:
        server = api.wait_for(lambda: _active(session, server_id), timeout, 1.0,
                              f"server {server_id} ACTIVE")
        active = time.monotonic() - started
        address = _address(server, network)
        api.guard(f"http://{address}/")
        banner = api.wait_for(
            lambda: machines._read_banner(address, 22, 1.0), timeout, 0.5,
            f"ssh on {address}")
        ready = time.monotonic() - started
    except BaseException:
        if not keep:
            delete_instance(session, server_id)
        raise
    if not keep:
        delete_instance(session, server_id)
    return BootResult(server_id, address, round(active, 1), round(ready, 1), banner)


def _active(session: api.Session, server_id: str) -> dict[str, Any] | None:
    server = session.get("compute", f"/servers/{server_id}")["server"]
    if server["status"] == "ERROR":
        raise StageFailed(f"server {server_id} went to ERROR: {server.get('fault')}")
    return server if server["status"] == "ACTIVE" else None


def _address(server: dict[str, Any], network: str) -> str:
    for entry in server.get("addresses", {}).get(network, []):
        if entry.get("version") == 4:
            return str(entry["addr"])
    raise StageFailed(f"server {server['id']} has no IPv4 address on {network}")


def delete_instance(session: api.Session, server_id: str, timeout: float = 120.0) -> None:
    session.request("DELETE", "compute", f"/servers/{server_id}", ok=(204, 404))

    def gone() -> bool:
        status, _, _ = api.raw_request(
            "GET", session.endpoint("compute") + f"/servers/{server_id}",
            headers={"X-Auth-Token": session.token})
        return status == 404

    api.wait_for(gone, timeout, 1.0, f"server {server_id} deleted")


def provider_network() -> str:
    return str(tc_machine.PROVIDER_NET)
