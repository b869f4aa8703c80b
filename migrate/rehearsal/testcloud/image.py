"""The test cloud's image: a sandbox base image plus the OpenStack Zed packages, cached.

Built once in two steps, reusing migrate.rehearsal.sandbox.images: debootstrap of the sandbox base
recipe (``images._build``), then ``apt-get install --no-install-recommends`` of the OpenStack,
Ceph, libvirt and middleware packages (Recommends would add about 500 packages and 1.9 GB: a
kernel, gcc, llvm, gtk, ffmpeg, scipy, exim4; the build took 1037 s with them, 217 s without),
run inside the build directory by ``systemd-nspawn`` (proper /proc,
/sys and /dev; the host's network and resolver, the one allowed use of the network).
A ``policy-rc.d`` refusing every start keeps the services from starting at install, and
every unit the packages enabled is disabled again afterwards: the machine boots with only
sshd, and ``services.py`` enables each service once it is configured.

The cache holds ``testcloud-<digest>`` next to the sandbox images; the digest covers both
recipes, so a changed package list builds a new image beside the old one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import images
from migrate.rehearsal.sandbox.host import require_host, tool

log = logging.getLogger(__name__)

# Bump when the build steps below change.
VERSION = 2

BASE = images.ImageRecipe(
    "testcloud-base",
    (*images.BASE_PACKAGES, "ca-certificates", "curl", "sudo", "procps", "less", "gnupg"),
)

OPENSTACK_PACKAGES = (
    # middleware
    "mariadb-server",
    "python3-pymysql",
    "rabbitmq-server",
    "memcached",
    "python3-memcache",
    "crudini",
    # identity, images, placement
    "keystone",
    "glance",
    "placement-api",
    # compute
    "nova-api",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute-kvm",
    "libvirt-daemon-system",
    "qemu-system-x86",
    "qemu-utils",
    "genisoimage",
    # network
    "neutron-server",
    "neutron-linuxbridge-agent",
    "neutron-dhcp-agent",
    "neutron-l3-agent",
    "neutron-metadata-agent",
    "iptables",
    "ebtables",
    "dnsmasq-base",
    "haproxy",
    # block storage and its Ceph back end
    "cinder-api",
    "cinder-scheduler",
    "cinder-volume",
    "ceph-mon",
    "ceph-osd",
    "ceph-mgr",
    "ceph-common",
    "python3-rbd",
    "python3-rados",
    # clients
    "python3-openstackclient",
    # SQLAlchemy's C extensions: only Recommended by python3-sqlalchemy, and Recommends are off
    "python3-sqlalchemy-ext",
)

# Units enabled before the OpenStack packages that stay enabled.
_KEEP_ENABLED = ("ssh.service",)

POLICY_RC = "#!/bin/sh\n# migrate testcloud image build: no service starts at install\nexit 101\n"


def digest() -> str:
    text = json.dumps(
        {"base": BASE.digest(), "packages": OPENSTACK_PACKAGES, "version": VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_path(cache: str | os.PathLike[str] | None = None) -> Path:
    return images.image_cache(cache) / f"testcloud-{digest()}"


def is_built(path: Path) -> bool:
    return images.is_built(path) and (path / MARKER).is_file()


def ensure_image(cache: str | os.PathLike[str] | None = None) -> Path:
    """The image's directory, built first if it is not cached (minutes, once)."""
    return ensure_built(image_path(cache), build, MARKER, digest())


MARKER = "etc/migrate-testcloud-image"


def ensure_built(
    target: Path, builder: Callable[[Path], dict[str, float]], marker: str, key: str
) -> Path:
    """``target`` if it holds ``marker``, else built by ``builder`` in a temporary dir
    beside it and renamed into place, under the sandbox images' per-image lock."""
    if (target / marker).is_file():
        return target
    require_host()
    target.parent.mkdir(parents=True, exist_ok=True)
    with images._build_lock(target):
        if (target / marker).is_file():
            return target
        images._remove_stale_builds(target)
        building = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        started = time.monotonic()
        try:
            timings = builder(building)
            timings["total_s"] = round(time.monotonic() - started, 1)
            (building / marker).write_text(json.dumps({"digest": key, "timings": timings}) + "\n")
            os.rename(building, target)
        except BaseException:
            images._discard_build_dir(building)
            raise
        log.info("built %s in %.0f s", target, time.monotonic() - started)
    return target


def build_timings(path: Path, marker: str = MARKER) -> dict[str, float]:
    try:
        return json.loads((path / marker).read_text()).get("timings", {})
    except (OSError, ValueError):
        return {}


def build(directory: Path) -> dict[str, float]:
    """debootstrap + apt-get install into ``directory``; returns step timings."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    images._build(BASE, directory)
    timings["debootstrap_s"] = round(time.monotonic() - started, 1)
    before = _enabled_units(directory)
    policy = directory / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC)
    policy.chmod(0o755)
    started = time.monotonic()
    try:
        apt_install(directory, OPENSTACK_PACKAGES, recommends=False)
    finally:
        images._stop_processes_rooted_in(directory)
        policy.unlink(missing_ok=True)
    timings["apt_install_s"] = round(time.monotonic() - started, 1)
    new_units = sorted(_enabled_units(directory) - before - set(_KEEP_ENABLED))
    if new_units:
        subprocess.run(
            ["systemctl", f"--root={directory}", "disable", *new_units],
            capture_output=True,
            text=True,
            check=False,
        )
    images._clean_apt(directory)
    return timings


def apt_install(directory: Path, packages: tuple[str, ...], recommends: bool = True) -> None:
    """``apt-get install packages`` inside the image directory (run by systemd-nspawn)."""
    script = (
        "set -e; export DEBIAN_FRONTEND=noninteractive; "
        "apt-get update -q; "
        "apt-get install -y -q -o Dpkg::Options::=--force-confdef "
        "-o Dpkg::Options::=--force-confold "
        + ("" if recommends else "--no-install-recommends ")
        + " ".join(packages)
    )
    command = [
        tool("systemd-nspawn"),
        "--quiet",
        "-D",
        str(directory),
        "--register=no",
        "--keep-unit",
        "--resolv-conf=bind-host",
        "--link-journal=no",
        "--pipe",
        "/bin/sh",
        "-c",
        script,
    ]
    log.info("installing %d packages into %s", len(packages), directory)
    logfile = directory.with_name(directory.name + ".apt.log")
    with open(logfile, "w") as out:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise StageFailed(
            f"apt-get install in the testcloud image failed (exit {result.returncode}):\n{tail}",
            hint=f"full log: {logfile}",
        )
    shutil.move(logfile, directory / "var/log/migrate-apt-install.log")


def _enabled_units(root: Path) -> set[str]:
    """Unit names with an enablement symlink under /etc/systemd/system/*.wants|requires."""
    units: set[str] = set()
    base = root / "etc/systemd/system"
    for wants in base.glob("*.wants"):
        units.update(link.name for link in wants.iterdir() if link.is_symlink())
    for requires in base.glob("*.requires"):
        units.update(link.name for link in requires.iterdir() if link.is_symlink())
    return units


def size_bytes(path: Path) -> int:
    result = subprocess.run(
        ["du", "-sb", str(path)], capture_output=True, text=True, check=False
    )
    return int(result.stdout.split()[0]) if result.returncode == 0 else 0
