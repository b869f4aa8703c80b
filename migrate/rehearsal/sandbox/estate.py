"""``migrate sandbox up / status / down``: an estate's rehearsal world on this host.

``sandbox_up`` brings up one legacy machine per source host (seeded with the department's
application and data), the exchange platform machine, and the bridges they sit on. Every
check runs before the first change; what it creates is recorded in an ownership record
(``estate_record``) so ``sandbox_status`` and ``sandbox_down`` act on exactly that.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrate.core import state
from migrate.core.errors import (
    EnvironmentNotReady,
    GuardRefused,
    InvalidInput,
    MigrateError,
    Problem,
    StageFailed,
)
from migrate.core.loader import Estate
from migrate.rehearsal.legacy.seed import HostSeed, build_host_seeds, write_into_root
from migrate.rehearsal.sandbox import hostkeys, images, machines, mirror, network
from migrate.rehearsal.sandbox.estate_plan import (
    EXCHANGE,
    LEGACY,
    BridgePlan,
    MachinePlan,
    SandboxPlan,
    naming_problems,
    network_problems,
    plan_sandbox,
)
from migrate.rehearsal.sandbox.estate_platform import (
    add_hosts_line,
    ca_bundle_path,
    ensure_apps,
    ensure_ca,
    install_platform,
    wait_platform_healthy,
)
from migrate.rehearsal.sandbox.estate_record import (
    OwnershipRecord,
    other_records,
    read_record,
    record_path,
    remove_record,
    write_record,
)
from migrate.rehearsal.sandbox.estate_secrets import (
    check_existing_secrets,
    client_public_key,
    ensure_secrets,
    ensure_token_file,
    secrets_folder,
)
from migrate.rehearsal.sandbox.host import find_tool, require_host, sandbox_root
from migrate.rehearsal.sandbox.hostkeys import ensure_client_keypair
from migrate.rehearsal.sandbox.layout import machine_dir, spec_file, upper_dir
from migrate.targets import rehearses

Progress = Callable[[str], None]
SSH_READY_TIMEOUT = 120.0
SETTLE_TIMEOUT = 300.0
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_MACHINE = 8
INOTIFY_MARGIN = 64
INOTIFY_FLOOR = 1024
# Units a sandbox machine has no use for (console password agents, a getty on a console
# nobody types into); each holds inotify instances.
IDLE_UNITS = (
    "systemd-ask-password-console.path",
    "systemd-ask-password-wall.path",
    "console-getty.service",
)
PARALLEL = 8
ADMIN_TOKEN_NAME = "exchange-admin-token"
KNOWN_HOSTS_NAME = "known_hosts"
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
USER_UNIT = "migrate-ssh-user.service"
OPERATOR_KEY_NAME = "operator_ed25519"
PREPARED_MARKER = "estate-prepared"


# ---- report ------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineReport:
    name: str
    machine: str
    role: str  # legacy | exchange
    system_id: str | None
    host: str
    address: str
    bridge: str
    status: str  # running | stopped | absent
    boot_s: float | None  # start to ssh-ready, when this host measured it


@dataclass(frozen=True)
class BridgeReport:
    device: str
    network: str
    gateway: str
    role: str
    present: bool


@dataclass
class SandboxReport:
    estate: str
    estate_id: str
    machines: list[MachineReport] = field(default_factory=list)
    bridges: list[BridgeReport] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    record: str | None = None
    known_hosts: str | None = None
    ca_bundle: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def boot_times(self) -> list[float]:
        return [m.boot_s for m in self.machines if m.boot_s is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "estate": self.estate,
            "estate_id": self.estate_id,
            "changed": self.changed,
            "changes": list(self.changes),
            "duration_s": round(self.duration_s, 3),
            "record": self.record,
            "known_hosts": self.known_hosts,
            "ca_bundle": self.ca_bundle,
            "machines": [asdict(m) for m in self.machines],
            "bridges": [asdict(b) for b in self.bridges],
        }


# ---- public API ------------------------------------------------------------------------


def sandbox_up(estate: Estate, *, scale: int | None = None,
               progress: Progress | None = None) -> SandboxReport:
    """Bring up the estate's sandbox (idempotent); every check runs before any change."""
    started = time.monotonic()
    say = progress or _quiet
    plan = check_before_up(estate)
    root = sandbox_root()
    known_id = existing_estate_id(estate)
    record = (read_record(known_id, root) if known_id else None) or OwnershipRecord(
        known_id or "", estate.settings.estate, str(estate.root.absolute()))
    check_ownership(plan, record, root)
    check_host_networks(estate, plan, record)
    check_existing_secrets(estate)
    say("checks passed")
    _ensure_images(plan, say)
    record.estate_id = state.journal_for(estate).estate_id()  # first change: identity
    changes: list[str] = []
    try:
        _apply(estate, plan, record, root, scale, say, changes)
    except MigrateError as error:
        state.journal_for(estate).append(
            "sandbox_up", result="failed", duration_s=time.monotonic() - started,
            outputs={"changes": changes, "error": error.message})
        raise
    report = _report(estate, record, root, changes, time.monotonic() - started)
    state.journal_for(estate).append(
        "sandbox_up", outputs=_journal_outputs(report), duration_s=report.duration_s)
    say("sandbox is up" if report.changed else "sandbox was already up: nothing changed")
    return report


