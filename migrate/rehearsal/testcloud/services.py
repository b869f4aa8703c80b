"""Bring the all-in-one OpenStack up in the testcloud machine, phase by phase.

Each phase is a part of ``data/aio.sh`` run inside the machine; a phase that completed
leaves a marker there and is skipped next time, so ``up`` is idempotent and resumes a
bring-up that was interrupted. Passwords are generated once and kept in the cloud root
(``secrets.json``, mode 0600), with ``clouds.yaml`` for the host and an SSH key for guests.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from migrate.core.errors import StageFailed
from migrate.rehearsal.testcloud import guest as tc_guest
from migrate.rehearsal.testcloud import image as tc_image
from migrate.rehearsal.testcloud import machine as tc_machine

log = logging.getLogger(__name__)

PHASES = ("base", "keystone", "glance", "placement", "nova", "neutron", "networks", "guest",
          "ceph", "cinder", "keymanager", "estate")
CLOUD_NAME = "testcloud"
MARKS = "/var/lib/migrate-testcloud"  # in the machine: PHASE.done once a phase completed
TENANT_CIDR = "192.168.77.0/24"
KVM_CREATE_VM = 0xAE01


@dataclass
class UpReport:
    image: str = ""
    virt_type: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    clouds_yaml: str = ""


def kvm_works() -> bool:
    """True if /dev/kvm exists and creates a VM (else nova uses qemu's TCG)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def virt_type() -> str:
    """``kvm`` or ``qemu`` (TCG) for nova's libvirt driver, logged with the reason.

    /dev/kvm creating a VM is not enough on this machine kind: Linux guests fail under
    its nested KVM (docs/testcloud.md), so TCG is the default and
    MIGRATE_TESTCLOUD_VIRT=kvm asks for KVM where /dev/kvm works.
    """
    wanted = os.environ.get("MIGRATE_TESTCLOUD_VIRT", "qemu")
    if wanted == "kvm" and kvm_works():
        log.info("nova uses KVM (/dev/kvm creates VMs; MIGRATE_TESTCLOUD_VIRT=kvm)")
        return "kvm"
    if wanted == "kvm":
        log.warning("MIGRATE_TESTCLOUD_VIRT=kvm but /dev/kvm does not work: using TCG")
    else:
        log.warning("nova uses qemu's TCG, not KVM: Linux guests fail under this host's"
                    " nested KVM (see docs/testcloud.md); MIGRATE_TESTCLOUD_VIRT=kvm to try")
    return "qemu"


def load_secrets(root: Path) -> dict[str, str]:
    path = root / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {key: secrets.token_hex(16) for key in
              ("PW_DB", "PW_RABBIT", "PW_ADMIN", "PW_SERVICE", "METADATA_SECRET")}
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    return values


def guest_key(root: Path) -> Path:
    key = root / "id_ed25519"
    root.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "testcloud",
                        "-f", str(key)], check=True)
    return key


