"""Sandbox machines: systemd-nspawn containers booting an overlay on a base image.

Nothing is remembered in memory. A machine is its directory under the sandbox root
(``machines/NAME/``: ``machine.json``, the overlay's ``upper/`` dir, ``console.log``)
plus, while it runs, a ``systemd-nspawn`` process found by scanning /proc. So a crashed
caller leaks nothing that ``list_machines`` and ``destroy_machine`` cannot find again.

Everything a machine needs of its own (address unit, hostname, machine id, host key,
authorized_keys, masked units) is written into ``upper/`` before the first boot; the
base image stays pristine. The host's PID 1 is not systemd, so nspawn runs with
``--register=no`` (no machined) and detached with ``setsid --fork``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.adapters.processes import all_pids, cmdline, environ_value
from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import cgroups, hostkeys, images, network
from migrate.rehearsal.sandbox.host import require_host, tool
from migrate.rehearsal.sandbox.layout import (
    Root,
    console_log,
    machine_dir,
    machine_name,
    machines_dir,
    spec_file,
    upper_dir,
    veth_name,
)

SSH_PORT = 22
RUNNING, STOPPED, ABSENT = "running", "stopped", "absent"
ADDRESS_UNIT = "migrate-address.service"


@dataclass(frozen=True)
class MachineSpec:
    """What a machine is. ``name`` may be long: see ``layout.machine_name``.

    ``image`` is an image name from images.RECIPES or an absolute path to an image dir;
    ``bridge`` a network name or ``mg-`` bridge device (see network.bridge_name);
    ``address`` the machine's IPv4 address with prefix, ``gateway`` the bridge's address;
    ``volumes`` maps host directories to mount points inside (bind mounts, read-write);
    ``masked_units`` are systemd units masked on this machine only;
    ``layers`` are read-only directory trees stacked over the image, lowest first (e.g. the
    upper dir kept from a machine that was prepared once), under the machine's own upper.
    """

    name: str
    image: str
    bridge: str
    address: str
    gateway: str
    volumes: Mapping[str, str] = field(default_factory=dict)
    authorized_keys: str = ""
    hostname: str | None = None
    masked_units: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()

    @property
    def machine(self) -> str:
        return machine_name(self.name)

    @property
    def ip(self) -> str:
        return str(ipaddress.IPv4Interface(self.address).ip)

    def host_name(self) -> str:
        return self.hostname or self.machine


@dataclass(frozen=True)
class MachineInfo:
    name: str  # as given in the spec
    machine: str  # nspawn machine name (veth: vb-MACHINE)
    status: str  # running | stopped
    pid: int | None
    address: str
    bridge: str
    directory: Path


# ---- create ----------------------------------------------------------------------


def create_machine(spec: MachineSpec, root: Root = None) -> MachineInfo:
    """Lay out the machine's directory and per-machine files; does not boot it.

    Creating an existing machine again rewrites its configuration files and keeps its
    host key and data.
    """
    require_host()
    _validate(spec)
    image_dir = _resolve_image(spec.image)
    directory = machine_dir(spec.name, root)
    _refuse_name_clash(spec, root)
    upper = upper_dir(spec.name, root)
    upper.mkdir(parents=True, exist_ok=True)
    _write_machine_files(spec, upper)
    for host_dir in spec.volumes:
        Path(host_dir).mkdir(parents=True, exist_ok=True)
    record = {
        "name": spec.name,
        "machine": spec.machine,
        "machine_id": (upper / "etc/machine-id").read_text().strip(),
        "image_dir": str(image_dir),
        "bridge": network.bridge_name(spec.bridge),
        "address": spec.address,
        "gateway": spec.gateway,
        "volumes": dict(spec.volumes),
        "hostname": spec.host_name(),
        "masked_units": list(spec.masked_units),
        "layers": list(spec.layers),
    }
    _write_file(spec_file(spec.name, root), json.dumps(record, indent=2) + "\n")
    return _info(directory)


def _validate(spec: MachineSpec) -> None:
    try:
        address = ipaddress.IPv4Interface(spec.address)
        gateway = ipaddress.IPv4Address(spec.gateway)
    except ValueError as error:
        raise StageFailed(
            f"machine {spec.name}: bad address or gateway ({error})",
            hint="address with prefix such as 10.250.1.10/24, gateway such as 10.250.1.1",
        ) from None
    if "/" not in spec.address:
        raise StageFailed(f"machine {spec.name}: address {spec.address} needs a prefix")
    if gateway not in address.network or gateway == address.ip:
        raise StageFailed(
            f"machine {spec.name}: gateway {gateway} must be another address in {address.network}",
        )
    for layer in spec.layers:
        if not (os.path.isabs(layer) and ":" not in layer and os.path.isdir(layer)):
            raise StageFailed(f"machine {spec.name}: layer {layer} must be an existing"
                              " absolute directory without ':'")
    for host_dir, mount_point in spec.volumes.items():
        if not (os.path.isabs(host_dir) and os.path.isabs(mount_point)):
            raise StageFailed(f"machine {spec.name}: volume paths must be absolute")
        if ":" in host_dir + mount_point:
            raise StageFailed(f"machine {spec.name}: volume paths must not contain ':'")


def _resolve_image(image: str) -> Path:
    if os.path.isabs(image):
        path = Path(image)
        if not images.is_built(path):
            raise StageFailed(f"{image} is not a sandbox image (no usr/lib/os-release)")
        return path
    return images.ensure_image(image)


def _refuse_name_clash(spec: MachineSpec, root: Root) -> None:
    existing = _read_record(spec_file(spec.name, root))
    if existing and existing["name"] != spec.name:
        raise StageFailed(
            f"machine names {spec.name!r} and {existing['name']!r} both shorten to"
            f" {spec.machine!r}",
            hint="rename one of them",
        )


def _write_machine_files(spec: MachineSpec, upper: Path) -> None:
    hostname = spec.host_name()
    _write_file(upper / "etc/hostname", hostname + "\n")
    _write_file(upper / "etc/hosts", f"127.0.0.1 localhost\n{spec.ip} {hostname}\n")
    if not (upper / "etc/machine-id").exists():
        _write_file(upper / "etc/machine-id", uuid.uuid4().hex + "\n", mode=0o444)
    hostkeys.generate_host_key(upper, hostname)
    _write_file(
        upper / "etc/ssh/sshd_config.d/migrate.conf",
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n",
    )
    ssh_dir = upper / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(ssh_dir, 0o700)
    _write_file(ssh_dir / "authorized_keys", _with_newline(spec.authorized_keys), mode=0o600)
    _write_address_unit(spec, upper)
    for unit in spec.masked_units:
        _mask_unit(upper, unit)


def _write_address_unit(spec: MachineSpec, upper: Path) -> None:
    units = upper / "etc/systemd/system"
    _write_file(
        units / ADDRESS_UNIT,
        "[Unit]\n"
        "Description=Sandbox address on host0\n"
        "DefaultDependencies=no\n"
        "Before=network.target ssh.service\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "ExecStart=/usr/sbin/ip link set host0 up\n"
        f"ExecStart=/usr/sbin/ip addr replace {spec.address} dev host0\n"
        f"ExecStart=/usr/sbin/ip route replace default via {spec.gateway}\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n",
    )
    _symlink(units / "multi-user.target.wants" / ADDRESS_UNIT, f"../{ADDRESS_UNIT}")


def _mask_unit(upper: Path, unit: str) -> None:
    _symlink(upper / "etc/systemd/system" / unit, "/dev/null")


def _symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.chmod(path, 0o600)
    path.write_text(text)
    os.chmod(path, mode)


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# ---- start -----------------------------------------------------------------------


def start_machine(name: str, root: Root = None) -> int:
    """Boot the machine detached; returns the nspawn process id. Running: its pid."""
    require_host()
    record = _require_record(name, root)
    with _machine_lock(name, root):
        return _start_locked(name, record, root)


def _start_locked(name: str, record: Mapping[str, Any], root: Root) -> int:
    running = find_machine_pid(name, root)
    if running is not None:
        return running
    bridge = record["bridge"]
    if network.find_bridge(bridge) is None:
        raise StageFailed(
            f"machine {record['name']}: bridge {bridge} does not exist",
            hint="create the machine's network (network.ensure_bridge) before starting it",
        )
    _refuse_name_in_use(name)
    _remove_stale_veth(name)
    command = nspawn_command(record, upper_dir(name, root))
    groups = _fresh_cgroups(name, root)
    with open(console_log(name, root), "wb") as log:
        subprocess.run(
            _in_cgroups([tool("setsid"), "--fork", *command], groups),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            check=True,
            env=_nspawn_environment(),
        )
    return _wait_for_pid(name, root)


def _in_cgroups(command: list[str], groups: list[Path]) -> list[str]:
    """``command`` run by a shell that first moves itself into ``groups``, then execs it.

    Not ``preexec_fn``: Python code between fork and exec is unsafe in a threaded process
    (a Pulumi dynamic provider serves gRPC from threads; its forked child crashed there).
    """
    procs = [str(group / "cgroup.procs") for group in groups]
    script = (
        'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 1; shift; n=$((n-1)); '
        'done; exec "$@"'
    )
    return [tool("sh"), "-c", script, "sh", str(len(procs)), *procs, *command]


@contextmanager
def _machine_lock(name: str, root: Root) -> Iterator[None]:
    """Serialise start and stop of one machine across processes (the lock dies with us)."""
    lock_file = machine_dir(name, root) / ".lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def nspawn_command(record: Mapping[str, Any], upper: Path) -> list[str]:
    image = record["image_dir"]
    command = [
        tool("systemd-nspawn"),
        "--quiet",
        "-D",
        image,
        # The overlay is the root: the machine writes only to its upper dir, so the image
        # can be shared read-only (and locked shared, not exclusively) by all machines.
        "--read-only",
        f"--overlay={':'.join([image, *record.get('layers', ()), str(upper)])}:/",
        "-M",
        record["machine"],
        # Also in the container init's environment (container_uuid=): finds it in /proc
        # even when its nspawn process was killed.
        f"--uuid={record['machine_id']}",
        "--register=no",
        "--keep-unit",
        "--boot",
        f"--network-bridge={record['bridge']}",
        "--console=read-only",
        "--resolv-conf=off",
        "--link-journal=no",
    ]
    for host_dir, mount_point in record.get("volumes", {}).items():
        command.append(f"--bind={host_dir}:{mount_point}")
    return command


def _nspawn_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # Under a caller's terminal nspawn would fiddle with it; the console goes to a file.
    environment.pop("TERM", None)
    return environment


def _fresh_cgroups(name: str, root: Root) -> list[Path]:
    directory = machine_dir(name, root)
    key = f"{machine_name(name)}-{hashlib.sha256(str(directory).encode()).hexdigest()[:8]}"
    groups = cgroups.machine_cgroups(key)
    cgroups.remove(groups)  # leftovers of a machine that died
    cgroups.create(groups)
    _write_file(directory / "cgroups.json", json.dumps([str(g) for g in groups]) + "\n")
    return groups


def _remove_cgroups(name: str, root: Root) -> None:
    try:
        recorded = json.loads((machine_dir(name, root) / "cgroups.json").read_text())
    except FileNotFoundError:
        return
    cgroups.remove([Path(g) for g in recorded])


def _wait_for_pid(name: str, root: Root, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = find_machine_pid(name, root)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise StageFailed(
        f"machine {machine_name(name)} did not start:\n{console_tail(name, root)}",
        hint="the lines above are systemd-nspawn's output",
    )


def _refuse_name_in_use(name: str) -> None:
    """Machine names are the host's, not the sandbox root's: nspawn names the machine's veth
    vb-NAME. A machine of this name that runs (not ours: ours is down) belongs to another
    sandbox root, another estate's rehearsal; starting ours would take its veth away."""
    machine = machine_name(name)
    for pid in all_pids():
        argv = cmdline(pid)
        if argv and argv[0].endswith("systemd-nspawn") and _arg_after(argv, "-M") == machine:
            raise StageFailed(
                f"machine name {machine} is in use on this host: another sandbox's machine"
                f" runs under it (systemd-nspawn pid {pid})",
                hint="machine names are the host's: give the estate system ids and a"
                " sandbox.platform_machine of its own, or take the other sandbox down first")