def _apply(estate: Estate, plan: SandboxPlan, record: OwnershipRecord, root: Path,
           scale: int | None, say: Progress, changes: list[str]) -> None:
    """Every change of ``sandbox_up``, in order; ``changes`` says what was done so far."""
    changes += [f"secret {name} made" for name in ensure_secrets(estate)]
    state = sandbox_state_dir(estate)
    if ensure_token_file(state / ADMIN_TOKEN_NAME):
        changes.append("platform admin token made")
    ca_existed = ca_bundle_path(estate).is_file()
    ca = ensure_ca(estate, state)
    if not ca_existed:
        changes.append(f"CA written to {ca_bundle_path(estate)}")

    _record_intent(record, plan, root)
    changes += _ensure_bridges(plan, say)
    changes += _ensure_links(estate, record, root, say)
    changes += _ensure_mirror(estate, plan, record, root, say)
    started_at, machine_changes = _ensure_machines(estate, plan, root, ca, scale, say)
    changes += machine_changes
    boot = _wait_all_ready(plan, started_at, root, say)
    for machine, seconds in boot.items():
        record.machine(machine)["boot_s"] = round(seconds, 3)
    write_record(record, root)
    if _write_known_hosts(plan, root, state / KNOWN_HOSTS_NAME):
        changes.append("known_hosts written")
    _wait_all_settled(estate, [m for m in plan.legacy if m.machine in started_at], say)
    say("waiting for the exchange platform")
    wait_platform_healthy(estate, plan.platform_ip)
    changes += [f"platform app {key} registered" for key in
                ensure_apps(estate, plan.platform_ip, state / ADMIN_TOKEN_NAME)]


def sandbox_status(estate: Estate) -> SandboxReport:
    """What the ownership record lists, as the host shows it now."""
    started = time.monotonic()
    estate_id = existing_estate_id(estate) or ""
    root = sandbox_root()
    record = (read_record(estate_id, root) if estate_id else None) or OwnershipRecord(
        estate_id, estate.settings.estate, str(estate.root.absolute()))
    return _report(estate, record, root, [], time.monotonic() - started)


def sandbox_down(estate: Estate, progress: Progress | None = None) -> SandboxReport:
    """Stop and destroy exactly the recorded machines and bridges; keep secrets and CA."""
    started = time.monotonic()
    say = progress or _quiet
    require_host()
    estate_id = existing_estate_id(estate) or ""
    root = sandbox_root()
    record = read_record(estate_id, root) if estate_id else None
    changes: list[str] = []
    if record is not None:
        before = _report(estate, record, root, [], 0.0)
        changes += _destroy_machines(record, root, say)
        changes += _stop_mirror(record, say)
        changes += _remove_links(record, say)
        changes += _remove_bridges(record, say)
        if remove_record(estate_id, root):
            changes.append("ownership record removed")
        report = SandboxReport(before.estate, estate_id, [
            MachineReport(**{**asdict(m), "status": machines.ABSENT, "boot_s": None})
            for m in before.machines], [
            BridgeReport(**{**asdict(b), "present": False}) for b in before.bridges])
    else:
        report = SandboxReport(estate.settings.estate, estate_id)
    report.changes = changes
    report.duration_s = time.monotonic() - started
    report.known_hosts = str(known_hosts_path(estate))
    report.ca_bundle = str(ca_bundle_path(estate))
    if estate_id:
        state.journal_for(estate).append(
            "sandbox_down", outputs=_journal_outputs(report), duration_s=report.duration_s)
    say("sandbox is down" if changes else "no sandbox was up: nothing changed")
    return report


