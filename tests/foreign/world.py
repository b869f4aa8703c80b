"""The world outside ``sandbox up`` that the foreign-server tests build: a bridge of their
own in 192.168.177.0/25 (nothing else in the project uses 192.168.177.0/24), the package
mirror on its gateway address, machines on it, and ssh to them with their real host keys.

Everything is made with migrate.rehearsal.sandbox's own layers (network, mirror, machines, hostkeys)
and removed by its own name or id afterwards.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migrate.rehearsal.sandbox import hostkeys, machines, mirror, network
from migrate.rehearsal.sandbox.layout import upper_dir

NETWORK = "t-foreign"  # bridge mg-t-foreign
GATEWAY = "192.168.177.1/25"
MIRROR = "t-foreign"  # mirror name: its package cache stays warm between runs
ROOT = Path("/var/lib/migrate/test-foreign")  # the machines' sandbox root
SSH_TIMEOUT = 900


@dataclass(frozen=True)
class Net:
    network: str
    device: str
    gateway: ipaddress.IPv4Interface

    @property
    def gateway_ip(self) -> str:
        return str(self.gateway.ip)

    def address(self, host: int) -> str:
        return f"{self.gateway.network.network_address + host}/{self.gateway.network.prefixlen}"


@contextmanager
def bridge(name: str = NETWORK, gateway: str = GATEWAY) -> Iterator[Net]:
    """A project bridge for the test, removed afterwards (with whatever is still on it)."""
    device = network.ensure_bridge(name, gateway)
    try:
        yield Net(name, device, ipaddress.IPv4Interface(gateway))
    finally:
        network.remove_bridge(name, force=True)


@contextmanager
def package_mirror(net: Net, name: str = MIRROR) -> Iterator[mirror.Mirror]:
    """The package mirror on the bridge's own address; stopped by its name afterwards
    (its package cache stays for the next session)."""
    try:
        yield mirror.start_mirror(name, net.gateway_ip)
    finally:
        mirror.stop_mirror(name)


@contextmanager
def machines_root(path: Path = ROOT) -> Iterator[Path]:
    """The sandbox root of the tests' foreign machines: one fixed folder, so machines a
    killed session left running are found and destroyed by the next one (before, and
    again after, the session)."""
    path.mkdir(parents=True, exist_ok=True)
    destroy_all(path)
    try:
        yield path
    finally:
        destroy_all(path)


def destroy_all(root: Path) -> None:
    for info in machines.list_machines(root):
        machines.destroy_machine(info.name, root)


@dataclass(frozen=True)
class Access:
    """ssh as root with the test's own key and the machine's real host key (checked)."""

    key: Path
    known_hosts: Path

    def run(self, address: str, command: str, stdin: str | None = None,
            timeout: float = SSH_TIMEOUT) -> subprocess.CompletedProcess[str]:
        network.assert_local_address(address)
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
             "-o", "ConnectTimeout=10", f"root@{address}", command],
            input=stdin if stdin is not None else "", capture_output=True, text=True,
            timeout=timeout, check=False)

    def check(self, address: str, command: str, stdin: str | None = None,
              timeout: float = SSH_TIMEOUT) -> str:
        result = self.run(address, command, stdin, timeout)
        assert result.returncode == 0, (
            f"{command!r} on {address} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout


def operator_key(folder: Path) -> tuple[Path, str]:
    return hostkeys.ensure_client_keypair(folder / "id_ed25519")


def machine_spec(name: str, net: Net, host: int, image: str, public_key: str,
                 hostname: str | None = None) -> machines.MachineSpec:
    return machines.MachineSpec(name=name, image=image, bridge=net.network,
                                address=net.address(host), gateway=net.gateway_ip,
                                authorized_keys=public_key, hostname=hostname)


def boot(spec: machines.MachineSpec, root: Path, known_hosts: Path,
         mirror_url: str | None = None) -> float:
    """Create (or complete) and start the machine, apt pointed at the mirror; record its
    host key in ``known_hosts``; seconds until ssh answers."""
    machines.create_machine(spec, root)
    if mirror_url:
        mirror.write_apt_sources(upper_dir(spec.name, root), mirror_url)
    add_known_host(known_hosts, hostkeys.known_hosts_line(spec.name, spec.ip, root))
    machines.start_machine(spec.name, root)
    return machines.wait_ssh_ready(spec.name, 60.0, root)


def add_known_host(path: Path, line: str) -> None:
    lines = path.read_text().splitlines() if path.is_file() else []
    address = line.split()[0]
    kept = [entry for entry in lines if entry.split()[:1] != [address]]
    hostkeys.write_known_hosts(path, [*kept, line])


@contextmanager
def machine(spec: machines.MachineSpec, root: Path) -> Iterator[machines.MachineSpec]:
    """Destroys the machine (by its name, under ``root``) afterwards, however the test ends."""
    try:
        yield spec
    finally:
        machines.destroy_machine(spec.name, root)


def settle(access: Access, address: str) -> str:
    """Wait until the machine's systemd finished booting; its state line."""
    result = access.run(address, "systemctl is-system-running --wait", timeout=180)
    return result.stdout.strip()