def _remove_stale_veth(name: str) -> None:
    # A veth left by a killed machine makes the next start fail with "File exists".
    if Path("/sys/class/net", veth_name(name)).exists():
        subprocess.run(
            [tool("ip"), "link", "del", veth_name(name)], check=False, capture_output=True
        )


# ---- ready -----------------------------------------------------------------------


def wait_ssh_ready(name: str, timeout: float = 30.0, root: Root = None) -> float:
    """Wait until sshd answers with its banner; returns the seconds waited.

    Raises StageFailed with the tail of the machine's console on timeout or if the
    machine stops meanwhile. The address is checked by the network guard first.
    """
    record = _require_record(name, root)
    address = str(ipaddress.IPv4Interface(record["address"]).ip)
    network.assert_local_address(address)
    started = time.monotonic()
    deadline = started + timeout
    process = None
    while time.monotonic() < deadline:
        process = _current_process(process, name, root)
        if process is None:
            raise StageFailed(
                f"machine {record['machine']} stopped before ssh was ready:\n"
                + console_tail(name, root),
                hint="the lines above are the end of its boot log",
            )
        if _read_banner(address, SSH_PORT, min(1.0, max(0.05, deadline - time.monotonic()))):
            return time.monotonic() - started
        time.sleep(0.05)
    raise StageFailed(
        f"machine {record['machine']} ({address}) was not ssh-ready after {timeout:.0f} s;"
        f" end of its boot log:\n{console_tail(name, root)}",
        hint="look for failed units (ssh.service, migrate-address.service) above",
    )