def existing_estate_id(estate: Estate) -> str | None:
    """The estate's id if it has one already (never creates it: checks change nothing)."""
    journal = state.journal_for(estate)
    return journal.estate_id() if journal.identity_path.is_file() else None


def sandbox_state_dir(estate: Estate, create: bool = True) -> Path:
    folder = state.state_dir(estate) / "sandbox"
    if create:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def known_hosts_path(estate: Estate) -> Path:
    return (sandbox_state_dir(estate, create=False) / KNOWN_HOSTS_NAME).absolute()


def admin_token_path(estate: Estate) -> Path:
    return sandbox_state_dir(estate, create=False) / ADMIN_TOKEN_NAME


# ---- checks (no change to the host) ------------------------------------------------------


def check_before_up(estate: Estate) -> SandboxPlan:
    require_host()
    if not rehearses(estate):
        raise InvalidInput([estate.settings_doc.problem(
            ("cloud", "target"),
            f"cloud.target is {estate.settings.cloud.target!r} and the estate does not rehearse"
            " its surroundings: 'sandbox up' has nothing to build",
            "set cloud.target: sandbox, or sandbox.surroundings: true to rehearse the source "
            "hosts, the exchange platform and the mirror around this cloud")])
    plan = plan_sandbox(estate)
    problems = [estate.settings_doc.problem(("sandbox",), text)
                for text in naming_problems(plan) + network_problems(estate, plan)]
    problems += _user_problems(estate, plan)
    if problems:
        raise InvalidInput(problems)
    return plan


def _user_problems(estate: Estate, plan: SandboxPlan) -> list[Problem]:
    return [estate.documents[m.system_id].problem(
                ("source", "ssh", "user"), f"user {m.ssh_user!r} is not a valid login name",
                "a lowercase name such as root or ops")
            for m in plan.legacy
            if m.system_id and not USER_NAME.match(m.ssh_user)]


def check_ownership(plan: SandboxPlan, record: OwnershipRecord, root: Path) -> None:
    """Refuse bridges or machines that another estate owns or that nobody owns."""
    others = other_records(record.estate_id, root)
    for bridge in plan.bridges:
        owner = next((o for o in others if bridge.device in o.bridge_devices()), None)
        if owner is not None:
            raise GuardRefused(
                f"bridge {bridge.device} ({bridge.cidr}) belongs to another estate's sandbox:"
                f" {owner.estate} ({owner.estate_root})",
                hint="run 'migrate sandbox down' for that estate first, or give this estate"
                     " other networks")
    existing = {b.name for b in network.list_bridges()}
    for bridge in plan.bridges:
        if bridge.device in existing and bridge.device not in record.bridge_devices():
            raise GuardRefused(
                f"bridge {bridge.device} already exists on this host and no estate owns it",
                hint=f"remove it if it is a leftover (ip link del {bridge.device})")
    for machine in plan.machines:
        owner = next((o for o in others if machine.machine in o.machine_names()), None)
        if owner is not None:
            raise GuardRefused(
                f"machine {machine.machine} belongs to another estate's sandbox:"
                f" {owner.estate} ({owner.estate_root})",
                hint="run 'migrate sandbox down' for that estate first")
        if (spec_file(machine.name, root).exists()
                and machine.machine not in record.machine_names()):
            raise GuardRefused(
                f"machine {machine.machine} already exists under {root} and no estate owns it",
                hint="destroy it if it is a leftover")


def check_host_networks(estate: Estate, plan: SandboxPlan, record: OwnershipRecord) -> None:
    """Every sandbox network is free on this host; every other address stays local."""
    allowed = estate.settings.sandbox.allowed_networks
    interfaces = _host_interfaces()
    for bridge in plan.bridges:
        net = ipaddress.IPv4Network(bridge.cidr)
        for device, interface in interfaces:
            if device == bridge.device and bridge.device in record.bridge_devices():
                if interface != ipaddress.IPv4Interface(bridge.gateway):
                    raise GuardRefused(f"bridge {device} carries {interface}, not {bridge.gateway}",
                                       hint="run 'migrate sandbox down' and up again")
                continue
            if not interface.network.overlaps(net):
                continue
            for address in _addresses_on(plan, bridge):
                network.assert_local_address(address, allowed)
            raise GuardRefused(
                f"sandbox network {net} ({bridge.role}) overlaps {interface} on {device}",
                hint="choose sandbox networks that no interface of this host uses")
    if not estate.settings.sandbox.seed_legacy:
        for system in estate.systems.values():
            for host in system.source.hosts:
                network.assert_local_address(host.address, allowed)
    network.plan_links(allowed)  # refuses an allowed network routed off the host