def cloud_config(root: Path) -> dict[str, Any]:
    values = load_secrets(root)
    return {
        "auth": {
            "auth_url": f"http://{tc_machine.MACHINE_IP}:5000/v3",
            "username": "admin",
            "password": values["PW_ADMIN"],
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
        "interface": "public",
        "identity_api_version": 3,
    }


def write_clouds_yaml(root: Path) -> Path:
    path = root / "clouds.yaml"
    text = yaml.safe_dump({"clouds": {CLOUD_NAME: cloud_config(root)}}, sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def phase_environment(root: Path, virt_type: str) -> dict[str, str]:
    start, end = tc_machine.PROVIDER_POOL
    return {
        **load_secrets(root),
        "IP": tc_machine.MACHINE_IP,
        "VIRT_TYPE": virt_type,
        "PROVIDER_CIDR": str(tc_machine.PROVIDER_NET),
        "PROVIDER_GATEWAY": tc_machine.HOST_PROVIDER_IP,
        "PROVIDER_START": start,
        "PROVIDER_END": end,
        "TENANT_CIDR": TENANT_CIDR,
        "MGMT_CIDR": str(tc_machine.MGMT_NET),
    }


def phase_done(m: tc_machine.Machine, phase: str) -> bool:
    marker = f"{MARKS}/{phase}.done"
    return tc_machine.run(m, "test", "-f", marker, check=False).returncode == 0


def up(root: Path, phases: tuple[str, ...] = PHASES, again: tuple[str, ...] = ()) -> UpReport:
    """Image, machine, services: everything missing is made, the rest is kept; the phases
    ``again`` run even if they completed before (after a change of aio.sh; each phase is
    idempotent)."""
    report = UpReport()
    started = time.monotonic()
    image = tc_image.ensure_image()
    report.image = str(image)
    report.timings["image_s"] = round(time.monotonic() - started, 1)
    step = time.monotonic()
    guest_dir = tc_guest.ensure_guest() if "guest" in phases else None
    report.timings["guest_image_s"] = round(time.monotonic() - step, 1)
    key = guest_key(root)
    m = tc_machine.create(root, image, "")
    control = tc_machine.volume_dir("control", root)
    script = resources.files("migrate.rehearsal.testcloud").joinpath("data/aio.sh").read_bytes()
    (control / "aio.sh").write_bytes(script)
    (control / "aio.sh").chmod(0o755)
    if guest_dir is not None:
        target = tc_machine.volume_dir("guest", root)
        for name in ("root.raw", "vmlinuz", "initrd.img"):
            source = guest_dir / "disk" / name
            if not (target / name).exists() or (target / name).stat().st_size != \
                    source.stat().st_size:
                shutil.copyfile(source, target / name)
        shutil.copyfile(key.with_suffix(".pub"), target / "id_ed25519.pub")
    step = time.monotonic()
    tc_machine.start(m)
    tc_machine.wait_booted(m)
    report.timings["boot_s"] = round(time.monotonic() - step, 1)
    report.virt_type = virt_type()
    # The phases read their settings and passwords from a root-only file, not argv.
    env_file = control / "env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for key, value in phase_environment(root, report.virt_type).items():
            handle.write(f"{key}={shlex.quote(value)}\n")
    for phase in phases:
        if phase in again:
            tc_machine.run(m, "rm", "-f", f"{MARKS}/{phase}.done")
        if phase_done(m, phase):
            report.skipped.append(phase)
            continue
        step = time.monotonic()
        log.info("testcloud: %s", phase)
        tc_machine.run(m, "/srv/testcloud/aio.sh", phase, timeout=1800)
        report.timings[f"{phase}_s"] = round(time.monotonic() - step, 1)
    report.clouds_yaml = str(write_clouds_yaml(root))
    report.timings["total_s"] = round(time.monotonic() - started, 1)
    return report


def down(root: Path) -> None:
    """Stop and remove the machine, its state and both bridges; the images stay cached."""
    tc_machine.destroy(root)
    for name in ("clouds.yaml", "secrets.json"):
        (root / name).unlink(missing_ok=True)


# ---- measuring -------------------------------------------------------------------


def cgroup_dir(root: Path) -> Path | None:
    """The machine's cgroup2 directory (the sandbox makes one per machine)."""
    try:
        directory = tc_machine.machine_dir(tc_machine.NAME, root)
        recorded = json.loads((directory / "cgroups.json").read_text())
    except (OSError, ValueError):
        return None
    for group in recorded:
        if (Path(group) / "cpu.stat").exists():
            return Path(group)
    return None


def _pids_below(group: Path) -> list[int]:
    pids: list[int] = []
    for procs in group.rglob("cgroup.procs"):
        try:
            pids.extend(int(line) for line in procs.read_text().split())
        except OSError:
            continue
    return pids


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def idle_usage(root: Path, seconds: float = 10.0) -> dict[str, float]:
    """CPU (cgroup2 cpu.stat usage over ``seconds``, in cores) and memory (the sum of the
    proportional set sizes of the machine's processes: this host's cgroup2 tree has no
    memory controller enabled, so there is no memory.current to read)."""
    group = cgroup_dir(root)
    if group is None:
        return {}

    def usage_usec() -> int:
        for line in (group / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1])
        return 0

    first, start = usage_usec(), time.monotonic()
    time.sleep(seconds)
    used, elapsed = usage_usec() - first, time.monotonic() - start
    pids = _pids_below(group)
    return {
        "processes": len(pids),
        "memory_pss_mib": round(sum(_pss_kib(pid) for pid in pids) / 1024, 1),
        "cpu_cores": round(used / 1e6 / elapsed, 3),
        "seconds": round(elapsed, 1),
    }


def ensure_stopped(root: Path) -> None:
    tc_machine.stop(root)
    for bridge in (tc_machine.MGMT_BRIDGE, tc_machine.PROVIDER_BRIDGE):
        if Path("/sys/class/net", bridge, "brif").is_dir() and \
                not any(Path("/sys/class/net", bridge, "brif").iterdir()):
            tc_machine.remove_bridge(bridge)


def require_running(root: Path) -> tc_machine.Machine:
    m = tc_machine.Machine(root, tc_image.image_path())
    if m.status() != "running":
        raise StageFailed("the test cloud is not running",
                          hint="python -m migrate.rehearsal.testcloud up")
    return m
