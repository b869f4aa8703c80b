"""The guest image booted by the test cloud, built locally and cached.

A debootstrap'd Debian 12 (sandbox image helpers) with the cloud kernel, cloud-init
(config drive first) and sshd, made into an ext4 file system image by ``mkfs.ext4 -d``,
which needs no loop device or mount. It boots without a boot loader: the kernel and
initrd are uploaded to glance as ``aki``/``ari`` images and named by the disk image's
``kernel_id``/``ramdisk_id`` properties, so nova's libvirt driver boots them directly
with ``root=/dev/vda``. Nothing but Debian packages is downloaded.

Cached as ``testcloud-guest-<digest>/`` holding the root tree ``root/`` and ``disk/root.raw``,
``disk/vmlinuz`` and ``disk/initrd.img``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import images
from migrate.rehearsal.testcloud.image import apt_install, ensure_built

VERSION = 1
DISK_SIZE = "1536M"
RECIPE = images.ImageRecipe(
    "testcloud-guest",
    images.BASE_PACKAGES,
    # The guest's own services stay as Debian ships them (ssh must start on boot).
    disabled_units=("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer"),
)
# Installed by apt after debootstrap (debootstrap's own resolver fails on cloud-init's
# dependencies), without recommends.
PACKAGES = (
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "cloud-init",
    "ifupdown",
    "isc-dhcp-client",
    "netbase",
    "sudo",
    "e2fsprogs",
    # The database packages the test estates' instances declare, as a cloud's base image
    # may carry them: prepare_target then installs nothing, where apt-get under qemu's TCG
    # took minutes per instance. Installed, not running: the stages enable PostgreSQL
    # where a system needs it (as on the sandbox's cloud image).
    "postgresql",
    "python3-psycopg2",
)
# Started only where a stage enables them.
DISABLED_AFTER_INSTALL = ("postgresql.service",)
MARKER = "built.json"
CLOUD_CFG = """\
# migrate testcloud guest: the config drive, then the metadata service
datasource_list: [ ConfigDrive, OpenStack, None ]
"""
FSTAB = "LABEL=root / ext4 rw,errors=remount-ro 0 1\n"
INTERFACES = "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"


def digest() -> str:
    text = json.dumps({"recipe": RECIPE.digest(), "packages": PACKAGES, "version": VERSION,
                       "size": DISK_SIZE, "disabled": DISABLED_AFTER_INSTALL})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def guest_path(cache: str | os.PathLike[str] | None = None) -> Path:
    return images.image_cache(cache) / f"testcloud-guest-{digest()}"


def ensure_guest(cache: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``disk/root.raw``, ``disk/vmlinuz``, ``disk/initrd.img``."""
    return ensure_built(guest_path(cache), build, MARKER, digest())


def build(directory: Path) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    directory.mkdir()
    tree = directory / "root"
    images._build(RECIPE, tree)
    timings["debootstrap_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    try:
        apt_install(tree, PACKAGES, recommends=False)
    finally:
        images._stop_processes_rooted_in(tree)
    images._disable_units(tree, DISABLED_AFTER_INSTALL)
    images._clean_apt(tree)
    timings["apt_install_s"] = round(time.monotonic() - started, 1)
    (tree / "etc/cloud/cloud.cfg.d/99-testcloud.cfg").write_text(CLOUD_CFG)
    (tree / "etc/fstab").write_text(FSTAB)
    (tree / "etc/network/interfaces").write_text(INTERFACES)
    (tree / "etc/network/interfaces.d").mkdir(parents=True, exist_ok=True)
    # cloud-init regenerates host keys; systemd makes a machine id on first boot.
    disk = directory / "disk"
    disk.mkdir()
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise StageFailed("the guest image has no kernel or initrd in /boot")
    shutil.copy2(kernels[-1], disk / "vmlinuz")
    shutil.copy2(initrds[-1], disk / "initrd.img")
    started = time.monotonic()
    raw = disk / "root.raw"
    subprocess.run(["truncate", "-s", DISK_SIZE, str(raw)], check=True)
    result = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "root", "-E", "root_owner=0:0", "-d", str(tree),
         str(raw)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise StageFailed(f"mkfs.ext4 -d failed: {result.stderr.strip()}")
    timings["mkfs_s"] = round(time.monotonic() - started, 1)
    return timings