def _host_interfaces() -> list[tuple[str, ipaddress.IPv4Interface]]:
    found = []
    for link in network._ip_json("addr", "show"):
        for interface in network._ipv4_interfaces(link):
            if not interface.ip.is_loopback:
                found.append((link["ifname"], interface))
    return found


def _addresses_on(plan: SandboxPlan, bridge: BridgePlan) -> list[str]:
    return [m.ip for m in plan.machines if m.network == bridge.network] or [bridge.gateway_ip]


# ---- applying ------------------------------------------------------------------------


def _quiet(_message: str) -> None:
    pass


def _ensure_images(plan: SandboxPlan, say: Progress) -> None:
    for image in sorted({m.image for m in plan.machines}):
        if not images.is_built(images.image_path(image)):
            say(f"building image {image} (once; takes a minute)")
        images.ensure_image(image)


def _record_intent(record: OwnershipRecord, plan: SandboxPlan, root: Path) -> None:
    for bridge in plan.bridges:
        record.add_bridge({"network": bridge.network, "device": bridge.device,
                           "cidr": bridge.cidr, "gateway": bridge.gateway, "role": bridge.role})
    for machine in plan.machines:
        record.add_machine({**machine.as_dict(), "boot_s": None})
    write_record(record, root)


def _ensure_bridges(plan: SandboxPlan, say: Progress) -> list[str]:
    existing = {b.name for b in network.list_bridges()}
    changes = []
    for bridge in plan.bridges:
        network.ensure_bridge(bridge.network, bridge.gateway)
        if bridge.device not in existing:
            say(f"bridge {bridge.device} {bridge.gateway} ({bridge.role})")
            changes.append(f"bridge {bridge.device} created")
    return changes


def _ensure_links(estate: Estate, record: OwnershipRecord, root: Path,
                  say: Progress) -> list[str]:
    """Routes between the project bridges and sandbox.allowed_networks, recorded before they
    are made (``down`` removes them by that record) and checked before any change."""
    links = network.plan_links(estate.settings.sandbox.allowed_networks)
    if not links.networks:
        return []
    known = set(record.links.get("devices", []))
    record.links = {
        "networks": sorted({*record.links.get("networks", []), *links.networks}),
        "devices": sorted(known | set(links.devices))}
    write_record(record, root)
    network.link_networks(links)
    new = sorted(set(links.devices) - known)
    for device in new:
        say(f"linked {device} (allowed networks {', '.join(links.networks)})")
    return [f"allowed networks linked through {device}" for device in new]


def _remove_links(record: OwnershipRecord, say: Progress) -> list[str]:
    if not record.links:
        return []
    links = network.Links(tuple(record.links.get("networks", [])),
                          tuple(record.links.get("devices", [])))
    say(f"unlinking {', '.join(links.devices) or 'allowed networks'}")
    network.unlink_networks(links)
    return [f"allowed networks unlinked from {device}" for device in links.devices]


def _ensure_machines(estate: Estate, plan: SandboxPlan, root: Path, ca: Any,
                     scale: int | None, say: Progress) -> tuple[dict[str, float], list[str]]:
    """Create missing machines, refresh the platform's files, start what is stopped."""
    changes: list[str] = []
    fresh = [m for m in plan.machines if not _prepared(m, root)]
    seeds = _legacy_seeds(estate, [m for m in fresh if m.role == LEGACY], scale, say)
    operator_key = operator_public_key(estate)
    for machine in plan.machines:
        if machine in fresh:
            _create(estate, plan, machine, root, seeds.get(machine.name), operator_key)
            changes.append(f"machine {machine.machine} created")
        if machine.role == EXCHANGE:
            changed = install_platform(
                upper_dir(machine.name, root), ca, plan.exchange_host, machine.ip,
                sandbox_state_dir(estate) / ADMIN_TOKEN_NAME, plan.probe_networks)
            if changed and machine not in fresh:
                changes.append(f"platform files updated: {', '.join(changed)}")
                machines.stop_machine(machine.name, root)
    started_at: dict[str, float] = {}
    stopped = [m for m in plan.machines
               if machines.machine_status(m.name, root) != machines.RUNNING]
    changes += _ensure_inotify_instances(len(stopped), say)
    for machine in stopped:
        say(f"starting {machine.machine} ({machine.ip})")
        started_at[machine.machine] = time.monotonic()
        machines.start_machine(machine.name, root)
        changes.append(f"machine {machine.machine} started")
    return started_at, changes