def read_ssh_banner(address: str, port: int = SSH_PORT, timeout: float = 1.0) -> str | None:
    """The SSH identification line at address:port, or None if nothing answers yet.

    The network guard checks ``address`` first (GuardRefused if it is off the host).
    """
    network.assert_local_address(address)
    return _read_banner(address, port, timeout)


def _read_banner(address: str, port: int, timeout: float) -> str | None:
    # Only after network.assert_local_address(address) passed.
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            line = connection.recv(256).decode("ascii", "replace")
    except OSError:
        return None
    return line.strip() if line.startswith("SSH-") else None


def console_tail(name: str, root: Root = None, lines: int = 40) -> str:
    try:
        text = console_log(name, root).read_text(errors="replace")
    except OSError:
        return "(no console log)"
    kept = [line.rstrip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return "\n".join(kept[-lines:]) or "(console log is empty)"


# ---- stop and destroy ------------------------------------------------------------


def stop_machine(name: str, root: Root = None, timeout: float = 30.0) -> None:
    """Shut the machine down (SIGTERM to nspawn = orderly poweroff), then drop its veth.

    After ``timeout`` seconds the container is killed. Not running: only the cleanup.
    """
    if not machine_dir(name, root).exists():
        _wait_veth_gone(name, timeout=0)
        return
    with _machine_lock(name, root):
        process = find_machine_process(name, root)
        if process is not None:
            _stop_process(name, root, process, timeout)
        _wait_veth_gone(name)
        _remove_cgroups(name, root)


def _stop_process(name: str, root: Root, process: MachineProcess, timeout: float) -> None:
    # nspawn turns SIGTERM into an orderly poweroff; a container init whose nspawn died
    # gets systemd's own poweroff signal.
    polite = signal.SIGTERM if process.is_nspawn else signal.SIGRTMIN + 3
    _signal(process.pid, polite)
    if _wait_gone(name, root, timeout, process):
        return
    if process.is_nspawn:
        for child in _children(process.pid):
            _signal(child, signal.SIGKILL)  # the container's init: ends its namespace
    _signal(process.pid, signal.SIGKILL)
    if not _wait_gone(name, root, 10.0, process):
        raise StageFailed(f"machine {machine_name(name)} (pid {process.pid}) does not stop")


def destroy_machine(name: str, root: Root = None) -> None:
    """Stop the machine and remove its directory (overlay, keys, log); nothing else."""
    stop_machine(name, root)
    directory = machine_dir(name, root)
    if directory.exists():
        shutil.rmtree(directory)


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(name: str, root: Root, timeout: float, process: MachineProcess) -> bool:
    deadline = time.monotonic() + timeout
    seen: MachineProcess | None = process
    while time.monotonic() < deadline:
        seen = _current_process(seen, name, root)
        if seen is None:
            return True
        time.sleep(0.05)
    return _current_process(seen, name, root) is None


def _wait_veth_gone(name: str, timeout: float = 5.0) -> None:
    # The kernel removes the veth when the container's namespace goes; give it a moment.
    device = Path("/sys/class/net", veth_name(name))
    deadline = time.monotonic() + timeout
    while device.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if device.exists():
        subprocess.run(
            [tool("ip"), "link", "del", veth_name(name)], check=False, capture_output=True
        )


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


# ---- discovery -------------------------------------------------------------------


@dataclass(frozen=True)
class MachineProcess:
    pid: int
    is_nspawn: bool  # False: a container init left running after its nspawn died


def find_machine_pid(name: str, root: Root = None) -> int | None:
    """The pid that keeps this machine (from this root) alive, or None if it is down."""
    process = find_machine_process(name, root)
    return process.pid if process else None


def find_machine_process(name: str, root: Root = None) -> MachineProcess | None:
    machine = machine_name(name)
    overlay_suffix = f":{upper_dir(name, root)}:/"
    nspawns: dict[int, int] = {}
    others: list[int] = []
    for pid in all_pids():
        argv = cmdline(pid)
        if not argv:
            continue  # gone, a zombie or a kernel thread
        if argv[0].endswith("systemd-nspawn"):
            if _is_machine_nspawn(argv, machine, overlay_suffix):
                nspawns[pid] = _parent_pid(pid)
        else:
            others.append(pid)
    # nspawn's own helper children share its command line; the top one is the machine.
    tops = [pid for pid, parent in nspawns.items() if parent not in nspawns]
    if tops:
        return MachineProcess(min(tops), is_nspawn=True)
    # Environments are read only when no nspawn runs it: one more file per process.
    machine_id = _machine_id(name, root)
    inits = [pid for pid in others if machine_id and _container_uuid(pid) == machine_id]
    orphans = [pid for pid in inits if _parent_pid(pid) not in nspawns]
    return MachineProcess(min(orphans), is_nspawn=False) if orphans else None


def _is_machine_nspawn(argv: list[str], machine: str, overlay_suffix: str) -> bool:
    return _arg_after(argv, "-M") == machine and any(
        a.startswith("--overlay=") and a.endswith(overlay_suffix) for a in argv)


def _current_process(seen: MachineProcess | None, name: str,
                     root: Root) -> MachineProcess | None:
    """The machine's process now: ``seen`` while that pid still is it (one look at the pid,
    not a scan of /proc: pollers ask many times a second), else a fresh search."""
    if seen is not None and _still_machine_process(seen, name, root):
        return seen
    return find_machine_process(name, root)


def _still_machine_process(process: MachineProcess, name: str, root: Root) -> bool:
    if process.is_nspawn:
        return _is_machine_nspawn(cmdline(process.pid), machine_name(name),
                                  f":{upper_dir(name, root)}:/")
    machine_id = _machine_id(name, root)
    return bool(machine_id) and _container_uuid(process.pid) == machine_id


def _machine_id(name: str, root: Root) -> str | None:
    record = _read_record(spec_file(name, root))
    return record.get("machine_id") if record else None


def _container_uuid(pid: int) -> str | None:
    value = environ_value(pid, "container_uuid")
    if value is None:
        return None
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None



def _parent_pid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _arg_after(argv: list[str], flag: str) -> str | None:
    for index, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[index + 1]
    return None


def machine_init_pid(name: str, root: Root = None) -> int | None:
    """The pid of the machine's init (its PID 1), whose namespaces ``nsenter`` can enter;
    None while the machine is down."""
    process = find_machine_process(name, root)
    if process is None:
        return None
    if not process.is_nspawn:
        return process.pid  # an init whose nspawn died
    machine_id = _machine_id(name, root)
    for child in _children(process.pid):
        if _container_uuid(child) == machine_id:
            return child
    return None


def machine_status(name: str, root: Root = None) -> str:
    """``running``, ``stopped`` (created, not running) or ``absent``."""
    if find_machine_pid(name, root) is not None:
        return RUNNING
    return STOPPED if spec_file(name, root).exists() else ABSENT


def list_machines(root: Root = None) -> list[MachineInfo]:
    """Every machine under the sandbox root, running or not, sorted by machine name."""
    base = machines_dir(root)
    if not base.is_dir():
        return []
    return [
        _info(directory)
        for directory in sorted(base.iterdir())
        if (directory / "machine.json").is_file()
    ]


def _info(directory: Path) -> MachineInfo:
    record = _read_record(directory / "machine.json")
    if record is None:
        raise StageFailed(f"{directory} is not a sandbox machine (no machine.json)")
    root = directory.parent.parent
    pid = find_machine_pid(record["name"], root)
    return MachineInfo(
        name=record["name"],
        machine=record["machine"],
        status=RUNNING if pid is not None else STOPPED,
        pid=pid,
        address=record["address"],
        bridge=record["bridge"],
        directory=directory,
    )


def machine_info(name: str, root: Root = None) -> MachineInfo:
    return _info(machine_dir(name, root))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _require_record(name: str, root: Root) -> dict[str, Any]:
    record = _read_record(spec_file(name, root))
    if record is None:
        raise StageFailed(
            f"no sandbox machine {machine_name(name)} under {machines_dir(root)}",
            hint="create it first (create_machine)",
        )
    return record


def spec_of(name: str, root: Root = None) -> MachineSpec:
    """The spec a machine was created with (authorized_keys excluded)."""
    record = _require_record(name, root)
    fields = {f.name for f in dataclasses.fields(MachineSpec)}
    values = {key: value for key, value in record.items() if key in fields}
    values["image"] = record["image_dir"]
    values["masked_units"] = tuple(record.get("masked_units", ()))
    values["layers"] = tuple(record.get("layers", ()))
    return MachineSpec(**values)
