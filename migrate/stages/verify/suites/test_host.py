"""Host checks: declared services active and enabled and listening on their ports, only
the planned ports exposed and reachable from outside, volumes mounted (and encrypted where
the plan says and the cloud can)."""

from __future__ import annotations

import ipaddress
import shlex
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from migrate.targets import REHEARSAL, load_surroundings

PROBE_TIMEOUT_S = 1.0  # on the cloud's own network; a firewall that drops shows as timeout


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return ipaddress.IPv6Address(words)


def tcp_listeners(host: Any) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, from /proc/net/tcp and tcp6."""
    text = host.run("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null").stdout
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[3] != "0A" or ":" not in parts[1]:
            continue
        address, port = parts[1].split(":")
        found.add((str(_address(address)), int(port, 16)))
    return found


def exposed(address: str) -> bool:
    """Listening on an address other machines can reach (not loopback)."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (ip.is_loopback or (mapped is not None and mapped.is_loopback))


def test_service_active_and_enabled(service: dict, hosts: Any, check: Any) -> None:
    host = hosts[service["host"]]
    unit = shlex.quote(service["unit"])
    active = host.run(f"systemctl is-active {unit}").stdout.strip() or "unknown"
    enabled = host.run(f"systemctl is-enabled {unit}").stdout.strip() or "unknown"
    check.evidence("state", {"active": active, "enabled": enabled})
    check.expect(active == "active" and enabled == "enabled",
                 expected=f"{service['unit']} active and enabled",
                 found=f"{active}, {enabled}", host=service["host"],
                 look_at=f"systemctl status {service['unit']}; journalctl -u {service['unit']}")


def test_service_listening_on_its_port(service: dict, hosts: Any, check: Any) -> None:
    listeners = tcp_listeners(hosts[service["host"]])
    on_port = sorted(a for a, p in listeners if p == service["port"])
    check.evidence("addresses", on_port)
    check.expect(any(exposed(a) for a in on_port),
                 expected=f"{service['name']} listening on port {service['port']} "
                          "on a non-loopback address",
                 found=f"listening on {', '.join(on_port)}" if on_port else "nothing listening",
                 host=service["host"],
                 look_at=f"ss -tlnp; the listen address in {service['name']}'s configuration")


def test_only_planned_ports_listen(machine: dict, hosts: Any, check: Any) -> None:
    listeners = tcp_listeners(hosts[machine["host"]])
    open_ports = sorted({p for a, p in listeners if exposed(a)})
    unplanned = [p for p in open_ports if p not in machine["planned_ports"]]
    check.evidence("listening", open_ports)
    planned = ", ".join(map(str, machine["planned_ports"]))
    check.expect(not unplanned,
                 expected=f"only planned ports listening ({planned})",
                 found=f"also port(s) {', '.join(map(str, unplanned))}" if unplanned
                       else f"listening on {', '.join(map(str, open_ports))}",
                 host=machine["host"],
                 look_at="ss -tlnp (which process), and the plan's security rules")


def probe(address: str, port: int) -> str:
    """open, refused or timeout: a TCP connection from this machine (the operator's)."""
    try:
        with socket.create_connection((address, port), timeout=PROBE_TIMEOUT_S):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as error:
        return f"unreachable ({error.strerror or error})"


def test_unplanned_ports_refused_from_outside(machine: dict, context: dict, hosts: Any,
                                              check: Any) -> None:
    """From the operator's station (another machine, in the ``ops`` peer): every port the
    machine listens on or the plan opens to others must refuse it, except ops' own."""
    rehearsal = context.get("rehearsal")
    if rehearsal:  # the operator's station is this host: the rehearsal's guard first
        load_surroundings(REHEARSAL).guard_address(machine["address"],
                                                   rehearsal["allowed_networks"])
    listening = {p for a, p in tcp_listeners(hosts[machine["host"]]) if exposed(a)}
    ports = sorted((listening | set(machine["planned_ports"])) - set(machine["operator_allowed"]))
    if not ports:
        pytest.skip("no port to probe: the machine exposes only the operator's own ports")
    with ThreadPoolExecutor(max(1, len(ports))) as pool:
        answers = dict(zip(ports, pool.map(lambda p: probe(machine["address"], p), ports),
                           strict=True))
    check.evidence("probes", {str(p): a for p, a in answers.items()})
    reached = [p for p, a in answers.items() if a == "open"]
    check.expect(not reached,
                 expected=f"ports {', '.join(map(str, ports))} refused to the operator's "
                          "station (only the plan's peers may connect)",
                 found=f"port(s) {', '.join(map(str, reached))} accepted a connection",
                 host=machine["host"],
                 look_at="the firewall (nft list ruleset) against the plan's security rules")


def mounts(host: Any) -> dict[str, tuple[str, str]]:
    found = {}
    for line in host.run("cat /proc/self/mounts").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].encode().decode("unicode_escape")
            found[point] = (parts[0], parts[2])
    return found


def test_volume_mounted(volume: dict, hosts: Any, check: Any) -> None:
    found = mounts(hosts[volume["host"]]).get(volume["mount"])
    check.evidence("mount", list(found) if found else None)
    check.expect(found is not None, expected=f"volume {volume['name']} mounted at "
                 f"{volume['mount']}", found="nothing mounted there" if found is None
                 else f"{found[0]} ({found[1]})", host=volume["host"],
                 look_at="findmnt; the instance's volume attachment (migrate provision)")


def test_volume_encrypted(volume: dict, context: dict, hosts: Any, check: Any) -> None:
    if not volume.get("encrypted"):
        pytest.skip("the plan does not ask for encryption of this volume")
    if context["sandbox"]:
        pytest.skip("encryption is not available in the sandbox (a volume is a bind-mounted "
                    "folder; the provisioner records it)")
    cloud = volume.get("cloud_encryption")
    if cloud is not None:
        # the cloud encrypts (OpenStack: cinder, on the hypervisor): the guest sees a plain
        # disk, so what counts is what the cloud's API reports, checked by the target now
        check.evidence("cloud", cloud)
        check.expect(bool(cloud.get("encrypted") and cloud.get("checked")),
                     expected=f"volume {volume['name']} encrypted at rest by the cloud, as "
                              "its API reports it",
                     found=cloud.get("error") or cloud.get("by") or cloud.get("detail")
                     or "not checked through the cloud",
                     host=volume["host"],
                     look_at="openstack volume show VOLUME; openstack volume type show "
                             "--encryption-type TYPE")
        return
    host = hosts[volume["host"]]
    found = mounts(host).get(volume["mount"])
    if found is None:
        pytest.fail(f"volume {volume['mount']} is not mounted on {volume['host']}",
                    pytrace=False)
    types = host.run(f"lsblk -nso TYPE {shlex.quote(found[0])}").stdout.split()
    check.evidence("lsblk", types)
    check.expect("crypt" in types, expected=f"{volume['mount']} on an encrypted (crypt) device",
                 found=f"device {found[0]} of types {', '.join(types) or 'unknown'}",
                 host=volume["host"], look_at="lsblk -s; the volume type of the cloud")