def _ensure_inotify_instances(starting: int, say: Progress) -> list[str]:
    """Raise the kernel's inotify instance limit when the machines would exhaust it.

    Containers without user namespaces share root's limit (128 by default); each booted
    machine holds about 8 instances (systemd, dbus, logind), and a machine that finds none
    left fails units with "Result: resources".
    """
    if not starting:
        return []
    running = len(_nspawn_processes())
    needed = INOTIFY_PER_MACHINE * (running + starting) + INOTIFY_MARGIN
    try:
        current = int(INOTIFY_LIMIT.read_text())
    except (OSError, ValueError):
        return []
    if current >= needed:
        return []
    wanted = max(needed, INOTIFY_FLOOR)
    try:
        INOTIFY_LIMIT.write_text(f"{wanted}\n")
    except OSError as error:
        raise EnvironmentNotReady(
            f"{running + starting} machines need more inotify instances than {current}",
            hint=f"sysctl -w fs.inotify.max_user_instances={wanted} ({error.strerror})",
        ) from None
    say(f"fs.inotify.max_user_instances raised from {current} to {wanted}")
    return [f"fs.inotify.max_user_instances raised from {current} to {wanted}"]


def _nspawn_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if argv0.endswith(b"systemd-nspawn"):
                found.append(int(entry.name))
    return found


def _legacy_seeds(estate: Estate, fresh: list[MachinePlan], scale: int | None,
                  say: Progress) -> dict[str, HostSeed]:
    """Seeds of the legacy machines to create, by machine name (the data is built here)."""
    if not fresh:
        return {}
    say(f"building seed data for {len(fresh)} legacy machines")
    wanted = {(m.system_id, m.host): m.name for m in fresh}
    seeds: dict[str, HostSeed] = {}
    for sid in sorted({m.system_id for m in fresh if m.system_id}):
        for seed in build_host_seeds(estate.systems[sid], secrets_folder(estate), scale):
            if (sid, seed.host) in wanted:
                seeds[wanted[(sid, seed.host)]] = seed
    return seeds


def _prepared(machine: MachinePlan, root: Path) -> bool:
    """Created, seeded and configured completely (a killed ``up`` redoes the rest)."""
    return (machine_dir(machine.name, root) / PREPARED_MARKER).is_file()


def operator_public_key(estate: Estate) -> str:
    """The key that logs in as root on the platform machine (made once, kept)."""
    return ensure_client_keypair(sandbox_state_dir(estate) / OPERATOR_KEY_NAME)[1]


def operator_key_path(estate: Estate) -> Path:
    return (sandbox_state_dir(estate, create=False) / OPERATOR_KEY_NAME).absolute()


def _create(estate: Estate, plan: SandboxPlan, machine: MachinePlan, root: Path,
            seed: HostSeed | None, operator_key: str) -> None:
    """Create (or complete) the machine with everything it needs before its first boot."""
    public_key = client_public_key(estate, machine.ssh_key) if machine.ssh_key else operator_key
    root_keys = public_key if machine.ssh_user == "root" else ""
    spec = machines.MachineSpec(
        name=machine.name, image=machine.image, bridge=machine.network,
        address=machine.address, gateway=machine.gateway, authorized_keys=root_keys,
        hostname=machine.host, masked_units=IDLE_UNITS)
    machines.create_machine(spec, root)
    upper = upper_dir(machine.name, root)
    add_hosts_line(upper, plan.exchange_host, plan.platform_ip)
    if machine.ssh_user != "root" and public_key:
        _add_login_user(upper, machine.ssh_user, public_key)
    if seed is not None:
        write_into_root(seed, upper)
    (machine_dir(machine.name, root) / PREPARED_MARKER).write_text("prepared\n")


