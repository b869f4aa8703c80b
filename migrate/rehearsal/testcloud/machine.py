"""The test cloud's machine and its two project bridges.

One systemd-nspawn machine, ``mgos-aio``, booting systemd on an overlay of the cached
testcloud image (see image.py). It is a sandbox machine (migrate.rehearsal.sandbox.machines lays out
its directory, address unit, host key and machine id, and stops and destroys it), started
with a command of our own, because it needs more than a sandbox machine:

- two veths with names we choose (``--network-veth-extra``, which also gives it a private
  network namespace): ``mgos-aio-m``/``host0`` on the management bridge ``mgos-mgmt``
  (the API endpoints, reached from the host) and ``mgos-aio-p``/``prov0`` on the provider
  bridge ``mgos-prov`` (neutron's flat provider network; instances and floating IPs are
  reached from the host there);
- ``/dev/kvm`` and ``/dev/net/tun`` bound in, so libvirt's qemu uses KVM and neutron's
  linuxbridge agent, DHCP and L3 agents make bridges, taps and namespaces inside;
- data that wants a real file system (Ceph's OSD file, nova's instance disks, glance's
  images) on bind-mounted directories under the machine's directory, not on the overlay.

The bridges carry host addresses but forwarding stays off on them: nothing the machine
or its instances send is routed anywhere; the host only talks to them directly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import machines, network
from migrate.rehearsal.sandbox.host import require_host, tool
from migrate.rehearsal.sandbox.layout import machine_dir, upper_dir

DEFAULT_ROOT = Path("/var/lib/migrate/testcloud")
NAME = "mgos-aio"
MGMT_BRIDGE = "mgos-mgmt"
PROVIDER_BRIDGE = "mgos-prov"
MGMT_VETH = "mgos-aio-m"
PROVIDER_VETH = "mgos-aio-p"
MGMT_NET = ipaddress.IPv4Network("10.253.0.0/24")
PROVIDER_NET = ipaddress.IPv4Network("10.253.1.0/24")
HOST_MGMT_IP = "10.253.0.1"
MACHINE_IP = "10.253.0.10"
HOST_PROVIDER_IP = "10.253.1.1"
PROVIDER_POOL = ("10.253.1.100", "10.253.1.199")
# Directories on the host file system, bound into the machine.
VOLUMES = {
    "ceph": "/var/lib/ceph",
    "nova-instances": "/var/lib/nova/instances",
    "glance-images": "/var/lib/glance/images",
    "guest": "/srv/guest",
    "control": "/srv/testcloud",
}


def cloud_root(root: str | os.PathLike[str] | None = None) -> Path:
    if root is not None:
        return Path(root).absolute()
    from_env = os.environ.get("MIGRATE_TESTCLOUD_ROOT")
    return Path(from_env).absolute() if from_env else DEFAULT_ROOT


def volume_dir(key: str, root: Path) -> Path:
    return machine_dir(NAME, root) / "volumes" / key


# ---- bridges ---------------------------------------------------------------------


def ensure_bridge(device: str, address: str) -> None:
    """Create (or keep) bridge ``device`` with ``address``; forwarding off on it."""
    gateway = ipaddress.IPv4Interface(address)
    network._refuse_overlap(device, gateway.network)
    if not Path("/sys/class/net", device).exists():
        network._ip("link", "add", device, "type", "bridge")
    network._ip("link", "set", device, "address", network.bridge_mac(device))
    present = {
        str(i)
        for link in network._ip_json("addr", "show", "dev", device)
        for i in network._ipv4_interfaces(link)
    }
    if str(gateway) not in present:
        network._ip("addr", "add", str(gateway), "dev", device)
    network._ip("link", "set", device, "up")
    Path(f"/proc/sys/net/ipv4/conf/{device}/forwarding").write_text("0\n")


def remove_bridge(device: str) -> None:
    if Path("/sys/class/net", device).exists():
        network._ip("link", "del", device)


def bridges_present() -> list[str]:
    return [d for d in (MGMT_BRIDGE, PROVIDER_BRIDGE) if Path("/sys/class/net", d).exists()]


# ---- the machine -----------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    root: Path
    image: Path

    @property
    def directory(self) -> Path:
        return machine_dir(NAME, self.root)

    def status(self) -> str:
        return machines.machine_status(NAME, self.root)

    def init_pid(self) -> int | None:
        return machines.machine_init_pid(NAME, self.root)


def create(root: Path, image: Path, authorized_keys: str) -> Machine:
    """Lay out the machine (sandbox helper) plus its volume directories; idempotent."""
    spec = machines.MachineSpec(
        name=NAME,
        image=str(image),
        bridge=MGMT_BRIDGE,
        address=f"{MACHINE_IP}/{MGMT_NET.prefixlen}",
        gateway=HOST_MGMT_IP,
        volumes={str(volume_dir(k, root)): v for k, v in VOLUMES.items()},
        authorized_keys=authorized_keys,
        hostname="aio",
    )
    machines.create_machine(spec, root)
    # The sandbox's hosts file names the machine; RabbitMQ and Ceph need it resolvable.
    (upper_dir(NAME, root) / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n{MACHINE_IP} aio\n"
    )
    return Machine(root, image)


def start(machine: Machine) -> int:
    """Boot the machine detached (if it is not running) and plug its veths; nspawn pid."""
    require_host()
    root = machine.root
    ensure_bridge(MGMT_BRIDGE, f"{HOST_MGMT_IP}/{MGMT_NET.prefixlen}")
    ensure_bridge(PROVIDER_BRIDGE, f"{HOST_PROVIDER_IP}/{PROVIDER_NET.prefixlen}")
    pid = machines.find_machine_pid(NAME, root)
    if pid is None:
        for veth in (MGMT_VETH, PROVIDER_VETH):
            if Path("/sys/class/net", veth).exists():  # left by a killed machine
                network._ip("link", "del", veth, check=False)
        record = json.loads((machine.directory / "machine.json").read_text())
        command = nspawn_command(record, upper_dir(NAME, root))
        with machines._machine_lock(NAME, root):
            groups = machines._fresh_cgroups(NAME, root)
            with open(machine.directory / "console.log", "wb") as log:
                subprocess.run(
                    machines._in_cgroups([tool("setsid"), "--fork", *command], groups),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    check=True,
                    env=machines._nspawn_environment(),
                )
            pid = machines._wait_for_pid(NAME, root)
    _plug(MGMT_VETH, MGMT_BRIDGE)
    _plug(PROVIDER_VETH, PROVIDER_BRIDGE)
    return pid


def nspawn_command(record: dict[str, object], upper: Path) -> list[str]:
    sandbox = machines.nspawn_command(record, upper)
    command = [arg for arg in sandbox if not arg.startswith("--network-bridge=")]
    return [
        *command,
        f"--network-veth-extra={MGMT_VETH}:host0",
        f"--network-veth-extra={PROVIDER_VETH}:prov0",
        "--bind=/dev/kvm",
        "--bind=/dev/net/tun",
        "--capability=CAP_NET_ADMIN,CAP_IPC_LOCK,CAP_SYS_RAWIO",
    ]


def _plug(veth: str, bridge: str, timeout: float = 10.0) -> None:
    device = Path("/sys/class/net", veth)
    deadline = time.monotonic() + timeout
    while not device.exists():
        if time.monotonic() > deadline:
            raise StageFailed(f"the machine's veth {veth} did not appear")
        time.sleep(0.05)
    master = device / "master"
    if not (master.exists() and master.resolve().name == bridge):
        network._ip("link", "set", veth, "master", bridge)
    network._ip("link", "set", veth, "up")


def run(machine: Machine, *argv: str, env: dict[str, str] | None = None,
        check: bool = True, timeout: float | None = None,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the machine (all its namespaces) with a clean environment."""
    pid = machine.init_pid()
    if pid is None:
        raise StageFailed(f"machine {NAME} is not running")
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8", "HOME": "/root"}
    environment.update(env or {})
    command = [tool("nsenter"), "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C",
               "--", "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()),
               *argv]
    result = subprocess.run(command, capture_output=capture, text=True, check=False,
                            timeout=timeout)
    if check and result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-40:])
        raise StageFailed(f"in {NAME}: {' '.join(argv[:3])} failed ({result.returncode}):\n"
                          f"{tail}")
    return result


def wait_booted(machine: Machine, timeout: float = 120.0) -> float:
    """Wait until systemd in the machine finished starting up; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if machine.init_pid() is not None:
            state = run(machine, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - started
        time.sleep(0.3)
    raise StageFailed(f"machine {NAME} did not finish booting in {timeout:.0f} s:\n"
                      + machines.console_tail(NAME, machine.root))


def stop(root: Path) -> None:
    machines.stop_machine(NAME, root, timeout=90.0)
    for veth in (MGMT_VETH, PROVIDER_VETH):
        if Path("/sys/class/net", veth).exists():
            network._ip("link", "del", veth, check=False)


def destroy(root: Path) -> None:
    """Stop the machine, remove its directory (all cloud state) and both bridges."""
    stop(root)
    directory = machine_dir(NAME, root)
    if directory.exists():
        shutil.rmtree(directory)
    for bridge in (MGMT_BRIDGE, PROVIDER_BRIDGE):
        remove_bridge(bridge)