def _add_login_user(upper: Path, user: str, public_key: str) -> None:
    """A non-root login user with sudo rights, made at first boot before sshd starts."""
    keys = upper / f"etc/migrate/authorized_keys.{user}"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(public_key + "\n")
    sudoers = upper / f"etc/sudoers.d/migrate-{user}"
    sudoers.parent.mkdir(parents=True, exist_ok=True)
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
    os.chmod(sudoers, 0o440)
    home = f"/home/{user}"
    unit_dir = upper / "etc/systemd/system"
    (unit_dir / USER_UNIT).write_text(
        "[Unit]\n"
        f"Description=Login user {user} for migrate\n"
        "Before=ssh.service\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh -c 'id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}'\n"
        f"ExecStart=/usr/bin/install -d -m 0700 -o {user} -g {user} {home}/.ssh\n"
        f"ExecStart=/usr/bin/install -m 0600 -o {user} -g {user}"
        f" /etc/migrate/authorized_keys.{user} {home}/.ssh/authorized_keys\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n")
    wants = unit_dir / "multi-user.target.wants" / USER_UNIT
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        wants.symlink_to(f"../{USER_UNIT}")


def _wait_all_ready(plan: SandboxPlan, started_at: dict[str, float], root: Path,
                    say: Progress) -> dict[str, float]:
    """Wait in parallel for every started machine; seconds from start to ssh-ready."""
    targets = [m for m in plan.machines if m.machine in started_at]
    if not targets:
        return {}
    say(f"waiting for {len(targets)} machines to be ssh-ready")

    def wait(machine: MachinePlan) -> tuple[str, float | MigrateError]:
        try:
            machines.wait_ssh_ready(machine.name, SSH_READY_TIMEOUT, root)
        except MigrateError as error:
            return machine.machine, error
        return machine.machine, time.monotonic() - started_at[machine.machine]

    with ThreadPoolExecutor(max_workers=min(len(targets), 32)) as pool:
        results = dict(pool.map(wait, targets))
    failures = {name: r for name, r in results.items() if isinstance(r, MigrateError)}
    if failures:
        raise StageFailed(
            f"{len(failures)} of {len(targets)} machines did not become ssh-ready:\n"
            + "\n\n".join(error.message for error in failures.values()),
            hint="the machines stay recorded: 'migrate sandbox down' removes them")
    return {name: float(r) for name, r in results.items()}  # type: ignore[arg-type]


def ssh_command(estate: Estate, machine: MachinePlan, command: str) -> list[str]:
    """ssh argv that logs in to a sandbox machine with its system's key, host key checked."""
    key = (secrets_folder(estate) / machine.ssh_key if machine.ssh_key
           else operator_key_path(estate))
    return [
        find_tool("ssh") or "ssh", "-F", "/dev/null", "-i", str(key.absolute()),
        "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts_path(estate)}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10", f"{machine.ssh_user}@{machine.ip}", command,
    ]


def _wait_all_settled(estate: Estate, targets: list[MachinePlan], say: Progress) -> None:
    """Wait until the legacy machines finished booting (data seeded, services up)."""
    if not targets:
        return
    say(f"waiting for {len(targets)} legacy machines to finish seeding")

    def settle(machine: MachinePlan) -> str | None:
        network.assert_local_address(machine.ip)
        result = _run(ssh_command(estate, machine, "systemctl is-system-running --wait"
                                  " || systemctl --failed --no-legend --plain"))
        state = result.stdout.strip()
        if result.returncode == 0 and state.splitlines()[:1] == ["running"]:
            return None
        return f"{machine.machine} ({machine.ip}): {state or result.stderr.strip()}"

    with ThreadPoolExecutor(max_workers=min(len(targets), PARALLEL)) as pool:
        failures = [f for f in pool.map(settle, targets) if f]
    if failures:
        raise StageFailed(
            f"{len(failures)} legacy machines did not finish booting:\n" + "\n".join(failures),
            hint="the lines name failed units; the machines stay recorded:"
                 " 'migrate sandbox down' removes them")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=SETTLE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer in {SETTLE_TIMEOUT:.0f} s")


def _write_known_hosts(plan: SandboxPlan, root: Path, path: Path) -> bool:
    entries = [hostkeys.known_hosts_line(m.name, m.ip, root) for m in plan.machines]
    platform_key = hostkeys.host_public_key(upper_dir(plan.platform.name, root))
    entries.append(hostkeys.known_hosts_entry(plan.exchange_host, platform_key))
    text = "".join(f"{entry}\n" for entry in entries)
    if path.is_file() and path.read_text() == text:
        return False
    hostkeys.write_known_hosts(path, entries)
    return True


def _destroy_machines(record: OwnershipRecord, root: Path, say: Progress) -> list[str]:
    present = [m for m in record.machines if spec_file(m["name"], root).exists()]
    if not present:
        return []
    say(f"stopping and destroying {len(present)} machines")

    def destroy(entry: dict[str, Any]) -> str:
        machines.destroy_machine(entry["name"], root)
        return f"machine {entry['machine']} destroyed"

    with ThreadPoolExecutor(max_workers=min(len(present), 32)) as pool:
        return list(pool.map(destroy, present))


def needs_packages(estate: Estate) -> bool:
    """Whether any target instance of the estate declares packages (the sandbox then runs
    the cloud's package mirror)."""
    return any(i.packages for system in estate.systems.values() if system.target
               for i in system.target.instances)


def mirror_name_for(estate_id: str) -> str:
    return f"estate-{estate_id.lower()}"[:63]


def _ensure_mirror(estate: Estate, plan: SandboxPlan, record: OwnershipRecord, root: Path,
                   say: Progress) -> list[str]:
    """The cloud's package mirror on the host's address on the exchange platform's bridge
    (every target network routes there), when some instance declares packages; recorded
    before it starts, so that ``down`` stops it."""
    if not needs_packages(estate):
        return []
    name = mirror_name_for(record.estate_id)
    if record.mirror != name:
        record.mirror = name
        write_record(record, root)
    address = next(b.gateway_ip for b in plan.bridges if b.role == EXCHANGE)
    running = mirror.mirror_status(name)
    if running is not None and running.running and running.address == address:
        return []
    say(f"starting the package mirror on {address}")
    mirror.start_mirror(name, address)
    return [f"package mirror {name} started on {address}"]


def sandbox_mirror_url(estate: Estate) -> str | None:
    """The URL of the estate's running sandbox package mirror, or None."""
    estate_id = existing_estate_id(estate)
    record = read_record(estate_id) if estate_id else None
    if record is None or record.mirror is None:
        return None
    running = mirror.mirror_status(record.mirror)
    return running.url if running is not None and running.running else None


def _stop_mirror(record: OwnershipRecord, say: Progress) -> list[str]:
    if record.mirror is None:
        return []
    say(f"stopping the package mirror {record.mirror}")
    return [f"package mirror {record.mirror} stopped"] if mirror.stop_mirror(record.mirror) else []


def _remove_bridges(record: OwnershipRecord, say: Progress) -> list[str]:
    existing = {b.name for b in network.list_bridges()}
    changes = []
    for bridge in record.bridges:
        if bridge["device"] in existing:
            say(f"removing bridge {bridge['device']}")
            network.remove_bridge(bridge["network"])
            changes.append(f"bridge {bridge['device']} removed")
    return changes


# ---- reporting -------------------------------------------------------------------------


def _report(estate: Estate, record: OwnershipRecord, root: Path, changes: list[str],
            duration: float) -> SandboxReport:
    present = {b.name: b for b in network.list_bridges()}
    machine_reports = [
        MachineReport(
            name=m["name"], machine=m["machine"], role=m["role"], system_id=m.get("system_id"),
            host=m["host"], address=m["address"].split("/")[0], bridge=m["bridge"],
            status=machines.machine_status(m["name"], root), boot_s=m.get("boot_s"))
        for m in record.machines]
    bridge_reports = [
        BridgeReport(device=b["device"], network=b["cidr"], gateway=b["gateway"],
                     role=b["role"], present=b["device"] in present)
        for b in record.bridges]
    path = record_path(record.estate_id, root)
    return SandboxReport(
        estate=estate.settings.estate, estate_id=record.estate_id, machines=machine_reports,
        bridges=bridge_reports, changes=changes, duration_s=duration,
        record=str(path) if path.exists() else None,
        known_hosts=str(known_hosts_path(estate)), ca_bundle=str(ca_bundle_path(estate)))


def _journal_outputs(report: SandboxReport) -> dict[str, Any]:
    return {
        "changed": report.changed,
        "changes": report.changes,
        "machines": {m.machine: {"address": m.address, "role": m.role, "status": m.status,
                                 "boot_s": m.boot_s} for m in report.machines},
        "bridges": {b.device: b.network for b in report.bridges},
        "record": report.record,
    }


def report_json(report: SandboxReport) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
